//! The services as separate OS processes over a real Kafka-protocol broker.
//!
//! The broker comes from `KAFKA_BOOTSTRAP_SERVERS` (scripts/test.sh starts one with
//! scripts/kafka-up.sh). Without it these tests fail in CI (`CI` or `REQUIRE_INTEGRATION` set)
//! and otherwise say why they skip. Every test uses its own topics and consumer groups, so they
//! can run again and again on one broker.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use autoscaler_bus::kafka::{KafkaBus, KafkaConfig};
use autoscaler_bus::{Bus, Outgoing};

mod common;
use common::{bin, models_dir, text, Proc};

/// The tests of this file run one at a time: each starts five or six processes against the one
/// broker, and four pipelines at once on a 2-core machine starve a model's consumer for longer
/// than any decision window (a vote then misses its ballot, which is behaviour under overload,
/// not the behaviour these tests are about).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn broker() -> Option<String> {
    match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ if std::env::var_os("CI").is_some()
            || std::env::var_os("REQUIRE_INTEGRATION").is_some() =>
        {
            panic!("KAFKA_BOOTSTRAP_SERVERS is not set but CI/REQUIRE_INTEGRATION requires the Kafka tests (run scripts/kafka-up.sh)")
        }
        _ => {
            eprintln!("SKIPPED: KAFKA_BOOTSTRAP_SERVERS is not set (start a broker with scripts/kafka-up.sh)");
            None
        }
    }
}

/// One pipeline's names on the shared broker.
struct Names {
    suffix: String,
    bootstrap: String,
}

impl Names {
    fn new(test: &str, bootstrap: String) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Names {
            suffix: format!("{test}-{}-{nanos}", std::process::id()),
            bootstrap,
        }
    }
    fn metrics(&self) -> String {
        format!("metrics-{}", self.suffix)
    }
    fn votes(&self) -> String {
        format!("votes-{}", self.suffix)
    }
    fn decisions(&self) -> String {
        format!("decisions-{}", self.suffix)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = bin();
        c.args(args)
            .env("BUS", "kafka")
            .env("KAFKA_BOOTSTRAP_SERVERS", &self.bootstrap)
            .env("METRICS_TOPIC", self.metrics())
            .env("VOTES_TOPIC", self.votes())
            .env("DECISIONS_TOPIC", self.decisions())
            .env("KAFKA_GROUP_PREFIX", format!("{}-", self.suffix))
            .env("MODELS_DIR", models_dir())
            // The replay runs ahead of this host's clock: votes are checked against its own.
            .env("AUTOSCALER_CLOCK", "replay")
            // Consumer-group rebalances (a replica joining, a scaler restarting) pause delivery
            // for seconds on a loaded 2-core machine: give the ballots room.
            .env("DECISION_WINDOW_SEC", "20")
            .env("RUST_LOG", "info");
        c
    }

    fn spawn(&self, args: &[&str]) -> Proc {
        Proc::start(args.join(" "), self.command(args))
    }

    fn bus(&self) -> KafkaBus {
        let mut cfg = KafkaConfig::new(&self.bootstrap);
        cfg.group_prefix = format!("{}-reader-", self.suffix);
        KafkaBus::new(cfg).unwrap()
    }
}

/// Read every message of `topic` from the beginning until `want` arrived or `idle` passes
/// without one.
/// Replay 15 minutes of 30 s polls for [`SERVICES`] in lock-step through the running pipeline;
/// fails unless the aggregator ends well with every poll decided within its wait.
fn replay_quarter_hour(n: &Names) {
    let agg = n.spawn(&[
        "aggregator",
        "--source",
        "replay",
        "--duration-hours",
        "0.25",
        "--services",
        SERVICES,
    ]);
    let (ok, agg_err) = agg.wait(Duration::from_secs(240));
    assert!(ok, "aggregator failed:\n{agg_err}");
    assert!(
        !agg_err.contains("no decision within the wait"),
        "every poll was decided in time:\n{agg_err}"
    );
}

/// The last lines of a process's log, for a failure message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

async fn read_all(
    bus: &KafkaBus,
    topic: &str,
    want: usize,
    idle: Duration,
) -> Vec<autoscaler_bus::Delivery> {
    let mut sub = bus.reader(topic, true).unwrap();
    let mut out = Vec::new();
    while out.len() < want {
        match tokio::time::timeout(idle, sub.recv()).await {
            Ok(Some(Ok(d))) => out.push(d),
            Ok(Some(Err(e))) => panic!("reading {topic}: {e}"),
            _ => break,
        }
    }
    out
}

