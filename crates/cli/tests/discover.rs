//! `autoscaler aggregator --discover swarm` against a real single-node Docker Swarm
//! (`scripts/swarm-up.sh`): the services labelled `autoscaler.enable=true` get vectors, the
//! others do not. Prometheus is deliberately unreachable here, so the vectors are stale rows
//! with every feature empty — discovery does not depend on Prometheus answering.
//!
//! Without a swarm the test says why it skips — or fails, when `CI`, `REQUIRE_INTEGRATION` or
//! `AUTOSCALER_REQUIRE_SWARM` (set by `scripts/test.sh` once `swarm-up.sh` succeeded) is set.

use std::process::Command;

mod common;
use common::{bin, text};

fn swarm_ready() -> Result<(), String> {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .output()
        .map_err(|e| format!("no docker CLI: {e}"))?;
    let state = text(&out.stdout).trim().to_string();
    if out.status.success() && state == "active" {
        Ok(())
    } else {
        Err(format!(
            "no active swarm ({state}{})",
            text(&out.stderr).trim()
        ))
    }
}

/// Removes the services it names when dropped, also when the test fails.
struct Services(Vec<String>);

impl Drop for Services {
    fn drop(&mut self) {
        for s in &self.0 {
            let _ = Command::new("docker").args(["service", "rm", s]).output();
        }
    }
}

fn create(name: &str, labels: &[&str]) {
    let image = std::env::var("AUTOSCALER_TEST_IMAGE")
        .unwrap_or_else(|_| "autoscaler-test/busybox:local".into());
    let mut c = Command::new("docker");
    c.args([
        "service",
        "create",
        "--detach",
        "--name",
        name,
        "--replicas",
        "0",
    ]);
    for l in labels {
        c.args(["--label", l]);
    }
    c.args([image.as_str(), "sleep", "3600"]);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "docker service create {name}: {}",
        text(&out.stderr)
    );
}

#[test]
#[ignore = "needs a Docker Swarm (scripts/swarm-up.sh)"]
fn aggregator_discovers_the_labelled_swarm_services() {
    if let Err(reason) = swarm_ready() {
        let required = ["CI", "REQUIRE_INTEGRATION", "AUTOSCALER_REQUIRE_SWARM"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0"));
        assert!(!required, "a Docker Swarm is required: {reason}");
        eprintln!("SKIPPED: {reason}. Run scripts/swarm-up.sh");
        return;
    }
    let id = std::process::id();
    let managed = format!("disc-managed-{id}");
    let other = format!("disc-other-{id}");
    let _guard = Services(vec![managed.clone(), other.clone()]);
    create(&managed, &["autoscaler.enable=true", "autoscaler.max=3"]);
    create(&other, &["team=payments"]);

    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("metrics.csv");
    let out = bin()
        .args([
            "aggregator",
            "--source",
            "prometheus",
            "--discover",
            "swarm",
            "--prometheus-url",
            &format!("http://127.0.0.1:{closed_port}"),
            "--mode",
            "development",
            "--poll-interval-sec",
            "2",
            "--polls",
            "1",
            "--csv-path",
            csv.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = std::fs::read_to_string(&csv).unwrap();
    let services: Vec<&str> = rows
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1))
        .collect();
    assert!(services.contains(&managed.as_str()), "{rows}");
    assert!(!services.contains(&other.as_str()), "{rows}");
    let row = rows
        .lines()
        .find(|l| l.split(',').nth(1) == Some(managed.as_str()))
        .unwrap();
    // Prometheus unreachable: a stale vector, every feature and the replicas empty, never 0.
    assert!(
        row.split(',').skip(2).all(str::is_empty),
        "stale row has values: {row}"
    );

    // A list of services and discovery exclude each other: a configuration error (exit 64).
    let out = bin()
        .args([
            "aggregator",
            "--source",
            "prometheus",
            "--discover",
            "swarm",
            "--services",
            "a",
            "--mode",
            "development",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("exclude each other"));
}
