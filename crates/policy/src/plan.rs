//! `plan`: scale ahead of the load — a forecast, the replica plan that minimises cost over it,
//! one value per second from the plan cache (issue 11; the Productify optimizer's loop, in
//! process).
//!
//! Every poll:
//!
//! 1. **History.** The measured request rate is averaged into 5-minute buckets
//!    ([`autoscaler_forecast::BUCKET_SECS`], bucket `⌊t/300⌋`), the unit every forecaster fits
//!    on. A bucket without any measurement takes the previous bucket's value (a gap is not read
//!    as zero load; documented in [`Plan::buckets_filled`]).
//! 2. **Forecast**, every `refit_min` minutes ([`autoscaler_forecast::FORECAST_INTERVAL_MIN`]):
//!    the chosen model (`model`: 0 SARIMAX, the default, with its order chosen by AIC daily;
//!    1 MSTL; 2 lag XGBoost; 3 seasonal naive; 4 naive) on the complete buckets, never on the
//!    bucket still filling. With fewer buckets than the model needs (SARIMAX: 32, 2 h 40 min;
//!    the seasonal models: two days) the naive forecast stands in, and the reason says so.
//! 3. **Capacity** of one replica from the service's own metrics: the load per ready replica at
//!    which the fitted latency curve ([`LatencyCurve`]) reaches `margin × SLA`; until the curve
//!    can be fitted there is no plan (step 5's hold).
//! 4. **Plan**, when the cache asks for a fresh one (after
//!    [`autoscaler_planner::cache::CACHE_USES_BEFORE_REFRESH`] uses, i.e. every minute at 30 s
//!    polls): demand per one-minute step from the forecast by the `demand` policy (0
//!    confidence-aware: the interval's upper bound, the default; 1 buffered: mean ×
//!    (1 + `headroom`); 2 ceiling: the horizon's highest mean), looked up
//!    [`autoscaler_planner::PLAN_LEAD_SECS`] ahead (a new replica's start-up), floored at the
//!    measured rate over the lead time (the forecast of a 5-minute mean never plans below the
//!    load measured now); the seed's MILP ([`autoscaler_planner::solve`], time-limited, every
//!    plan verified, interpolation fallback) plans [`autoscaler_planner::PLAN_STEPS`] steps; the
//!    plan is expanded to one value per second and installed in the [`PlanCache`].
//! 5. **Serve** the value at `seconds_elapsed % cache_size`. A failed re-plan keeps serving the
//!    cached plan; metrics older than `max_age_secs`, or no plan yet → the conservative default:
//!    hold the current count, never scale down.
//! 6. **Reactive emergency fallback** (`emergency` = 1, the default; the spec's): when the
//!    measured p95 is over the SLA or requests fail, at least the current count plus half
//!    (rounded up, at least one) — a forecast that missed a spike does not leave the service
//!    drowning.

use autoscaler_forecast::{
    baseline::Naive, make_model, Forecast, Forecaster, History, ModelInfo, BUCKET_SECS,
    FORECAST_INTERVAL_MIN,
};
use autoscaler_planner::cache::{PlanCache, Served, MAX_METRICS_AGE_SECS};
use autoscaler_planner::{
    demand_from_forecast, solve, DemandPolicy, PlanParams, BUFFER_HEADROOM, PLAN_LEAD_SECS,
    PLAN_STEPS, PLAN_STEP_SECS,
};

use crate::curve::LatencyCurve;
use crate::{params_json, Observation, Policy, PolicySpec, Recommendation};

