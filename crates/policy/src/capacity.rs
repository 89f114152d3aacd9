//! `capacity`: size the service for the load expected when a new replica would be ready.
//!
//! 1. **Capacity from the service's own metrics.** A [`LatencyCurve`] is fitted to the polls
//!    (load per ready replica against p95); the safe load per replica `r*` is where the curve
//!    reaches `margin × SLA`.
//! 2. **Forecast of the next start-up delay's worth of load.** A decision must cover the
//!    largest load of the next `horizon_secs` (start-up delay + a poll + half the metric
//!    window): a replica asked for now serves only then, and one removed now comes back no
//!    sooner. The default forecast is learned ([`crate::quantile`]): the `1 − risk` quantile of
//!    the observed ratios *largest rate over the next horizon / recent peak*, per level of the
//!    recent peak, times the recent peak (the largest of the measured rate and the newest half
//!    of the one-minute window extrapolated from the change since the previous poll
//!    (`extrapolate`), over the last `recent_secs`). `risk` is a budget in the SLA's own units
//!    (the share of decisions allowed to meet more load than they sized for), not a constant of
//!    the traffic's shape. A phase of the hour where that forecast is exceeded significantly
//!    more often than `risk` (load on a schedule: [`crate::phase`]) also gets its own quantile
//!    (`phase`, 1 = on). Until enough ratios are learned (or with `risk = 0`) it is Holt's
//!    forecast: the largest of the measured rate, the extrapolated newest half-window and the
//!    smoothed level plus its rising trend, plus `headroom` standard deviations of Holt's
//!    one-step errors.
//! 3. **Size:** `ceil(forecast / r*)`, at once when it is more than now; a scale-down follows the
//!    largest size of the last `down_window_secs` (a short damping: the forecast already holds
//!    what the recent peak says about the horizon).
//!
//! The defaults (margin 1, headroom 0, extrapolation 1, risk 3 %, a 20-minute recent peak, the
//! phase test on, a 2-minute scale-down window) were chosen in the lab on the shared NASA July/August and
//! Twitter traces (`docs/how-it-compares.md`). Most violations follow a load jump within a
//! minute that no smoothing predicts, and bursts come in clusters: the previous default held
//! the largest size of the last 20 minutes (a replica kept from the last peak absorbs the next
//! jump); the learned ratio to the recent peak keeps that protection where the history says
//! the peak comes back and lets it go (ratio below 1) where it does not, for ~3 % fewer
//! replica-hours on the NASA traces. Twitter's spikes come at :02 and :32 of the hour: the
//! phase test finds those phases and pre-provisions them (a quarter of the violation minutes,
//! for ~11 % more replica-hours); on the NASA traces it costs next to nothing.
//!
//! Until the curve can be fitted (the first polls, or a load that never varied) it falls back
//! to a reactive rule on the p95 alone: over the target add half the ready replicas (at least
//! one; replicas still starting count towards the step), never remove.

use std::collections::VecDeque;

use crate::curve::LatencyCurve;
use crate::phase::PhaseTail;
use crate::quantile::HorizonQuantiles;
use crate::{params_json, Observation, Policy, PolicySpec, Recommendation};

/// Default target p95 as a fraction of the SLA.
pub const DEFAULT_MARGIN: f64 = 1.0;
/// Default headroom, in standard deviations of the load's change over the horizon.
pub const DEFAULT_HEADROOM: f64 = 0.0;
/// Default forecast horizon, seconds (60 s start-up + 30 s poll + 30 s of metric lag).
pub const DEFAULT_HORIZON_SECS: f64 = 120.0;
/// Default scale-down window, seconds: the learned forecast already covers the horizon from
/// the recent peak, so the window only damps flapping (four polls).
pub const DEFAULT_DOWN_WINDOW_SECS: f64 = 120.0;
/// Whether the learned forecast also tests each phase of the hour ([`crate::phase`]): 1 on.
pub const DEFAULT_PHASE: f64 = 1.0;
/// Default look-back of the recent peak the learned forecast is relative to, seconds.
pub const DEFAULT_RECENT_SECS: f64 = 1200.0;
/// Half-life of the variability estimate, polls (an hour of 30 s polls).
const VARIABILITY_HALF_LIFE: f64 = 120.0;
/// Holt's smoothing constants of the level and the trend.
const LEVEL_ALPHA: f64 = 0.5;
/// See [`LEVEL_ALPHA`].
const TREND_BETA: f64 = 0.2;
/// Parameters of `capacity`.
pub const PARAMETERS: &[&str] = &[
    "margin",
    "headroom",
    "horizon_secs",
    "down_window_secs",
    "extrapolate",
    "period_secs",
    "risk",
    "recent_secs",
    "phase",
];
/// Default weight of the extrapolated newest half-window (0 = the window's mean only).
pub const DEFAULT_EXTRAPOLATE: f64 = 1.0;
/// Default risk budget of the learned quantile forecast ([`crate::quantile`]): the share of
/// decisions allowed to meet more load than they sized for; 0 turns the learned forecast off
/// (Holt's forecast only).
pub const DEFAULT_RISK: f64 = 0.03;

