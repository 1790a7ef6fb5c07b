//! Carries the Cargo.lock azfn is tested with into the tool, so that `cargo azfn init` gives a new
//! app the same dependency versions: the workspace's lock when built from a checkout, the
//! package's own copy (`cargo package` includes it for a crate with binaries) when built from
//! crates.io; empty when neither is there.

use std::path::Path;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let candidates = [Path::new(&dir).join("Cargo.lock"), Path::new(&dir).join("../../Cargo.lock")];
    let lock = candidates.iter().find(|p| p.is_file());
    let text = lock.map(|p| std::fs::read_to_string(p).expect("Cargo.lock is readable")).unwrap_or_default();
    std::fs::write(Path::new(&out).join("tested.lock"), text).expect("OUT_DIR is writable");
    // Only paths that exist: Cargo takes a missing one as changed on every build.
    println!("cargo::rerun-if-changed=build.rs");
    for p in candidates.iter().filter(|p| p.is_file()) {
        println!("cargo::rerun-if-changed={}", p.display());
    }
}
