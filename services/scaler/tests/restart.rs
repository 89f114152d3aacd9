//! A scaler killed with SIGKILL during a cooldown and restarted on the same state database still
//! honours the cooldown, and never decides a redelivered vector twice.
//!
//! The killed scaler is a real child process: this test binary runs itself again with
//! `AUTOSCALER_TEST_CHILD_DB` set, and the child runs the scaler until it is killed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use autoscaler_scaler::{Actuator, SimulatedActuator, Store};

mod common;
use common::start;

const CHILD_ENV: &str = "AUTOSCALER_TEST_CHILD_DB";
const MARKER: &str = "AUTOSCALER-CHILD-DECIDED";

/// The child: decide one scale-up, say so, then keep running (in the cooldown) until killed.
#[test]
fn sigkill_child_entry_point() {
    let Ok(db) = std::env::var(CHILD_ENV) else {
        return; // Only meaningful as the child of `sigkill_during_cooldown_then_restart`.
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut s = start(Arc::new(SimulatedActuator::new(2)), Some(db.into())).await;
        s.send_id("orders@1", "orders", 0, true).await;
        let d = s.next(Duration::from_secs(20)).await.expect("a decision");
        assert_eq!(
            (d.from_replicas, d.to_replicas, d.acted),
            (Some(2), Some(3), true)
        );
        // The decision reached the reader an instant before the scaler cleared its outbox
        // entry: let it, or the restart rightly publishes it once more (at least once).
        tokio::time::sleep(Duration::from_millis(300)).await;
        println!("{MARKER}");
        std::future::pending::<()>().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_cooldown_then_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("scaler-state.db");

    // 1. A scaler in its own process scales `orders` 2 → 3 at t0, then is SIGKILLed.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_child_entry_point",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child scaler");
    let stdout = child.stdout.take().unwrap();
    let seen = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains(MARKER))
    });
    let seen = tokio::time::timeout(Duration::from_secs(60), seen).await;
    child.kill().expect("SIGKILL the child"); // Child::kill is SIGKILL on Unix.
    let status = child.wait().unwrap();
    assert!(
        matches!(seen, Ok(Ok(true))),
        "the child scaler never decided"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");

    // 2. A new scaler on the same database. The cluster kept the child's change (3 replicas).
    let cluster = SimulatedActuator::new(3);
    let mut s = start(Arc::new(cluster.clone()), Some(db.clone())).await;
    // The vector decided before the kill is delivered again: it is not decided twice.
    s.send_id("orders@1", "orders", 0, true).await;
    assert!(
        s.next(Duration::from_millis(2500)).await.is_none(),
        "a redelivered vector was decided again"
    );
    // 120 s after the scale-up (metric time), the up-cooldown (300 s) still holds.
    s.send_id("orders@5", "orders", 120, true).await;
    let d = s.next(Duration::from_secs(10)).await.expect("decision");
    assert_eq!(
        (d.from_replicas, d.to_replicas, d.acted),
        (Some(3), Some(3), false)
    );
    assert_eq!(d.adjustments, vec!["cooldown: 180 s left after scale-up"]);
    // After the cooldown it scales again.
    s.send_id("orders@11", "orders", 301, true).await;
    let d = s.next(Duration::from_secs(10)).await.expect("decision");
    assert_eq!(
        (d.from_replicas, d.to_replicas, d.acted),
        (Some(3), Some(4), true)
    );
    assert_eq!(cluster.current("orders").await.unwrap(), 4);
    let report = s.stop().await;
    assert_eq!(report.decisions, 2);
    assert_eq!(report.ballot.late, 3, "the three redelivered votes");

    // 3. The decision log holds all three decisions, the first from the killed process.
    let log = Store::open(&db)
        .unwrap()
        .decisions(Some("orders"), 10)
        .unwrap();
    let ids: Vec<&str> = log.iter().map(|d| d.vector_id.0.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            "orders@1@1720000000000",
            "orders@5@1720000120000",
            "orders@11@1720000301000"
        ]
    );
    assert!(log[0].acted && !log[1].acted && log[2].acted);
}