/// The sizer's state for one service.
#[derive(Debug, Clone)]
pub struct Capacity {
    margin: f64,
    headroom: f64,
    horizon_secs: f64,
    down_window_secs: f64,
    spec: PolicySpec,
    curve: LatencyCurve,
    /// Holt's smoothed level and trend of the request rate (requests/s, per poll).
    level: Option<f64>,
    trend: f64,
    last_rps: Option<f64>,
    extrapolate: f64,
    period_secs: f64,
    risk: f64,
    quantiles: HorizonQuantiles,
    var_decay: f64,
    var_w: f64,
    var_s2: f64,
    needs: VecDeque<(f64, u32)>,
    recent_secs: f64,
    /// Hot phases of the hour (`phase` = 1).
    phases: Option<PhaseTail>,
    /// The forecast bases of the last `recent_secs`: (time, requests/s).
    recent: VecDeque<(f64, f64)>,
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
            level: None,
            trend: 0.0,
            last_rps: None,
            extrapolate: spec.get("extrapolate", DEFAULT_EXTRAPOLATE),
            period_secs: spec.get("period_secs", crate::DEFAULT_POLL_SECS),
            risk: spec.get("risk", DEFAULT_RISK),
            quantiles: HorizonQuantiles::new(
                (spec.get("horizon_secs", DEFAULT_HORIZON_SECS)
                    / spec.get("period_secs", crate::DEFAULT_POLL_SECS))
                .ceil()
                .max(1.0) as usize,
            ),
            var_decay: 0.5f64.powf(1.0 / VARIABILITY_HALF_LIFE),
            var_w: 0.0,
            var_s2: 0.0,
            needs: VecDeque::new(),
            recent_secs: spec.get("recent_secs", DEFAULT_RECENT_SECS),
            phases: (spec.get("phase", DEFAULT_PHASE) > 0.0).then(|| {
                let period = spec.get("period_secs", crate::DEFAULT_POLL_SECS);
                PhaseTail::new(
                    period,
                    (spec.get("horizon_secs", DEFAULT_HORIZON_SECS) / period)
                        .ceil()
                        .max(1.0) as usize,
                )
            }),
            recent: VecDeque::new(),
            last_t: None,
            last_ready: None,
        };
        if !(c.margin > 0.0 && c.margin <= 1.0) {
            return Err(format!("margin = {} must be in (0, 1]", c.margin));
        }
        if !(0.0..1.0).contains(&c.risk) {
            return Err(format!("risk = {} must be in [0, 1)", c.risk));
        }
        if c.period_secs.is_nan() || c.period_secs <= 0.0 {
            return Err(format!("period_secs = {} must be > 0", c.period_secs));
        }
        if !(c.headroom >= 0.0
            && c.horizon_secs >= 0.0
            && c.down_window_secs >= 0.0
            && c.recent_secs >= 0.0)
        {
            return Err(
                "headroom, horizon_secs, down_window_secs and recent_secs must be >= 0".into(),
            );
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
        // Holt's linear smoothing; its one-step-ahead errors measure the load's variability.
        let steps = self.horizon_secs / period;
        let last_rps = self.last_rps.replace(rps);
        let forecast = match self.level {
            None => {
                self.level = Some(rps);
                rps
            }
            Some(level) => {
                let predicted = level + self.trend;
                let e = rps - predicted;
                self.var_w = self.var_w * self.var_decay + 1.0;
                self.var_s2 = self.var_s2 * self.var_decay + e * e;
                let new_level = LEVEL_ALPHA * rps + (1.0 - LEVEL_ALPHA) * predicted;
                self.trend = TREND_BETA * (new_level - level) + (1.0 - TREND_BETA) * self.trend;
                self.level = Some(new_level);
                let sd = (self.var_s2 / self.var_w).sqrt();
                // The smoothed level lags a jump the last poll already shows: never forecast
                // below what is measured now.
                // The newest half of the one-minute window, extrapolated from the change since
                // the previous poll (the windows of 30 s polls overlap by half): a jump shows
                // here one poll sooner than in the window's mean.
                let newest = last_rps.map_or(rps, |prev| rps + self.extrapolate * (rps - prev));
                let holt = rps.max(newest).max(new_level + self.trend.max(0.0) * steps)
                    + self.headroom * sd;
                // The learned forecast is relative to the recent peak (the largest base of the
                // last `recent_secs`), not to the load now: bursts come in clusters, so how
                // high the next minutes go is better told by how high the last ones went, and
                // the learned ratio (below 1 once a burst has passed) says how fast to let a
                // peak go.
                let now = obs.t_secs;
                let mut base = rps.max(newest);
                if self.recent_secs > 0.0 {
                    self.recent.push_back((now, base));
                    while self
                        .recent
                        .front()
                        .is_some_and(|(t, _)| *t <= now - self.recent_secs)
                    {
                        self.recent.pop_front();
                    }
                    base = self.recent.iter().map(|(_, r)| *r).fold(base, f64::max);
                }
                let learned = if self.risk > 0.0 {
                    self.quantiles.observe_with_base(rps, base);
                    let level = self.quantiles.forecast(base, self.risk);
                    match (level, self.phases.as_mut()) {
                        (Some(q), Some(p)) => {
                            p.observe(obs.t_secs, rps, base, q);
                            Some(
                                p.forecast(obs.t_secs, base, self.risk)
                                    .map_or(q, |x| x.max(q)),
                            )
                        }
                        (q, _) => q,
                    }
                } else {
                    None
                };
                learned.map_or(holt, |q| q.max(rps))
            }
        };
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
                ("extrapolate", DEFAULT_EXTRAPOLATE),
                ("risk", DEFAULT_RISK),
                ("recent_secs", DEFAULT_RECENT_SECS),
                ("phase", DEFAULT_PHASE),
            ],
        )
    }

    fn period_secs(&self) -> f64 {
        self.period_secs
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
                    // Half the ready replicas more: replicas already starting count towards
                    // the step (as in the hybrid's emergency step).
                    let ready = obs.ready_replicas.min(current);
                    (
                        obs.bounds.clamp((ready + (ready / 2).max(1)).max(current)),
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
