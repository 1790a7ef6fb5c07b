//! `azfn new`: every kind of function is added so that the app builds at once and the generated
//! tests pass, and bad requests are refused without touching anything.

mod common;

use std::path::Path;
use std::process::Command;

use common::repo_root;

/// Copies the app (manifest, sources, function.json files) into a fresh folder.
fn app_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in ["Cargo.toml", "Cargo.lock", "host.json", "local.settings.json", "rustfmt.toml"] {
        std::fs::copy(repo_root().join(file), dir.path().join(file)).unwrap();
    }
    for tree in ["src", "functions", "tests/fixtures"] {
        copy_tree(&repo_root().join(tree), &dir.path().join(tree));
    }
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn new(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_azfn")).arg("new").args(args).current_dir(dir).output().unwrap()
}

#[test]
fn new_functions_of_every_kind_build_and_their_tests_pass() {
    let app = app_copy();
    let adds: &[&[&str]] = &[
        &["http", "Ping", "--route", "ping", "--methods", "get", "--auth", "anonymous"],
        &["timer", "Nightly", "--schedule", "0 0 2 * * *"],
        &["queue", "Shipments", "--queue", "shipments"],
        &["blob", "Invoices", "--path", "invoices/{name}"],
        &["servicebus", "Refunds", "--queue", "refunds"],
        &["eventgrid", "StockEvents"],
    ];
    for args in adds {
        let out = new(app.path(), args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let ping: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(app.path().join("functions/Ping/function.json")).unwrap())
            .unwrap();
    assert_eq!(ping["bindings"][0]["route"], "ping");
    assert_eq!(ping["bindings"][0]["authLevel"], "anonymous");
    let registry = std::fs::read_to_string(app.path().join("src/functions/mod.rs")).unwrap();
    assert!(
        registry.contains("mod stock_events;")
            && registry.contains(".function(\"StockEvents\", stock_events::stock_events)")
    );

    // The app builds at once, starts (its start-up check passes) and the generated tests pass.
    let target = repo_root().join("target/scaffold-check");
    let out = Command::new(env!("CARGO"))
        .args(["test", "--offline", "--locked", "--bin", "azfn", "--", "functions::"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(app.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for module in ["ping", "nightly", "shipments", "invoices", "refunds", "stock_events"] {
        assert!(stdout.contains(&format!("functions::{module}::tests::")), "no test ran for {module}:\n{stdout}");
    }

    // It starts: the start-up check finds a handler for every function.json, and back.
    let out = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--locked", "--bin", "azfn"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(app.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let port = common::free_port();
    let mut child = Command::new(target.join("debug/azfn"))
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_APP_ROOT_PATH", app.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let ready = loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the app with new functions did not start ({status}): {err}");
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "the app with new functions did not listen within 30 s");
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let app = app_copy();
    let before = std::fs::read_to_string(app.path().join("src/functions/mod.rs")).unwrap();
    for (args, expect) in [
        (&["http", "2fast"][..], "not a valid function name"),
        (&["http", "hello"][..], "already exists"),
        (&["cron", "Tick"][..], "unknown kind"),
        (&["queue", "Jobs", "--colour", "red"][..], "unknown option"),
        (&["queue"][..], "usage: new <kind> <Name>"),
    ] {
        let out = new(app.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(app.path().join("src/functions/mod.rs")).unwrap(), before);
    assert!(!app.path().join("functions/Jobs").exists());
}
