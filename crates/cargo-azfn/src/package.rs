//! `cargo azfn package`: lays out the app as the Functions host loads it, ready to deploy.
//!
//! The folder holds host.json, one folder per function with its function.json, and the handler
//! binary under the name host.json's `customHandler.description.defaultExecutablePath` gives, with
//! its execute bit set (only Linux Consumption adds a missing one). `local.settings.json` is never
//! included. With `--zip`, the same content goes into a zip next to the folder, with the binary's
//! Unix mode recorded so that it stays executable after `az functionapp deploy` unpacks it.
//!
//! The handler must start on Azure's Linux workers, whose glibc is older than a current build
//! machine's: `package` refuses a binary that needs a newer glibc than the limit it is given
//! (by default [`AZURE_GLIBC_FLOOR`], 2.31). The command builds one that fits ([`cross`](crate::cross)),
//! and [`smoke_start`] starts the packaged handler from the folder, as the host would, before the
//! zip is handed over.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[cfg(doc)]
use crate::glibc::AZURE_GLIBC_FLOOR;
use crate::glibc::{GlibcNeed, GlibcVersion, required_glibc};
use azfn::function_json::AppMetadata;

/// What `package` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packaged {
    /// The app folder.
    pub folder: PathBuf,
    /// The zip, when asked for.
    pub zip: Option<PathBuf>,
    /// The functions included.
    pub functions: Vec<String>,
    /// What the packaged handler needs from the C library, when it was checked (a `max_glibc` was
    /// given).
    pub glibc: Option<GlibcNeed>,
}

/// Packages the app whose host.json is in `root`, with `binary` as the handler, into `out`.
///
/// Refuses when the binary's registered handlers do not match the function.json files (the
/// deployed app would not start), when host.json names no executable, when the binary needs a
/// newer glibc than `max_glibc` (`None`: no limit), or when `out` is inside `functions/`.
pub fn package(
    root: &Path,
    binary: &Path,
    out: &Path,
    zip: bool,
    max_glibc: Option<GlibcVersion>,
) -> Result<Packaged, String> {
    if !root.join("host.json").is_file() {
        return Err(format!("{} has no host.json: run `cargo azfn package` from the app's root", root.display()));
    }
    check_handler(binary, root).map_err(|e| format!("refusing to package: {e}"))?;
    lay_out(root, binary, out, zip, max_glibc)
}

/// [`package`] without running the handler's check: for a caller that has just run
/// [`check_handler`] itself (`cargo azfn start`).
pub fn lay_out(
    root: &Path,
    binary: &Path,
    out: &Path,
    zip: bool,
    max_glibc: Option<GlibcVersion>,
) -> Result<Packaged, String> {
    let metadata = AppMetadata::load(root).map_err(|e| e.to_string())?;
    let exe = metadata.host.executable.clone().ok_or_else(|| {
        "host.json has no customHandler.description.defaultExecutablePath: the host would not know what to start"
            .to_owned()
    })?;
    let exe_name = Path::new(&exe);
    if exe_name.components().count() != 1 {
        return Err(format!("defaultExecutablePath {exe:?} should be a file name in the app root, such as \"azfn\""));
    }

    // Read only when there is a limit: `cargo azfn start` stages with none, on any OS.
    let glibc = max_glibc.map(|_| required_glibc(binary)).transpose()?;
    if let (Some(max), Some(GlibcNeed::AtLeast(needed))) = (max_glibc, &glibc)
        && *needed > max
    {
        return Err(format!(
            "refusing to package: {} needs glibc {needed} (symbol version GLIBC_{needed}), and Azure Functions' \
             Linux workers have {max}, so the host could not start it. Build the handler for glibc {max}: \
             `cargo azfn package` without --handler, --native or --target does (cargo zigbuild --release --target \
             x86_64-unknown-linux-gnu.{max}), or raise the limit with --max-glibc {needed} if every worker you \
             deploy to has it",
            binary.display()
        ));
    }

    if out.exists() {
        fs::remove_dir_all(out).map_err(|e| format!("cannot clear {}: {e}", out.display()))?;
    }
    fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let copy = |from: &Path, to: &Path| {
        fs::copy(from, to).map(|_| ()).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
    };
    copy(&root.join("host.json"), &out.join("host.json"))?;
    let mut functions = Vec::new();
    for (name, spec) in &metadata.functions {
        let dir = out.join(name);
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        copy(&spec.source, &dir.join("function.json"))?;
        functions.push(name.clone());
    }
    let target = out.join(exe_name);
    copy(binary, &target)?;
    set_executable(&target)?;

    let zip_path = if zip { Some(write_zip(out)?) } else { None };
    Ok(Packaged { folder: out.to_path_buf(), zip: zip_path, functions, glibc })
}

