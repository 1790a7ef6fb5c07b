//! `cargo azfn package`: the folder and zip the host loads, and the packaged app serving from there.

mod common;

use std::process::Command;

use common::*;

#[tokio::test]
async fn packages_a_folder_and_zip_that_the_host_can_load() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("azfn-app");
    let res = package_command()
        // This test's binary is built against this machine's glibc; the glibc limit is tested below.
        .args(["--zip", "--max-glibc", "any", "--out"])
        .arg(&out)
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(String::from_utf8_lossy(&res.stdout).contains("packaged 12 functions"));

    // Layout: host.json, one folder per function, the binary named by defaultExecutablePath.
    assert!(out.join("host.json").is_file());
    assert!(!out.join("local.settings.json").exists(), "local settings never ship");
    for f in [
        "Hello",
        "CreateOrder",
        "GetOrder",
        "ProcessOrder",
        "AuditReceipt",
        "OrderSummary",
        "OrderEvents",
        "CatalogEvents",
        "DurableControl",
        "DurableWork",
        "Orchestrators",
        "Dashboard",
    ] {
        assert!(out.join(f).join("function.json").is_file(), "{f}");
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(out.join("orders")).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "the binary is executable");

    // The zip holds the same files, with the binary's mode.
    let zip_path = out.with_extension("zip");
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let names: Vec<String> = archive.file_names().map(|n| n.unwrap().into_owned()).collect();
    assert!(names.contains(&"host.json".to_owned()) && names.contains(&"Hello/function.json".to_owned()), "{names:?}");
    let exe = archive.by_name("orders").unwrap();
    assert_eq!(exe.unix_mode().unwrap() & 0o777, 0o755);
    drop(exe);

    // The packaged app serves from its own folder, laid out as the host stages it.
    let h = Handler::start(&out).await;
    let (status, _, body) = h
        .invoke(
            "Hello",
            &serde_json::json!({"Data": {"req": {"Url": "http://x/api/hello?name=Zip", "Method": "GET", "Query": {"name": "Zip"}, "Headers": {}}}, "Metadata": {}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["Outputs"]["res"]["body"], "Hello, Zip");
}

#[test]
fn refuses_to_package_an_app_whose_handlers_do_not_match() {
    let staged = staged_copy();
    std::fs::remove_dir_all(staged.path().join("Hello")).unwrap();
    let res =
        package_command().arg("--out").arg(staged.path().join("out")).current_dir(staged.path()).output().unwrap();
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("refusing to package") && err.contains("handler `Hello` has no function.json"), "{err}");
    assert!(!staged.path().join("out").exists());
}

/// A binary built against a glibc newer than Azure's workers' 2.31 is refused, with what to do.
/// (The build machine is Debian 12: `cargo build` output needs GLIBC_2.34. `cargo azfn package`
/// builds and packages one that needs at most 2.31; CI runs it.)
#[test]
fn refuses_a_handler_that_needs_a_newer_glibc_than_azure_has() {
    let need = cargo_azfn::glibc::required_glibc(std::path::Path::new(env!("CARGO_BIN_EXE_orders"))).unwrap();
    let cargo_azfn::glibc::GlibcNeed::AtLeast(needed) = need else { panic!("the test binary links glibc") };
    let out_dir = tempfile::tempdir().unwrap();
    let res = package_command().arg("--out").arg(out_dir.path().join("app")).current_dir(repo_root()).output().unwrap();
    if needed <= cargo_azfn::glibc::AZURE_GLIBC_FLOOR {
        // Built somewhere older: it fits, and is packaged.
        assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
        return;
    }
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains(&format!("needs glibc {needed}")) && err.contains("have 2.31") && err.contains("cargo zigbuild"),
        "{err}"
    );
    assert!(!out_dir.path().join("app").exists(), "nothing is written");
    let res = package_command().args(["--max-glibc", "2.x"]).current_dir(repo_root()).output().unwrap();
    assert!(String::from_utf8_lossy(&res.stderr).contains("is not a glibc version"));
}

#[test]
fn unknown_commands_and_options_are_explained() {
    let res = Command::new(cargo_azfn()).args(["azfn", "deploy"]).output().unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("unrecognized subcommand 'deploy'"));
    let res = package_command().arg("--fast").output().unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("unexpected argument '--fast'"));
    // The handler itself has only `serve` and `check`.
    let res = Command::new(env!("CARGO_BIN_EXE_orders")).arg("package").output().unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("unknown command \"package\""));
}

/// `cargo azfn package --handler <the app's test build>` in the repository root.
fn package_command() -> Command {
    let mut cmd = Command::new(cargo_azfn());
    cmd.args(["azfn", "package", "--handler", env!("CARGO_BIN_EXE_orders")]).current_dir(repo_root());
    cmd
}
