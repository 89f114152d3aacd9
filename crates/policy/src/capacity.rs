//! `capacity`: size the service for the load expected when a new replica would be ready.
//!
//! 1. **Capacity from the service's own metrics.** A [`LatencyCurve`] is fitted to the polls
//!    (load per ready replica against p95); the safe load per replica `r*` is where the curve
//!    reaches `margin × SLA`.
//! 2. **Forecast of the next start-up delay's worth of load.** Over `horizon_secs` (the time a
//!    decision takes to serve: start-up delay + a poll + half the metric window), the load is
//!    forecast as the last rate plus its rising trend, plus `headroom` standard deviations of
//!    the observed poll-to-poll changes scaled to the horizon (headroom from observed
//!    variability, not a constant).
//! 3. **Size:** `ceil(forecast / r*)`, at once when it is more than now; a scale-down follows the
//!    largest size of the last `down_window_secs` (a removed replica takes a start-up delay to
//!    come back, a kept one costs only its time).
//!
//! Until the curve can be fitted (the first polls, or a load that never varied) it falls back
//! to a reactive rule on the p95 alone: over the target add half the replicas (at least one),
//! never remove.

use std::collections::VecDeque;

use crate::curve::LatencyCurve;
use crate::{params_json, Observation, Policy, PolicySpec, Recommendation};

/// Default target p95 as a fraction of the SLA.
pub const DEFAULT_MARGIN: f64 = 0.8;
/// Default headroom, in standard deviations of the load's change over the horizon.
pub const DEFAULT_HEADROOM: f64 = 2.0;
/// Default forecast horizon, seconds (60 s start-up + 30 s poll + 30 s of metric lag).
pub const DEFAULT_HORIZON_SECS: f64 = 120.0;
/// Default scale-down window, seconds.
pub const DEFAULT_DOWN_WINDOW_SECS: f64 = 300.0;
/// Half-life of the variability estimate, polls (an hour of 30 s polls).
const VARIABILITY_HALF_LIFE: f64 = 120.0;
/// Polls the trend is measured over (twice this many are kept).
const TREND_POLLS: usize = 3;
/// Parameters of `capacity`.
pub const PARAMETERS: &[&str] = &["margin", "headroom", "horizon_secs", "down_window_secs"];

/// The sizer's state for one service.
#[derive(Debug, Clone)]
pub struct Capacity {
    margin: f64,
    headroom: f64,
    horizon_secs: f64,
    down_window_secs: f64,
    spec: PolicySpec,
    curve: LatencyCurve,
    recent: VecDeque<f64>,
    var_decay: f64,
    var_w: f64,
    var_s2: f64,
    needs: VecDeque<(f64, u32)>,
    last_t: Option<f64>,
    last_ready: Option<u32>,
}

/// The forecast and sizing of one poll (for reasons, tests and the hybrid).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizing {
    /// Forecast load, requests/s.
    pub forecast_rps: f64,
    /// Safe load per replica, requests/s; `None` before the curve can be fitted.
    pub safe_rps_per_replica: Option<f64>,
    /// `ceil(forecast / safe)`, unbounded; `None` before the fit.
    pub need: Option<u32>,
}

impl Capacity {
    /// From a spec.
    pub fn from_spec(spec: &PolicySpec) -> Result<Self, String> {
        let c = Capacity {
            margin: spec.get("margin", DEFAULT_MARGIN),
            headroom: spec.get("headroom", DEFAULT_HEADROOM),
            horizon_secs: spec.get("horizon_secs", DEFAULT_HORIZON_SECS),
            down_window_secs: spec.get("down_window_secs", DEFAULT_DOWN_WINDOW_SECS),
            spec: spec.clone(),
            curve: LatencyCurve::default(),
            recent: VecDeque::with_capacity(2 * TREND_POLLS + 1),
            var_decay: 0.5f64.powf(1.0 / VARIABILITY_HALF_LIFE),
            var_w: 0.0,
            var_s2: 0.0,
            needs: VecDeque::new(),
            last_t: None,
            last_ready: None,
        };
        if !(c.margin > 0.0 && c.margin <= 1.0) {
            return Err(format!("margin = {} must be in (0, 1]", c.margin));
        }
        if !(c.headroom >= 0.0 && c.horizon_secs >= 0.0 && c.down_window_secs >= 0.0) {
            return Err("headroom, horizon_secs and down_window_secs must be >= 0".into());
        }
        Ok(c)
    }

