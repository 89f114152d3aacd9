//! The scaler end to end on the in-process bus, on paused tokio time.

use super::*;
use autoscaler_bus::{MemoryBus, Overflow, Subscription};
use autoscaler_contract::{ModelKind, Strategy, VectorId};
use chrono::DateTime;

fn vote(id: &str, model: ModelKind, up: bool, p1f: Option<f64>) -> Vote {
    let t = DateTime::from_timestamp(1_720_000_000, 0).unwrap();
    let p = if up { 0.9 } else { 0.1 };
    Vote {
        schema_version: SCHEMA_VERSION,
        // `<service>@<poll>@<ms>`: the poll is made from the test's short id.
        vector_id: VectorId(format!(
            "orders@{}@{}",
            id.bytes().map(u64::from).sum::<u64>(),
            id.len() * 1000
        )),
        timestamp: t,
        metric_time: t + chrono::Duration::seconds(id.len() as i64 * 1000),
        service: "orders".into(),
        model,
        model_version: "test".into(),
        prediction: Some(up as u8),
        probability: Some(p),
        confidence: Some(0.9),
        threshold: 0.5,
        abstain_reason: None,
        replicas: Some(2),
        probability_one_fewer: p1f,
        p95_latency_ms: None,
    }
}

struct Harness {
    bus: MemoryBus,
    decisions: Box<dyn Subscription>,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<ScalerReport, ScalerError>>,
    actuator: SimulatedActuator,
}

async fn start(strategy: Strategy, window_secs: u64) -> Harness {
    let bus = MemoryBus::new(64, Overflow::Block);
    let decisions = bus.subscribe(DECISIONS_TOPIC, "test").await.unwrap();
    let actuator = SimulatedActuator::new(2);
    let mut cfg = ScalerConfig::new(VotingConfig::new(strategy));
    cfg.decision_window = Duration::from_secs(window_secs);
    // The fixtures' metric times are fixed and up to an hour apart.
    cfg.clock = ClockMode::Replay;
    cfg.max_skew_secs = 86_400;
    let shutdown = CancellationToken::new();
    let deps = ScalerDeps {
        bus: Arc::new(bus.clone()),
        actuator: Arc::new(actuator.clone()),
    };
    let handle = tokio::spawn(run(cfg, deps, shutdown.clone()));
    // Let the scaler subscribe before anything is published.
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    Harness {
        bus,
        decisions,
        shutdown,
        handle,
        actuator,
    }
}

impl Harness {
    async fn send(&self, v: &Vote) {
        self.bus
            .publish(Outgoing::new(VOTES_TOPIC, &v.service, encode(v)))
            .await
            .unwrap();
    }

    async fn next_decision(&mut self, within: Duration) -> Option<Decision> {
        match tokio::time::timeout(within, self.decisions.recv()).await {
            Ok(Some(Ok(d))) => Some(decode(&d.payload).unwrap()),
            _ => None,
        }
    }