/// Parameters of `plan`.
pub const PARAMETERS: &[&str] = &[
    "demand",
    "headroom",
    "model",
    "refit_min",
    "margin",
    "max_age_secs",
    "emergency",
    "period_secs",
];
/// Default demand policy: 0 confidence-aware, 1 buffered, 2 ceiling.
pub const DEFAULT_DEMAND: f64 = 0.0;
/// Default forecaster: 0 sarimax, 1 mstl, 2 lag_xgboost, 3 seasonal_naive, 4 naive.
pub const DEFAULT_MODEL: f64 = 0.0;
/// The forecasters by their `model` number.
pub const MODELS: [&str; 5] = ["sarimax", "mstl", "lag_xgboost", "seasonal_naive", "naive"];
/// Default target p95 as a fraction of the SLA (the capacity of a replica is the load at which
/// its fitted curve reaches it).
pub const DEFAULT_MARGIN: f64 = 0.8;
/// Default emergency fallback: 1 on, 0 off (for comparisons only).
pub const DEFAULT_EMERGENCY: f64 = 1.0;
/// Requests that fail above this share (percent) count as an emergency.
pub const EMERGENCY_ERROR_PCT: f64 = 1.0;

/// The plan policy's state for one service.
pub struct Plan {
    spec: PolicySpec,
    demand: DemandPolicy,
    model_name: &'static str,
    forecaster: Box<dyn Forecaster>,
    refit_secs: f64,
    margin: f64,
    emergency: bool,
    period_secs: f64,
    /// Complete 5-minute buckets (mean requests/s), the first at absolute bucket `first`.
    buckets: Vec<f64>,
    first: Option<usize>,
    /// The bucket filling now: (index, sum, count).
    filling: Option<(usize, f64, u32)>,
    filled: u64,
    /// The last forecast: it starts at absolute bucket `.1`; the model that made it and why.
    forecast: Option<(Forecast, usize, ModelInfo, Option<String>)>,
    last_fit_secs: Option<f64>,
    curve: LatencyCurve,
    last_ready: Option<u32>,
    last_rps: Option<(f64, f64)>,
    cache: PlanCache,
    last_plan: Option<autoscaler_planner::Plan>,
    capacity: Option<f64>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("spec", &self.spec)
            .field("buckets", &self.buckets.len())
            .finish()
    }
}

/// Forecast buckets asked for: the plan's horizon, the lead and the bucket in progress.
fn forecast_buckets(refit_secs: f64) -> usize {
    let secs = PLAN_STEPS as f64 * PLAN_STEP_SECS as f64
        + PLAN_LEAD_SECS as f64
        + BUCKET_SECS as f64
        + refit_secs;
    (secs / BUCKET_SECS as f64).ceil() as usize
}

