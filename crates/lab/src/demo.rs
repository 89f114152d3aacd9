//! What `autoscaler demo` adds to its summary: the same hours of the shipped trace under the
//! Kubernetes HPA at 70 % and under the oracle, and the timeline plot.

use autoscaler_policy::{Bounds, PolicyContext, PolicyKind, PolicySpec, DEFAULT_SLA_P95_MS};
use autoscaler_simulator::{ServiceParams, Trace};

use crate::{default_services, run, Backtest, BacktestConfig, LabError};

/// The HPA target the demo compares with (the peer's baseline).
pub const DEMO_HPA_TARGET: f64 = 70.0;

/// The demo's comparison: `hours` of the shipped NASA sample, the demo's two services, bounds
/// and seed, under `hybrid`, `hpa-70` and the oracle.
pub fn demo_backtest(hours: f64, seed: u64) -> Result<Backtest, LabError> {
    let names: Vec<String> = crate::DEFAULT_SERVICES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cfg = BacktestConfig {
        trace: Trace::nasa_sample(),
        trace_name: "nasa_http_1995_07_12to14_60s.csv".into(),
        services: default_services(&names, ServiceParams::default().trace_scale),
        start_secs: 0.0,
        duration_secs: hours * 3600.0,
        seed,
        initial_replicas: crate::DEFAULT_INITIAL_REPLICAS,
        bounds: Bounds {
            min: crate::DEFAULT_MIN_REPLICAS,
            max: crate::DEFAULT_MAX_REPLICAS,
        },
        sla_p95_ms: DEFAULT_SLA_P95_MS,
        threads: 0,
    };
    let specs = [
        PolicySpec::new(PolicyKind::Hybrid),
        PolicySpec::new(PolicyKind::Hpa).with("target", DEMO_HPA_TARGET),
        crate::oracle_spec(),
    ];
    run(&cfg, &specs, &PolicyContext::default(), None)
}

/// The summary's closing lines, one per baseline (deterministic: no timings, no paths).
pub fn demo_lines(bt: &Backtest) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = bt.policy("hybrid") {
        out.push(format!(
            "Same {} h under the default policy (hybrid): {:.1} SLA-violation minutes, {:.1} replica-hours, {} scale events (lab simulator)",
            bt.hours, p.sla_violation_minutes, p.replica_hours, p.scale_events
        ));
    }
    let hpa = format!("hpa-{}", autoscaler_policy::fmt_num(DEMO_HPA_TARGET));
    if let Some(p) = bt.policy(&hpa) {
        out.push(format!(
            "Same {} h under HPA (70 % CPU): {:.1} SLA-violation minutes, {:.1} replica-hours, {} scale events (lab simulator)",
            bt.hours, p.sla_violation_minutes, p.replica_hours, p.scale_events
        ));
    }
    if let Some(p) = bt.policy("oracle") {
        out.push(format!(
            "Same {} h, clairvoyant oracle: {:.1} SLA-violation minutes, {:.1} replica-hours, {} scale events (the lower bound)",
            bt.hours, p.sla_violation_minutes, p.replica_hours, p.scale_events
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_lines_are_deterministic() {
        let a = demo_lines(&demo_backtest(6.0, 3).unwrap());
        let b = demo_lines(&demo_backtest(6.0, 3).unwrap());
        assert_eq!(a, b);
        assert_eq!(a.len(), 3);
        assert!(
            a[0].contains("hybrid") && a[1].contains("HPA (70 % CPU)") && a[2].contains("oracle"),
            "{a:?}"
        );
    }
}