    /// Learn from this poll and size the service (without bounds or the scale-down window).
    pub fn size(&mut self, obs: &Observation<'_>) -> Sizing {
        let f = obs.features;
        let ready = obs.ready_replicas;
        // The curve learns only from polls whose window saw one replica count (the ready count
        // did not change since the previous poll).
        let steady = self.last_ready == Some(ready) && ready > 0 && ready == obs.replicas;
        if let (true, Some(rps), Some(p95)) = (steady, f.request_rate_rps, f.p95_latency_ms) {
            self.curve.observe(
                rps / ready as f64,
                p95,
                f.error_rate_pct.unwrap_or(0.0),
                obs.sla_p95_ms,
            );
        }
        self.last_ready = Some(ready);
        let period = self
            .last_t
            .map_or(crate::DEFAULT_POLL_SECS, |t| (obs.t_secs - t).max(1.0));
        self.last_t = Some(obs.t_secs);
        let Some(rps) = f.request_rate_rps.filter(|r| r.is_finite()) else {
            return Sizing {
                forecast_rps: f64::NAN,
                safe_rps_per_replica: None,
                need: None,
            };
        };
        if let Some(&prev) = self.recent.back() {
            let d = rps - prev;
            self.var_w = self.var_w * self.var_decay + 1.0;
            self.var_s2 = self.var_s2 * self.var_decay + d * d;
        }
        self.recent.push_back(rps);
        while self.recent.len() > 2 * TREND_POLLS {
            self.recent.pop_front();
        }
        let steps = self.horizon_secs / period;
        let trend = if self.recent.len() == 2 * TREND_POLLS {
            let old: f64 = self.recent.iter().take(TREND_POLLS).sum::<f64>() / TREND_POLLS as f64;
            let new: f64 = self.recent.iter().skip(TREND_POLLS).sum::<f64>() / TREND_POLLS as f64;
            ((new - old) / TREND_POLLS as f64).max(0.0)
        } else {
            0.0
        };
        let sd = if self.var_w > 0.0 {
            (self.var_s2 / self.var_w).sqrt()
        } else {
            0.0
        };
        let forecast = rps + trend * steps + self.headroom * sd * steps.sqrt();
        let safe = self
            .curve
            .fit()
            .map(|fit| fit.rate_for(self.margin * obs.sla_p95_ms))
            .filter(|r| *r > 0.0);
        let need = safe.map(|s| (forecast / s - 1e-9).ceil().max(0.0).min(u32::MAX as f64) as u32);
        Sizing {
            forecast_rps: forecast,
            safe_rps_per_replica: safe,
            need,
        }
    }
}

impl Policy for Capacity {
    fn name(&self) -> String {
        "capacity".into()
    }

    fn params(&self) -> serde_json::Value {
        params_json(
            &self.spec,
            &[
                ("margin", DEFAULT_MARGIN),
                ("headroom", DEFAULT_HEADROOM),
                ("horizon_secs", DEFAULT_HORIZON_SECS),
                ("down_window_secs", DEFAULT_DOWN_WINDOW_SECS),
            ],
        )
    }

    fn recommend(&mut self, obs: &Observation<'_>) -> Recommendation {
        let sizing = self.size(obs);
        let current = obs.replicas;
        let (need, reason) = match sizing.need {
            Some(n) => (
                obs.bounds.clamp(n),
                format!(
                    "forecast {:.1} rps / {:.2} rps per replica",
                    sizing.forecast_rps,
                    sizing.safe_rps_per_replica.unwrap_or(0.0)
                ),
            ),
            None => {
                let over = obs
                    .features
                    .p95_latency_ms
                    .is_some_and(|p| p > self.margin * obs.sla_p95_ms)
                    || obs.features.error_rate_pct.is_some_and(|e| e > 0.0);
                if over {
                    (
                        obs.bounds.clamp(current + (current / 2).max(1)),
                        "no curve yet: p95 over the target, add half".to_string(),
                    )
                } else {
                    (obs.bounds.clamp(current), "no curve yet: hold".to_string())
                }
            }
        };
        let now = obs.t_secs;
        self.needs.push_back((now, need));
        while self
            .needs
            .front()
            .is_some_and(|(t, _)| *t <= now - self.down_window_secs)
        {
            self.needs.pop_front();
        }
        let rec = self.needs.iter().map(|(_, n)| *n).max().unwrap_or(need);
        let reason = if rec > need {
            format!(
                "{reason}: needs {need}, keeps {rec} (largest of the last {} s)",
                self.down_window_secs
            )
        } else {
            reason
        };
        Recommendation::new(obs.bounds.clamp(rec), reason)
    }
}
