//! Policies in the scaler, end to end on the in-process bus and the simulated actuator: the same
//! policy code as the lab, on the metrics topic.

use super::*;
use autoscaler_bus::{MemoryBus, Overflow, Subscription};
use autoscaler_contract::fixtures;
use autoscaler_contract::{Features, ModelKind, Strategy};

struct Harness {
    bus: MemoryBus,
    decisions: Box<dyn Subscription>,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<ScalerReport, ScalerError>>,
    actuator: SimulatedActuator,
}

fn config(policy: &str) -> ScalerConfig {
    let mut cfg = ScalerConfig::new(VotingConfig::new(Strategy::Majority));
    cfg.policy = policies::parse_policy(policy).unwrap();
    cfg.clock = ClockMode::Replay;
    cfg.max_skew_secs = 3_600;
    cfg
}

async fn start(cfg: ScalerConfig, actuator: SimulatedActuator) -> Harness {
    let bus = MemoryBus::new(256, Overflow::Block);
    let decisions = bus.subscribe(DECISIONS_TOPIC, "test").await.unwrap();
    let shutdown = CancellationToken::new();
    let deps = ScalerDeps {
        bus: Arc::new(bus.clone()),
        actuator: Arc::new(actuator.clone()),
    };
    let handle = tokio::spawn(run(cfg, deps, shutdown.clone()));
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
    async fn vector(&self, v: &FeatureVector) {
        self.raw(METRICS_TOPIC, &v.service, encode(v)).await;
    }

    async fn raw(&self, topic: &str, key: &str, payload: Vec<u8>) {
        self.bus
            .publish(Outgoing::new(topic, key, payload))
            .await
            .unwrap();
    }

    async fn votes(&self, votes: &[Vote]) {
        for v in votes {
            self.raw(VOTES_TOPIC, &v.service, encode(v)).await;
        }
    }

    async fn next(&mut self) -> Option<Decision> {
        match tokio::time::timeout(Duration::from_secs(1), self.decisions.recv()).await {
            Ok(Some(Ok(d))) => Some(decode(&d.payload).unwrap()),
            _ => None,
        }
    }

    async fn stop(self) -> ScalerReport {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap()
    }
}

/// Poll `poll` of `service`, 30 s apart, with these features and `replicas` measured.
fn poll(service: &str, poll: u64, features: Features) -> FeatureVector {
    fixtures::vector(service, poll)
        .at(fixtures::at(poll as i64 * 30))
        .features(features)
        .build()
}

fn cpu(pct: Option<f64>) -> Features {
    Features {
        cpu_usage_pct: pct,
        request_rate_rps: Some(50.0),
        p95_latency_ms: Some(80.0),
        ..Features::default()
    }
}

