//! Azurite for local runs: when `AzureWebJobsStorage` is the development storage and nothing
//! answers on its ports, `cargo azfn start` starts Azurite in memory and stops it on exit.
//!
//! Which Azurite: the app's own `tools/node_modules/.bin/azurite` (the azfn repository's example
//! app has one), else one on PATH, else the pinned version in the tool cache
//! ([`tool_cache`](crate::tool_cache)), installed there with `npm ci` from the lock file this tool
//! carries on first use. npm (with Node.js) is then the only prerequisite.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use azfn::storage::StorageAccount;

/// A running Azurite that this process started; killed when dropped.
#[derive(Debug)]
pub struct LocalAzurite {
    _child: Child,
    dir: PathBuf,
}

impl Drop for LocalAzurite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `(host, port)` of an endpoint URL such as `http://127.0.0.1:10001/devstoreaccount1`.
fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

fn answers(host: &str, port: u16) -> bool {
    let addr = format!("{host}:{port}");
    std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
}

/// The Azurite version `cargo azfn start` installs (the lock file's).
pub const AZURITE_VERSION: &str = "3.35.0";
const PACKAGE_JSON: &str = include_str!("../../assets/azurite/package.json");
const PACKAGE_LOCK: &str = include_str!("../../assets/azurite/package-lock.json");

fn find_azurite(root: &Path) -> Option<PathBuf> {
    let local = root.join("tools/node_modules/.bin/azurite");
    if local.is_file() {
        return Some(local);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("azurite")).find(|p| p.is_file())
}

/// The pinned Azurite in the tool cache, installed there first if needed.
pub fn cached_azurite() -> Result<PathBuf, String> {
    let dir = crate::tool_cache::ensure(
        &format!("azurite-{AZURITE_VERSION}"),
        &format!("Azurite {AZURITE_VERSION} (npm ci)"),
        |dir| {
            let write = |name: &str, text: &str| {
                std::fs::write(dir.join(name), text).map_err(|e| format!("cannot write {}: {e}", dir.display()))
            };
            write("package.json", PACKAGE_JSON)?;
            write("package-lock.json", PACKAGE_LOCK)?;
            let mut npm = std::process::Command::new("npm");
            npm.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(dir);
            crate::tool_cache::run(
                npm,
                "cargo azfn start installs Azurite (the Azure Storage emulator) with npm: install Node.js with npm \
                 (https://nodejs.org, or your system's nodejs and npm packages), or start an Azurite yourself, \
                 or set AzureWebJobsStorage to a storage account's connection string",
            )
        },
    )?;
    let bin = dir.join("node_modules/.bin/azurite");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{} has no Azurite: delete that folder and try again", dir.display()))
    }
}

/// Starts Azurite when `account` is the local emulator and none of its ports answer; `None` when
/// there is nothing to do (real Azure, or an emulator already running).
pub async fn ensure(root: &Path, account: &StorageAccount) -> Result<Option<LocalAzurite>, String> {
    if !account.is_emulator() {
        return Ok(None);
    }
    let endpoints: Vec<(String, u16)> =
        [&account.blob, &account.queue, &account.table].into_iter().flatten().filter_map(|u| host_port(u)).collect();
    if endpoints.iter().any(|(h, p)| answers(h, *p)) {
        return Ok(None);
    }
    let local = endpoints.iter().all(|(h, _)| h == "127.0.0.1" || h == "localhost");
    let ports: Vec<u16> = endpoints.iter().map(|(_, p)| *p).collect();
    let (&[blob, queue, table], true) = (&ports[..], local) else { return Ok(None) };
    let bin = match find_azurite(root) {
        Some(bin) => bin,
        None => tokio::task::spawn_blocking(cached_azurite).await.map_err(|e| e.to_string())?.map_err(|e| {
            format!("AzureWebJobsStorage is the local emulator and nothing answers on 127.0.0.1:{blob}; {e}")
        })?,
    };
    let dir = std::env::temp_dir().join(format!("azfn-azurite-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let child = Command::new(&bin)
        .args(["--inMemoryPersistence", "--silent", "--skipApiVersionCheck", "--disableTelemetry"])
        .current_dir(&dir)
        .args(["--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1"])
        .args(["--blobPort", &blob.to_string(), "--queuePort", &queue.to_string(), "--tablePort", &table.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let azurite = LocalAzurite { _child: child, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    for port in [blob, queue, table] {
        while !answers("127.0.0.1", port) {
            if Instant::now() > deadline {
                return Err(format!("Azurite ({}) did not listen on port {port} within 30 s", bin.display()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(Some(azurite))
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoint_ports() {
        assert_eq!(super::host_port("http://127.0.0.1:10001/devstoreaccount1"), Some(("127.0.0.1".into(), 10001)));
        assert_eq!(super::host_port("https://acct.blob.core.windows.net"), None);
    }
}
