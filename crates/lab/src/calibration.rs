//! Calibration: how well the simulator's two laws describe a real service.
//!
//! The simulator (crate docs of `autoscaler-simulator`) assumes that, at a fixed replica count,
//!
//! * **CPU is linear in the request rate**: `cpu = idle + k · rps`;
//! * **p95 follows the M/M/1 shape**: `p95 = P₀ / (1 − rps/C)`, i.e. `1/p95` is linear in the
//!   request rate.
//!
//! [`fit_laws`] fits both to measured `(rps, p95, cpu)` points by least squares and reports the
//! R² of each and the median relative error of the p95 the fitted law predicts. The
//! `calibrate` example runs it on the peer project's GKE Sock Shop runs (read from
//! `../shared/peer-data` at evaluation time, never copied into the repository).

use serde::Serialize;

/// The fitted laws and how close they come.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LawFit {
    /// Points used.
    pub points: usize,
    /// p95 at zero load, ms.
    pub p0_ms: f64,
    /// Request rate at which the p95 diverges (capacity at this replica count), requests/s;
    /// infinite when latency does not grow with load.
    pub capacity_rps: f64,
    /// R² of `1/p95` against the request rate.
    pub latency_r2: f64,
    /// Median |predicted − measured| / measured of the p95.
    pub latency_median_rel_err: f64,
    /// CPU per request/s (percent of a core).
    pub cpu_per_rps: f64,
    /// CPU at zero load (percent of a core).
    pub cpu_idle: f64,
    /// R² of CPU against the request rate.
    pub cpu_r2: f64,
}

fn linear_fit(xs: &[f64], ys: &[f64]) -> (f64, f64, f64) {
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let syy: f64 = ys.iter().map(|y| (y - my) * (y - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let intercept = my - slope * mx;
    let r2 = if sxx > 0.0 && syy > 0.0 {
        sxy * sxy / (sxx * syy)
    } else {
        0.0
    };
    (intercept, slope, r2)
}

/// Fit both laws to `(rps, p95_ms, cpu_pct)` points (points with a missing or non-positive p95
/// are skipped). `None` with fewer than 3 usable points.
pub fn fit_laws(points: &[(f64, f64, f64)]) -> Option<LawFit> {
    let usable: Vec<(f64, f64, f64)> = points
        .iter()
        .copied()
        .filter(|(r, p, c)| r.is_finite() && p.is_finite() && *p > 0.0 && c.is_finite())
        .collect();
    if usable.len() < 3 {
        return None;
    }
    let rps: Vec<f64> = usable.iter().map(|p| p.0).collect();
    let inv: Vec<f64> = usable.iter().map(|p| 1.0 / p.1).collect();
    let cpu: Vec<f64> = usable.iter().map(|p| p.2).collect();
    let (a, slope, latency_r2) = linear_fit(&rps, &inv);
    let b = -slope;
    let (cpu_idle, cpu_per_rps, cpu_r2) = linear_fit(&rps, &cpu);
    let mut errs: Vec<f64> = usable
        .iter()
        .map(|(r, p, _)| {
            let y = a - b * r;
            let predicted = if y > 0.0 { 1.0 / y } else { f64::INFINITY };
            ((predicted - p) / p).abs()
        })
        .collect();
    errs.sort_by(f64::total_cmp);
    Some(LawFit {
        points: usable.len(),
        p0_ms: 1.0 / a,
        capacity_rps: if b > 0.0 { a / b } else { f64::INFINITY },
        latency_r2,
        latency_median_rel_err: errs[errs.len() / 2],
        cpu_per_rps,
        cpu_idle,
        cpu_r2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoscaler_simulator::{ReplayFeed, ServiceParams, Trace};

    #[test]
    fn recovers_the_simulators_own_laws() {
        // A ramp from 1 to 8 requests/s on one replica, through the 1 s simulator.
        let requests: Vec<f64> = (0..120)
            .map(|m| 60.0 * (1.0 + 7.0 * m as f64 / 120.0))
            .collect();
        let trace = Trace::from_requests(60.0, requests).unwrap();
        let params = ServiceParams {
            trace_scale: 1.0,
            ..ServiceParams::default()
        };
        let mut feed = ReplayFeed::new("web", trace, params, 0.0, 1).unwrap();
        let points: Vec<(f64, f64, f64)> = (2..240)
            .map(|k| {
                let p = feed.poll(k as f64 * 30.0, 30.0, 1);
                let f = p.features;
                (
                    f.request_rate_rps.unwrap(),
                    f.p95_latency_ms.unwrap(),
                    f.cpu_usage_pct.unwrap(),
                )
            })
            .collect();
        let fit = fit_laws(&points).unwrap();
        assert!(fit.latency_r2 > 0.9, "{fit:?}");
        assert!(fit.cpu_r2 > 0.95, "{fit:?}");
        assert!((fit.cpu_per_rps - 6.0).abs() < 0.5, "{fit:?}");
        assert!((fit.capacity_rps - 10.0).abs() < 1.5, "{fit:?}");
        assert!(fit.latency_median_rel_err < 0.1, "{fit:?}");
        assert_eq!(fit_laws(&[(1.0, 1.0, 1.0)]), None);
    }
}
