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
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/node_modules/.bin/azurite");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test, which installs Azurite from the npm registry",
            bin.display()
        );
        let ports = [super::free_port(), super::free_port(), super::free_port()];
        let child = Self::spawn(ports);
        let azurite = Azurite { child, blob_port: ports[0], queue_port: ports[1], table_port: ports[2] };
        Self::wait_listening(&ports);
        azurite
    }

    fn wait_listening(ports: &[u16]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in ports {
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(Instant::now() < deadline, "Azurite did not listen on {port} within 30 s");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn spawn(ports: [u16; 3]) -> Child {
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/node_modules/.bin/azurite");
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
        let fresh = Self::spawn(ports);
        self.child = fresh;
        Self::wait_listening(&ports);
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