/// The three models' votes on `v`, at `replicas`: all up, or all "no action" with P at one
/// replica fewer `one_fewer`.
fn votes_on(v: &FeatureVector, up: bool, one_fewer: Option<f64>, replicas: u32) -> Vec<Vote> {
    ModelKind::ALL
        .into_iter()
        .map(|m| {
            fixtures::vote(&v.vector_id.0, m)
                .service(&v.service)
                .ballot(up)
                .metric_time(v.metric_time)
                .replicas(replicas)
                .one_fewer(one_fewer)
                .build()
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn hpa_in_the_scaler_makes_the_labs_recommendations() {
    let cpus = [
        Some(200.0),
        Some(260.0),
        Some(400.0),
        None, // not measured: a hold, never a 0 % that would scale down
        Some(300.0),
        Some(90.0),
        Some(40.0),
        Some(20.0),
        Some(20.0),
        Some(20.0),
        Some(20.0),
        Some(20.0),
        Some(20.0),
        Some(20.0),
    ];
    // The lab's way: the policy from the same spec, fed the same observations.
    let spec = autoscaler_policy::PolicySpec::parse("hpa-70").unwrap();
    let mut lab = spec.build(&PolicyContext::default()).unwrap();
    let bounds = Bounds { min: 1, max: 10 };
    let mut replicas = 2;
    let mut expected = Vec::new();
    for (i, c) in cpus.iter().enumerate() {
        let v = poll("orders", i as u64, cpu(*c));
        let r = lab.recommend(&Observation {
            t_secs: v.metric_time.timestamp_millis() as f64 / 1000.0,
            features: &v.features,
            replicas,
            ready_replicas: replicas,
            bounds,
            sla_p95_ms: autoscaler_contract::DEFAULT_SLA_P95_MS,
        });
        expected.push((replicas, r.replicas, r.reason.clone()));
        replicas = r.replicas;
    }
    assert!(
        expected.iter().any(|(f, t, _)| t > f) && expected.iter().any(|(f, t, _)| t < f),
        "the sequence scales both ways: {expected:?}"
    );

    let mut h = start(config("hpa-70"), SimulatedActuator::new(2)).await;
    for (i, c) in cpus.iter().enumerate() {
        let v = poll("orders", i as u64, cpu(*c));
        h.vector(&v).await;
        let d = h.next().await.expect("a decision per vector");
        let (from, to, reason) = &expected[i];
        assert_eq!(
            (d.from_replicas, d.to_replicas),
            (Some(*from), Some(*to)),
            "poll {i}: {d:?}"
        );
        assert_eq!(d.reason, format!("policy hpa-70: {reason}"));
        assert_eq!(d.acted, from != to);
        assert_eq!(d.total_votes, 0);
        if c.is_none() {
            assert_eq!(d.to_replicas, d.from_replicas, "a missing metric holds");
        }
    }
    // The models' votes on a vector a baseline decided are not a second decision.
    let v = poll("orders", 99, cpu(Some(20.0)));
    h.votes(&votes_on(&v, true, None, replicas)).await;
    assert!(h.next().await.is_none());
    assert_eq!(h.actuator.current("orders").await.unwrap(), replicas);
    let r = h.stop().await;
    assert_eq!(r.decisions, cpus.len() as u64);
    assert_eq!((r.vectors, r.votes_ignored), (cpus.len() as u64, 1));
}

#[tokio::test(start_paused = true)]
async fn the_label_overrides_the_flag_and_a_bad_one_holds_only_its_service() {
    let actuator = SimulatedActuator::new(2);
    actuator.set_policy(
        "orders",
        Ok(ServicePolicy {
            policy: Some("static:replicas=4".into()),
            ..ServicePolicy::default()
        }),
    );
    actuator.set_policy(
        "carts",
        Ok(ServicePolicy {
            policy: Some("bogus".into()),
            ..ServicePolicy::default()
        }),
    );
    let mut h = start(config("hpa-70"), actuator).await;
    let mut got = HashMap::new();
    for service in ["orders", "carts", "users"] {
        h.vector(&poll(service, 1, cpu(Some(400.0)))).await;
        let d = h.next().await.unwrap();
        got.insert(d.service.clone(), d);
    }
    let orders = &got["orders"];
    assert_eq!(orders.to_replicas, Some(4));
    assert!(orders.reason.starts_with("policy static: "), "{orders:?}");
    let carts = &got["carts"];
    assert!(!carts.acted);
    assert!(
        carts.adjustments[0].starts_with("held: bad policy for `carts`: autoscaler.policy: unknown policy `bogus` (valid: ensemble, hybrid, hpa"),
        "{carts:?}"
    );
    let users = &got["users"];
    assert!(users.reason.starts_with("policy hpa-70: "), "{users:?}");
    assert!(users.acted && users.to_replicas > Some(2), "{users:?}");
    assert_eq!(h.actuator.current("carts").await.unwrap(), 2);
    let r = h.stop().await;
    assert_eq!(r.policy_holds, 1);
}

#[tokio::test(start_paused = true)]
async fn hybrid_never_scales_below_what_the_votes_ask() {
    let mut cfg = config("hybrid");
    cfg.envelope.max_step = 4;
    cfg.envelope.cooldown_up_secs = 0;
    cfg.envelope.cooldown_down_secs = 0;
    cfg.envelope.stabilization_secs = 0;
    let mut h = start(cfg, SimulatedActuator::new(2)).await;
    let calm = Features {
        request_rate_rps: Some(5.0),
        p95_latency_ms: Some(30.0),
        cpu_usage_pct: Some(5.0),
        error_rate_pct: Some(0.0),
        ..Features::default()
    };
    let hot = Features {
        request_rate_rps: Some(200.0),
        p95_latency_ms: Some(900.0),
        cpu_usage_pct: Some(190.0),
        error_rate_pct: Some(0.0),
        ..Features::default()
    };
    // Over the SLA, the votes see no trouble: the policy's emergency count wins.
    let v = poll("orders", 1, hot);
    h.vector(&v).await;
    h.votes(&votes_on(&v, false, Some(0.9), 2)).await;
    let d = h.next().await.unwrap();
    assert!(d.to_replicas > Some(2), "{d:?}");
    assert!(d.reason.starts_with("policy hybrid: "), "{d:?}");
    assert!(
        d.reason.contains("the policy's, over the votes' 2"),
        "{d:?}"
    );
    // Calm, but the votes say up: never fewer than the votes' count.
    let mut current = d.to_replicas.unwrap();
    for (i, (up, one_fewer)) in [(true, None), (false, Some(0.05)), (false, Some(0.05))]
        .into_iter()
        .enumerate()
    {
        let v = poll("orders", 2 + i as u64, calm.clone());
        h.vector(&v).await;
        h.votes(&votes_on(&v, up, one_fewer, current)).await;
        let d = h.next().await.unwrap();
        // The votes' count: up by at least one, or one fewer.
        let votes_ask = if up { current + 1 } else { current - 1 };
        let to = d.to_replicas.unwrap();
        assert!(to >= votes_ask, "poll {i}: {d:?}");
        assert!(d.reason.starts_with("policy hybrid: "), "{d:?}");
        current = to;
    }
    // No vector for the votes: they decide alone, and say so.
    let v = poll("orders", 9, calm);
    h.votes(&votes_on(&v, true, None, current)).await;
    let d = h.next().await.unwrap();
    assert!(d.to_replicas > Some(current), "{d:?}");
    assert!(
        d.reason.contains("no recommendation on this vector"),
        "{d:?}"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_baseline_ignores_cooldowns_and_step_caps_but_not_min_max() {
    let mut cfg = config("hpa-70");
    cfg.envelope.max_replicas = 7;
    assert_eq!(cfg.envelope.max_step, 1);
    let mut h = start(cfg, SimulatedActuator::new(2)).await;
    let mut seen = Vec::new();
    for i in 0..4 {
        h.vector(&poll("orders", i, cpu(Some(5_000.0)))).await;
        let d = h.next().await.unwrap();
        assert!(
            d.adjustments.iter().all(|a| !a.contains("cooldown")),
            "{d:?}"
        );
        seen.push(d.to_replicas.unwrap());
    }
    // Up by more than the step cap, again within the scale-up cooldown, and never past max.
    assert!(seen[0] - 2 > 1, "{seen:?}");
    assert!(seen[1] > seen[0], "{seen:?}");
    assert_eq!(*seen.last().unwrap(), 7, "{seen:?}");
    assert!(seen.iter().all(|n| *n <= 7));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn malformed_and_stale_vectors_are_dead_lettered_not_read_as_zero() {
    let mut cfg = config("hpa-70");
    cfg.max_skew_secs = 60;
    let mut h = start(cfg, SimulatedActuator::new(3)).await;
    let mut dlq = h
        .bus
        .subscribe(&format!("{METRICS_TOPIC}.dlq"), "t")
        .await
        .unwrap();
    // A fresh vector sets the replay clock.
    h.vector(&poll("orders", 10, cpu(Some(150.0)))).await;
    let first = h.next().await.unwrap();
    // Not JSON; a CPU given as text (a missing value is `null`, never a string or a 0);
    // a negative measurement; a vector older than the allowed skew.
    h.raw(METRICS_TOPIC, "orders", b"{not json".to_vec()).await;
    let mut text = serde_json::to_value(poll("orders", 11, cpu(Some(10.0)))).unwrap();
    text["features"]["cpu_usage_pct"] = serde_json::json!("n/a");
    h.raw(METRICS_TOPIC, "orders", serde_json::to_vec(&text).unwrap())
        .await;
    h.vector(&poll("orders", 12, cpu(Some(-1.0)))).await;
    h.vector(&poll("orders", 1, cpu(Some(1.0)))).await;
    for _ in 0..4 {
        assert!(tokio::time::timeout(Duration::from_secs(1), dlq.recv())
            .await
            .unwrap()
            .is_some());
    }
    assert!(h.next().await.is_none(), "no decision on a bad vector");
    assert_eq!(
        h.actuator.current("orders").await.unwrap(),
        first.to_replicas.unwrap()
    );
    let r = h.stop().await;
    assert_eq!((r.vectors, r.vector_dead_letters, r.decisions), (5, 4, 1));
}
