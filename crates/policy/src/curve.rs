//! The queueing curve of one service, fitted to its own history.
//!
//! Latency against load per replica follows the M/M/1 shape `p95(r) = P₀ / (1 − r/c)` (`r`
//! requests/s per ready replica, `P₀` the p95 at zero load, `c` the capacity of a replica), so
//! `1/p95` is linear in `r`: `1/p95 = a − b·r` with `a = 1/P₀`, `b = 1/(P₀·c)`. [`LatencyCurve`]
//! fits that line by exponentially weighted least squares on the polls a service reports
//! (only polls without errors and with a p95 below [`MAX_FIT_P95_FACTOR`] × the SLA, where a
//! backlog rather than the replicas' utilisation drives latency), and answers:
//!
//! * [`LatencyCurve::p95_at`]: the p95 the same load would have per replica `r`;
//! * [`LatencyCurve::rate_for`]: the load per replica at which the p95 reaches a target.
//!
//! Nothing here reads a simulator: the inputs are the request rate, the p95 and the ready
//! replica count that Prometheus and Swarm report.

/// Polls with a p95 above this multiple of the SLA are left out of the fit (a queue, not the
/// utilisation, drives them).
pub const MAX_FIT_P95_FACTOR: f64 = 3.0;
/// Default half-life of an observation's weight, in observations (one day of 30 s polls).
pub const DEFAULT_HALF_LIFE: f64 = 2880.0;
/// The fit needs the load per replica to vary by at least this coefficient of variation.
const MIN_SPREAD_CV: f64 = 0.1;
/// …and at least this much weight (observations).
const MIN_WEIGHT: f64 = 20.0;

/// An exponentially weighted least-squares fit of `1/p95` against load per replica.
#[derive(Debug, Clone)]
pub struct LatencyCurve {
    decay: f64,
    w: f64,
    sr: f64,
    sy: f64,
    srr: f64,
    sry: f64,
    /// Lowest p95 seen (a floor for P₀ when the fit is not yet possible).
    min_p95: Option<f64>,
}

impl Default for LatencyCurve {
    fn default() -> Self {
        LatencyCurve::new(DEFAULT_HALF_LIFE)
    }
}

/// A fitted line `1/p95 = a − b·r`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// `1/P₀`, 1/ms.
    pub a: f64,
    /// `1/(P₀·c)`, 1/(ms · request/s).
    pub b: f64,
}

impl Fit {
    /// Capacity of one replica, requests/s (`a/b`).
    pub fn capacity(&self) -> f64 {
        self.a / self.b
    }

    /// p95 at load `r` per replica; `None` at or past the capacity.
    pub fn p95_at(&self, r: f64) -> Option<f64> {
        let y = self.a - self.b * r;
        (y > 0.0).then(|| 1.0 / y)
    }

    /// Load per replica at which the p95 reaches `target_ms` (0 when even zero load is slower).
    pub fn rate_for(&self, target_ms: f64) -> f64 {
        ((self.a - 1.0 / target_ms) / self.b).max(0.0)
    }
}

impl LatencyCurve {
    /// A curve whose observations lose half their weight after `half_life` newer ones.
    pub fn new(half_life: f64) -> Self {
        LatencyCurve {
            decay: 0.5f64.powf(1.0 / half_life.max(1.0)),
            w: 0.0,
            sr: 0.0,
            sy: 0.0,
            srr: 0.0,
            sry: 0.0,
            min_p95: None,
        }
    }

    /// Add a poll: `rps_per_replica` and its `p95_ms`, if usable (`errors_pct` must be 0 and the
    /// p95 at most [`MAX_FIT_P95_FACTOR`] × `sla_ms`). Returns whether it was used.
    pub fn observe(
        &mut self,
        rps_per_replica: f64,
        p95_ms: f64,
        errors_pct: f64,
        sla_ms: f64,
    ) -> bool {
        let usable = rps_per_replica.is_finite()
            && rps_per_replica >= 0.0
            && p95_ms.is_finite()
            && p95_ms > 0.0
            && errors_pct <= 0.0
            && p95_ms <= MAX_FIT_P95_FACTOR * sla_ms;
        if !usable {
            return false;
        }
        self.min_p95 = Some(self.min_p95.map_or(p95_ms, |m: f64| m.min(p95_ms)));
        let (r, y) = (rps_per_replica, 1.0 / p95_ms);
        let d = self.decay;
        self.w = self.w * d + 1.0;
        self.sr = self.sr * d + r;
        self.sy = self.sy * d + y;
        self.srr = self.srr * d + r * r;
        self.sry = self.sry * d + r * y;
        true
    }

    /// The lowest p95 observed so far.
    pub fn min_p95(&self) -> Option<f64> {
        self.min_p95
    }

    /// The fitted line, when the history allows one (enough observations, enough spread in
    /// load, and a line that slopes down from a positive intercept).
    pub fn fit(&self) -> Option<Fit> {
        if self.w < MIN_WEIGHT {
            return None;
        }
        let mr = self.sr / self.w;
        let my = self.sy / self.w;
        let var = self.srr / self.w - mr * mr;
        if var.is_nan() || var <= 0.0 || var.sqrt() < MIN_SPREAD_CV * mr.max(1e-9) {
            return None;
        }
        let cov = self.sry / self.w - mr * my;
        let b = -cov / var;
        let a = my + b * mr;
        (a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite()).then_some(Fit { a, b })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_mm1_curve() {
        let (p0, c) = (60.0, 10.0);
        let mut curve = LatencyCurve::default();
        assert_eq!(curve.fit(), None);
        for k in 0..200 {
            let r = 0.5 + 8.0 * ((k * 37) % 100) as f64 / 100.0;
            let p95 = p0 / (1.0 - r / c);
            curve.observe(r, p95, 0.0, 250.0);
        }
        let fit = curve.fit().unwrap();
        assert!((fit.capacity() - c).abs() < 1e-6, "{fit:?}");
        assert!((fit.p95_at(5.0).unwrap() - 120.0).abs() < 1e-6);
        assert!((fit.rate_for(250.0) - c * (1.0 - p0 / 250.0)).abs() < 1e-6);
        assert_eq!(fit.p95_at(10.5), None);
    }

    #[test]
    fn needs_spread_and_skips_unusable_polls() {
        let mut curve = LatencyCurve::default();
        for _ in 0..100 {
            curve.observe(5.0, 120.0, 0.0, 250.0);
        }
        assert_eq!(curve.fit(), None, "no spread in load: no slope");
        assert!(!curve.observe(5.0, 120.0, 1.0, 250.0), "errors");
        assert!(
            !curve.observe(5.0, 2000.0, 0.0, 250.0),
            "a queue, not utilisation"
        );
        assert!(!curve.observe(f64::NAN, 100.0, 0.0, 250.0));
        assert_eq!(curve.min_p95(), Some(120.0));
    }
}
