//! A tansu broker of a test's own (never the shared one other tests use): on a free port, with
//! in-memory storage or a SQLite file that survives a restart (`scripts/kafka-up.sh` builds the
//! binary with both engines).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// The tansu binary `scripts/kafka-up.sh` builds, if it is there.
pub fn binary() -> Option<PathBuf> {
    let cache = std::env::var("AUTOSCALER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/autoscaler")
        });
    let p = cache.join("tansu-0.6.0-dynostore-libsql/bin/tansu");
    p.exists().then_some(p)
}

/// The binary, or `None` after printing why the test skips (a failure under `CI`).
pub fn binary_or_skip(test: &str) -> Option<PathBuf> {
    let b = binary();
    if b.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        assert!(
            !ci,
            "{test}: CI: the tansu binary is missing (scripts/kafka-up.sh builds it)"
        );
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no tansu binary (run scripts/kafka-up.sh)"
        );
    }
    b
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where a broker keeps its topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Gone with the process.
    Memory,
    /// `tansu.db` in the broker's directory: survives a restart.
    Sqlite,
}

/// A running broker; killed (SIGKILL) when dropped.
pub struct Broker {
    child: Option<Child>,
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    storage: Storage,
}

impl Broker {
    /// Start a broker on a free port and wait until it listens.
    pub async fn start(bin: &Path, storage: Storage) -> Broker {
        let mut b = Broker {
            child: None,
            bin: bin.to_path_buf(),
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            storage,
        };
        b.spawn().await;
        b
    }

    /// `127.0.0.1:<port>`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let engine = match self.storage {
            Storage::Memory => "memory://tansu/",
            Storage::Sqlite => "sqlite://tansu.db",
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .current_dir(self.dir.path())
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", engine])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tansu does not listen on {}: {}", self.port, self.log());
    }

    /// SIGKILL the broker (its storage stays).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port with the same storage.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
