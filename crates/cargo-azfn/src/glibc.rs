//! The newest glibc a Linux binary needs, read from its ELF version requirements.
//!
//! A binary linked against glibc records, for each versioned symbol it imports, the version it
//! needs (`GLIBC_2.34` for `__libc_start_main` when built against glibc 2.34 or later). The dynamic
//! loader refuses to start a binary that needs a newer version than the system has. Azure Functions'
//! Linux workers for Elastic Premium and Consumption run Debian 11 images with glibc 2.31
//! (docs/deploy.md), so `cargo azfn package` checks the handler against [`AZURE_GLIBC_FLOOR`] before it
//! ships it.

use std::fmt;
use std::path::Path;

use object::read::elf::ElfFile64;

/// The newest glibc that Azure Functions' Linux workers are known to have: Debian 11's 2.31.
pub const AZURE_GLIBC_FLOOR: GlibcVersion = GlibcVersion { major: 2, minor: 31 };

/// A glibc symbol version such as `2.31`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GlibcVersion {
    /// Major version (2 for every glibc in use).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl GlibcVersion {
    /// Parses `2.31` or `GLIBC_2.31` (a third component, as in `GLIBC_2.2.5`, is ignored).
    ///
    /// ```
    /// use cargo_azfn::glibc::GlibcVersion;
    /// assert_eq!(GlibcVersion::parse("GLIBC_2.34"), Some(GlibcVersion { major: 2, minor: 34 }));
    /// assert_eq!(GlibcVersion::parse("2.2.5"), Some(GlibcVersion { major: 2, minor: 2 }));
    /// assert_eq!(GlibcVersion::parse("GLIBC_PRIVATE"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.strip_prefix("GLIBC_").unwrap_or(text);
        let mut parts = text.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Self { major, minor })
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What a binary needs from the C library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlibcNeed {
    /// The binary is not dynamically linked against glibc (static, or musl): it runs anywhere.
    None,
    /// The newest `GLIBC_x.y` version among the binary's version requirements.
    AtLeast(GlibcVersion),
}

/// Reads the newest `GLIBC_` version that the 64-bit ELF binary at `path` requires.
///
/// Fails when the file cannot be read or is not a 64-bit ELF file.
pub fn required_glibc(path: &Path) -> Result<GlibcNeed, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    required_glibc_in(&data).map_err(|e| format!("{} is not a 64-bit ELF binary Linux can run: {e}", path.display()))
}

fn required_glibc_in(data: &[u8]) -> Result<GlibcNeed, object::read::Error> {
    let file = ElfFile64::<object::Endianness>::parse(data)?;
    let endian = file.endian();
    let sections = file.elf_section_table();
    let Some((mut needs, link)) = sections.gnu_verneed(endian, data)? else {
        return Ok(GlibcNeed::None);
    };
    let strings = sections.strings(endian, data, link)?;
    let mut newest = None;
    // Every library's requirements count: glibc's own names are `GLIBC_x.y` whichever of its
    // libraries (libc, libm, libpthread, ld-linux) they come from; others use other prefixes.
    while let Some((_library, mut versions)) = needs.next()? {
        while let Some(version) = versions.next()? {
            let name = String::from_utf8_lossy(version.name(endian, strings)?);
            if let Some(v) = name.strip_prefix("GLIBC_").and_then(GlibcVersion::parse) {
                newest = newest.max(Some(v));
            }
        }
    }
    Ok(newest.map_or(GlibcNeed::None, GlibcNeed::AtLeast))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_test_binary() {
        // The test binary itself is a glibc-linked ELF file on x86-64 Linux.
        if !cfg!(all(target_os = "linux", target_env = "gnu")) {
            return;
        }
        let me = std::env::current_exe().unwrap();
        match required_glibc(&me).unwrap() {
            GlibcNeed::AtLeast(v) => assert!(v >= GlibcVersion { major: 2, minor: 2 }, "{v}"),
            GlibcNeed::None => panic!("a glibc-linked test binary needs some GLIBC_ version"),
        }
    }

    #[test]
    fn refuses_what_is_not_elf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("azfn");
        std::fs::write(&path, b"#!/bin/sh\necho hi\n").unwrap();
        let err = required_glibc(&path).unwrap_err();
        assert!(err.contains("is not a 64-bit ELF binary"), "{err}");
    }

    #[test]
    fn versions_order_numerically() {
        assert!(GlibcVersion::parse("2.9").unwrap() < GlibcVersion::parse("2.31").unwrap());
        assert_eq!(AZURE_GLIBC_FLOOR.to_string(), "2.31");
    }
}