fn votes_logged(stderr: &str) -> u64 {
    // tracing's fmt writes `votes=N` on the "inference stopped" line.
    stderr
        .lines()
        .filter(|l| l.contains("inference stopped"))
        .filter_map(|l| l.split("votes=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The partitions of `topic` a process holds now, from the assignments and revocations its
/// Kafka consumer logs (`kafka partitions assigned … partitions=topic:0,2`).
fn held_partitions(stderr: &str, topic: &str) -> BTreeSet<i32> {
    let mut held = BTreeSet::new();
    for line in stderr.lines() {
        let assigned = line.contains("kafka partitions assigned");
        if !assigned && !line.contains("kafka partitions revoked") {
            continue;
        }
        let Some(list) = line.split("partitions=").nth(1) else {
            continue;
        };
        let parts: Vec<i32> = list
            .split_whitespace()
            .filter_map(|tp| tp.strip_prefix(topic)?.strip_prefix(':'))
            .flat_map(|ps| ps.split(',').filter_map(|p| p.parse().ok()))
            .collect();
        for p in parts {
            if assigned {
                held.insert(p);
            } else {
                held.remove(&p);
            }
        }
    }
    held
}

/// Wait until `done` holds, checking every 200 ms; panics with `what` after `limit`.
async fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    start.elapsed()
}

const SERVICES: &str = "front-end,orders,carts,catalogue,payment,shipping";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: KAFKA_BOOTSTRAP_SERVERS (scripts/kafka-up.sh)"]
async fn closed_loop_over_kafka_with_dead_letters() {
    let _serial = SERIAL.lock().await;
    let Some(bootstrap) = broker() else { return };
    let n = Names::new("loop", bootstrap);
    let bus = n.bus();
    let (dm, dv) = (format!("{}.dlq", n.metrics()), format!("{}.dlq", n.votes()));
    bus.ensure_topics(&[&n.metrics(), &n.votes(), &n.decisions(), &dm, &dv])
        .await
        .unwrap();
    // Garbage and contract violations before anything runs: the consumers must go on.
    for (topic, payload) in [
        (n.metrics(), b"not json at all".to_vec()),
        (
            n.metrics(),
            br#"{"schema_version":99,"service":"orders"}"#.to_vec(),
        ),
        (n.votes(), b"{\"half\":".to_vec()),
    ] {
        bus.publish(Outgoing::new(topic, "orders", payload))
            .await
            .unwrap();
    }

    let scaler = n.spawn(&["scaler", "--actuator", "simulated"]);
    let x1 = n.spawn(&["inference", "--model", "xgboost"]);
    let rf = n.spawn(&["inference", "--model", "random_forest"]);
    let lr = n.spawn(&["inference", "--model", "logistic_regression"]);
    replay_quarter_hour(&n);
    let expected = 30 * 6;

    let decisions = read_all(&bus, &n.decisions(), expected + 1, Duration::from_secs(10)).await;
    assert_eq!(
        decisions.len(),
        expected,
        "one decision per vector, no more"
    );
    let mut ids = HashSet::new();
    let mut per_service: HashMap<String, usize> = HashMap::new();
    for d in &decisions {
        let v: serde_json::Value = serde_json::from_slice(&d.payload).unwrap();
        assert!(
            ids.insert(v["vector_id"].as_str().unwrap().to_string()),
            "decided twice: {v}"
        );
        assert_eq!(v["total_votes"], 3, "{v}");
        assert_eq!(v["votes"].as_array().unwrap().len(), 3);
        assert_eq!(d.key, v["service"].as_str().unwrap(), "keyed by service");
        *per_service.entry(d.key.clone()).or_default() += 1;
    }
    assert_eq!(per_service.len(), 6);
    assert!(per_service.values().all(|c| *c == 30), "{per_service:?}");

    // The dead letters: both bad vectors, once per inference group (3 groups), with reasons.
    let dead = read_all(&bus, &dm, 7, Duration::from_secs(5)).await;
    assert_eq!(dead.len(), 6, "2 bad vectors x 3 model groups");
    for d in &dead {
        let reason = d
            .headers
            .iter()
            .find(|(k, _)| k == "x-dlq-reason")
            .map(|(_, v)| v.as_str());
        assert!(
            reason.is_some_and(|r| r.contains("malformed") || r.contains("schema_version")),
            "{:?}",
            d.headers
        );
    }
    let dead_votes = read_all(&bus, &dv, 2, Duration::from_secs(5)).await;
    assert_eq!(dead_votes.len(), 1);

    // An independent client reads the decisions as JSON.
    let py = std::env::var("AUTOSCALER_PYTHON_KAFKA").ok();
    match py {
        Some(py) => {
            let out = Command::new(py)
                .args([
                    concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/../../scripts/read_decisions.py"
                    ),
                    &n.bootstrap,
                    &n.decisions(),
                    &expected.to_string(),
                    "60",
                ])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
            let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(r["messages"], expected, "{r}");
            assert_eq!(r["json"], expected, "{r}");
            assert_eq!(r["three_votes"], expected, "{r}");
        }
        None if std::env::var_os("CI").is_some() => {
            panic!("AUTOSCALER_PYTHON_KAFKA (confluent-kafka venv) is required in CI")
        }
        None => eprintln!("SKIPPED the confluent-kafka check: AUTOSCALER_PYTHON_KAFKA is not set"),
    }

    // Every service stops cleanly on SIGTERM, having voted once per vector.
    for p in [x1, rf, lr] {
        assert_eq!(votes_logged(&p.stop()), expected as u64);
    }
    scaler.stop();
}

/// A baseline policy in the scaler decides every vector of the metrics topic itself, no models
/// running; the scaler's own metrics group dead-letters what does not parse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: KAFKA_BOOTSTRAP_SERVERS (scripts/kafka-up.sh)"]
async fn a_baseline_policy_decides_every_vector_over_kafka_without_models() {
    let _serial = SERIAL.lock().await;
    let Some(bootstrap) = broker() else { return };
    let n = Names::new("policy", bootstrap);
    let bus = n.bus();
    let dm = format!("{}.dlq", n.metrics());
    bus.ensure_topics(&[&n.metrics(), &n.votes(), &n.decisions(), &dm])
        .await
        .unwrap();
    bus.publish(Outgoing::new(n.metrics(), "orders", b"not json".to_vec()))
        .await
        .unwrap();
    let scaler = n.spawn(&["scaler", "--actuator", "simulated", "--policy", "hpa-70"]);
    replay_quarter_hour(&n);
    let expected = 30 * 6;
    let decisions = read_all(&bus, &n.decisions(), expected + 1, Duration::from_secs(10)).await;
    assert_eq!(decisions.len(), expected, "one decision per vector");
    let mut ids = HashSet::new();
    for d in &decisions {
        let v: serde_json::Value = serde_json::from_slice(&d.payload).unwrap();
        assert!(ids.insert(v["vector_id"].as_str().unwrap().to_string()));
        assert_eq!(v["total_votes"], 0, "{v}");
        assert!(
            v["reason"].as_str().unwrap().starts_with("policy hpa-70: "),
            "{v}"
        );
    }
    let dead = read_all(&bus, &dm, 2, Duration::from_secs(5)).await;
    assert_eq!(
        dead.len(),
        1,
        "the scaler's group dead-letters the bad vector"
    );
    let log = scaler.stop();
    assert!(log.contains("policy=hpa-70"), "{}", tail(&log));
}

/// The next delivery of `sub`, within a minute.
async fn next(sub: &mut Box<dyn autoscaler_bus::Subscription>) -> autoscaler_bus::Delivery {
    tokio::time::timeout(Duration::from_secs(60), sub.recv())
        .await
        .expect("a message within a minute")
        .expect("subscription open")
        .expect("no error")
}

// At least once across a change of consumer: a successor (a restart, or the new owner of a
// partition after a rebalance) resumes at the oldest message not acknowledged — not one past it.
// For a member of a group and for an exclusive (explicitly assigned) consumer alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: KAFKA_BOOTSTRAP_SERVERS (scripts/kafka-up.sh)"]
async fn a_successor_resumes_at_the_first_unacknowledged_message() {
    let _serial = SERIAL.lock().await;
    let Some(bootstrap) = broker() else { return };
    let n = Names::new("resume", bootstrap);
    let mut cfg = KafkaConfig::new(&n.bootstrap);
    cfg.group_prefix = format!("{}-", n.suffix);
    cfg.partitions = 1;
    cfg.exclusive_groups.insert("exclusive".into());
    let bus = KafkaBus::new(cfg).unwrap();
    let topic = n.metrics();
    bus.ensure_topics(&[&topic]).await.unwrap();
    for i in 0..6 {
        bus.publish(Outgoing::new(&topic, "k", format!("m{i}").into_bytes()))
            .await
            .unwrap();
    }
    for group in ["member", "exclusive"] {
        let mut first = bus.subscribe(&topic, group).await.unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(next(&mut first).await);
        }
        assert_eq!(
            got.iter().map(|d| d.offset).collect::<Vec<_>>(),
            [0, 1, 2],
            "{group}"
        );
        // 0 and 2 are done, 1 is still being worked on when the consumer goes away.
        first.ack(&got[0]).await.unwrap();
        first.ack(&got[2]).await.unwrap();
        first.close().await.unwrap();
        drop(first);
        let mut second = bus.subscribe(&topic, group).await.unwrap();
        let d = next(&mut second).await;
        assert_eq!((d.offset, d.payload.as_slice()), (1, &b"m1"[..]), "{group}");
        assert_eq!(next(&mut second).await.offset, 2, "{group}: redelivered");
        second.close().await.unwrap();
    }
}