impl Plan {
    /// From a spec.
    pub fn from_spec(spec: &PolicySpec) -> Result<Self, String> {
        let headroom = spec.get("headroom", BUFFER_HEADROOM);
        if !(headroom.is_finite() && headroom >= 0.0) {
            return Err(format!("headroom = {headroom} must be >= 0"));
        }
        let demand = match spec.get("demand", DEFAULT_DEMAND) {
            0.0 => DemandPolicy::ConfidenceAware,
            1.0 => DemandPolicy::Buffered { headroom },
            2.0 => DemandPolicy::Ceiling,
            v => {
                return Err(format!(
                    "demand = {v}: 0 confidence-aware, 1 buffered, 2 ceiling"
                ))
            }
        };
        let m = spec.get("model", DEFAULT_MODEL);
        let model_name = MODELS
            .get(m as usize)
            .filter(|_| m.fract() == 0.0 && m >= 0.0)
            .copied()
            .ok_or_else(|| {
                format!(
                    "model = {m}: {}",
                    MODELS
                        .iter()
                        .enumerate()
                        .map(|(i, n)| format!("{i} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        let forecaster = make_model(model_name).map_err(|e| e.to_string())?;
        let refit_min = spec.get("refit_min", f64::from(FORECAST_INTERVAL_MIN));
        if !(refit_min.is_finite() && refit_min >= 1.0) {
            return Err(format!("refit_min = {refit_min} must be >= 1"));
        }
        let margin = spec.get("margin", DEFAULT_MARGIN);
        if !(margin > 0.0 && margin <= 1.0) {
            return Err(format!("margin = {margin} must be in (0, 1]"));
        }
        let max_age = spec.get("max_age_secs", MAX_METRICS_AGE_SECS);
        if !(max_age.is_finite() && max_age > 0.0) {
            return Err(format!("max_age_secs = {max_age} must be > 0"));
        }
        let emergency = match spec.get("emergency", DEFAULT_EMERGENCY) {
            0.0 => false,
            1.0 => true,
            v => return Err(format!("emergency = {v}: 1 on, 0 off")),
        };
        let period_secs = spec.get("period_secs", crate::DEFAULT_POLL_SECS);
        if !(period_secs.is_finite() && period_secs >= 1.0) {
            return Err(format!("period_secs = {period_secs} must be >= 1"));
        }
        Ok(Plan {
            spec: spec.clone(),
            demand,
            model_name,
            forecaster,
            refit_secs: refit_min * 60.0,
            margin,
            emergency,
            period_secs,
            buckets: Vec::new(),
            first: None,
            filling: None,
            filled: 0,
            forecast: None,
            last_fit_secs: None,
            curve: LatencyCurve::default(),
            last_ready: None,
            last_rps: None,
            cache: PlanCache::with_max_metrics_age(max_age),
            last_plan: None,
            capacity: None,
        })
    }

    /// Complete buckets so far.
    pub fn buckets(&self) -> &[f64] {
        &self.buckets
    }

    /// Buckets that had no measurement and took the previous bucket's value.
    pub fn buckets_filled(&self) -> u64 {
        self.filled
    }

    /// The capacity of one replica the last plan used, requests/s.
    pub fn capacity(&self) -> Option<f64> {
        self.capacity
    }

    /// The last plan made.
    pub fn last_plan(&self) -> Option<&autoscaler_planner::Plan> {
        self.last_plan.as_ref()
    }

    /// The model that made the last forecast (order and AIC for SARIMAX).
    pub fn forecast_info(&self) -> Option<&ModelInfo> {
        self.forecast.as_ref().map(|f| &f.2)
    }

    /// Add a measurement at `t_secs` to the buckets.
    fn record(&mut self, t_secs: f64, rps: f64) {
        let b = (t_secs.max(0.0) / BUCKET_SECS as f64).floor() as usize;
        match self.filling {
            Some((cur, sum, n)) if cur == b => self.filling = Some((cur, sum + rps, n + 1)),
            Some((cur, sum, n)) if b > cur => {
                self.close(cur, sum / f64::from(n));
                self.filling = Some((b, rps, 1));
            }
            // Time went backwards (a restart of the clock): start the history again.
            Some(_) => {
                self.buckets.clear();
                self.first = None;
                self.forecast = None;
                self.filling = Some((b, rps, 1));
            }
            None => self.filling = Some((b, rps, 1)),
        }
    }

    /// Close bucket `b` with mean `mean`, filling any gap before it with the previous value.
    fn close(&mut self, b: usize, mean: f64) {
        match self.first {
            None => {
                self.first = Some(b);
                self.buckets.push(mean);
            }
            Some(first) => {
                let next = first + self.buckets.len();
                if b >= next {
                    let prev = self.buckets.last().copied().unwrap_or(mean);
                    for _ in next..b {
                        self.buckets.push(prev);
                        self.filled += 1;
                    }
                    self.buckets.push(mean);
                }
            }
        }
        // Keep at most two weeks (the longest history any model fits on).
        let keep = 2 * autoscaler_forecast::BUCKETS_PER_WEEK;
        if self.buckets.len() > keep {
            let drop = self.buckets.len() - keep;
            self.buckets.drain(..drop);
            self.first = self.first.map(|f| f + drop);
        }
    }

    /// Refit the forecast when due.
    fn refit(&mut self, t_secs: f64) {
        let due = self.forecast.is_none()
            || self
                .last_fit_secs
                .is_none_or(|last| t_secs - last >= self.refit_secs || t_secs < last);
        let Some(first) = self.first else {
            return;
        };
        if !due || self.buckets.is_empty() {
            return;
        }
        let h = History::new(first, self.buckets.clone());
        let steps = forecast_buckets(self.refit_secs);
        let fitted: Result<(Forecast, ModelInfo), String> =
            if h.len() >= self.forecaster.min_history() {
                self.forecaster
                    .fit_forecast(&h, steps)
                    .map(|f| (f, self.forecaster.info()))
                    .map_err(|e| format!("{} failed ({e}); naive", self.model_name))
            } else {
                Err(format!(
                    "{} needs {} buckets, has {}; naive",
                    self.model_name,
                    self.forecaster.min_history(),
                    h.len()
                ))
            };
        let (f, info, note) = match fitted {
            Ok((f, info)) => (f, info, None),
            Err(note) => {
                let f = match Naive.fit_forecast(&h, steps) {
                    Ok(f) => f,
                    // Fewer than two buckets, or a constant series: the last value, no spread.
                    Err(_) => {
                        let v = self.buckets.last().copied().unwrap_or(0.0);
                        Forecast {
                            mean: vec![v; steps],
                            lower: vec![v; steps],
                            upper: vec![v; steps],
                            level: autoscaler_forecast::INTERVAL_LEVEL,
                        }
                    }
                };
                (f, Naive.info(), Some(note))
            }
        };
        self.forecast = Some((f, h.end(), info, note));
        self.last_fit_secs = Some(t_secs);
    }

    /// The demand per plan step from now, or `None` without a forecast.
    fn demand_now(&self, t_secs: f64, rps_now: f64) -> Option<Vec<f64>> {
        let (f, start, _, _) = self.forecast.as_ref()?;
        let bucket = (t_secs.max(0.0) / BUCKET_SECS as f64).floor() as usize;
        let skip = bucket
            .saturating_sub(*start)
            .min(f.mean.len().saturating_sub(1));
        let shifted = Forecast {
            mean: f.mean[skip..].to_vec(),
            lower: f.lower[skip..].to_vec(),
            upper: f.upper[skip..].to_vec(),
            level: f.level,
        };
        // Seconds of the current bucket already gone: the shifted forecast starts at its start.
        let into = (t_secs.max(0.0) - ((start + skip) * BUCKET_SECS as usize) as f64).max(0.0);
        let lead = PLAN_LEAD_SECS + into.round() as u64;
        let mut d = demand_from_forecast(&shifted, self.demand, PLAN_STEPS, PLAN_STEP_SECS, lead);
        for (t, v) in d.iter_mut().enumerate() {
            if t as u64 * PLAN_STEP_SECS <= PLAN_LEAD_SECS {
                *v = v.max(rps_now);
            }
        }
        Some(d)
    }

    /// Make a fresh plan and install it; `Err` with the reason when none can be made.
    fn replan(&mut self, obs: &Observation<'_>, rps_now: f64) -> Result<(), String> {
        let capacity = self
            .curve
            .fit()
            .map(|fit| fit.rate_for(self.margin * obs.sla_p95_ms))
            .filter(|c| c.is_finite() && *c > 0.0)
            .ok_or("no capacity yet (the latency curve cannot be fitted)")?;
        let demand = self
            .demand_now(obs.t_secs, rps_now)
            .ok_or("no forecast yet")?;
        let params = PlanParams::new(obs.replicas, obs.bounds.min, obs.bounds.max, capacity);
        let plan = solve(&params, &demand).map_err(|e| e.to_string())?;
        let per_second: Vec<u32> = plan
            .replicas
            .iter()
            .flat_map(|r| std::iter::repeat_n(*r, PLAN_STEP_SECS as usize))
            .collect();
        self.cache
            .install(per_second, plan.fallback.is_some(), obs.t_secs)
            .map_err(|e| e.to_string())?;
        self.capacity = Some(capacity);
        self.last_plan = Some(plan);
        Ok(())
    }
}

impl Policy for Plan {
    fn name(&self) -> String {
        "plan".into()
    }

    fn params(&self) -> serde_json::Value {
        let mut v = params_json(
            &self.spec,
            &[
                ("demand", DEFAULT_DEMAND),
                ("headroom", BUFFER_HEADROOM),
                ("model", DEFAULT_MODEL),
                ("refit_min", f64::from(FORECAST_INTERVAL_MIN)),
                ("margin", DEFAULT_MARGIN),
                ("max_age_secs", MAX_METRICS_AGE_SECS),
                ("emergency", DEFAULT_EMERGENCY),
            ],
        );
        v["demand_policy"] = serde_json::json!(match self.demand {
            DemandPolicy::ConfidenceAware => "confidence-aware",
            DemandPolicy::Buffered { .. } => "buffered",
            DemandPolicy::Ceiling => "ceiling",
        });
        v["forecaster"] = serde_json::json!(self.model_name);
        v
    }

    fn period_secs(&self) -> f64 {
        self.period_secs
    }

    fn recommend(&mut self, obs: &Observation<'_>) -> Recommendation {
        let f = obs.features;
        let ready = obs.ready_replicas;
        let current = obs.bounds.clamp(obs.replicas);
        // The curve learns from polls whose window saw one replica count.
        let steady = self.last_ready == Some(ready) && ready > 0 && ready == obs.replicas;
        if let (true, Some(rps), Some(p95)) = (steady, f.request_rate_rps, f.p95_latency_ms) {
            self.curve.observe(
                rps / f64::from(ready),
                p95,
                f.error_rate_pct.unwrap_or(0.0),
                obs.sla_p95_ms,
            );
        }
        self.last_ready = Some(ready);
        if let Some(rps) = f.request_rate_rps.filter(|r| r.is_finite() && *r >= 0.0) {
            self.record(obs.t_secs, rps);
            self.last_rps = Some((obs.t_secs, rps));
        }
        let age = self
            .last_rps
            .map_or(f64::INFINITY, |(t, _)| (obs.t_secs - t).max(0.0));
        let rps_now = self.last_rps.map_or(0.0, |(_, r)| r);
        let mut why_no_plan = None;
        if age.is_finite() {
            self.refit(obs.t_secs);
            if self.cache.needs_refresh() {
                if let Err(e) = self.replan(obs, rps_now) {
                    self.cache.refresh_failed();
                    why_no_plan = Some(e);
                }
            }
        }
        let served = self.cache.serve(obs.t_secs, current, age);
        let mut replicas = obs.bounds.clamp(served.replicas());
        let mut reason = match &served {
            Served::Plan {
                index, fallback, ..
            } => {
                let (model, note) = self
                    .forecast
                    .as_ref()
                    .map(|(_, _, info, note)| {
                        let m = match (&info.order, info.aic) {
                            (Some(o), Some(aic)) => format!("{} {o} AIC {aic:.1}", info.model),
                            _ => info.model.clone(),
                        };
                        (m, note.clone())
                    })
                    .unwrap_or_default();
                let status = self
                    .last_plan
                    .as_ref()
                    .map(|p| format!("{:?}", p.status).to_lowercase())
                    .unwrap_or_default();
                let mut r = format!(
                    "plan[{index} s] {replicas} ({model}, {status}, capacity {:.1} rps/replica)",
                    self.capacity.unwrap_or(f64::NAN)
                );
                if *fallback {
                    if let Some(why) = self.last_plan.as_ref().and_then(|p| p.fallback.clone()) {
                        r.push_str(&format!("; fallback: {why}"));
                    }
                }
                if let Some(n) = note {
                    r.push_str(&format!("; {n}"));
                }
                r
            }
            Served::Hold { reason, .. } => {
                let why = why_no_plan.clone().unwrap_or_else(|| format!("{reason:?}"));
                format!("hold {replicas} (conservative default: {why})")
            }
        };
        if let (Some(e), Served::Plan { .. }) = (&why_no_plan, &served) {
            reason.push_str(&format!("; re-plan failed ({e}), serving the cached plan"));
        }
        if self.emergency {
            let over = f.p95_latency_ms.is_some_and(|p| p > obs.sla_p95_ms)
                || f.error_rate_pct.is_some_and(|e| e > EMERGENCY_ERROR_PCT);
            if over {
                let need = obs.bounds.clamp(current + current.div_ceil(2).max(1));
                if need > replicas {
                    reason = format!(
                        "emergency {need}: p95 {:.0} ms / errors {:.1} % over the SLA ({reason})",
                        f.p95_latency_ms.unwrap_or(f64::NAN),
                        f.error_rate_pct.unwrap_or(f64::NAN)
                    );
                    replicas = need;
                }
            }
        }
        Recommendation::new(replicas, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Bounds, PolicyKind};
    use autoscaler_contract::Features;

    /// p95 of an M/M/1-shaped service: 50 ms at no load, capacity 10 rps per replica.
    fn p95(rps: f64, ready: u32) -> f64 {
        let r = rps / f64::from(ready.max(1));
        if r >= 9.5 {
            5000.0
        } else {
            50.0 / (1.0 - r / 10.0)
        }
    }

    fn features(rps: Option<f64>, p95_ms: Option<f64>) -> Features {
        Features {
            request_rate_rps: rps,
            p95_latency_ms: p95_ms,
            error_rate_pct: Some(0.0),
            ..Features::default()
        }
    }

    const BOUNDS: Bounds = Bounds { min: 1, max: 20 };

    /// Drive `p` every 30 s from `from` to `to` with the load `load(t)`; replicas follow the
    /// recommendation at once. Returns the last recommendation and the replica count.
    fn drive(
        p: &mut Plan,
        mut replicas: u32,
        from: f64,
        to: f64,
        load: impl Fn(f64) -> f64,
    ) -> (Recommendation, u32) {
        let mut t = from;
        let mut last = None;
        while t < to {
            let rps = load(t);
            let f = features(Some(rps), Some(p95(rps, replicas)));
            let rec = p.recommend(&Observation {
                t_secs: t,
                features: &f,
                replicas,
                ready_replicas: replicas,
                bounds: BOUNDS,
                sla_p95_ms: 250.0,
            });
            assert!(BOUNDS.contains(rec.replicas), "{rec:?}");
            replicas = rec.replicas;
            last = Some(rec);
            t += 30.0;
        }
        (last.expect("at least one poll"), replicas)
    }

    fn plan(params: &[(&str, f64)]) -> Plan {
        let mut s = PolicySpec::new(PolicyKind::Plan);
        for (k, v) in params {
            s = s.with(k, *v);
        }
        Plan::from_spec(&s).unwrap()
    }

    /// A daily step: 20 rps, 50 rps from 10:00 to 12:00; a little wobble so the curve can fit.
    fn daily_step(t: f64) -> f64 {
        let h = (t % 86_400.0) / 3600.0;
        let base = if (10.0..12.0).contains(&h) {
            50.0
        } else {
            20.0
        };
        base * (1.0 + 0.15 * ((t / 600.0).sin()))
    }

    #[test]
    fn holds_until_it_has_a_capacity_and_never_scales_down_meanwhile() {
        let mut p = plan(&[]);
        let f = features(Some(5.0), Some(60.0));
        let rec = p.recommend(&Observation {
            t_secs: 0.0,
            features: &f,
            replicas: 6,
            ready_replicas: 6,
            bounds: BOUNDS,
            sla_p95_ms: 250.0,
        });
        assert_eq!(rec.replicas, 6, "{rec:?}");
        assert!(rec.reason.contains("conservative default"), "{rec:?}");
        assert!(rec.reason.contains("no capacity yet"), "{rec:?}");
    }

    #[test]
    fn scales_ahead_of_a_daily_rise_it_has_seen() {
        let mut p = plan(&[("model", 3.0)]); // seasonal naive: one day of history is enough
        let day = 86_400.0;
        // Up to one day and ten hours less a minute: the last poll is 90 s before the rise, within
        // the plan's lead (PLAN_LEAD_SECS, 120 s: a replica asked for now is ready by then).
        let (rec, replicas) = drive(&mut p, 4, 0.0, day + 10.0 * 3600.0 - 60.0, daily_step);
        let cap = p.capacity().expect("a capacity was learned");
        assert!((6.0..9.0).contains(&cap), "capacity {cap}");
        let now_need = (daily_step(day + 10.0 * 3600.0 - 90.0) / cap).ceil() as u32;
        assert!(
            replicas > now_need,
            "ahead of the rise: {replicas} replicas, the load now needs {now_need} ({rec:?})"
        );
        assert!(rec.reason.starts_with("plan["), "{rec:?}");
        assert!(rec.reason.contains("seasonal_naive"), "{rec:?}");
        // And it comes back down after the peak.
        let (rec, after) = drive(
            &mut p,
            replicas,
            day + 10.0 * 3600.0 - 60.0,
            day + 14.0 * 3600.0,
            daily_step,
        );
        assert!(after < replicas + 3 && after <= 5, "{after} ({rec:?})");
    }

    #[test]
    fn sarimax_stands_in_with_naive_until_it_has_enough_buckets() {
        let mut p = plan(&[]);
        let (rec, _) = drive(&mut p, 4, 0.0, 3600.0, daily_step);
        assert!(rec.reason.contains("sarimax needs 32 buckets"), "{rec:?}");
        let (rec, _) = drive(&mut p, 4, 3600.0, 4.0 * 3600.0, daily_step);
        assert!(rec.reason.contains("sarimax"), "{rec:?}");
        assert!(!rec.reason.contains("naive"), "{rec:?}");
        assert!(p.forecast_info().and_then(|i| i.aic).is_some());
    }

    #[test]
    fn stale_metrics_hold_the_current_count() {
        let mut p = plan(&[("model", 4.0)]);
        let (_, replicas) = drive(&mut p, 4, 0.0, 3600.0, daily_step);
        let f = features(None, None);
        let rec = p.recommend(&Observation {
            t_secs: 3600.0 + 600.0,
            features: &f,
            replicas: replicas + 2,
            ready_replicas: replicas + 2,
            bounds: BOUNDS,
            sla_p95_ms: 250.0,
        });
        assert_eq!(rec.replicas, replicas + 2, "{rec:?}");
        assert!(rec.reason.contains("StaleMetrics"), "{rec:?}");
    }

    #[test]
    fn the_emergency_fallback_adds_half_when_the_sla_is_broken() {
        let mut p = plan(&[]);
        let f = features(Some(5.0), Some(900.0));
        let rec = p.recommend(&Observation {
            t_secs: 0.0,
            features: &f,
            replicas: 4,
            ready_replicas: 4,
            bounds: BOUNDS,
            sla_p95_ms: 250.0,
        });
        assert_eq!(rec.replicas, 6, "{rec:?}");
        assert!(rec.reason.starts_with("emergency"), "{rec:?}");
        let mut off = plan(&[("emergency", 0.0)]);
        let rec = off.recommend(&Observation {
            t_secs: 0.0,
            features: &f,
            replicas: 4,
            ready_replicas: 4,
            bounds: BOUNDS,
            sla_p95_ms: 250.0,
        });
        assert_eq!(rec.replicas, 4, "{rec:?}");
    }

    #[test]
    fn gaps_take_the_previous_bucket_not_zero() {
        let mut p = plan(&[("model", 4.0)]);
        for (t, r) in [(0.0, 10.0), (100.0, 20.0), (1300.0, 40.0), (1600.0, 1.0)] {
            p.record(t, r);
        }
        // Buckets 0 (15), 1..=3 missing (15 each), 4 (40); bucket 5 still filling.
        assert_eq!(p.buckets(), &[15.0, 15.0, 15.0, 15.0, 40.0]);
        assert_eq!(p.buckets_filled(), 3);
    }

    #[test]
    fn bad_parameters_are_refused() {
        for (k, v) in [
            ("demand", 5.0),
            ("model", 9.0),
            ("model", 0.5),
            ("margin", 0.0),
            ("refit_min", 0.0),
            ("emergency", 2.0),
            ("headroom", -1.0),
        ] {
            let s = PolicySpec::new(PolicyKind::Plan).with(k, v);
            assert!(Plan::from_spec(&s).is_err(), "{k} = {v}");
        }
        for d in [0.0, 1.0, 2.0] {
            let p = plan(&[("demand", d)]);
            assert!(p.params()["demand_policy"].is_string());
        }
    }
}
