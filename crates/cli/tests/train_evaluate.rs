//! `autoscaler training-data` → `train` → `evaluate`, as a user runs them.

use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_autoscaler"));
    for var in [
        "MODELS_DIR",
        "AUTOSCALER_SEED",
        "AUTOSCALER_SLA_P95_MS",
        "MODEL_WEIGHTS",
    ] {
        c.env_remove(var);
    }
    c.env("RUST_LOG", "warn");
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().expect("runs");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn train_then_evaluate_writes_artefacts_table_json_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).display().to_string();
    ok(bin().args([
        "training-data",
        "--runs",
        "4",
        "--days",
        "1",
        "--seed",
        "3",
        "--out",
        &d("sim.csv"),
    ]));
    // A bad row is reported with file and line, and skipped.
    let mut text = std::fs::read_to_string(d("sim.csv")).unwrap();
    text.push_str("2024-01-03T00:00:00Z,simulated-service,oops,0,1,2,3,4,5,6,7,8,,2,run99,step\n");
    std::fs::write(d("sim.csv"), &text).unwrap();
    let lines = text.lines().count();
    let out = bin()
        .args([
            "train",
            "--data",
            &d("sim.csv"),
            "--out",
            &d("models"),
            "--rf-trees",
            "10",
            "--xgb-rounds",
            "20",
        ])
        .env("AUTOSCALER_SPLIT", "by-run")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("sim.csv:{lines}")),
        "bad row named: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("split by-run"), "{stdout}");
    for m in ["xgboost", "random_forest", "logistic_regression"] {
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("models").join(m).join("metadata.json")).unwrap(),
        )
        .unwrap();
        let names: Vec<&str> = meta["feature_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        // Contract, per-replica, lags and rolling statistics by default.
        for f in [
            "cpu_per_replica_pct",
            "p95_latency_ms_lag5",
            "request_rate_rps_roll_slope",
        ] {
            assert!(names.contains(&f), "{f} in {names:?}");
        }
        assert!(meta["scores"]["calibration"]["method"].is_string());
        assert!(meta["scores"]["brier"]["validation"].as_f64().is_some());
        assert!(meta["threshold"].as_f64().unwrap() > 0.0);
        assert_eq!(meta["training_fingerprint"].as_str().unwrap().len(), 64);
    }
    ok(bin().args([
        "training-data",
        "--runs",
        "2",
        "--days",
        "1",
        "--seed",
        "11",
        "--out",
        &d("held.csv"),
    ]));
    let table = ok(bin().args([
        "evaluate",
        "--data",
        &d("held.csv"),
        "--models",
        &d("models"),
        "--json-out",
        &d("eval.json"),
        "--plot",
        &d("eval.svg"),
    ]));
    for name in [
        "xgboost",
        "random_forest",
        "logistic_regression",
        "vote: majority",
        "vote: unanimous",
        "vote: weighted",
    ] {
        assert!(table.contains(name), "{name} in {table}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d("eval.json")).unwrap()).unwrap();
    assert_eq!(json["models"].as_array().unwrap().len(), 3);
    assert_eq!(json["rules"].as_array().unwrap().len(), 3);
    assert!(std::fs::read_to_string(d("eval.svg"))
        .unwrap()
        .contains("<svg"));

    // A fatal bad row exits non-zero naming it.
    let out = bin()
        .args([
            "train",
            "--data",
            &d("sim.csv"),
            "--out",
            &d("m2"),
            "--bad-rows",
            "fail",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("sim.csv:{lines}")));
}
