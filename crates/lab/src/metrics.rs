//! Figures of a run: the p95 distribution and the SPEC Research Group elasticity metrics.
//!
//! The elasticity metrics follow Herbst et al., "Ready for Rain? A View from SPEC Research on
//! the Future of Cloud Metrics" (SPEC RG, 2016), §3.1, with the oracle's demand `d_t` (the
//! fewest ready replicas that keep slot `t` within the SLA, [`crate::oracle`]) and the supply
//! `s_t` (the ready replicas of the slot), over the `T` evaluation slots:
//!
//! * under-/over-provisioning accuracy `θU = 100/T · Σ max(d_t − s_t, 0)/d_t`,
//!   `θO = 100/T · Σ max(s_t − d_t, 0)/d_t` (percent of the demand missing / in excess);
//! * under-/over-provisioning timeshare `τU = 100/T · Σ [s_t < d_t]`, `τO = 100/T · Σ [s_t > d_t]`;
//! * instability `υ = 100/(T−1) · Σ [sgn Δs_t ≠ sgn Δd_t]`: the share of steps where supply and
//!   demand do not move in the same direction (one moves, the other does not or moves the other
//!   way).

use serde::Serialize;

/// Percentiles of the p95 over a run's evaluation points, ms (0 when none was measured).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct P95Distribution {
    /// Points with a p95.
    pub points: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl P95Distribution {
    /// From the values (sorted in place).
    pub fn from_values(values: &mut [f64]) -> Self {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        P95Distribution {
            points: n as u64,
            p50_ms: percentile(values, 0.5),
            p90_ms: percentile(values, 0.9),
            p99_ms: percentile(values, 0.99),
            max_ms: values.last().copied().unwrap_or(0.0),
            mean_ms: if n > 0 {
                values.iter().sum::<f64>() / n as f64
            } else {
                0.0
            },
        }
    }

    /// Combine per-service distributions: percentiles are the point-weighted mean of the
    /// services' (an approximation; the maximum is exact).
    pub fn merge<'a>(parts: impl Iterator<Item = &'a P95Distribution>) -> Self {
        let parts: Vec<&P95Distribution> = parts.collect();
        let total: u64 = parts.iter().map(|p| p.points).sum();
        if total == 0 {
            return P95Distribution::default();
        }
        let w = |f: fn(&P95Distribution) -> f64| {
            parts.iter().map(|p| f(p) * p.points as f64).sum::<f64>() / total as f64
        };
        P95Distribution {
            points: total,
            p50_ms: w(|p| p.p50_ms),
            p90_ms: w(|p| p.p90_ms),
            p99_ms: w(|p| p.p99_ms),
            max_ms: parts.iter().map(|p| p.max_ms).fold(0.0, f64::max),
            mean_ms: w(|p| p.mean_ms),
        }
    }
}

/// The SPEC elasticity metrics of a run (see the module docs), percent.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Elasticity {
    /// Under-provisioning accuracy θU.
    pub theta_u: f64,
    /// Over-provisioning accuracy θO.
    pub theta_o: f64,
    /// Under-provisioning timeshare τU.
    pub tau_u: f64,
    /// Over-provisioning timeshare τO.
    pub tau_o: f64,
    /// Instability υ.
    pub instability: f64,
}

impl Elasticity {
    /// The mean over services.
    pub fn mean<'a>(parts: impl Iterator<Item = &'a Elasticity>) -> Self {
        let parts: Vec<&Elasticity> = parts.collect();
        let n = parts.len().max(1) as f64;
        let m = |f: fn(&Elasticity) -> f64| parts.iter().map(|e| f(e)).sum::<f64>() / n;
        Elasticity {
            theta_u: m(|e| e.theta_u),
            theta_o: m(|e| e.theta_o),
            tau_u: m(|e| e.tau_u),
            tau_o: m(|e| e.tau_o),
            instability: m(|e| e.instability),
        }
    }
}

/// Sums for [`Elasticity`], one slot at a time.
#[derive(Debug, Clone, Default)]
pub struct ElasticityAccumulator {
    slots: u64,
    under: f64,
    over: f64,
    under_n: u64,
    over_n: u64,
    unstable: u64,
    last: Option<(u32, u32)>,
}

impl ElasticityAccumulator {
    /// Add a slot with `supply` ready replicas and `demand` (≥ 1).
    pub fn add(&mut self, supply: u32, demand: u32) {
        let (s, d) = (supply as f64, demand.max(1) as f64);
        self.slots += 1;
        if s < d {
            self.under += (d - s) / d;
            self.under_n += 1;
        } else if s > d {
            self.over += (s - d) / d;
            self.over_n += 1;
        }
        if let Some((ls, ld)) = self.last {
            if supply.cmp(&ls) != demand.cmp(&ld) {
                self.unstable += 1;
            }
        }
        self.last = Some((supply, demand));
    }

    /// The metrics.
    pub fn finish(&self) -> Elasticity {
        let t = self.slots.max(1) as f64;
        Elasticity {
            theta_u: 100.0 * self.under / t,
            theta_o: 100.0 * self.over / t,
            tau_u: 100.0 * self.under_n as f64 / t,
            tau_o: 100.0 * self.over_n as f64 / t,
            instability: 100.0 * self.unstable as f64
                / (self.slots.saturating_sub(1).max(1)) as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elasticity_by_hand() {
        let mut a = ElasticityAccumulator::default();
        // demand 2, 2, 4, 4; supply 2, 3, 3, 4.
        for (s, d) in [(2, 2), (3, 2), (3, 4), (4, 4)] {
            a.add(s, d);
        }
        let e = a.finish();
        assert!((e.theta_u - 100.0 * 0.25 / 4.0).abs() < 1e-9);
        assert!((e.theta_o - 100.0 * 0.5 / 4.0).abs() < 1e-9);
        assert_eq!(e.tau_u, 25.0);
        assert_eq!(e.tau_o, 25.0);
        // Steps: (+1, 0) differ, (0, +2) differ, (+1, 0) differ → 3 of 3.
        assert_eq!(e.instability, 100.0);
        let mut b = ElasticityAccumulator::default();
        for (s, d) in [(1, 1), (2, 2), (2, 2), (1, 1)] {
            b.add(s, d);
        }
        assert_eq!(b.finish(), Elasticity::default());
    }

    #[test]
    fn p95_distribution() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let d = P95Distribution::from_values(&mut v);
        assert_eq!(d.points, 100);
        assert_eq!(d.max_ms, 100.0);
        assert_eq!(d.p50_ms, 51.0);
        assert_eq!(d.p99_ms, 99.0);
        assert_eq!(
            P95Distribution::from_values(&mut []),
            P95Distribution::default()
        );
    }
}
