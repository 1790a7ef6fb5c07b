//! The per-user cache of the tools `cargo azfn` installs on first use: Azurite (from the npm
//! registry, for `start`), and Zig with cargo-zigbuild (from PyPI and crates.io, for `package`).
//!
//! Each tool goes into its own folder named with its pinned version, under
//! `$AZFN_CACHE_DIR`, else `$XDG_CACHE_HOME/azfn`, else `~/.cache/azfn`. A folder is installed
//! under a temporary name and renamed into place when complete, so an interrupted install leaves
//! nothing half-done behind, and two processes installing at once both end with one whole copy.
//! An install whose installer ran and failed is tried again twice (after 5 s and 20 s): the
//! registries it downloads from fail now and then, and a second try usually gets through.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The pauses before the second and third try of a failed install.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_secs(5), Duration::from_secs(20)];

/// Why an install failed, and whether trying it again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallError {
    /// What went wrong, for the user.
    pub message: String,
    /// The installer ran and failed (often a registry or network hiccup): worth another try. Not
    /// so when the installer is missing, or a file could not be written.
    pub retry: bool,
}

impl From<String> for InstallError {
    fn from(message: String) -> Self {
        Self { message, retry: false }
    }
}

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
pub fn ensure(name: &str, what: &str, install: impl Fn(&Path) -> Result<(), InstallError>) -> Result<PathBuf, String> {
    ensure_in(&root()?, name, what, &RETRY_PAUSES, install)
}

/// [`ensure`] in the cache folder `root`, pausing `pauses` before each try again.
pub fn ensure_in(
    root: &Path,
    name: &str,
    what: &str,
    pauses: &[Duration],
    install: impl Fn(&Path) -> Result<(), InstallError>,
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
    eprintln!("cargo azfn: installing {what} into {} (once; later runs use it)", dir.display());
    let started = std::time::Instant::now();
    let mut pauses = pauses.iter();
    loop {
        std::fs::create_dir_all(&staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
        let installed = install(&staging).and_then(|()| {
            std::fs::write(staging.join(".complete"), "")
                .map_err(|e| InstallError::from(format!("cannot write in {}: {e}", staging.display())))
        });
        let Err(e) = installed else { break };
        // Each try starts from an empty folder.
        let _ = std::fs::remove_dir_all(&staging);
        match pauses.next().filter(|_| e.retry) {
            Some(pause) => {
                eprintln!("cargo azfn: installing {what} failed; trying again in {} s: {}", pause.as_secs(), e.message);
                std::thread::sleep(*pause);
            }
            None => return Err(e.message),
        }
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
/// `hint` when the program is missing, and with a failure worth another try when it fails.
pub fn run(mut cmd: Command, hint: &str) -> Result<(), InstallError> {
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
        Err(InstallError {
            message: format!("`{program} {}` failed ({status}); its output is above", args.join(" ")),
            retry: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_PAUSE: [Duration; 2] = [Duration::ZERO; 2];

    fn failure(retry: bool) -> InstallError {
        InstallError { message: "the registry did not answer".into(), retry }
    }

    #[test]
    fn installs_once_and_keeps_nothing_half_done() {
        let cache = tempfile::tempdir().unwrap();
        let failed = ensure_in(cache.path(), "tool-1", "tool 1", &NO_PAUSE, |_| Err(failure(true)));
        assert_eq!(failed.unwrap_err(), "the registry did not answer");
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0, "nothing left behind");
        let write = |d: &Path| std::fs::write(d.join("bin"), "x").map_err(|e| InstallError::from(e.to_string()));
        let dir = ensure_in(cache.path(), "tool-1", "tool 1", &NO_PAUSE, write).unwrap();
        assert!(dir.join("bin").is_file());
        let again = ensure_in(cache.path(), "tool-1", "tool 1", &NO_PAUSE, |_| panic!("installed twice")).unwrap();
        assert_eq!(again, dir);
    }

    #[test]
    fn a_failed_install_is_tried_again_from_an_empty_folder_unless_its_installer_is_missing() {
        let cache = tempfile::tempdir().unwrap();
        let tries = std::cell::Cell::new(0);
        let flaky = |d: &Path| {
            tries.set(tries.get() + 1);
            assert_eq!(std::fs::read_dir(d).unwrap().count(), 0, "each try starts empty");
            std::fs::write(d.join("partial"), "x").unwrap();
            if tries.get() < 3 { Err(failure(true)) } else { Ok(()) }
        };
        let dir = ensure_in(cache.path(), "tool-2", "tool 2", &NO_PAUSE, flaky).unwrap();
        assert_eq!(tries.get(), 3, "two failures, then success");
        assert!(dir.join(".complete").is_file());

        tries.set(0);
        let missing = |_: &Path| {
            tries.set(tries.get() + 1);
            Err(failure(false))
        };
        assert!(ensure_in(cache.path(), "tool-3", "tool 3", &NO_PAUSE, missing).is_err());
        assert_eq!(tries.get(), 1, "a missing installer is not tried again");
    }
}