    async fn stop(self) -> ScalerReport {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn decides_at_once_when_all_three_voted() {
    let mut h = start(Strategy::Majority, 5).await;
    h.send(&vote("a", ModelKind::Xgboost, true, None)).await;
    h.send(&vote("a", ModelKind::RandomForest, true, None))
        .await;
    h.send(&vote("a", ModelKind::LogisticRegression, false, None))
        .await;
    let started = tokio::time::Instant::now();
    let d = h
        .next_decision(Duration::from_secs(1))
        .await
        .expect("decision");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no waiting for the window"
    );
    assert_eq!(d.decision, Verdict::ScaleUp);
    assert_eq!(
        (d.scale_up_votes, d.no_action_votes, d.total_votes),
        (2, 1, 3)
    );
    assert_eq!(
        (d.from_replicas, d.to_replicas, d.acted),
        (Some(2), Some(3), true)
    );
    assert_eq!(h.actuator.current("orders").await.unwrap(), 3);
    let r = h.stop().await;
    assert_eq!((r.decisions, r.scale_ups), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn window_expires_then_late_and_duplicate_votes_change_nothing() {
    let mut h = start(Strategy::Majority, 5).await;
    h.send(&vote("b", ModelKind::Xgboost, true, None)).await;
    h.send(&vote("b", ModelKind::Xgboost, false, None)).await; // duplicate
    h.send(&vote("b", ModelKind::RandomForest, true, None))
        .await;
    // Nothing before the window ends...
    assert!(h.next_decision(Duration::from_millis(4900)).await.is_none());
    // ...then exactly one decision, with the two votes received.
    let d = h
        .next_decision(Duration::from_millis(200))
        .await
        .expect("decided");
    assert_eq!(
        d.decision,
        Verdict::ScaleUp,
        "2 of 3 expected is a majority"
    );
    assert_eq!(d.missing_models, vec![ModelKind::LogisticRegression]);
    assert!(d.reason.contains("end of the window"), "{}", d.reason);
    // The late vote and a repeated one never produce a second decision.
    h.send(&vote("b", ModelKind::LogisticRegression, false, None))
        .await;
    h.send(&vote("b", ModelKind::Xgboost, false, None)).await;
    assert!(h.next_decision(Duration::from_secs(30)).await.is_none());
    let r = h.stop().await;
    assert_eq!(r.decisions, 1);
    assert_eq!((r.ballot.duplicate, r.ballot.late), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn one_vote_short_is_not_a_unanimous_up_and_garbage_is_dead_lettered() {
    let mut h = start(Strategy::Unanimous, 5).await;
    let mut dlq = h.bus.subscribe("model-votes.dlq", "test").await.unwrap();
    h.bus
        .publish(Outgoing::new(VOTES_TOPIC, "orders", b"{not json".to_vec()))
        .await
        .unwrap();
    let mut bad = vote("c", ModelKind::Xgboost, true, None);
    bad.probability = Some(f64::INFINITY);
    // serde_json writes a non-finite number as null; craft the bad probability by hand.
    let mut json: serde_json_like::Value = serde_json_like::to_value(&bad);
    json["probability"] = serde_json_like::json!(7.5);
    h.bus
        .publish(Outgoing::new(
            VOTES_TOPIC,
            "orders",
            json.to_string().into_bytes(),
        ))
        .await
        .unwrap();
    for m in [ModelKind::Xgboost, ModelKind::RandomForest] {
        h.send(&vote("c", m, true, None)).await;
    }
    let d = h
        .next_decision(Duration::from_secs(6))
        .await
        .expect("decided");
    assert_eq!(d.decision, Verdict::NoAction);
    assert!(!d.acted);
    let first = dlq.recv().await.unwrap().unwrap();
    assert!(first
        .headers
        .iter()
        .any(|(k, v)| k == "x-dlq-reason" && v.contains("malformed")));
    let second = dlq.recv().await.unwrap().unwrap();
    assert!(second
        .headers
        .iter()
        .any(|(k, v)| k == "x-dlq-reason" && v.contains("out of range")));
    let r = h.stop().await;
    assert_eq!(r.dead_letters, 2);
}

#[tokio::test(start_paused = true)]
async fn scales_down_only_when_one_fewer_is_safe() {
    let mut h = start(Strategy::Majority, 5).await;
    // No action, but one model cannot vouch for one replica fewer: hold.
    h.send(&vote("d", ModelKind::Xgboost, false, Some(0.1)))
        .await;
    h.send(&vote("d", ModelKind::RandomForest, false, Some(0.8)))
        .await;
    h.send(&vote("d", ModelKind::LogisticRegression, false, Some(0.2)))
        .await;
    let d = h.next_decision(Duration::from_secs(1)).await.unwrap();
    assert_eq!((d.decision, d.to_replicas), (Verdict::NoAction, Some(2)));
    // All find one fewer safe: scale down by one.
    h.send(&vote("ee", ModelKind::Xgboost, false, Some(0.1)))
        .await;
    h.send(&vote("ee", ModelKind::RandomForest, false, Some(0.15)))
        .await;
    h.send(&vote("ee", ModelKind::LogisticRegression, false, Some(0.2)))
        .await;
    let d = h.next_decision(Duration::from_secs(1)).await.unwrap();
    assert_eq!(d.decision, Verdict::ScaleDown);
    assert_eq!((d.from_replicas, d.to_replicas), (Some(2), Some(1)));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_service_policy_sets_bounds_dry_run_and_a_broken_one_holds() {
    let mut h = start(Strategy::Majority, 5).await;
    let up = |id: &'static str| {
        ModelKind::ALL
            .into_iter()
            .map(move |m| vote(id, m, true, None))
    };
    // A broken policy: held, nothing changes, the problem is named.
    h.actuator.set_policy(
        "orders",
        Err(vec!["autoscaler.min=`-1` is not a whole number ≥ 0".into()]),
    );
    for v in up("f") {
        h.send(&v).await;
    }
    let d = h.next_decision(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        (d.from_replicas, d.to_replicas, d.acted),
        (None, None, false)
    );
    assert_eq!(
        d.adjustments,
        vec!["held: bad policy for `orders`: autoscaler.min=`-1` is not a whole number ≥ 0"]
    );
    // Fixed: its own max (2) applies instead of the global 10.
    h.actuator.set_policy(
        "orders",
        Ok(ServicePolicy {
            max_replicas: Some(2),
            ..ServicePolicy::default()
        }),
    );
    for v in up("gg") {
        h.send(&v).await;
    }
    let d = h.next_decision(Duration::from_secs(1)).await.unwrap();
    assert_eq!((d.to_replicas, d.acted), (Some(2), false));
    assert_eq!(d.adjustments, vec!["at max 2"]);
    // Dry-run for this service only: "would scale", nothing changes.
    h.actuator.set_policy(
        "orders",
        Ok(ServicePolicy {
            dry_run: Some(true),
            strategy: Some(Strategy::Unanimous),
            ..ServicePolicy::default()
        }),
    );
    for v in up("hhh") {
        h.send(&v).await;
    }
    let d = h.next_decision(Duration::from_secs(1)).await.unwrap();
    assert_eq!(d.strategy, Strategy::Unanimous);
    assert_eq!((d.to_replicas, d.acted, d.dry_run), (Some(3), false, true));
    assert_eq!(d.adjustments, vec!["dry-run: would scale to 3"]);
    assert_eq!(h.actuator.current("orders").await.unwrap(), 2);
    let r = h.stop().await;
    assert_eq!(r.policy_holds, 1);
}

/// serde_json under another name, to make clear it is only used to build a bad message.
mod serde_json_like {
    pub use serde_json::{json, Value};
    pub fn to_value<T: serde::Serialize>(t: &T) -> Value {
        serde_json::to_value(t).unwrap()
    }
}

#[test]
fn scale_up_step_grows_with_p95_over_the_sla() {
    let with = |p: f64, p95: Option<f64>| {
        let mut v = vote("s", ModelKind::Xgboost, true, None);
        v.probability = Some(p);
        v.p95_latency_ms = p95;
        v
    };
    // p95 at twice the SLA: urgency 1, the full step.
    let s = severity_of(&[with(0.6, Some(500.0))], None, Some(250.0));
    assert_eq!(s.p95_over_sla, Some(2.0));
    assert_eq!(envelope::step_for(3, &s), 3);
    // 1.5× the SLA (urgency 0.5) outweighs P = 0.6 (urgency 0.2): step 1 + ⌊0.5 · 2⌋ = 2.
    let s = severity_of(&[with(0.6, Some(375.0))], None, Some(250.0));
    assert_eq!(envelope::step_for(3, &s), 2);
    // No SLA known for the service: only the probability counts.
    let s = severity_of(&[with(0.6, Some(375.0))], None, None);
    assert_eq!(s.p95_over_sla, None);
    assert_eq!(envelope::step_for(3, &s), 1);
}

/// A decision recorded in the store but not published (the scaler died in between) is
/// published when the scaler starts again, once.
#[tokio::test]
async fn a_decision_recorded_but_not_published_is_published_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let start_with_db = |bus: MemoryBus| {
        let mut cfg = ScalerConfig::new(VotingConfig::new(Strategy::Majority));
        cfg.state_db = Some(db.clone());
        cfg.clock = ClockMode::Replay;
        let shutdown = CancellationToken::new();
        let deps = ScalerDeps {
            bus: Arc::new(bus),
            actuator: Arc::new(SimulatedActuator::new(2)),
        };
        (tokio::spawn(run(cfg, deps, shutdown.clone())), shutdown)
    };
    // A first run decides one vector and publishes it.
    let bus = MemoryBus::new(64, Overflow::Block);
    let mut decisions = bus.subscribe(DECISIONS_TOPIC, "test").await.unwrap();
    let (task, stop) = start_with_db(bus.clone());
    while bus.groups(VOTES_TOPIC) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for m in ModelKind::ALL {
        let v = vote("r", m, true, None);
        bus.publish(Outgoing::new(VOTES_TOPIC, &v.service, encode(&v)))
            .await
            .unwrap();
    }
    let first: Decision = decode(&decisions.recv().await.unwrap().unwrap().payload).unwrap();
    stop.cancel();
    assert_eq!(task.await.unwrap().unwrap().republished, 0);
    // Put it back in the outbox, as if the process had died after recording it.
    let store = Store::open(&db).unwrap();
    assert!(
        store.unpublished().unwrap().is_empty(),
        "published, so cleared"
    );
    store.record(&first, &ServiceState::default()).unwrap();
    drop(store);
    // The next run publishes it at start, and only once.
    let bus = MemoryBus::new(64, Overflow::Block);
    let mut decisions = bus.subscribe(DECISIONS_TOPIC, "test").await.unwrap();
    let (task, stop) = start_with_db(bus.clone());
    let again: Decision = decode(&decisions.recv().await.unwrap().unwrap().payload).unwrap();
    assert_eq!(again, first);
    stop.cancel();
    assert_eq!(task.await.unwrap().unwrap().republished, 1);
    assert!(Store::open(&db).unwrap().unpublished().unwrap().is_empty());
}
