//! Building the app's handler with Cargo and finding the binary it produced.
//!
//! `cargo build --message-format=json-render-diagnostics` prints the compiler's messages as usual
//! (on stderr) and one JSON line per artifact on stdout; the handler is the executable of a `bin`
//! target, the one named like host.json's `defaultExecutablePath` when the app has several.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How to build the handler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// `--release`.
    pub release: bool,
    /// `--target <triple>`, e.g. `x86_64-unknown-linux-musl`.
    pub target: Option<String>,
    /// The binary to pick when the package has several (host.json's executable name).
    pub bin: Option<String>,
    /// Build with cargo-zigbuild (for an older glibc: see [`cross`](crate::cross)).
    pub zigbuild: Option<crate::cross::ZigBuild>,
}

/// Runs `cargo build` in `root` and gives the path of the handler binary it built.
pub fn build(root: &Path, opts: &BuildOptions) -> Result<PathBuf, String> {
    let mut cmd = match &opts.zigbuild {
        Some(zig) => zig.command(),
        None => {
            let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            cmd.arg("build");
            cmd
        }
    };
    cmd.arg("--message-format=json-render-diagnostics").current_dir(root);
    if opts.release {
        cmd.arg("--release");
    }
    if let Some(t) = &opts.target {
        cmd.args(["--target", t]);
    }
    if let Some(b) = &opts.bin {
        // Only when the package has such a binary: otherwise Cargo refuses the whole build.
        if has_bin(root, b) {
            cmd.args(["--bin", b]);
        }
    }
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().map_err(|e| format!("cannot run cargo: {e}"))?;
    let mut executables = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(exe) = executable_of(&line) {
                executables.push(exe);
            }
        }
    }
    let status = child.wait().map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build failed ({status}); the errors are above"));
    }
    pick(executables, opts.bin.as_deref())
}

/// The `(target name, executable)` of a `compiler-artifact` line for a `bin` target.
fn executable_of(line: &str) -> Option<(String, PathBuf)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["reason"] != "compiler-artifact" {
        return None;
    }
    let kinds = v["target"]["kind"].as_array()?;
    if !kinds.iter().any(|k| k == "bin") {
        return None;
    }
    Some((v["target"]["name"].as_str()?.to_owned(), PathBuf::from(v["executable"].as_str()?)))
}

fn pick(executables: Vec<(String, PathBuf)>, bin: Option<&str>) -> Result<PathBuf, String> {
    if let Some(b) = bin
        && let Some((_, p)) = executables.iter().find(|(n, _)| n == b)
    {
        return Ok(p.clone());
    }
    match executables.as_slice() {
        [(_, p)] => Ok(p.clone()),
        [] => Err("cargo build produced no binary: the app needs a `src/main.rs` (see `cargo azfn init`)".to_owned()),
        many => Err(format!(
            "cargo build produced several binaries ({}); name the handler in host.json's defaultExecutablePath",
            many.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Whether the package in `root` has a binary named `bin` (its `[[bin]]` or its package name with
/// a `src/main.rs`).
fn has_bin(root: &Path, bin: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(root.join("Cargo.toml")) else { return false };
    let quoted = format!("\"{bin}\"");
    text.lines().any(|l| {
        let l = l.trim();
        l.starts_with("name") && l.ends_with(&quoted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_of_bin_targets_are_found() {
        let line = r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"orders"},"executable":"/t/debug/orders"}"#;
        assert_eq!(executable_of(line), Some(("orders".to_owned(), PathBuf::from("/t/debug/orders"))));
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"azfn"},"executable":null}"#;
        assert_eq!(executable_of(lib), None);
        assert_eq!(executable_of(r#"{"reason":"build-finished","success":true}"#), None);
    }

    #[test]
    fn the_binary_named_in_host_json_wins() {
        let two = vec![("a".to_owned(), PathBuf::from("/a")), ("b".to_owned(), PathBuf::from("/b"))];
        assert_eq!(pick(two.clone(), Some("b")).unwrap(), PathBuf::from("/b"));
        assert!(pick(two, None).unwrap_err().contains("a, b"));
        assert_eq!(pick(vec![("x".to_owned(), PathBuf::from("/x"))], Some("y")).unwrap(), PathBuf::from("/x"));
    }
}