// The scaler reads every partition of the votes topic by explicit assignment (it is the only
// consumer of its group: `KafkaConfig::exclusive_groups`), so its successor starts at once from
// the committed offsets — no dead member to evict, no rebalance (on tansu 0.6 a group whose
// leader is killed leaves the successor with an empty assignment for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: KAFKA_BOOTSTRAP_SERVERS (scripts/kafka-up.sh)"]
async fn scaler_killed_mid_stream_and_restarted_decides_every_vector_exactly_once() {
    let _serial = SERIAL.lock().await;
    let Some(bootstrap) = broker() else { return };
    let n = Names::new("restart", bootstrap);
    let bus = n.bus();
    // No --state-db: over Kafka the state store defaults to `$XDG_STATE_HOME/autoscaler/
    // scaler-<group>.db`, and that is what makes the restart decide nothing twice.
    let state_home = tempfile::tempdir().unwrap();
    let scaler_args = ["scaler", "--actuator", "simulated"];
    let spawn_scaler = || {
        let mut c = n.command(&scaler_args);
        c.env("XDG_STATE_HOME", state_home.path());
        Proc::start("scaler".into(), c)
    };
    let scaler = spawn_scaler();
    let models: Vec<Proc> = ["xgboost", "random_forest", "logistic_regression"]
        .iter()
        .map(|m| n.spawn(&["inference", "--model", m]))
        .collect();
    let agg = n.spawn(&[
        "aggregator",
        "--source",
        "replay",
        "--duration-hours",
        "0.5",
        "--services",
        "front-end,orders",
    ]);
    let expected = 60 * 2;
    // Kill the scaler (no chance to clean up) once part of the stream is decided.
    let mut seen = 0;
    let mut sub = bus.reader(&n.decisions(), true).unwrap();
    while seen < 30 {
        match tokio::time::timeout(Duration::from_secs(90), sub.recv()).await {
            Ok(Some(Ok(_))) => seen += 1,
            other => panic!("no decisions before the kill: {other:?}"),
        }
    }
    scaler.signal("-KILL");
    drop(scaler);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let scaler = spawn_scaler();
    let took = wait_for(
        Duration::from_secs(30),
        "the restarted scaler reads the votes",
        || held_partitions(&scaler.stderr(), &n.votes()).len() == 3,
    )
    .await;
    eprintln!("the restarted scaler held every votes partition after {took:?}");
    let (ok, err) = agg.wait(Duration::from_secs(300));
    assert!(ok, "aggregator:\n{err}");
    let decisions = read_all(&bus, &n.decisions(), expected + 5, Duration::from_secs(15)).await;
    let mut count: HashMap<String, usize> = HashMap::new();
    for d in &decisions {
        let v: serde_json::Value = serde_json::from_slice(&d.payload).unwrap();
        assert_eq!(v["total_votes"], 3, "{v}");
        *count
            .entry(v["vector_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "decided twice: {twice:?}");
    assert_eq!(count.len(), expected, "every vector decided");
    let db = state_home
        .path()
        .join(format!("autoscaler/scaler-{}-scaler.db", n.suffix));
    assert!(
        db.is_file(),
        "the default state path {} was used",
        db.display()
    );
    scaler.stop();
    for m in models {
        m.stop();
    }
}

// Two replicas of one model in one group (`inference-xgboost`) split the metrics partitions, and
// every vector still gets exactly one vote per model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: KAFKA_BOOTSTRAP_SERVERS (scripts/kafka-up.sh)"]
async fn two_replicas_of_one_model_split_the_partitions_and_every_vector_gets_three_votes() {
    let _serial = SERIAL.lock().await;
    let Some(bootstrap) = broker() else { return };
    let n = Names::new("replicas", bootstrap);
    let bus = n.bus();
    let scaler = n.spawn(&["scaler", "--actuator", "simulated"]);
    let x1 = n.spawn(&["inference", "--model", "xgboost"]);
    let x2 = n.spawn(&["inference", "--model", "xgboost"]);
    let rf = n.spawn(&["inference", "--model", "random_forest"]);
    let lr = n.spawn(&["inference", "--model", "logistic_regression"]);
    // The claim is about a group that has formed: wait until the two replicas hold disjoint,
    // non-empty sets of partitions that cover the topic (and the other consumers hold theirs)
    // before anything is published. A rebalance while votes flow is covered by the at-least-once
    // delivery, not by this test.
    let metrics = n.metrics();
    let all: BTreeSet<i32> = (0..3).collect();
    let took = wait_for(Duration::from_secs(90), "a stable xgboost group", || {
        let (a, b) = (
            held_partitions(&x1.stderr(), &metrics),
            held_partitions(&x2.stderr(), &metrics),
        );
        !a.is_empty()
            && !b.is_empty()
            && a.is_disjoint(&b)
            && a.union(&b).copied().collect::<BTreeSet<_>>() == all
            && held_partitions(&rf.stderr(), &metrics) == all
            && held_partitions(&lr.stderr(), &metrics) == all
            && held_partitions(&scaler.stderr(), &n.votes()) == all
    })
    .await;
    let (held1, held2) = (
        held_partitions(&x1.stderr(), &metrics),
        held_partitions(&x2.stderr(), &metrics),
    );
    eprintln!("xgboost replicas hold {held1:?} and {held2:?} after {took:?}");
    let rebalances = |e: &str| {
        e.lines()
            .filter(|l| {
                l.contains("kafka partitions assigned") || l.contains("kafka partitions revoked")
            })
            .count()
    };
    let before = (rebalances(&x1.stderr()), rebalances(&x2.stderr()));

    replay_quarter_hour(&n);
    let expected = 30 * 6;
    let decisions = read_all(&bus, &n.decisions(), expected + 1, Duration::from_secs(10)).await;
    assert_eq!(decisions.len(), expected, "one decision per vector");
    let mut ids = HashSet::new();
    for d in &decisions {
        let v: serde_json::Value = serde_json::from_slice(&d.payload).unwrap();
        assert!(
            ids.insert(v["vector_id"].as_str().unwrap().to_string()),
            "decided twice: {v}"
        );
        assert_eq!(
            v["total_votes"],
            3,
            "three votes, one per model: {v}\nlogistic_regression:\n{}\nrandom_forest:\n{}",
            tail(&lr.stderr()),
            tail(&rf.stderr())
        );
    }

    // The group did not change while the vectors flowed, and both replicas did their share.
    let during = (rebalances(&x1.stderr()), rebalances(&x2.stderr()));
    assert_eq!(
        before,
        during,
        "no rebalance while the vectors flowed:\n{}\n{}",
        x1.stderr(),
        x2.stderr()
    );
    let (e1, e2) = (x1.stop(), x2.stop());
    let (v1, v2) = (votes_logged(&e1), votes_logged(&e2));
    eprintln!("xgboost replicas voted {v1} and {v2} times");
    assert!(v1 > 0 && v2 > 0, "both replicas voted: {v1}, {v2}");
    assert_eq!(v1 + v2, expected as u64, "one xgboost vote per vector");
    for p in [rf, lr] {
        assert_eq!(votes_logged(&p.stop()), expected as u64);
    }
    scaler.stop();
}
