//! The `autoscaler` binary as a user runs it: exit codes, the embedded pipeline, the demo.

use std::path::Path;

mod common;
use common::{bin, models_dir, run, text};

#[test]
fn help_lists_every_subcommand() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for sub in ["aggregator", "inference", "scaler", "run", "demo"] {
        assert!(help.contains(sub), "{sub} missing from:\n{help}");
    }
}

#[test]
fn unknown_values_exit_2_naming_the_valid_ones() {
    let out = run(&["demo", "--strategy", "plurality"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("majority") && err.contains("unanimous") && err.contains("weighted"),
        "{err}"
    );
    let out = run(&["inference", "--model", "svm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("random_forest"));
    let out = run(&["scaler", "--actuator", "kubernetes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("dry-run"));
}

#[test]
fn an_unknown_policy_exits_2_naming_the_valid_ones() {
    for args in [
        ["scaler", "--policy", "bogus"],
        ["run", "--policy", "loudest"],
        ["demo", "--policy", "hpa-x"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("--policy"), "{err}");
    }
    let err = text(&run(&["scaler", "--policy", "bogus"]).stderr);
    assert!(
        err.contains("valid: ensemble, hybrid, hpa, threshold, triggers, static, capacity"),
        "{err}"
    );
    let out = run(&["scaler", "--policy", "oracle"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("backtests"));
    // Accepted (from the environment too): the next problem is the missing actuator.
    let out = bin()
        .args(["scaler"])
        .env("AUTOSCALER_POLICY", "threshold:upper=80:lower=20")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("no actuator"));
}

#[test]
fn bad_config_exits_64_listing_every_problem() {
    let out = run(&[
        "scaler",
        "--min-replicas",
        "5",
        "--max-replicas",
        "2",
        "--decision-window-sec",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(64));
    let err = text(&out.stderr);
    assert!(
        err.contains("min replicas (5) is greater than max replicas (2)"),
        "{err}"
    );
    assert!(err.contains("decision window"), "{err}");

    let out = run(&["run", "--poll-interval-sec", "0", "--services", "a,,b"]);
    assert_eq!(out.status.code(), Some(64));
    let err = text(&out.stderr);
    assert!(
        err.contains("poll interval") && err.contains("empty name"),
        "{err}"
    );
}

#[test]
fn standalone_services_on_the_memory_bus_are_refused_clearly() {
    let out = run(&["aggregator"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("autoscaler run"));
}

#[test]
fn development_mode_writes_the_metrics_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("metrics.csv");
    let out = run(&[
        "aggregator",
        "--mode",
        "development",
        "--csv-path",
        csv.to_str().unwrap(),
        "--duration-hours",
        "1",
        "--services",
        "orders",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert!(lines[0].starts_with("timestamp,service,request_rate_rps"));
    assert_eq!(lines.len(), 1 + 120, "one row per 30 s poll of one hour");
    assert!(lines[1].contains(",orders,"));
}

fn decisions(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn demo_prints_blocks_naming_all_three_models_and_the_same_summary_per_seed() {
    let models = models_dir();
    let demo = |seed: &str| {
        let out = run(&[
            "demo",
            "--hours",
            "12",
            "--seed",
            seed,
            "--models-dir",
            models.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let a = demo("5");
    let b = demo("5");
    assert!(a.contains("SCALING DECISION #1 @ 1995-07-12"), "{a}");
    let block = a.split("SCALING DECISION #1").nth(1).unwrap();
    for m in [
        "xgboost",
        "random_forest",
        "logistic_regression",
        "Replicas:",
    ] {
        assert!(block.contains(m), "{m} missing in the first block");
    }
    let summary = |s: &str| s[s.find("SUMMARY").expect("a summary")..].to_string();
    assert!(summary(&a).contains("Replica-hours"));
    assert!(summary(&a).contains("SLA-violation minutes"));
    assert_eq!(a, b, "same seed, same output");
    let c = demo("6");
    assert_ne!(
        summary(&a),
        summary(&c),
        "the seed changes the simulated noise"
    );
}

#[test]
fn embedded_run_on_an_unreachable_prometheus_decides_nothing_from_stale_vectors() {
    let models = models_dir();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("d.jsonl");
    let out = run(&[
        "run",
        "--source",
        "prometheus",
        "--prometheus-url",
        &format!("http://127.0.0.1:{closed}"),
        "--services",
        "front-end,orders",
        "--poll-interval-sec",
        "2",
        "--polls",
        "2",
        "--models-dir",
        models.to_str().unwrap(),
        "--decisions-jsonl",
        jsonl.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Polls:                 2 of 2 s (4 stale vectors"),
        "{stdout}"
    );
    assert!(!stdout.contains("Simulated time"), "{stdout}");
    let d = decisions(&jsonl);
    assert_eq!(d.len(), 4, "one decision per stale vector");
    for x in &d {
        // Every model abstains on a stale vector: no vote for action, nothing changes.
        assert_ne!(x["decision"], "SCALE_UP", "{x}");
        assert_ne!(x["decision"], "SCALE_DOWN", "{x}");
        assert_eq!(x["from_replicas"], x["to_replicas"], "{x}");
        assert_eq!(x["abstentions"], 3, "{x}");
        assert!(
            x["votes"][0]["abstain_reason"]
                .as_str()
                .unwrap()
                .contains("Prometheus unreachable"),
            "{x}"
        );
    }
}

/// Issue 15, item 13: the standalone scaler has no default actuator: without one it exits 64
/// naming the choices (a production scaler that silently simulated reported `acted: true`).
#[test]
fn the_scaler_without_an_actuator_exits_64_naming_the_choices() {
    let out = common::bin()
        .args(["scaler"])
        .env_remove("ACTUATOR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("swarm") && err.contains("dry-run") && err.contains("simulated"),
        "{err}"
    );
}

/// Issue 15, item 6: over Kafka the state store defaults to a path; with nothing to derive it
/// from, the scaler says so and exits 64 before it touches the broker.
#[test]
fn the_scaler_over_kafka_without_a_state_path_to_default_exits_64() {
    let out = common::bin()
        .args(["scaler", "--actuator", "simulated"])
        .env("BUS", "kafka")
        .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .env_remove("STATE_DB")
        .env_remove("XDG_STATE_HOME")
        .env_remove("HOME")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("--state-db") && err.contains("XDG_STATE_HOME"),
        "{err}"
    );
}

/// Issue 15, item 10: a secret planted in `KAFKA_PROP_*` and in `PROMETHEUS_URL` appears
/// nowhere in the output of a service that fails on it (debug logging on).
#[test]
fn a_planted_secret_never_reaches_the_output() {
    let secret = "pl4nted-s3cret-77";
    for args in [
        vec!["scaler", "--actuator", "simulated"],
        vec![
            "aggregator",
            "--source",
            "prometheus",
            "--services",
            "orders",
        ],
    ] {
        let out = common::bin()
            .args(&args)
            .env("BUS", "kafka")
            .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
            .env("KAFKA_PROP_sasl__password", secret)
            .env("KAFKA_PROP_no__such__property", secret)
            .env(
                "PROMETHEUS_URL",
                format!("http://scaler:{secret}@127.0.0.1:1/"),
            )
            .env(
                "XDG_STATE_HOME",
                std::env::temp_dir().join("autoscaler-secret-test"),
            )
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!out.status.success(), "{args:?}: {all}");
        assert!(!all.contains(secret), "{args:?} printed the secret:\n{all}");
        assert!(all.contains("no.such.property"), "{args:?}: {all}");
    }
}
