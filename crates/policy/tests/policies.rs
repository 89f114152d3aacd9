//! Hand-computed behaviour of the baselines and the composition.

use autoscaler_contract::Features;
use autoscaler_policy::{
    parse_policy_list, Bounds, Observation, Policy, PolicyContext, PolicyKind, PolicySpec,
};
use proptest::prelude::*;

const B: Bounds = Bounds { min: 1, max: 10 };

fn obs(t: f64, f: &Features, replicas: u32) -> Observation<'_> {
    Observation {
        t_secs: t,
        features: f,
        replicas,
        ready_replicas: replicas,
        bounds: B,
        sla_p95_ms: 250.0,
    }
}

fn build(text: &str) -> Box<dyn Policy> {
    PolicySpec::parse(text)
        .unwrap()
        .build(&PolicyContext::default())
        .unwrap()
}

/// Features of `replicas` replicas at `util` % of a 61 % CPU request each.
fn at_util(util: f64, replicas: u32, p95: f64, rps: f64) -> Features {
    Features {
        cpu_usage_pct: Some(util / 100.0 * 61.0 * replicas as f64),
        memory_usage_mb: Some(120.0 * replicas as f64),
        p95_latency_ms: Some(p95),
        request_rate_rps: Some(rps),
        error_rate_pct: Some(0.0),
        ..Features::default()
    }
}

#[test]
fn threshold_adds_and_removes_one_and_keeps_its_desired_count() {
    let mut p = build("threshold");
    let hot = at_util(90.0, 2, 100.0, 10.0);
    assert_eq!(p.recommend(&obs(30.0, &hot, 2)).replicas, 3);
    // Its own desired count: asked again before the cluster caught up, it adds another.
    assert_eq!(p.recommend(&obs(60.0, &hot, 2)).replicas, 4);
    let cold = at_util(10.0, 4, 50.0, 1.0);
    assert_eq!(p.recommend(&obs(90.0, &cold, 4)).replicas, 3);
    let mid = at_util(50.0, 3, 50.0, 1.0);
    assert_eq!(p.recommend(&obs(120.0, &mid, 3)).replicas, 3);
    // A missing metric never removes.
    let missing = Features {
        cpu_usage_pct: None,
        ..cold
    };
    assert_eq!(p.recommend(&obs(150.0, &missing, 3)).replicas, 3);
}

#[test]
fn triggers_need_three_windows_and_honour_cooldowns() {
    let mut p = build("triggers");
    let hot = at_util(90.0, 2, 100.0, 10.0);
    assert_eq!(p.recommend(&obs(30.0, &hot, 2)).replicas, 2);
    assert_eq!(p.recommend(&obs(60.0, &hot, 2)).replicas, 2);
    assert_eq!(
        p.recommend(&obs(90.0, &hot, 2)).replicas,
        3,
        "third window over the threshold"
    );
    // 300 s of cooldown after a scale-up.
    let hot3 = at_util(90.0, 3, 100.0, 15.0);
    assert_eq!(p.recommend(&obs(120.0, &hot3, 3)).replicas, 3);
    assert_eq!(p.recommend(&obs(360.0, &hot3, 3)).replicas, 3);
    assert_eq!(p.recommend(&obs(390.0, &hot3, 3)).replicas, 4);
    // p95 and request rate rising for 3 polls in the gray zone.
    let mut p = build("triggers");
    let mut last = 0;
    for k in 0..4 {
        let f = at_util(50.0, 2, 100.0 + 10.0 * k as f64, 5.0 + k as f64);
        last = p.recommend(&obs(30.0 * (k + 1) as f64, &f, 2)).replicas;
    }
    assert_eq!(last, 3);
}

#[test]
fn capacity_sizes_from_its_own_curve() {
    let mut p = build("capacity");
    // A service of capacity 10 requests/s per replica with P0 = 60 ms, on 2 replicas, load
    // varying 2..16 requests/s: the curve is learnt, then 40 requests/s asks for about
    // 40 / (10 · (1 − 60/200)) = 5.7 → 6 replicas plus headroom.
    let mut t = 0.0;
    for k in 0..200 {
        let rps = 2.0 + 14.0 * ((k * 37) % 100) as f64 / 100.0;
        let p95 = 60.0 / (1.0 - rps / 2.0 / 10.0);
        let f = Features {
            p95_latency_ms: Some(p95),
            request_rate_rps: Some(rps),
            error_rate_pct: Some(0.0),
            ..Features::default()
        };
        t += 30.0;
        p.recommend(&obs(t, &f, 2));
    }
    let f = Features {
        p95_latency_ms: Some(400.0),
        request_rate_rps: Some(40.0),
        error_rate_pct: Some(0.0),
        ..Features::default()
    };
    let r = p.recommend(&obs(t + 30.0, &f, 2));
    assert!((6..=10).contains(&r.replicas), "{r:?}");
}

