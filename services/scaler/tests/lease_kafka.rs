//! The lease on a real broker: two scaler processes on separate state files, one tansu broker of
//! this test's own. The first is elected within seconds and acts; the second stays up and reads
//! no votes; after a SIGKILL of the first the second takes over within two lease periods, keeps
//! the cooldown its predecessor started and never decides a vector twice.
//!
//! Each scaler is a child process: this test binary runs itself again with `LEASE_CHILD` set.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoscaler_bus::kafka::{KafkaBus, KafkaConfig};
use autoscaler_bus::{Bus, Outgoing};
use autoscaler_contract::{
    decode, encode, Decision, ModelKind, Strategy, VectorId, Vote, DECISIONS_TOPIC, SCHEMA_VERSION,
    VOTES_TOPIC,
};
use autoscaler_scaler::lease::{start_on_kafka, LeaseConfig};
use autoscaler_scaler::{run_with_lease, Lease, ScalerConfig, ScalerDeps, SimulatedActuator};
use autoscaler_voting::VotingConfig;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

mod common;
use common::tansu;

const CHILD_ENV: &str = "LEASE_CHILD";
const HELD: &str = "LEASE-CHILD-HELD";
const TTL: Duration = Duration::from_secs(3);

fn kafka_config(bootstrap: &str) -> KafkaConfig {
    let mut cfg = KafkaConfig::new(bootstrap);
    cfg.exclusive_groups
        .insert(autoscaler_scaler::SCALER_GROUP.into());
    cfg
}

/// The child: a scaler with a lease, until killed.
#[test]
fn lease_child_entry_point() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // Only meaningful as a child of `a_standby_takes_over_after_sigkill`.
    };
    let mut parts = spec.splitn(3, ',');
    let (bootstrap, name, db) = (
        parts.next().unwrap().to_string(),
        parts.next().unwrap().to_string(),
        parts.next().unwrap().to_string(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let bus = Arc::new(KafkaBus::new(kafka_config(&bootstrap)).unwrap());
        bus.ensure_topics(&[VOTES_TOPIC, DECISIONS_TOPIC])
            .await
            .unwrap();
        let dyn_bus: Arc<dyn Bus> = bus.clone();
        let shutdown = CancellationToken::new();
        let cfg = LeaseConfig {
            ttl: TTL,
            ..LeaseConfig::new(name)
        };
        let (lease, _task) = start_on_kafka(&bus, cfg, shutdown.clone()).await.unwrap();
        let watch = lease.clone();
        tokio::spawn(async move {
            while !watch.wait_held(Duration::from_secs(60)).await {}
            println!("{HELD}");
        });
        let mut cfg = ScalerConfig::new(VotingConfig::new(Strategy::Majority));
        cfg.decision_window = Duration::from_secs(2);
        cfg.state_db = Some(db.into());
        let lease: Arc<dyn Lease> = lease;
        run_with_lease(
            cfg,
            ScalerDeps {
                bus: dyn_bus,
                actuator: Arc::new(SimulatedActuator::new(2)),
            },
            Some(lease),
            shutdown,
        )
        .await
        .unwrap();
    });
}

struct Scaler {
    child: Child,
    held: tokio::sync::oneshot::Receiver<Instant>,
}

fn spawn(bootstrap: &str, name: &str, db: &std::path::Path) -> Scaler {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lease_child_entry_point",
            "--nocapture",
            "--include-ignored",
        ])
        .args(["--test-threads=1"])
        .env(CHILD_ENV, format!("{bootstrap},{name},{}", db.display()))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a child scaler");
    let stdout = child.stdout.take().unwrap();
    let (tx, held) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(HELD) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(Instant::now());
                }
            }
        }
    });
    Scaler { child, held }
}