/// The app's name for its package: the Cargo package's `name` in the root's Cargo.toml, else the
/// folder's name.
pub fn app_name(root: &Path) -> String {
    let from_manifest = fs::read_to_string(root.join("Cargo.toml")).ok().and_then(|text| {
        let mut in_package = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_package = line == "[package]";
            } else if in_package
                && let Some((k, v)) = line.split_once('=')
                && k.trim() == "name"
            {
                return Some(v.trim().trim_matches('"').to_owned());
            }
        }
        None
    });
    from_manifest
        .or_else(|| root.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "app".to_owned())
}

/// Starts the packaged handler from `folder` as the Functions host does (in that folder, with
/// `FUNCTIONS_CUSTOMHANDLER_PORT` set to a free port and the app settings `env`, e.g.
/// local.settings.json's `Values`) and waits up to 20 s for its answer to the host's readiness
/// probe (`GET /`). `Ok(false)` when this machine cannot run it (built for another system); an
/// error says what went wrong, with what the handler printed.
pub fn smoke_start(folder: &Path, env: &[(String, String)]) -> Result<bool, String> {
    use std::io::{Read as _, Write as _};
    let metadata = AppMetadata::load(folder).map_err(|e| e.to_string())?;
    let exe = folder.join(metadata.host.executable.unwrap_or_default());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port to start the handler on: {e}"))?
        .port();
    let log = tempfile_path(folder);
    let out = fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let spawned = std::process::Command::new(&exe)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(folder)
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_APP_ROOT_PATH", folder)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(out)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.raw_os_error() == Some(8) => {
            let _ = fs::remove_file(&log);
            return Ok(false);
        }
        Err(e) => return Err(format!("cannot start {}: {e}", exe.display())),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let answered = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            if reply.starts_with("HTTP/1.1 2") {
                break Ok(());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("it exited ({status})"));
        }
        if std::time::Instant::now() > deadline {
            break Err("it did not answer GET / within 20 s".to_owned());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    let printed = fs::read_to_string(&log).unwrap_or_default();
    let _ = fs::remove_file(&log);
    answered.map(|()| true).map_err(|why| {
        format!(
            "the packaged handler {} did not start from {}: {why}; it printed:\n{printed}",
            exe.display(),
            folder.display()
        )
    })
}

/// A file name beside `folder` for the handler's output during [`smoke_start`].
fn tempfile_path(folder: &Path) -> PathBuf {
    let name = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    folder.with_file_name(format!(".{name}.start-{}.log", uuid::Uuid::new_v4().simple()))
}

/// Runs `binary check` (see `azfn::cli`) with the app root in `FUNCTIONS_APP_ROOT_PATH`: the
/// handler compares its registered functions with the function.json files, as it would at start-up
/// in Azure. A binary this machine cannot run (built for another system) is not checked.
pub fn check_handler(binary: &Path, root: &Path) -> Result<(), String> {
    let output = std::process::Command::new(binary)
        .arg("check")
        .current_dir(root)
        .env("FUNCTIONS_APP_ROOT_PATH", root)
        .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
        .stdin(std::process::Stdio::null())
        .output();
    match output {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stderr).trim().to_owned();
            Err(if text.is_empty() {
                format!(
                    "{} check ended with {}: is it a handler built with azfn::cli::main?",
                    binary.display(),
                    o.status
                )
            } else {
                format!("the handler does not fit the app: {text}")
            })
        }
        // ENOEXEC (8): a binary for another system, which the deployment target runs instead.
        Err(e) if e.raw_os_error() == Some(8) => Ok(()),
        Err(e) => Err(format!("cannot run {}: {e}", binary.display())),
    }
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> Result<(), String> {
    Ok(())
}

/// Zips `folder` into `<folder>.zip`, keeping each file's Unix mode.
fn write_zip(folder: &Path) -> Result<PathBuf, String> {
    let zip_path = folder.with_extension("zip");
    let file = fs::File::create(&zip_path).map_err(|e| format!("cannot create {}: {e}", zip_path.display()))?;
    let mut writer = zip::ZipWriter::new(file);
    let mut files = Vec::new();
    collect(folder, folder, &mut files)?;
    files.sort();
    for rel in files {
        let full = folder.join(&rel);
        let mode = file_mode(&full);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode);
        let name = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        writer.start_file(name, options).map_err(|e| format!("zip: {e}"))?;
        let bytes = fs::read(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))?;
        writer.write_all(&bytes).map_err(|e| format!("zip: {e}"))?;
    }
    writer.finish().map_err(|e| format!("zip: {e}"))?;
    Ok(zip_path)
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    for entry in fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            collect(base, &path, out)?;
        } else {
            out.push(path.strip_prefix(base).expect("below base").to_path_buf());
        }
    }
    Ok(())
}

#[cfg(unix)]
fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0o644)
}

#[cfg(not(unix))]
fn file_mode(_path: &Path) -> u32 {
    0o644
}