#[test]
fn capacity_keeps_the_size_of_a_burst_that_keeps_coming_back() {
    // 4 replicas of capacity 10 requests/s (P0 = 60 ms): a load of 10 requests/s with a burst
    // to 30 every 10 minutes. Between bursts the load needs 2 replicas, a burst 4
    // (30 / (10 · (1 − 60/250)) = 3.9). Holt's forecast with a 2-minute scale-down window lets
    // the burst's replicas go; the learned ratio to the recent peak (a burst within the last 20
    // minutes) has seen the burst come back, and keeps them.
    let feed = |p: &mut Box<dyn Policy>, k: usize, rps: f64| {
        let f = Features {
            p95_latency_ms: Some(60.0 / (1.0 - rps / 40.0)),
            request_rate_rps: Some(rps),
            error_rate_pct: Some(0.0),
            ..Features::default()
        };
        p.recommend(&obs(30.0 * k as f64, &f, 4)).replicas
    };
    let (mut learned, mut holt) = (build("capacity"), build("capacity:risk=0"));
    let mut k = 0;
    for _ in 0..200 {
        let rps = 2.0 + 20.0 * ((k * 37) % 100) as f64 / 100.0;
        feed(&mut learned, k, rps);
        feed(&mut holt, k, rps);
        k += 1;
    }
    let (mut l, mut h) = (0, 0);
    for _ in 0..4000 {
        let rps = if k % 20 == 0 { 30.0 } else { 10.0 };
        l = feed(&mut learned, k, rps);
        h = feed(&mut holt, k, rps);
        k += 1;
    }
    // The last poll is 19 polls (9.5 minutes) after the last burst, one before the next.
    assert!(h <= 2, "Holt, 19 polls after the burst: {h}");
    assert!(l >= 4, "learned, 19 polls after the burst: {l}");
}

#[test]
fn hybrid_falls_back_to_an_emergency_scale_up() {
    let mut p = build("hybrid");
    // No curve yet and p95 over the SLA: the emergency adds half (at least one).
    let f = Features {
        p95_latency_ms: Some(900.0),
        request_rate_rps: Some(30.0),
        error_rate_pct: Some(0.0),
        ..Features::default()
    };
    let r = p.recommend(&obs(30.0, &f, 4));
    assert_eq!(r.replicas, 6, "{r:?}");
    let calm = Features {
        p95_latency_ms: Some(90.0),
        ..f
    };
    assert_eq!(p.recommend(&obs(60.0, &calm, 6)).replicas, 6);
}

#[test]
fn the_emergency_step_counts_replicas_already_starting() {
    let mut p = build("hybrid");
    let f = Features {
        p95_latency_ms: Some(900.0),
        request_rate_rps: Some(30.0),
        error_rate_pct: Some(0.0),
        ..Features::default()
    };
    // 4 ready and 2 more starting (the previous step): still over the SLA, the step from the 4
    // ready ones is 6, which is already asked for; no second step on top of it.
    let starting = Observation {
        ready_replicas: 4,
        ..obs(30.0, &f, 6)
    };
    assert_eq!(p.recommend(&starting).replicas, 6);
    // Once they are ready and it is still over, the next step.
    assert_eq!(p.recommend(&obs(60.0, &f, 6)).replicas, 9);
}

#[test]
fn static_and_unknown_parameters() {
    let mut p = build("static:replicas=3");
    assert_eq!(p.recommend(&obs(0.0, &Features::default(), 7)).replicas, 3);
    assert_eq!(p.params()["replicas"], 3.0);
    assert!(PolicySpec::parse("hpa-70:bogus=1").is_err());
    let e = PolicySpec::new(PolicyKind::Ensemble)
        .build(&PolicyContext::default())
        .unwrap_err();
    assert!(e.to_string().contains("models"), "{e}");
}

proptest! {
    /// Every policy built without models stays within the bounds on arbitrary inputs.
    #[test]
    fn baselines_stay_within_bounds(
        min in 1u32..5, span in 0u32..10, current in 0u32..20, ready_frac in 0.0f64..=1.0,
        cpu in proptest::option::of(0.0f64..5000.0), p95 in proptest::option::of(0.0f64..5000.0),
        rps in proptest::option::of(0.0f64..500.0), err in proptest::option::of(0.0f64..100.0),
        steps in 1usize..30,
    ) {
        let bounds = Bounds { min, max: min + span };
        let specs = parse_policy_list("hybrid,capacity,threshold,triggers,static,hpa", &[10.0, 70.0, 200.0]).unwrap();
        for spec in specs {
            let mut p = spec.build(&PolicyContext::default()).unwrap();
            let mut replicas = current;
            for k in 0..steps {
                let f = Features { cpu_usage_pct: cpu, p95_latency_ms: p95, request_rate_rps: rps.map(|r| r * (1.0 + k as f64 / 10.0)), error_rate_pct: err, memory_usage_mb: Some(500.0), ..Features::default() };
                let o = Observation { t_secs: 15.0 * k as f64, features: &f, replicas, ready_replicas: (replicas as f64 * ready_frac) as u32, bounds, sla_p95_ms: 250.0 };
                let r = p.recommend(&o);
                prop_assert!(bounds.contains(r.replicas), "{} gave {} outside {:?}", spec.name(), r.replicas, bounds);
                replicas = r.replicas;
            }
        }
    }
}
