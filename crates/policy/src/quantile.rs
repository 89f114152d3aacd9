//! How much the load can rise before new capacity is ready, learned from the service's own
//! history: an empirical conditional quantile forecast.
//!
//! A replica asked for now serves only after the start-up delay, and a replica removed now comes
//! back no sooner, so a decision must cover the largest load of the next `horizon` polls. What
//! that largest load will be, given what is measured now, is a distribution, not a number:
//! [`HorizonQuantiles`] keeps, per level of the current load, the observed ratios
//!
//! ```text
//! ratio = max(rate at the next k polls) / max(rate now, LOW_RATE_RPS)
//! ```
//!
//! (each known `k` polls later, when the future it describes has been measured), and forecasts
//! `base × quantile(1 − risk)` of the ratios seen at the current level. `risk` is the share of
//! decisions allowed to find more load than they sized for: a budget in the same units as the
//! SLA target (a share of service-minutes), not a tuning constant of the shape of the traffic.
//!
//! Levels are bins of the current rate a factor √2 wide from [`LOW_RATE_RPS`]: a Poisson-like
//! load varies relatively more at low rates, so one pooled distribution would over-provision the
//! peaks and under-provision the troughs. A level with fewer than [`MIN_SAMPLES`] ratios falls
//! back to all levels pooled; with fewer than that overall there is no forecast (the caller uses
//! its cold-start rule). Each level keeps its newest [`WINDOW_SAMPLES`] ratios, so the forecast
//! follows a change in the traffic's character within days.

use std::collections::VecDeque;

/// Rates below this (requests/s) are one level and their ratios are taken against it (the load
/// of roughly 15 requests a minute: below it, a ratio of two small counts says nothing).
pub const LOW_RATE_RPS: f64 = 0.25;
/// A level needs this many ratios to answer on its own.
pub const MIN_SAMPLES: usize = 50;
/// Ratios kept per level (half a day of 30 s polls at one level).
pub const WINDOW_SAMPLES: usize = 1440;
/// Number of levels (√2 apart from [`LOW_RATE_RPS`]: up to ~2.5·10⁴ requests/s).
const LEVELS: usize = 34;

/// The learned distribution of the next `horizon` polls' largest load against the current one.
#[derive(Debug, Clone)]
pub struct HorizonQuantiles {
    horizon: usize,
    /// The last `horizon + 1` polls: (level, base rate, measured rate).
    recent: VecDeque<(usize, f64, f64)>,
    levels: Vec<VecDeque<f64>>,
    /// Scratch space for the selection.
    scratch: Vec<f64>,
}

impl HorizonQuantiles {
    /// A forecaster of the largest load over the next `horizon` polls (at least 1).
    pub fn new(horizon: usize) -> Self {
        HorizonQuantiles {
            horizon: horizon.max(1),
            recent: VecDeque::new(),
            levels: vec![VecDeque::new(); LEVELS],
            scratch: Vec::new(),
        }
    }

    fn level(rate: f64) -> usize {
        let r = rate.max(LOW_RATE_RPS) / LOW_RATE_RPS;
        ((2.0 * r.log2()).floor().max(0.0) as usize).min(LEVELS - 1)
    }

    /// Record the rate measured at this poll (requests/s, finite and ≥ 0) and learn the ratio of
    /// the poll `horizon` polls ago, whose future is now known.
    pub fn observe(&mut self, rate: f64) {
        self.observe_with_base(rate, rate)
    }

    /// [`observe`](Self::observe) with the ratio taken against `base` (what [`forecast`]
    /// (Self::forecast) will be given, e.g. an extrapolated rate) rather than the measured rate.
    pub fn observe_with_base(&mut self, rate: f64, base: f64) {
        if !(rate.is_finite() && rate >= 0.0 && base.is_finite() && base >= 0.0) {
            return;
        }
        self.recent
            .push_back((Self::level(base), base.max(LOW_RATE_RPS), rate));
        if self.recent.len() > self.horizon {
            let (level, base, _) = self.recent[0];
            let future = self
                .recent
                .iter()
                .skip(1)
                .map(|(_, _, r)| *r)
                .fold(0.0, f64::max);
            let q = &mut self.levels[level];
            q.push_back(future / base);
            if q.len() > WINDOW_SAMPLES {
                q.pop_front();
            }
            self.recent.pop_front();
        }
    }

    /// Ratios learned at the level of `rate`.
    pub fn samples_at(&self, rate: f64) -> usize {
        self.levels[Self::level(rate)].len()
    }

    /// The `1 − risk` quantile of the largest rate of the next `horizon` polls, given the rate
    /// measured now (or the base the ratios were learned against); `None` until enough has been
    /// learned.
    pub fn forecast(&mut self, rate: f64, risk: f64) -> Option<f64> {
        if !(rate.is_finite() && rate >= 0.0) {
            return None;
        }
        let level = &self.levels[Self::level(rate)];
        self.scratch.clear();
        if level.len() >= MIN_SAMPLES {
            self.scratch.extend(level.iter().copied());
        } else {
            for l in &self.levels {
                self.scratch.extend(l.iter().copied());
            }
            if self.scratch.len() < MIN_SAMPLES {
                return None;
            }
        }
        let n = self.scratch.len();
        let p = (1.0 - risk).clamp(0.0, 1.0);
        let k = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        let (_, q, _) = self.scratch.select_nth_unstable_by(k, f64::total_cmp);
        Some(rate.max(LOW_RATE_RPS) * *q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_the_quantile_of_the_coming_maximum() {
        // A load alternating 10 → 20 → 10 …: two polls ahead the largest is always 20, so from
        // 10 the forecast is 20 and from 20 it is 20.
        let mut q = HorizonQuantiles::new(2);
        assert_eq!(q.forecast(10.0, 0.01), None);
        for k in 0..200 {
            q.observe(if k % 2 == 0 { 10.0 } else { 20.0 });
        }
        assert!((q.forecast(10.0, 0.01).unwrap() - 20.0).abs() < 1e-9);
        assert!((q.forecast(20.0, 0.01).unwrap() - 20.0).abs() < 1e-9);
        // The last poll at 10 does not know its future yet.
        assert_eq!(q.samples_at(10.0), 99);
    }

    #[test]
    fn the_risk_picks_the_quantile_and_levels_fall_back_to_the_pool() {
        // From 10 the next poll is 10 × (2 … 3) evenly (other levels): risk 0.1 → the 90th
        // percentile, ~2.9 × 10.
        let mut q = HorizonQuantiles::new(1);
        for k in 0..1001 {
            q.observe(10.0);
            q.observe(10.0 * (2.0 + (k % 101) as f64 / 100.0));
        }
        let f = q.forecast(10.0, 0.1).unwrap();
        assert!(f > 28.5 && f < 29.5, "{f}");
        assert!(q.forecast(10.0, 0.0).unwrap() >= f);
        // A level never seen answers from every level pooled.
        assert!(q.forecast(1000.0, 0.1).is_some());
        assert_eq!(q.forecast(f64::NAN, 0.1), None);
    }
}
