//! The scaler end to end on the in-process bus, on paused tokio time.

use super::*;
use autoscaler_bus::{MemoryBus, Overflow, Subscription};
use autoscaler_contract::fixtures;
use autoscaler_contract::{ModelKind, Strategy};

fn vote(id: &str, model: ModelKind, up: bool, p1f: Option<f64>) -> Vote {
    // `<service>@<poll>@<ms>`: the poll is made from the test's short id.
    // The metric time follows the short id's length, as the id's milliseconds do.
    let later = id.len() as i64 * 1000;
    let id = format!(
        "orders@{}@{}",
        id.bytes().map(u64::from).sum::<u64>(),
        id.len() * 1000
    );
    fixtures::vote(&id, model)
        .ballot(up)
        .metric_time(fixtures::at(later))
        .replicas(2)
        .one_fewer(p1f)
        .build()
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
    h.send(&vote("ee", ModelKind::RandomForest, false, Some(0.08)))
        .await;
    h.send(&vote("ee", ModelKind::LogisticRegression, false, Some(0.1)))
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

/// Issue 14: decisions that arrive together are recorded in one transaction (fewer commits
/// than decisions), each before it is published; all are published, in order per service.
#[tokio::test(start_paused = true)]
async fn decisions_arriving_together_share_a_commit() {
    const N: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let bus = MemoryBus::new(4 * N, Overflow::Block);
    let mut decisions = bus.subscribe(DECISIONS_TOPIC, "test").await.unwrap();
    let mut cfg = ScalerConfig::new(VotingConfig::new(Strategy::Majority));
    cfg.state_db = Some(db.clone());
    cfg.clock = ClockMode::Replay;
    cfg.max_skew_secs = 86_400;
    let shutdown = CancellationToken::new();
    let deps = ScalerDeps {
        bus: Arc::new(bus.clone()),
        actuator: Arc::new(SimulatedActuator::new(2)),
    };
    let task = tokio::spawn(run(cfg, deps, shutdown.clone()));
    while bus.groups(VOTES_TOPIC) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ids: Vec<String> = (0..N)
        .map(|i| format!("orders@{}@{}", i + 1, (i + 1) * 1000))
        .collect();
    for id in &ids {
        for m in ModelKind::ALL {
            let v = fixtures::vote(id, m)
                .ballot(false)
                .metric_time(fixtures::at((ids.len() as i64) * 1000))
                .replicas(2)
                .build();
            bus.publish(Outgoing::new(VOTES_TOPIC, &v.service, encode(&v)))
                .await
                .unwrap();
        }
    }
    let mut seen = Vec::new();
    for _ in 0..N {
        let d: Decision = decode(&decisions.recv().await.unwrap().unwrap().payload).unwrap();
        seen.push(d.vector_id.0);
    }
    assert_eq!(seen, ids, "published in order, each once");
    shutdown.cancel();
    let r = task.await.unwrap().unwrap();
    assert_eq!(r.decisions, N as u64);
    assert!(
        r.store_commits >= 1 && r.store_commits < N as u64,
        "{N} decisions in {} transactions",
        r.store_commits
    );
    let store = Store::open(&db).unwrap();
    assert_eq!(
        store.recent_decided(10 * N).unwrap().len(),
        N,
        "each recorded"
    );
    assert!(
        store.unpublished().unwrap().is_empty(),
        "published, so cleared"
    );
}

/// A batch recorded in one transaction whose process died before publishing any of it: the next
/// start publishes each of its decisions from the outbox exactly once, and a start after that
/// publishes none again.
#[tokio::test]
async fn a_batch_recorded_but_not_published_is_published_once_on_restart() {
    const N: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let batch: Vec<Decision> = (0..N)
        .map(|i| {
            let service = ["orders", "front-end", "carts"][i % 3];
            crate::store::tests::decision(&format!("{service}@{i}@0"), service)
        })
        .collect();
    let store = Store::open(&db).unwrap();
    let st = ServiceState::default();
    store
        .commit_batch(
            &batch,
            &[("orders", &st), ("front-end", &st), ("carts", &st)],
            &[],
        )
        .unwrap();
    assert_eq!(store.batch_commits(), 1);
    assert_eq!(store.unpublished().unwrap().len(), N);
    drop(store);
    let run_once = || async {
        let bus = MemoryBus::new(4 * N, Overflow::Block);
        let mut decisions = bus.subscribe(DECISIONS_TOPIC, "test").await.unwrap();
        let mut cfg = ScalerConfig::new(VotingConfig::new(Strategy::Majority));
        cfg.state_db = Some(db.clone());
        cfg.clock = ClockMode::Replay;
        let shutdown = CancellationToken::new();
        let deps = ScalerDeps {
            bus: Arc::new(bus.clone()),
            actuator: Arc::new(SimulatedActuator::new(2)),
        };
        let task = tokio::spawn(run(cfg, deps, shutdown.clone()));
        while bus.groups(VOTES_TOPIC) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        shutdown.cancel();
        let report = task.await.unwrap().unwrap();
        let mut got = Vec::new();
        while let Ok(Some(Ok(d))) =
            tokio::time::timeout(Duration::from_millis(50), decisions.recv()).await
        {
            got.push(decode::<Decision>(&d.payload).unwrap());
        }
        (report, got)
    };
    let (report, got) = run_once().await;
    assert_eq!(report.republished, N as u64);
    assert_eq!(got, batch, "each once, in the order recorded");
    assert!(Store::open(&db).unwrap().unpublished().unwrap().is_empty());
    let (report, got) = run_once().await;
    assert_eq!(report.republished, 0);
    assert!(got.is_empty(), "never twice: {got:?}");
}

/// Issue 15: hostile input, races and the lease.
mod hardening {
    use super::*;
    use crate::lease::{LeaseConfig, LogLease, MemoryLeaseLog};
    use async_trait::async_trait;
    use autoscaler_bus::Delivery;
    use autoscaler_contract::{ModelKind, Strategy, VectorId};
    use chrono::{DateTime, Utc};

    /// A vote of `model` on `service`'s vector at `t`, with the id the aggregator would give.
    fn vote_at(service: &str, poll: u64, t: DateTime<Utc>, model: ModelKind, up: bool) -> Vote {
        let mut v = vote("x", model, up, None);
        v.vector_id = VectorId::new(service, poll, t);
        v.service = service.into();
        v.metric_time = t;
        v.timestamp = t;
        v
    }

    struct Running {
        bus: MemoryBus,
        decisions: Box<dyn Subscription>,
        dlq: Box<dyn Subscription>,
        shutdown: CancellationToken,
        handle: tokio::task::JoinHandle<Result<ScalerReport, ScalerError>>,
    }

    async fn start_with(
        cfg: ScalerConfig,
        bus: Arc<dyn Bus>,
        mem: MemoryBus,
        actuator: Arc<dyn Actuator>,
        lease: Option<Arc<dyn Lease>>,
    ) -> Running {
        let decisions = mem.subscribe(DECISIONS_TOPIC, "test").await.unwrap();
        let dlq = mem.subscribe("model-votes.dlq", "test").await.unwrap();
        let shutdown = CancellationToken::new();
        let standby = lease.as_ref().is_some_and(|l| !l.is_held());
        let handle = tokio::spawn(run_with_lease(
            cfg,
            ScalerDeps { bus, actuator },
            lease,
            shutdown.clone(),
        ));
        if standby {
            // A standby reads no votes: give it time to (not) subscribe.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        while !standby && mem.groups(VOTES_TOPIC) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Running {
            bus: mem,
            decisions,
            dlq,
            shutdown,
            handle,
        }
    }

    async fn start_wall(actuator: Arc<dyn Actuator>) -> Running {
        let mem = MemoryBus::new(64, Overflow::Block);
        let cfg = ScalerConfig::new(VotingConfig::new(Strategy::Majority));
        start_with(cfg, Arc::new(mem.clone()), mem, actuator, None).await
    }

    impl Running {
        async fn send(&self, v: &Vote) {
            self.bus
                .publish(Outgoing::new(VOTES_TOPIC, &v.service, encode(v)))
                .await
                .unwrap();
        }
        async fn send_all(&self, service: &str, poll: u64, t: DateTime<Utc>, up: bool) {
            for m in ModelKind::ALL {
                self.send(&vote_at(service, poll, t, m, up)).await;
            }
        }
        async fn next(&mut self, within: Duration) -> Option<Decision> {
            match tokio::time::timeout(within, self.decisions.recv()).await {
                Ok(Some(Ok(d))) => Some(decode(&d.payload).unwrap()),
                _ => None,
            }
        }
        async fn dead_letter(&mut self, within: Duration) -> Option<Delivery> {
            match tokio::time::timeout(within, self.dlq.recv()).await {
                Ok(Some(Ok(d))) => Some(d),
                _ => None,
            }
        }
        async fn stop(self) -> ScalerReport {
            self.shutdown.cancel();
            self.handle.await.unwrap().unwrap()
        }
    }

    fn reason(d: &Delivery) -> &str {
        &d.headers
            .iter()
            .find(|(k, _)| k == "x-dlq-reason")
            .unwrap()
            .1
    }

    /// Critical 1: a vote a year ahead is dead-lettered (it used to be decided and stored as
    /// the cooldown's start, holding the service for a year); a fresh one then acts.
    #[tokio::test]
    async fn a_far_future_vote_is_dead_lettered_and_acts_on_nothing() {
        let sim = SimulatedActuator::new(2);
        let mut s = start_wall(Arc::new(sim.clone())).await;
        let future = Utc::now() + chrono::Duration::days(365);
        s.send_all("orders", 1, future, true).await;
        for _ in 0..3 {
            let d = s.dead_letter(Duration::from_secs(5)).await.expect("dlq");
            assert!(reason(&d).contains("in the future"), "{}", reason(&d));
        }
        s.send_all("orders", 2, Utc::now(), true).await;
        let d = s.next(Duration::from_secs(5)).await.expect("decision");
        assert_eq!(d.vector_id.parse().unwrap().1, 2);
        assert!(d.acted, "{d:?}");
        assert_eq!(sim.current("orders").await.unwrap(), 3);
        let r = s.stop().await;
        assert_eq!((r.decisions, r.dead_letters), (1, 3));
    }

    /// High 3: an hour-old backlog is decided as holds, never acted on.
    #[tokio::test]
    async fn stale_votes_are_held_never_acted_on() {
        let sim = SimulatedActuator::new(2);
        let mut s = start_wall(Arc::new(sim.clone())).await;
        let hour_ago = Utc::now() - chrono::Duration::hours(1);
        for poll in 0..5 {
            let t = hour_ago + chrono::Duration::seconds(30 * poll as i64);
            s.send_all("orders", poll, t, true).await;
        }
        for _ in 0..5 {
            let d = s.next(Duration::from_secs(5)).await.expect("decision");
            assert!(!d.acted);
            assert!(
                d.adjustments[0].starts_with("held: stale vote"),
                "{:?}",
                d.adjustments
            );
        }
        assert_eq!(sim.current("orders").await.unwrap(), 2);
        let r = s.stop().await;
        assert_eq!((r.stale_holds, r.scale_ups), (5, 0));
    }

    /// High 12: three consistent `orders` votes under a `front-end@…` id are never acted on;
    /// votes that disagree on replicas hold; a scale-down judged at another count than the
    /// live one does not happen.
    #[tokio::test]
    async fn a_ballot_must_agree_with_its_id_its_replicas_and_the_live_count() {
        let sim = SimulatedActuator::new(2);
        let mut s = start_wall(Arc::new(sim.clone())).await;
        let now = Utc::now();
        for m in ModelKind::ALL {
            let mut v = vote_at("orders", 1, now, m, true);
            v.vector_id = VectorId::new("front-end", 1, now);
            s.send(&v).await;
        }
        for _ in 0..3 {
            let d = s.dead_letter(Duration::from_secs(5)).await.expect("dlq");
            assert!(reason(&d).contains("front-end"), "{}", reason(&d));
        }
        // Disagreeing replicas: held.
        for (m, r) in ModelKind::ALL.into_iter().zip([2, 2, 5]) {
            let mut v = vote_at("orders", 2, now, m, true);
            v.replicas = Some(r);
            s.send(&v).await;
        }
        let d = s.next(Duration::from_secs(5)).await.expect("decision");
        assert!(!d.acted);
        assert_eq!(
            d.adjustments,
            vec!["held: the votes disagree on replicas (2, 5)"]
        );
        // All safe at one fewer, judged at 3 replicas; the service runs 2: no scale-down.
        for m in ModelKind::ALL {
            let mut v = vote_at("orders", 3, now, m, false);
            v.replicas = Some(3);
            v.probability_one_fewer = Some(0.01);
            s.send(&v).await;
        }
        let d = s.next(Duration::from_secs(5)).await.expect("decision");
        assert_eq!((d.decision, d.acted), (Verdict::NoAction, false));
        assert_eq!(
            d.adjustments,
            vec!["no scale-down: the votes judged 3 replicas, the service runs 2"]
        );
        assert_eq!(sim.current("orders").await.unwrap(), 2);
        s.stop().await;
    }

    /// Somebody scales the service right after the scaler read it.
    struct Racing {
        sim: SimulatedActuator,
    }

    #[async_trait]
    impl Actuator for Racing {
        fn name(&self) -> &'static str {
            "racing"
        }
        async fn current(&self, service: &str) -> Result<u32, ActuatorError> {
            let n = self.sim.current(service).await?;
            // `docker service scale orders=8`, just after our read.
            self.sim.set_replicas(service, n, 8).await?;
            Ok(n)
        }
        async fn set_replicas(&self, s: &str, e: u32, t: u32) -> Result<(), ActuatorError> {
            self.sim.set_replicas(s, e, t).await
        }
        async fn healthcheck(&self) -> Result<(), ActuatorError> {
            Ok(())
        }
    }

    /// High 4: the concurrent `scale 8` stands; the decision made on 2 is refused.
    #[tokio::test]
    async fn a_concurrent_scale_is_never_overwritten() {
        let sim = SimulatedActuator::new(2);
        let mut s = start_wall(Arc::new(Racing { sim: sim.clone() })).await;
        s.send_all("orders", 1, Utc::now(), true).await;
        let d = s.next(Duration::from_secs(5)).await.expect("decision");
        assert!(!d.acted);
        assert!(
            d.adjustments[0].starts_with("refused: replicas changed from 2 to 8"),
            "{:?}",
            d.adjustments
        );
        assert_eq!(sim.current("orders").await.unwrap(), 8);
        let r = s.stop().await;
        assert_eq!(r.conflicts, 1);
    }

    /// A bus whose dead-letter topics refuse every message.
    struct NoDlq(MemoryBus);

    #[async_trait]
    impl Bus for NoDlq {
        async fn publish(&self, msg: Outgoing) -> Result<(), BusError> {
            if msg.topic.ends_with(".dlq") {
                return Err(BusError::Fatal("MessageSizeTooLarge".into()));
            }
            self.0.publish(msg).await
        }
        async fn subscribe(&self, t: &str, g: &str) -> Result<Box<dyn Subscription>, BusError> {
            self.0.subscribe(t, g).await
        }
        async fn flush(&self, t: Duration) -> Result<(), BusError> {
            self.0.flush(t).await
        }
    }

    /// Critical 2: a message that cannot even be dead-lettered is counted, and the scaler goes
    /// on deciding (it used to leave `run` with the error, and crash-loop on the redelivery).
    #[tokio::test(start_paused = true)]
    async fn a_failed_dead_letter_never_stops_the_scaler() {
        let mem = MemoryBus::new(64, Overflow::Block);
        let cfg = ScalerConfig::new(VotingConfig::new(Strategy::Majority));
        let mut s = start_with(
            cfg,
            Arc::new(NoDlq(mem.clone())),
            mem.clone(),
            Arc::new(SimulatedActuator::new(2)),
            None,
        )
        .await;
        let huge = format!(
            r#"{{"schema_version":1,"model":"{}"}}"#,
            "m".repeat(900_000)
        );
        mem.publish(Outgoing::new(VOTES_TOPIC, "orders", huge.into_bytes()))
            .await
            .unwrap();
        s.send_all("orders", 1, Utc::now(), true).await;
        let d = s
            .next(Duration::from_secs(60))
            .await
            .expect("still deciding");
        assert!(d.acted);
        let r = s.stop().await;
        assert_eq!((r.dead_letters, r.dead_letter_failures), (1, 1));
    }

    /// Critical 2: a decision that cannot be published is kept, retried at the next starts
    /// within its budget, then quarantined; no start fails because of it.
    #[tokio::test]
    async fn an_unpublishable_outbox_entry_is_quarantined_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        {
            let store = Store::open(&db).unwrap();
            let d = crate::store::tests::decision("orders@1@0", "orders");
            store.record(&d, &ServiceState::default()).unwrap();
            // Corrupt its outbox copy, as a decision over any size limit would fail every time.
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.execute(
                "UPDATE outbox SET decision_json = '{\"schema_version\":1'",
                [],
            )
            .unwrap();
        }
        for start in 1..=OUTBOX_RETRY_BUDGET {
            let mem = MemoryBus::new(64, Overflow::Block);
            let mut cfg = ScalerConfig::new(VotingConfig::new(Strategy::Majority));
            cfg.state_db = Some(db.clone());
            let s = start_with(
                cfg,
                Arc::new(mem.clone()),
                mem,
                Arc::new(SimulatedActuator::new(2)),
                None,
            )
            .await;
            let r = s.stop().await;
            assert_eq!(r.publish_failures, 1, "start {start}");
            assert_eq!(r.quarantined, u64::from(start == OUTBOX_RETRY_BUDGET));
        }
        let store = Store::open(&db).unwrap();
        assert!(store.outbox().unwrap().is_empty());
        assert_eq!(
            store.quarantined().unwrap(),
            vec![VectorId("orders@1@0".into())]
        );
    }

    /// Critical 1: a state saved with a cooldown a year ahead (by a build without the two-sided
    /// check) is repaired on load: the cooldown runs from now, not for a year.
    #[tokio::test]
    async fn a_poisoned_stored_state_is_repaired_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let far = Utc::now() + chrono::Duration::days(365);
        Store::open(&db)
            .unwrap()
            .save_state(
                "orders",
                &ServiceState {
                    last_scale_up: Some(far),
                    last_scale_down: Some(DateTime::<Utc>::MAX_UTC),
                    recent: [(far, 9)].into_iter().collect(),
                },
            )
            .unwrap();
        let mem = MemoryBus::new(64, Overflow::Block);
        let mut cfg = ScalerConfig::new(VotingConfig::new(Strategy::Majority));
        cfg.state_db = Some(db.clone());
        cfg.envelope.cooldown_up_secs = 1;
        let sim = SimulatedActuator::new(2);
        let mut s = start_with(cfg, Arc::new(mem.clone()), mem, Arc::new(sim.clone()), None).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        s.send_all("orders", 1, Utc::now(), true).await;
        let d = s.next(Duration::from_secs(5)).await.expect("decision");
        assert!(d.acted, "{:?}", d.adjustments);
        s.stop().await;
        let st = &Store::open(&db).unwrap().load_states().unwrap()["orders"];
        assert!(st.last_scale_up.unwrap() <= Utc::now());
        assert!(st.last_scale_down.unwrap() <= Utc::now());
    }

    #[test]
    fn bounds_on_every_duration_and_count() {
        let mut cfg = ScalerConfig::new(VotingConfig::new(Strategy::Majority));
        cfg.envelope.cooldown_up_secs = u64::MAX;
        cfg.envelope.stabilization_secs = u64::MAX;
        cfg.max_skew_secs = 0;
        cfg.decision_window = Duration::from_secs(u64::MAX);
        let p = cfg.problems();
        assert_eq!(p.len(), 4, "{p:?}");
    }

    /// The envelope is total: extreme times neither panic nor get stored ahead of the clock.
    #[test]
    fn the_envelope_never_panics_nor_stores_the_future() {
        let cfg = EnvelopeConfig::default();
        let now = Utc::now();
        for at in [DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC, now] {
            let mut st = ServiceState {
                last_scale_up: Some(DateTime::<Utc>::MAX_UTC),
                last_scale_down: Some(DateTime::<Utc>::MIN_UTC),
                recent: [(DateTime::<Utc>::MAX_UTC, 3), (DateTime::<Utc>::MIN_UTC, 1)]
                    .into_iter()
                    .collect(),
            };
            for v in [Verdict::ScaleUp, Verdict::ScaleDown, Verdict::NoAction] {
                let _ = envelope::apply(
                    &cfg,
                    &mut st,
                    &envelope::Proposal {
                        verdict: v,
                        current: Some(3),
                        stale: false,
                        at,
                        now,
                        severity: Severity::default(),
                    },
                );
                assert!(st.last_scale_up.is_none_or(|t| t <= now));
                assert!(st.recent.iter().all(|(t, _)| *t <= now));
            }
        }
    }

    /// High 5 (in process): two candidates on one log, exactly one holds; the standby's
    /// decisions are holds; when the holder dies (its task aborted: no release) the standby
    /// takes over within two lease periods and acts.
    #[tokio::test]
    async fn exactly_one_scaler_acts_and_a_standby_takes_over() {
        let log = MemoryLeaseLog::new();
        let ttl = Duration::from_millis(600);
        let stop_a = CancellationToken::new();
        let stop_b = CancellationToken::new();
        let cfg = |name: &str| LeaseConfig {
            ttl,
            ..LeaseConfig::new(name)
        };
        let (a, task_a) = LogLease::start(cfg("a"), Box::new(log.handle()), stop_a.clone());
        assert!(
            a.wait_held(Duration::from_secs(3)).await,
            "first holder elected"
        );
        let (b, _task_b) = LogLease::start(cfg("b"), Box::new(log.handle()), stop_b.clone());
        tokio::time::sleep(ttl * 2).await;
        assert!(
            a.is_held() && !b.is_held(),
            "{} / {}",
            a.describe(),
            b.describe()
        );
        assert_eq!(a.confirm().await.unwrap(), Some(1));
        assert_eq!(b.confirm().await.unwrap(), None);

        // The standby scaler stays up but reads no votes: it decides nothing. What the holder
        // decided (on the same decisions topic) it reads back when it takes over.
        let sim = SimulatedActuator::new(2);
        let mem = MemoryBus::new(64, Overflow::Block);
        mem.keep_history(DECISIONS_TOPIC, 100);
        let cfg_s = ScalerConfig::new(VotingConfig::new(Strategy::Majority));
        let b_lease: Arc<dyn Lease> = b.clone();
        let mut s = start_with(
            cfg_s,
            Arc::new(mem.clone()),
            mem.clone(),
            Arc::new(sim.clone()),
            Some(b_lease),
        )
        .await;
        assert_eq!(mem.groups(VOTES_TOPIC), 0, "a standby reads no votes");
        // The holder's decision on vector 1 (acted: 1 → 2), as it published it.
        let mut prior = crate::store::tests::decision("orders@1@0", "orders");
        prior.vector_id = VectorId::new("orders", 1, Utc::now());
        prior.metric_time = Utc::now();
        prior.from_replicas = Some(1);
        prior.to_replicas = Some(2);
        mem.publish(Outgoing::new(DECISIONS_TOPIC, "orders", encode(&prior)))
            .await
            .unwrap();
        assert_eq!(s.next(Duration::from_secs(1)).await.unwrap(), prior);

        // The holder dies without releasing.
        task_a.abort();
        let died = tokio::time::Instant::now();
        assert!(
            b.wait_held(ttl * 2).await,
            "standby took over: {}",
            b.describe()
        );
        assert!(died.elapsed() <= ttl * 2);
        assert_eq!(b.confirm().await.unwrap(), Some(2), "the next epoch");
        while mem.groups(VOTES_TOPIC) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Vector 1 redelivered (its votes were not yet committed by the dead holder): already
        // decided, never twice. Vector 2 is new, but the holder's scale-up started a cooldown.
        s.send_all("orders", 1, prior.metric_time, true).await;
        s.send_all("orders", 2, Utc::now(), true).await;
        let d = s.next(Duration::from_secs(5)).await.expect("decision");
        assert_eq!(
            d.vector_id.parse().unwrap().1,
            2,
            "vector 1 is not decided again"
        );
        assert!(!d.acted);
        assert!(
            d.adjustments[0].starts_with("cooldown"),
            "{:?}",
            d.adjustments
        );
        let r = s.stop().await;
        assert_eq!((r.decisions, r.ballot.late), (1, 3));
        stop_b.cancel();
        stop_a.cancel();
    }

    /// The lease rule itself: log order decides races, a late renewal is void, release frees.
    #[test]
    fn the_lease_rule_is_decided_by_log_order() {
        use crate::lease::{Claim, ClaimKind, LeaseState};
        let c = |holder: &str, kind, epoch, at_ms| Claim {
            holder: holder.into(),
            kind,
            epoch,
            at_ms,
            ttl_ms: 1000,
            nonce: 0,
        };
        let mut s = LeaseState::default();
        assert!(s.apply(&c("a", ClaimKind::Acquire, 1, 0)));
        assert!(
            !s.apply(&c("b", ClaimKind::Acquire, 1, 10)),
            "lost the race"
        );
        assert!(
            !s.apply(&c("b", ClaimKind::Acquire, 2, 500)),
            "not expired yet"
        );
        s.apply(&c("a", ClaimKind::Renew, 1, 900));
        assert_eq!(s.expires_ms, 1900);
        assert!(!s.apply(&c("b", ClaimKind::Acquire, 2, 1800)));
        assert!(s.apply(&c("b", ClaimKind::Acquire, 2, 1900)), "expired");
        s.apply(&c("a", ClaimKind::Renew, 1, 1950));
        assert_eq!(
            (s.holder.as_deref(), s.epoch),
            (Some("b"), 2),
            "a's late renewal is void"
        );
        assert!(s.apply(&c("b", ClaimKind::Release, 2, 2000)));
        assert!(s.apply(&c("a", ClaimKind::Acquire, 3, 2001)));
        assert!(s.held_by("a", 2500, 0) && !s.held_by("a", 3001, 0));
    }

    /// An actuator that takes 2 ms to read a policy (a Docker round trip).
    struct Slow(SimulatedActuator);

    #[async_trait]
    impl Actuator for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        async fn current(&self, service: &str) -> Result<u32, ActuatorError> {
            self.0.current(service).await
        }
        async fn set_replicas(&self, s: &str, e: u32, t: u32) -> Result<(), ActuatorError> {
            self.0.set_replicas(s, e, t).await
        }
        async fn healthcheck(&self) -> Result<(), ActuatorError> {
            Ok(())
        }
        async fn policy(&self, service: &str) -> Result<crate::ServicePolicy, ActuatorError> {
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.0.policy(service).await
        }
    }

    /// Medium 11: a flood of votes on made-up vectors is bounded (beyond the open-ballot bound
    /// it is dead-lettered) and never delays a real ballot: with 1,500 junk ballots expiring
    /// at once (3 s of policy reads), a complete ballot sent then is decided within a second.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_vote_flood_never_delays_a_real_ballot() {
        let mem = MemoryBus::new(100_000, Overflow::Block);
        let mut cfg = ScalerConfig::new(VotingConfig::new(Strategy::Majority));
        cfg.decision_window = Duration::from_secs(1);
        let sim = SimulatedActuator::with_services(&[("orders".into(), 2)]);
        let mut s = start_with(
            cfg,
            Arc::new(mem.clone()),
            mem,
            Arc::new(Slow(sim.clone())),
            None,
        )
        .await;
        let now = Utc::now();
        for i in 0..1_500 {
            let svc = format!("junk{i}");
            s.send(&vote_at(&svc, 1, now, ModelKind::Xgboost, true))
                .await;
        }
        // Let every junk window run out, then send a real ballot.
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        let sent = std::time::Instant::now();
        s.send_all("orders", 1, Utc::now(), true).await;
        let mut junk_before = 0;
        let real = loop {
            let d = s.next(Duration::from_secs(10)).await.expect("decisions");
            if d.service == "orders" {
                break d;
            }
            junk_before += 1;
        };
        let waited = sent.elapsed();
        assert!(real.acted, "{real:?}");
        assert!(
            waited < Duration::from_secs(1),
            "waited {waited:?} behind {junk_before} junk ballots"
        );
        assert!(
            junk_before < 1_400,
            "{junk_before} junk ballots decided first"
        );
        s.stop().await;
    }

    /// Medium 11: the open ballots are bounded: beyond the bound the oldest are decided early
    /// (junk: held as unknown services); the real ballot is decided as usual.
    #[tokio::test]
    async fn open_ballots_are_bounded() {
        let mem = MemoryBus::new(100_000, Overflow::Block);
        let mut cfg = ScalerConfig::new(VotingConfig::new(Strategy::Majority));
        cfg.decision_window = Duration::from_secs(60);
        let sim = SimulatedActuator::with_services(&[("orders".into(), 2)]);
        let mut s = start_with(cfg, Arc::new(mem.clone()), mem, Arc::new(sim.clone()), None).await;
        let now = Utc::now();
        let flood = autoscaler_voting::ballot_box::DEFAULT_MAX_OPEN + 200;
        for i in 0..flood {
            s.send(&vote_at(
                &format!("junk{i}"),
                1,
                now,
                ModelKind::Xgboost,
                true,
            ))
            .await;
        }
        s.send_all("orders", 1, now, true).await;
        let mut junk = 0;
        let real = loop {
            let d = s.next(Duration::from_secs(20)).await.expect("decisions");
            if d.service == "orders" {
                break d;
            }
            assert!(!d.acted && d.adjustments[0].starts_with("held"), "{d:?}");
            junk += 1;
        };
        assert!(real.acted, "{real:?}");
        let r = s.stop().await;
        assert!(r.ballot.evicted >= 200, "{:?}", r.ballot);
        assert!(junk >= 200, "{junk}");
    }

    /// The backend times out on the update and cannot be read back.
    struct Lost(SimulatedActuator);

    #[async_trait]
    impl Actuator for Lost {
        fn name(&self) -> &'static str {
            "lost"
        }
        async fn current(&self, service: &str) -> Result<u32, ActuatorError> {
            self.0.current(service).await
        }
        async fn set_replicas(&self, s: &str, e: u32, t: u32) -> Result<(), ActuatorError> {
            // It did happen; the answer was lost.
            self.0.set_replicas(s, e, t).await?;
            Err(ActuatorError::Ambiguous("docker did not answer".into()))
        }
        async fn healthcheck(&self) -> Result<(), ActuatorError> {
            Ok(())
        }
    }

    /// Medium 8: an update whose outcome is unknown keeps the cooldown it started, so a second
    /// scale does not follow at once (it used to: the failure undid the cooldown).
    #[tokio::test]
    async fn an_ambiguous_update_keeps_its_cooldown() {
        let sim = SimulatedActuator::new(2);
        let mut s = start_wall(Arc::new(Lost(sim.clone()))).await;
        let t = Utc::now();
        s.send_all("orders", 1, t, true).await;
        let d = s.next(Duration::from_secs(5)).await.expect("decision");
        assert!(!d.acted);
        assert!(
            d.adjustments.iter().any(|a| a.contains("outcome unknown")),
            "{:?}",
            d.adjustments
        );
        s.send_all("orders", 2, t + chrono::Duration::seconds(10), true)
            .await;
        let d = s.next(Duration::from_secs(5)).await.expect("decision");
        assert!(!d.acted);
        assert!(
            d.adjustments[0].starts_with("cooldown"),
            "{:?}",
            d.adjustments
        );
        assert_eq!(
            sim.current("orders").await.unwrap(),
            3,
            "one change, not two"
        );
        s.stop().await;
    }
}
