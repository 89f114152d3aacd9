//! Shared by the binary's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `autoscaler` binary, with the operator settings the tests must not inherit removed.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_autoscaler"));
    for var in [
        "VOTING_STRATEGY",
        "SERVICES",
        "POLL_INTERVAL_SEC",
        "MODE",
        "BUS",
        "MODELS_DIR",
        "AUTOSCALER_SEED",
        "DECISION_WINDOW_SEC",
        "METRICS_TOPIC",
        "VOTES_TOPIC",
        "DECISIONS_TOPIC",
        "KAFKA_GROUP_PREFIX",
        "PROMETHEUS_URL",
        "PROMQL_PRESET",
        "AGGREGATOR_CONFIG",
        "METRICS_CSV",
        "AUTOSCALER_SOURCE",
        "AUTOSCALER_CLOCK",
    ] {
        c.env_remove(var);
    }
    c.env("RUST_LOG", "warn");
    c
}

/// Run the binary to completion.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("binary runs")
}

/// Bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Models trained once per test binary (the CLI trains defaults on first use).
pub fn models_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("autoscaler-test-models-{}", std::process::id()));
        let out = run(&[
            "run",
            "--models-dir",
            dir.to_str().unwrap(),
            "--duration-hours",
            "0.1",
        ]);
        assert!(
            out.status.success(),
            "training defaults: {}",
            text(&out.stderr)
        );
        for m in ["xgboost", "random_forest", "logistic_regression"] {
            assert!(dir.join(m).join("metadata.json").exists(), "{m} saved");
        }
        dir
    })
}

/// A child process that is killed if the test ends before it does. Its stderr goes to a file
/// (a pipe nobody reads would fill up and block the child's logging).
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: tempfile::NamedTempFile,
}

impl Proc {
    pub fn start(name: String, mut cmd: Command) -> Proc {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("spawn");
        Proc {
            name,
            child: Some(child),
            log,
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success(), "kill {sig} {}", self.name);
    }

    /// Wait at most `limit`; returns (success, stderr).
    pub fn wait(mut self, limit: Duration) -> (bool, String) {
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status.success(), self.stderr());
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not finish within {limit:?}:\n{}",
                    self.name,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop with SIGTERM and expect a clean exit within the grace period.
    pub fn stop(self) -> String {
        self.signal("-TERM");
        let name = self.name.clone();
        let (ok, err) = self.wait(Duration::from_secs(20));
        assert!(ok, "{name} did not exit cleanly on SIGTERM:\n{err}");
        err
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
