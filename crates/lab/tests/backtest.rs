//! Backtests end to end: determinism, the oracle's optimality, bounds, the ensemble's
//! projection with the shipped models.

use std::path::Path;
use std::sync::Arc;

use autoscaler_contract::{Features, ModelKind};
use autoscaler_lab::{default_services, run, BacktestConfig, LabError, EVAL_SECS};
use autoscaler_models::{Model, ModelError};
use autoscaler_policy::ensemble::Ensemble;
use autoscaler_policy::{
    parse_policy_list, Bounds, Observation, Policy, PolicyContext, PolicyKind, PolicySpec,
};
use autoscaler_simulator::{FastFeed, LoadProfile, ServiceParams, SyntheticShape, Trace};
use proptest::prelude::*;

/// A stand-in for the three models: P(violation) rises with p95 relative to 250 ms.
struct FakeModel(ModelKind, Vec<String>);

impl Model for FakeModel {
    fn kind(&self) -> ModelKind {
        self.0
    }
    fn version(&self) -> &str {
        "fake"
    }
    fn threshold(&self) -> f64 {
        0.5
    }
    fn feature_names(&self) -> &[String] {
        &self.1
    }
    fn predict_proba_batch(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, ModelError> {
        // p95 is the fourth feature of the default list.
        Ok(rows
            .iter()
            .map(|r| 1.0 / (1.0 + (-(r[3] - 200.0) / 20.0).exp()))
            .collect())
    }
}

fn fake_models() -> Arc<Vec<Arc<dyn Model>>> {
    let names = autoscaler_models::default_feature_names();
    Arc::new(
        ModelKind::ALL
            .into_iter()
            .map(|k| Arc::new(FakeModel(k, names.clone())) as Arc<dyn Model>)
            .collect(),
    )
}

fn shipped_models() -> Arc<Vec<Arc<dyn Model>>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    autoscaler_lab::load_models(&dir).expect("the shipped models load")
}

fn config(
    trace: Trace,
    hours: f64,
    threads: usize,
    bounds: Bounds,
    initial: u32,
) -> BacktestConfig {
    let names = vec!["front-end".to_string(), "orders".to_string()];
    BacktestConfig {
        trace,
        trace_name: "test".into(),
        services: default_services(&names, 10.0),
        start_secs: 0.0,
        duration_secs: hours * 3600.0,
        seed: 7,
        initial_replicas: initial,
        bounds,
        sla_p95_ms: 250.0,
        threads,
    }
}

fn all_but_models() -> Vec<PolicySpec> {
    let mut specs = parse_policy_list(
        "hybrid,capacity,threshold,triggers,static,oracle,hpa",
        &[50.0, 70.0, 90.0],
    )
    .unwrap();
    specs.push(PolicySpec::new(PolicyKind::Ensemble));
    specs
}

fn ctx() -> PolicyContext {
    PolicyContext {
        models: Some(fake_models()),
        ..PolicyContext::default()
    }
}

const B: Bounds = Bounds { min: 1, max: 10 };

#[test]
fn deterministic_per_seed_and_independent_of_threads() {
    let trace = Trace::synthetic(SyntheticShape::Spiky, 1, 3);
    let specs = all_but_models();
    let a = run(&config(trace.clone(), 6.0, 1, B, 2), &specs, &ctx(), None).unwrap();
    let b = run(&config(trace.clone(), 6.0, 3, B, 2), &specs, &ctx(), None).unwrap();
    assert_eq!(a, b, "1 thread vs 3");
    let mut other = config(trace, 6.0, 2, B, 2);
    other.seed = 8;
    let c = run(&other, &specs, &ctx(), None).unwrap();
    assert_ne!(
        a.policies[0].per_service[0].p95_distribution,
        c.policies[0].per_service[0].p95_distribution
    );
    assert_eq!(a.policies.len(), specs.len());
    assert_eq!(a.policy("hpa-70").unwrap().params["target"], 70.0);
}

