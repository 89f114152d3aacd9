//! Shared by the binary's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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
