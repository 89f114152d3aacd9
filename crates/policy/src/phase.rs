//! Load that comes back at the same minute of the hour (batch jobs, cron, feeds delivered on a
//! schedule): a test, per phase of the hour, of whether the learned forecast is exceeded there
//! more often than its risk allows, and the phase's own quantile where it is.
//!
//! [`PhaseTail`] cuts the hour into slots of one poll. For every decision it remembers the
//! forecast the level-wise quantile ([`crate::quantile`]) gave, and once the horizon it covered
//! has been measured, whether that horizon's largest rate went over it and by what ratio to the
//! decision's base. A phase is *hot* when its exceedances are significantly more than the risk
//! budget (more than [`Z`] binomial standard deviations above `risk × n`); then the forecast is
//! also at least the base times the phase's own `1 − risk` quantile of ratios. On traffic
//! without such a schedule no phase is hot (up to the test's false positives) and nothing
//! changes.

use std::collections::VecDeque;

/// Seconds of the cycle (an hour: schedules are set in clock minutes).
pub const CYCLE_SECS: f64 = 3600.0;
/// Ratios and exceedances kept per phase (the newest; about a week of hours).
pub const PHASE_SAMPLES: usize = 168;
/// A phase needs this many before it can be hot.
pub const MIN_PHASE_SAMPLES: usize = 24;
/// Significance of the exceedance test, binomial standard deviations. High, because
/// exceedances are not independent draws: they cluster in busy hours, so on traffic without a
/// schedule a phase's count spreads far wider than the binomial's (at 3 or 4 σ some of NASA's
/// 120 phases tested hot and cost replica-hours; at 6 they cost nothing on July and 0.1
/// replica-hours on August, and Twitter's scheduled spikes, which exceed at ~20 % of their
/// phase against a 3 % budget, still test hot).
pub const Z: f64 = 6.0;

/// Per phase of the hour, the learned forecast's exceedances and the ratios.
#[derive(Debug, Clone)]
pub struct PhaseTail {
    slot_secs: f64,
    horizon: usize,
    /// The last `horizon + 1` polls: (phase, base, forecast, measured rate).
    recent: VecDeque<(usize, f64, f64, f64)>,
    /// Per phase: (ratio, exceeded).
    phases: Vec<VecDeque<(f64, bool)>>,
    scratch: Vec<f64>,
}

impl PhaseTail {
    /// Phases of `slot_secs` (a poll), covering the largest rate of the next `horizon` polls.
    pub fn new(slot_secs: f64, horizon: usize) -> Self {
        let slot_secs = slot_secs.max(1.0);
        let n = (CYCLE_SECS / slot_secs).round().max(1.0) as usize;
        PhaseTail {
            slot_secs,
            horizon: horizon.max(1),
            recent: VecDeque::new(),
            phases: vec![VecDeque::new(); n],
            scratch: Vec::new(),
        }
    }

    fn phase(&self, t_secs: f64) -> usize {
        let n = self.phases.len();
        ((t_secs.rem_euclid(CYCLE_SECS) / self.slot_secs).floor() as usize).min(n - 1)
    }

    /// Record a decision at `t_secs`: the rate measured now, the base the forecast is relative
    /// to and the forecast made (requests/s); learns the decision `horizon` polls ago.
    pub fn observe(&mut self, t_secs: f64, rate: f64, base: f64, forecast: f64) {
        if !(t_secs.is_finite() && rate.is_finite() && base.is_finite() && forecast.is_finite()) {
            return;
        }
        let phase = self.phase(t_secs);
        self.recent.push_back((
            phase,
            base.max(crate::quantile::LOW_RATE_RPS),
            forecast,
            rate,
        ));
        if self.recent.len() > self.horizon {
            let (phase, base, forecast, _) = self.recent[0];
            let future = self
                .recent
                .iter()
                .skip(1)
                .map(|(_, _, _, r)| *r)
                .fold(0.0, f64::max);
            let q = &mut self.phases[phase];
            q.push_back((future / base, future > forecast));
            if q.len() > PHASE_SAMPLES {
                q.pop_front();
            }
            self.recent.pop_front();
        }
    }

    /// The phase's own forecast for a decision at `t_secs` from `base`, when the phase is hot.
    pub fn forecast(&mut self, t_secs: f64, base: f64, risk: f64) -> Option<f64> {
        if !(t_secs.is_finite() && base.is_finite() && risk > 0.0 && risk < 1.0) {
            return None;
        }
        let q = &self.phases[self.phase(t_secs)];
        let n = q.len();
        if n < MIN_PHASE_SAMPLES {
            return None;
        }
        let k = q.iter().filter(|(_, e)| *e).count() as f64;
        let nf = n as f64;
        if k <= nf * risk + Z * (nf * risk * (1.0 - risk)).sqrt() {
            return None;
        }
        self.scratch.clear();
        self.scratch.extend(q.iter().map(|(r, _)| *r));
        let i = (((1.0 - risk) * nf).ceil() as usize).clamp(1, n) - 1;
        let (_, r, _) = self.scratch.select_nth_unstable_by(i, f64::total_cmp);
        Some(base.max(crate::quantile::LOW_RATE_RPS) * *r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_at_a_fixed_minute_makes_its_phase_hot_and_nothing_else() {
        // 30 s polls, a horizon of 2 polls; a load of 10 with a burst to 40 at minute :02 of
        // every hour, and a forecast that always says 12.
        let mut p = PhaseTail::new(30.0, 2);
        for k in 0..(120 * 48) {
            let t = 30.0 * k as f64;
            let rate = if (t % 3600.0 - 120.0).abs() < 1.0 {
                40.0
            } else {
                10.0
            };
            p.observe(t, rate, 10.0, 12.0);
        }
        // Decisions 30 and 60 s before the burst cover it; the others do not.
        assert!((p.forecast(90.0, 10.0, 0.03).unwrap() - 40.0).abs() < 1e-9);
        assert!((p.forecast(3600.0 + 60.0, 10.0, 0.03).unwrap() - 40.0).abs() < 1e-9);
        assert_eq!(p.forecast(600.0, 10.0, 0.03), None);
        assert_eq!(p.forecast(120.0, 10.0, 0.03), None, "the burst's own poll");
    }
}
