//! Drive the lab without the CLI: `cargo run --release -p autoscaler-lab --example backtest --
//! TRACE HOURS POLICIES [TRACE_SCALE] [START_HOUR] [JSON_OUT] [SVG_OUT]`.
//! The models load from `models/` when a policy needs them.

use std::path::Path;
use std::time::Instant;

use autoscaler_lab::{default_services, BacktestConfig, DEFAULT_HPA_TARGETS};
use autoscaler_policy::{parse_policy_list, Bounds, PolicyContext};
use autoscaler_simulator::Trace;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let trace_path = args
        .first()
        .ok_or("usage: backtest TRACE HOURS POLICIES [SCALE] [START_HOUR] [JSON] [SVG]")?;
    let trace = Trace::from_csv_path(Path::new(trace_path))?;
    let hours: f64 = args
        .get(1)
        .filter(|h| !h.is_empty())
        .map_or(Ok(trace.duration_secs() / 3600.0), |h| h.parse())?;
    let policies = args.get(2).map_or("all", |s| s.as_str());
    let scale: f64 = args.get(3).map_or(Ok(10.0), |s| s.parse())?;
    let start: f64 = args.get(4).map_or(Ok(0.0), |s| s.parse())?;
    let targets: Vec<f64> = match std::env::var("HPA_TARGETS") {
        Ok(t) => t
            .split(',')
            .map(|x| x.trim().parse())
            .collect::<Result<_, _>>()?,
        Err(_) => DEFAULT_HPA_TARGETS.to_vec(),
    };
    let specs = parse_policy_list(policies, &targets)?;
    let needs_models = specs.iter().any(|s| {
        matches!(
            s.kind,
            autoscaler_policy::PolicyKind::Ensemble | autoscaler_policy::PolicyKind::Triggers
        ) || (s.kind == autoscaler_policy::PolicyKind::Hybrid && s.get("predictive", 0.0) > 0.0)
    });
    let ctx = PolicyContext {
        models: if needs_models {
            Some(autoscaler_lab::load_models(Path::new("models"))?)
        } else {
            None
        },
        ..PolicyContext::default()
    };
    let names: Vec<String> = autoscaler_lab::DEFAULT_SERVICES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cfg = BacktestConfig {
        trace,
        trace_name: trace_path.clone(),
        services: default_services(&names, scale),
        start_secs: start * 3600.0,
        duration_secs: hours * 3600.0,
        seed: autoscaler_lab::DEFAULT_SEED,
        initial_replicas: autoscaler_lab::DEFAULT_INITIAL_REPLICAS,
        bounds: Bounds {
            min: autoscaler_lab::DEFAULT_MIN_REPLICAS,
            max: autoscaler_lab::DEFAULT_MAX_REPLICAS,
        },
        sla_p95_ms: autoscaler_policy::DEFAULT_SLA_P95_MS,
        threads: 0,
    };
    let t0 = Instant::now();
    let prepared = cfg.prepare()?;
    let t_prep = t0.elapsed();
    let bt = autoscaler_lab::run_prepared(&cfg, &prepared, &specs, &ctx, None)?;
    let t_run = t0.elapsed() - t_prep;
    print!("{}", bt.table());
    if let Some(h) = bt.policy("hybrid") {
        let o = bt.policy("oracle").map(|o| o.replica_hours);
        println!(
            "hybrid: {:.1} viol-min ({:.3} %), {:.1} rh; oracle rh {:?} (ratio {:.3}); HPA at equal rh: {:?}",
            h.sla_violation_minutes,
            h.violation_pct,
            h.replica_hours,
            o,
            o.map_or(f64::NAN, |o| h.replica_hours / o),
            bt.hpa_violation_at(h.replica_hours)
        );
    }
    eprintln!("prepare {:.2?}, runs {:.2?}", t_prep, t_run);
    if let Some(p) = args.get(5) {
        std::fs::write(p, serde_json::to_string_pretty(&bt.to_json())?)?;
    }
    if let Some(p) = args.get(6) {
        autoscaler_lab::plot::write_plot(&bt, Path::new(p))?;
    }
    if let Some(p) = args.get(7) {
        autoscaler_lab::plot::write_pareto(&bt, Path::new(p))?;
    }
    Ok(())
}