fn votes(poll: u64, t: chrono::DateTime<Utc>) -> Vec<Vote> {
    ModelKind::ALL
        .into_iter()
        .map(|model| Vote {
            schema_version: SCHEMA_VERSION,
            vector_id: VectorId::new("orders", poll, t),
            timestamp: t,
            metric_time: t,
            service: "orders".into(),
            model,
            model_version: "test".into(),
            prediction: Some(1),
            probability: Some(0.9),
            confidence: Some(0.9),
            threshold: 0.5,
            abstain_reason: None,
            replicas: Some(2),
            probability_one_fewer: None,
            p95_latency_ms: None,
        })
        .collect()
}

async fn next(d: &mut Box<dyn autoscaler_bus::Subscription>, within: Duration) -> Option<Decision> {
    match tokio::time::timeout(within, d.recv()).await {
        Ok(Some(Ok(m))) => Some(decode::<Decision>(&m.payload).unwrap()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the tansu binary (scripts/kafka-up.sh)"]
async fn a_standby_takes_over_after_sigkill() {
    let Some(bin) = tansu::binary_or_skip("a_standby_takes_over_after_sigkill") else {
        return;
    };
    let broker = tansu::Broker::start(&bin, tansu::Storage::Memory).await;
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut a = spawn(&bootstrap, "a", &dir.path().join("a.db"));
    let a_held = tokio::time::timeout(Duration::from_secs(60), &mut a.held)
        .await
        .expect("a took the lease")
        .unwrap();
    let elected = a_held - started;
    eprintln!("first holder elected {elected:?} after its start (process start included)");
    let mut b = spawn(&bootstrap, "b", &dir.path().join("b.db"));

    let bus = KafkaBus::new(kafka_config(&bootstrap)).unwrap();
    bus.ensure_topics(&[VOTES_TOPIC, DECISIONS_TOPIC])
        .await
        .unwrap();
    let mut decisions = bus.reader(DECISIONS_TOPIC, true).unwrap();
    // b is a standby: it never gets the lease while a renews it.
    tokio::time::sleep(TTL * 2).await;
    assert!(b.held.try_recv().is_err(), "two holders");

    let t1 = Utc::now();
    for v in votes(1, t1) {
        bus.publish(Outgoing::new(VOTES_TOPIC, "orders", encode(&v)))
            .await
            .unwrap();
    }
    let mut seen: HashMap<String, Vec<Decision>> = HashMap::new();
    let d1 = next(&mut decisions, Duration::from_secs(30))
        .await
        .expect("a decided vector 1");
    assert!(d1.acted, "{d1:?}");
    seen.entry(d1.vector_id.0.clone()).or_default().push(d1);

    // SIGKILL the holder; the standby takes over within two lease periods.
    a.child.kill().unwrap();
    let killed = Instant::now();
    a.child.wait().unwrap();
    let b_held = tokio::time::timeout(TTL * 4, &mut b.held)
        .await
        .expect("b took over")
        .unwrap();
    let takeover = b_held - killed;
    eprintln!("standby took over {takeover:?} after the SIGKILL (lease period {TTL:?})");
    assert!(takeover <= TTL * 2, "{takeover:?}");

    // Vector 1 again (as a redelivery would bring it) and a new vector 2.
    for v in votes(1, t1).into_iter().chain(votes(2, Utc::now())) {
        bus.publish(Outgoing::new(VOTES_TOPIC, "orders", encode(&v)))
            .await
            .unwrap();
    }
    while let Some(d) = next(&mut decisions, Duration::from_secs(8)).await {
        seen.entry(d.vector_id.0.clone()).or_default().push(d);
    }
    let _ = b.child.kill();
    let _ = b.child.wait();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (id, ds) in &seen {
        assert_eq!(ds.len(), 1, "{id} decided {} times", ds.len());
    }
    let d2 = seen
        .values()
        .flatten()
        .find(|d| d.vector_id.parse().unwrap().1 == 2)
        .expect("vector 2 decided");
    assert!(!d2.acted, "the predecessor's cooldown holds: {d2:?}");
    assert!(
        d2.adjustments[0].starts_with("cooldown"),
        "{:?}",
        d2.adjustments
    );
}
