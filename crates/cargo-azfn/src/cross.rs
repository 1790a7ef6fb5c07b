//! Building the handler for Azure Functions' Linux workers, whatever machine `package` runs on.
//!
//! The workers of Elastic Premium and Consumption run Debian 11 images, whose glibc is 2.31
//! ([`AZURE_GLIBC_FLOOR`]); a plain `cargo build` on a newer machine links against its own glibc
//! and would not start there. So `package` builds with cargo-zigbuild for
//! `x86_64-unknown-linux-gnu.2.31`, which links against that glibc's symbols with Zig as the
//! linker. Both are installed on first use, pinned, into the tool cache
//! ([`tool_cache`](crate::tool_cache)): Zig from its PyPI package `ziglang` (with `pip`), and
//! cargo-zigbuild from crates.io (with `cargo install`). Python 3 with pip is then the only
//! prerequisite besides Cargo.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

#[cfg(doc)]
use crate::glibc::AZURE_GLIBC_FLOOR;
use crate::tool_cache;

/// The Zig version installed (PyPI `ziglang`).
pub const ZIG_VERSION: &str = "0.15.2";
/// The cargo-zigbuild version installed (crates.io).
pub const ZIGBUILD_VERSION: &str = "0.24.0";
/// The Rust target of Azure's Linux workers.
pub const AZURE_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Zig and cargo-zigbuild, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZigBuild {
    /// The `cargo-zigbuild` executable.
    pub cargo_zigbuild: PathBuf,
    /// The folder holding the `zig` executable.
    pub zig_dir: PathBuf,
}

impl ZigBuild {
    /// The pinned Zig and cargo-zigbuild from the tool cache, installed there first if needed.
    pub fn ensure() -> Result<Self, String> {
        let zig = tool_cache::ensure(
            &format!("zig-{ZIG_VERSION}"),
            &format!("Zig {ZIG_VERSION} (PyPI ziglang, the linker for glibc {})", crate::glibc::AZURE_GLIBC_FLOOR),
            |dir| {
                let mut pip = Command::new(python());
                // PIP_ROOT_USER_ACTION rather than --root-user-action: pip before 22.1 (Debian 11,
                // Ubuntu 22.04) refuses the option and ignores the variable.
                pip.env("PIP_ROOT_USER_ACTION", "ignore");
                pip.args(["-m", "pip", "install", "--disable-pip-version-check", "--no-warn-script-location"])
                    .arg("--target")
                    .arg(dir.join("py"))
                    .arg(format!("ziglang=={ZIG_VERSION}"));
                tool_cache::run(
                    pip,
                    "cargo azfn package installs Zig from PyPI with pip: install Python 3 with pip (your system's \
                     python3 and python3-pip packages), or build the handler yourself and pass --handler",
                )
            },
        )?;
        let zig_dir = zig.join("py/ziglang");
        if !zig_dir.join("zig").is_file() {
            return Err(format!("{} has no zig: delete {} and try again", zig_dir.display(), zig.display()));
        }
        let zigbuild = tool_cache::ensure(
            &format!("cargo-zigbuild-{ZIGBUILD_VERSION}"),
            &format!("cargo-zigbuild {ZIGBUILD_VERSION} (cargo install, a minute or two)"),
            |dir| {
                let mut install = Command::new(cargo());
                install
                    .args(["install", "--locked", "--root"])
                    .arg(dir)
                    .arg(format!("cargo-zigbuild@{ZIGBUILD_VERSION}"));
                tool_cache::run(install, "Cargo is needed")
            },
        )?;
        Ok(Self { cargo_zigbuild: zigbuild.join("bin/cargo-zigbuild"), zig_dir })
    }

    /// `cargo-zigbuild zigbuild` with `zig` on PATH, ready for Cargo's build arguments.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.cargo_zigbuild);
        cmd.arg("zigbuild");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.zig_dir.clone()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap_or_else(|_| OsString::from(&path)));
        cmd
    }
}

/// The `--target` of a build for Azure's workers: the target with the glibc floor as suffix.
pub fn zig_target() -> String {
    format!("{AZURE_TARGET}.{}", crate::glibc::AZURE_GLIBC_FLOOR)
}

/// Makes sure rustup has the standard library for [`AZURE_TARGET`] (a machine other than x86_64
/// Linux does not by default); nothing to do without rustup.
pub fn ensure_rust_target(root: &Path) -> Result<(), String> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).current_dir(root).output();
    match installed {
        Ok(out) if out.status.success() => {
            if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == AZURE_TARGET) {
                return Ok(());
            }
            eprintln!("cargo azfn: adding the Rust target {AZURE_TARGET} (rustup target add)");
            let mut add = Command::new("rustup");
            add.args(["target", "add", AZURE_TARGET]).current_dir(root);
            tool_cache::run(add, "rustup is needed to add the target").map_err(|e| e.message)
        }
        _ => Ok(()),
    }
}

fn python() -> OsString {
    std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into())
}

fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}
