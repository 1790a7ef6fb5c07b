//! The per-user cache of the tools `cargo azfn` installs on first use: Azurite (from the npm
//! registry, for `start`), and Zig with cargo-zigbuild (from PyPI and crates.io, for `package`).
//!
//! Each tool goes into its own folder named with its pinned version, under
//! `$AZFN_CACHE_DIR`, else `$XDG_CACHE_HOME/azfn`, else `~/.cache/azfn`. A folder is installed
//! under a temporary name and renamed into place when complete, so an interrupted install leaves
//! nothing half-done behind, and two processes installing at once both end with one whole copy.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The cache's root folder.
pub fn root() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("AZFN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("azfn"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache/azfn")),
        None => Err("no cache folder for the tools cargo azfn installs: set AZFN_CACHE_DIR (or HOME)".to_owned()),
    }
}

/// The folder `name` (a tool and its version, e.g. `azurite-3.35.0`) in the cache, installed by
/// `install` into the empty folder it is given when it is not there yet. `what` names the tool in
/// the progress lines, which go to stderr.
pub fn ensure(name: &str, what: &str, install: impl FnOnce(&Path) -> Result<(), String>) -> Result<PathBuf, String> {
    ensure_in(&root()?, name, what, install)
}

/// [`ensure`] in the cache folder `root`.
pub fn ensure_in(
    root: &Path,
    name: &str,
    what: &str,
    install: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    let dir = root.join(name);
    if dir.join(".complete").is_file() {
        return Ok(dir);
    }
    if dir.exists() {
        // Not installed by this tool (its installs are renamed into place whole): cleared.
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot clear the incomplete {}: {e}; delete it and try again", dir.display()))?;
    }
    std::fs::create_dir_all(root).map_err(|e| format!("cannot create the tool cache {}: {e}", root.display()))?;
    let staging = root.join(format!(".{name}.{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    eprintln!("cargo azfn: installing {what} into {} (once; later runs use it)", dir.display());
    let started = std::time::Instant::now();
    let installed = install(&staging).and_then(|()| {
        std::fs::write(staging.join(".complete"), "").map_err(|e| format!("cannot write in {}: {e}", staging.display()))
    });
    if let Err(e) = installed {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&staging, &dir) {
        let _ = std::fs::remove_dir_all(&staging);
        // Another process finished the same install first: use its copy.
        if !dir.join(".complete").is_file() {
            return Err(format!("cannot move {} into place: {e}", dir.display()));
        }
    }
    eprintln!("cargo azfn: {what} installed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(dir)
}

/// Runs `cmd`, its output going to the terminal (the progress of a long install); fails with
/// `hint` when the program is missing.
pub fn run(mut cmd: Command, hint: &str) -> Result<(), String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let status = cmd.status().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("`{program}` was not found: {hint}")
        } else {
            format!("cannot run {program}: {e}")
        }
    })?;
    if status.success() {
        Ok(())
    } else {
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        Err(format!("`{program} {}` failed ({status}); its output is above", args.join(" ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_once_and_keeps_nothing_half_done() {
        let cache = tempfile::tempdir().unwrap();
        let failed = ensure_in(cache.path(), "tool-1", "tool 1", |_| Err("no network".into()));
        assert_eq!(failed.unwrap_err(), "no network");
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0, "nothing left behind");
        let write = |d: &Path| std::fs::write(d.join("bin"), "x").map_err(|e| e.to_string());
        let dir = ensure_in(cache.path(), "tool-1", "tool 1", write).unwrap();
        assert!(dir.join("bin").is_file());
        let again = ensure_in(cache.path(), "tool-1", "tool 1", |_| panic!("installed twice")).unwrap();
        assert_eq!(again, dir);
    }
}