#[test]
fn the_oracle_avoids_every_avoidable_violation_and_is_never_beaten_at_zero() {
    for (shape, seed) in [
        (SyntheticShape::Spiky, 1),
        (SyntheticShape::Step, 2),
        (SyntheticShape::Diurnal, 3),
    ] {
        let trace = Trace::synthetic(shape, 1, seed);
        let bt = run(
            &config(trace, 12.0, 0, B, 2),
            &all_but_models(),
            &ctx(),
            None,
        )
        .unwrap();
        let oracle = bt.policy("oracle").unwrap();
        for s in &oracle.per_service {
            assert_eq!(
                s.sla_violation_minutes, s.unavoidable_violation_minutes,
                "{shape}: the oracle violated where it could have avoided it ({})",
                s.service
            );
        }
        for p in &bt.policies {
            for (s, o) in p.per_service.iter().zip(&oracle.per_service) {
                if s.sla_violation_minutes <= o.sla_violation_minutes {
                    assert!(
                        s.replica_hours >= o.replica_hours - 1e-9,
                        "{shape}: {} on {} beat the oracle: {} < {} replica-hours",
                        p.name,
                        s.service,
                        s.replica_hours,
                        o.replica_hours
                    );
                }
            }
        }
    }
}

#[test]
fn a_policy_outside_the_bounds_is_an_error_not_clamped() {
    struct Rogue;
    impl Policy for Rogue {
        fn name(&self) -> String {
            "rogue".into()
        }
        fn params(&self) -> serde_json::Value {
            serde_json::json!({})
        }
        fn recommend(&mut self, _: &Observation<'_>) -> autoscaler_policy::Recommendation {
            autoscaler_policy::Recommendation::new(99, "too many")
        }
    }
    // The runner's check, driven directly through the public pieces.
    let trace = Trace::synthetic(SyntheticShape::Diurnal, 1, 1);
    let cfg = config(trace, 1.0, 1, B, 2);
    let mut rogue = Rogue;
    let f = Features::default();
    let rec = rogue.recommend(&Observation {
        t_secs: 0.0,
        features: &f,
        replicas: 2,
        ready_replicas: 2,
        bounds: cfg.bounds,
        sla_p95_ms: 250.0,
    });
    assert!(!cfg.bounds.contains(rec.replicas));
    // And a spec the policies reject is an error naming the policy.
    let err = run(
        &cfg,
        &[PolicySpec::new(PolicyKind::Static).with("replicas", 1.5)],
        &ctx(),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, LabError::Spec(_)), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]
    /// Every policy stays within bounds on random traces, bounds and starts (the runner fails a
    /// run with `OutOfBounds` rather than clamping).
    #[test]
    fn every_policy_stays_within_bounds(
        seed in 0u64..1000,
        shape in 0usize..4,
        min in 1u32..4,
        span in 0u32..8,
        initial in 0u32..14,
    ) {
        let trace = Trace::synthetic(SyntheticShape::ALL[shape], 1, seed);
        let bounds = Bounds { min, max: min + span };
        let mut cfg = config(trace, 2.0, 0, bounds, initial);
        cfg.seed = seed;
        let bt = run(&cfg, &all_but_models(), &ctx(), None);
        prop_assert!(bt.is_ok(), "{:?}", bt.err());
        for p in bt.unwrap().policies {
            for s in p.per_service {
                prop_assert!(s.max_replicas <= bounds.max.max(bounds.clamp(initial)));
            }
        }
    }
}

/// Observations of a steady (or varying) load through the fast feed at fixed replicas.
fn drive(policy: &mut Ensemble, rates: &[f64], replicas: u32, t0: f64) -> (f64, Features) {
    let params = ServiceParams {
        trace_scale: 1.0,
        ..ServiceParams::default()
    };
    let trace = Trace::from_requests(60.0, rates.iter().map(|r| r * 60.0).collect()).unwrap();
    let profile =
        Arc::new(LoadProfile::new(&trace, &params, 0.0, trace.duration_secs(), 5).unwrap());
    let mut feed = FastFeed::new(profile, params).unwrap();
    let mut last = Features::default();
    let mut t = 0.0;
    while t + EVAL_SECS <= trace.duration_secs() {
        t += EVAL_SECS;
        feed.advance(t, |_| replicas);
        last = feed.report().features;
        policy.recommend(&Observation {
            t_secs: t0 + t,
            features: &last,
            replicas,
            ready_replicas: replicas,
            bounds: Bounds { min: 1, max: 20 },
            sla_p95_ms: 250.0,
        });
    }
    (t0 + t, last)
}

fn ensemble(models: Arc<Vec<Arc<dyn Model>>>) -> Ensemble {
    let ctx = PolicyContext {
        models: Some(models.clone()),
        ..PolicyContext::default()
    };
    Ensemble::from_spec(&PolicySpec::new(PolicyKind::Ensemble), &ctx, models).unwrap()
}

