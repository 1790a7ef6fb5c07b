//! Starts a real Azurite (from the npm registry, installed into tools/ by scripts/test) on free
//! loopback ports, in memory, for one test; it is killed when the guard drops.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use azfn::storage::{StorageAccount, resolve};

/// Azurite's well-known development account key (public, from its documentation).
pub const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    child: Child,
    pub blob_port: u16,
    pub queue_port: u16,
    pub table_port: u16,
}

impl Azurite {
    pub fn start() -> Azurite {
        let bin = azurite_bin();
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test, which installs Azurite from the npm registry",
            bin.display()
        );
        // A free port can be taken by a test running beside this one before Azurite binds it; then
        // Azurite exits, and it is started again on other ports.
        for _ in 0..3 {
            let ports = [super::free_port(), super::free_port(), super::free_port()];
            let mut child = Self::spawn(ports);
            if Self::listening(&ports, &mut child) {
                return Azurite { child, blob_port: ports[0], queue_port: ports[1], table_port: ports[2] };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("Azurite did not start on three sets of free ports");
    }

    /// Stops Azurite's process (SIGSTOP) until [`resume`](Self::resume): every request to it waits,
    /// as when storage is slow to answer.
    #[allow(dead_code)]
    pub fn pause(&self) {
        let ok = Command::new("kill").args(["-STOP", &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "SIGSTOP to Azurite failed");
    }

    /// Lets a [`pause`](Self::pause)d Azurite run again.
    #[allow(dead_code)]
    pub fn resume(&self) {
        let ok = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "SIGCONT to Azurite failed");
    }

    /// Waits (up to 60 s, as the machine may be busy with other tests) until Azurite listens on
    /// every port; `false` if it exited first.
    fn listening(ports: &[u16], child: &mut Child) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        for port in ports {
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                if child.try_wait().ok().flatten().is_some() {
                    return false;
                }
                assert!(Instant::now() < deadline, "Azurite did not listen on {port} within 60 s");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        true
    }

    fn spawn(ports: [u16; 3]) -> Child {
        let bin = azurite_bin();
        Command::new(bin)
            .args([
                "--inMemoryPersistence",
                "--silent",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--blobHost",
                "127.0.0.1",
            ])
            .args([
                "--blobPort",
                &ports[0].to_string(),
                "--queuePort",
                &ports[1].to_string(),
                "--tablePort",
                &ports[2].to_string(),
            ])
            .args(["--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite")
    }

    /// Stops this Azurite and starts a new, empty one on the same ports: a storage reset.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let ports = [self.blob_port, self.queue_port, self.table_port];
        self.child = Self::spawn(ports);
        assert!(Self::listening(&ports, &mut self.child), "Azurite did not start again on {ports:?}");
    }

    /// The connection string for this instance.
    pub fn connection_string(&self) -> String {
        connection_string([self.blob_port, self.queue_port, self.table_port])
    }

    pub fn account(&self) -> StorageAccount {
        let cs = self.connection_string();
        resolve("AzureWebJobsStorage", |k| (k == "AzureWebJobsStorage").then(|| cs.clone())).unwrap()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The development account's connection string with its blob, queue and table endpoints on these
/// loopback ports.
pub fn connection_string([blob, queue, table]: [u16; 3]) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};\
         BlobEndpoint=http://127.0.0.1:{blob}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{queue}/devstoreaccount1;\
         TableEndpoint=http://127.0.0.1:{table}/devstoreaccount1;"
    )
}

/// The Azurite that `npm ci --prefix tools` installed in the workspace (found from this package's
/// folder upwards, so that every crate's tests share it).
fn azurite_bin() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = here.ancestors().find(|d| d.join("tools/package.json").is_file()).unwrap_or(&here).to_path_buf();
    root.join("tools/node_modules/.bin/azurite")
}
