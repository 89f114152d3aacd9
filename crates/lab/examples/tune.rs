//! Grid over `hybrid`'s parameters on one trace: `cargo run --release -p autoscaler-lab
//! --example tune -- TRACE SCALE SPEC...` (each SPEC like `hybrid:margin=0.9:headroom=1`).
//! Prints, per spec, violation minutes and share, replica-hours, their ratio to the oracle's and
//! HPA's violation minutes at equal replica-hours (interpolated on the sweep; `HPA_TARGETS=40,50,…`
//! sets the sweep).

use std::path::Path;
use std::time::Instant;

use autoscaler_lab::{default_services, BacktestConfig, DEFAULT_HPA_TARGETS};
use autoscaler_policy::{parse_policy_list, Bounds, PolicyContext, PolicySpec};
use autoscaler_simulator::Trace;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let trace_path = args.first().ok_or("usage: tune TRACE SCALE SPEC...")?;
    let trace = Trace::from_csv_path(Path::new(trace_path))?;
    let scale: f64 = args.get(1).ok_or("SCALE")?.parse()?;
    // The HPA sweep: `HPA_TARGETS=40,50,…` (comma-separated percent), else the default sweep.
    let targets: Vec<f64> = match std::env::var("HPA_TARGETS") {
        Ok(v) => v
            .split(',')
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().parse::<f64>())
            .collect::<Result<_, _>>()?,
        Err(_) => DEFAULT_HPA_TARGETS.to_vec(),
    };
    let mut specs = parse_policy_list("oracle,hpa", &targets)?;
    for s in &args[2..] {
        specs.push(PolicySpec::parse(s)?);
    }
    let names: Vec<String> = autoscaler_lab::DEFAULT_SERVICES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cfg = BacktestConfig {
        duration_secs: trace.duration_secs(),
        trace,
        trace_name: trace_path.clone(),
        services: default_services(&names, scale),
        start_secs: 0.0,
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
    let bt = autoscaler_lab::run(&cfg, &specs, &PolicyContext::default(), None)?;
    let oracle = bt.policy("oracle").map_or(f64::NAN, |o| o.replica_hours);
    for (p, spec) in bt.policies.iter().zip(&specs) {
        let hpa = bt.hpa_violation_at(p.replica_hours);
        println!(
            "{:<55} viol {:>8.1} min {:>6.3} %  rh {:>8.1} ({:>5.3}× oracle)  events {:>6}  HPA@rh {}",
            format!("{}{:?}", p.name, spec.params),
            p.sla_violation_minutes,
            p.violation_pct,
            p.replica_hours,
            p.replica_hours / oracle,
            p.scale_events,
            hpa.map_or("-".to_string(), |h| format!("{h:.1} (ratio {:.2})", p.sla_violation_minutes / h.max(1e-9)))
        );
    }
    if std::env::var_os("PER_SERVICE").is_some() {
        for p in &bt.policies {
            for s in &p.per_service {
                println!(
                    "  {:<12} {:<10} viol {:>8.1} min  rh {:>8.1}  events {:>6}",
                    p.name, s.service, s.sla_violation_minutes, s.replica_hours, s.scale_events
                );
            }
        }
    }
    eprintln!("{:.2?}", t0.elapsed());
    Ok(())
}