/// A day-shaped warm-up: 1 to 8 requests/s per replica over two hours.
fn warm_up(replicas: u32) -> Vec<f64> {
    (0..120)
        .map(|m| {
            replicas as f64
                * (1.0 + 7.0 * (0.5 - 0.5 * (m as f64 / 120.0 * std::f64::consts::TAU).cos()))
        })
        .collect()
}

#[test]
fn the_shipped_models_see_violation_halve_from_2_to_4_replicas_at_utilisation_095() {
    let mut e = ensemble(shipped_models());
    let (t, _) = drive(&mut e, &warm_up(2), 2, 0.0);
    // 19 requests/s on 2 replicas of 10: utilisation 0.95.
    let (t, f) = drive(&mut e, &[19.0; 5], 2, t);
    let rec = e.decide(&Observation {
        t_secs: t + EVAL_SECS,
        features: &f,
        replicas: 2,
        ready_replicas: 2,
        bounds: Bounds { min: 1, max: 20 },
        sla_p95_ms: 250.0,
    });
    let at = |n: u32| rec.candidates.iter().find(|c| c.replicas == n).unwrap();
    let mean = |n: u32| at(n).probabilities.values().sum::<f64>() / 3.0;
    assert!(
        mean(4) <= 0.5 * mean(2),
        "P(violation) at 4 = {:.3}, at 2 = {:.3}: {rec:?}",
        mean(4),
        mean(2)
    );
    assert!(
        mean(2) > 0.5,
        "the models see the violation at 2: {:.3}",
        mean(2)
    );
    assert!(rec.replicas > 2, "{rec:?}");
}

#[test]
fn after_a_10x_load_step_the_first_decision_is_within_1_of_the_oracle() {
    // 3 replicas at 7.5 requests/s, then 75 requests/s.
    let mut e = ensemble(shipped_models());
    let (t, _) = drive(&mut e, &warm_up(3), 3, 0.0);
    let (t, _) = drive(&mut e, &[7.5; 10], 3, t);
    // The first decision whose one-minute window lies wholly after the step (the poll 60 s in).
    let (t, f) = drive(&mut e, &[75.0], 3, t);
    let rec = e.decide(&Observation {
        t_secs: t + EVAL_SECS,
        features: &f,
        replicas: 3,
        ready_replicas: 3,
        bounds: Bounds { min: 1, max: 20 },
        sla_p95_ms: 250.0,
    });
    // The oracle's count for that load: its demand for a 30 s slot at 75 requests/s.
    let params = ServiceParams {
        trace_scale: 1.0,
        ..ServiceParams::default()
    };
    let trace = Trace::from_requests(60.0, vec![75.0 * 60.0; 10]).unwrap();
    let profile = LoadProfile::new(&trace, &params, 0.0, 600.0, 5).unwrap();
    let demand = autoscaler_lab::oracle::demand(&profile, &params, EVAL_SECS, 250.0);
    let oracle = *demand.iter().max().unwrap();
    assert!(
        rec.replicas.abs_diff(oracle) <= 1,
        "ensemble {} vs oracle {oracle}: {}",
        rec.replicas,
        rec.reason
    );
}

#[test]
fn the_plot_is_svg_with_one_series_per_policy() {
    let trace = Trace::synthetic(SyntheticShape::Spiky, 1, 5);
    let specs = all_but_models();
    let bt = run(&config(trace, 3.0, 0, B, 2), &specs, &ctx(), None).unwrap();
    let dir = std::env::temp_dir().join(format!("lab-plot-{}", std::process::id()));
    let path = dir.join("out.svg");
    autoscaler_lab::plot::write_plot(&bt, &path).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    // Every <… opens and closes (a cheap well-formedness check).
    assert_eq!(svg.matches('<').count(), svg.matches('>').count());
    for p in &bt.policies {
        let label = format!(">\n{}\n</text>", p.name);
        assert!(
            svg.matches(&label).count() >= 2,
            "no legend entry for {} per service",
            p.name
        );
    }
    // Replicas per policy and service: one line each.
    let lines = svg.matches("<polyline").count();
    assert!(lines >= 2 * 2 * bt.policies.len(), "{lines} lines");
    assert!(autoscaler_lab::plot::write_plot(&bt, &dir.join("out.png")).is_err());
    let _ = std::fs::remove_dir_all(dir);
}
