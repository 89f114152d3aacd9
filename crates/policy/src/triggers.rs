//! `triggers`: TrafficShaprX's trigger rules.
//!
//! * CPU over its upper threshold for at least 3 consecutive polls (not in cooldown) → add one;
//! * p95 latency increasing for at least 3 consecutive polls **and** request rate increasing
//!   for at least 3 → add one;
//! * the ML vote is consulted only in the gray zone, where CPU is between the thresholds and no
//!   trigger fired: a majority of the models predicting a violation → add one;
//! * CPU under the lower threshold for at least 3 polls, and the models (if any) not predicting
//!   a violation → remove one;
//! * cooldowns: nothing for 300 s after a scale-up, 240 s after a scale-down.

use std::sync::Arc;

use crate::ensemble::Scorer;
use crate::{params_json, Observation, Policy, PolicyContext, PolicySpec, Recommendation};

/// Default upper CPU threshold, percent of the request.
pub const DEFAULT_CPU_UPPER_PCT: f64 = 70.0;
/// Default lower CPU threshold, percent of the request.
pub const DEFAULT_CPU_LOWER_PCT: f64 = 30.0;
/// Consecutive polls a trigger needs.
pub const DEFAULT_WINDOWS: f64 = 3.0;
/// Cooldown after a scale-up, seconds.
pub const DEFAULT_COOLDOWN_UP_SECS: f64 = 300.0;
/// Cooldown after a scale-down, seconds.
pub const DEFAULT_COOLDOWN_DOWN_SECS: f64 = 240.0;
/// Parameters of `triggers`.
pub const PARAMETERS: &[&str] = &[
    "cpu_upper",
    "cpu_lower",
    "windows",
    "cooldown_up_secs",
    "cooldown_down_secs",
    "cpu_request_pct",
];

/// The triggers' state for one service.
#[derive(Clone)]
pub struct Triggers {
    upper: f64,
    lower: f64,
    windows: u32,
    cooldown_up: f64,
    cooldown_down: f64,
    cpu_request_pct: f64,
    scorer: Option<Arc<Scorer>>,
    spec: PolicySpec,
    cpu_high: u32,
    cpu_low: u32,
    p95_rising: u32,
    rps_rising: u32,
    last_p95: Option<f64>,
    last_rps: Option<f64>,
    hold_until: f64,
}

impl std::fmt::Debug for Triggers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Triggers")
            .field("spec", &self.spec)
            .finish()
    }
}

impl Triggers {
    /// From a spec; the gray-zone vote uses the context's models when there are any.
    pub fn from_spec(spec: &PolicySpec, ctx: &PolicyContext) -> Result<Self, String> {
        let t = Triggers {
            upper: spec.get("cpu_upper", DEFAULT_CPU_UPPER_PCT),
            lower: spec.get("cpu_lower", DEFAULT_CPU_LOWER_PCT),
            windows: spec.get("windows", DEFAULT_WINDOWS) as u32,
            cooldown_up: spec.get("cooldown_up_secs", DEFAULT_COOLDOWN_UP_SECS),
            cooldown_down: spec.get("cooldown_down_secs", DEFAULT_COOLDOWN_DOWN_SECS),
            cpu_request_pct: spec.get(
                "cpu_request_pct",
                ctx.cpu_request_pct
                    .unwrap_or(crate::hpa::DEFAULT_CPU_REQUEST_PCT),
            ),
            scorer: ctx
                .models
                .clone()
                .map(|m| Arc::new(Scorer::new(m, ctx.strategy.unwrap_or_default_strategy()))),
            spec: spec.clone(),
            cpu_high: 0,
            cpu_low: 0,
            p95_rising: 0,
            rps_rising: 0,
            last_p95: None,
            last_rps: None,
            hold_until: f64::NEG_INFINITY,
        };
        if !(t.lower >= 0.0 && t.lower < t.upper) || t.windows == 0 {
            return Err("need 0 <= cpu_lower < cpu_upper and windows >= 1".into());
        }
        Ok(t)
    }
}

/// `Option<Strategy>` → the default rule (majority) when unset.
trait DefaultStrategy {
    fn unwrap_or_default_strategy(self) -> autoscaler_contract::Strategy;
}

impl DefaultStrategy for Option<autoscaler_contract::Strategy> {
    fn unwrap_or_default_strategy(self) -> autoscaler_contract::Strategy {
        self.unwrap_or(autoscaler_contract::Strategy::Majority)
    }
}

fn streak(count: &mut u32, yes: bool) {
    *count = if yes { *count + 1 } else { 0 };
}

impl Policy for Triggers {
    fn name(&self) -> String {
        "triggers".into()
    }

    fn params(&self) -> serde_json::Value {
        params_json(
            &self.spec,
            &[
                ("cpu_upper", DEFAULT_CPU_UPPER_PCT),
                ("cpu_lower", DEFAULT_CPU_LOWER_PCT),
                ("windows", DEFAULT_WINDOWS),
                ("cooldown_up_secs", DEFAULT_COOLDOWN_UP_SECS),
                ("cooldown_down_secs", DEFAULT_COOLDOWN_DOWN_SECS),
                ("cpu_request_pct", self.cpu_request_pct),
            ],
        )
    }

    fn recommend(&mut self, obs: &Observation<'_>) -> Recommendation {
        let f = obs.features;
        let current = obs.replicas;
        let ready = obs.ready_replicas.max(1) as f64;
        let cpu = f
            .cpu_usage_pct
            .map(|c| 100.0 * c / ready / self.cpu_request_pct);
        streak(&mut self.cpu_high, cpu.is_some_and(|c| c > self.upper));
        streak(&mut self.cpu_low, cpu.is_some_and(|c| c < self.lower));
        let rising = |now: Option<f64>, before: Option<f64>| matches!((now, before), (Some(a), Some(b)) if a > b);
        streak(
            &mut self.p95_rising,
            rising(f.p95_latency_ms, self.last_p95),
        );
        streak(
            &mut self.rps_rising,
            rising(f.request_rate_rps, self.last_rps),
        );
        self.last_p95 = f.p95_latency_ms;
        self.last_rps = f.request_rate_rps;
        if obs.t_secs < self.hold_until {
            return Recommendation::new(obs.bounds.clamp(current), "in cooldown");
        }
        let w = self.windows;
        let up_reason = if self.cpu_high >= w {
            Some(format!(
                "CPU above {}% for {} polls",
                self.upper, self.cpu_high
            ))
        } else if self.p95_rising >= w && self.rps_rising >= w {
            Some("p95 and request rate rising for 3 polls".to_string())
        } else if cpu.is_some_and(|c| c >= self.lower && c <= self.upper) {
            // Gray zone: ask the models.
            self.scorer.as_ref().and_then(|s| {
                s.violation_at(f, current, current)
                    .filter(|v| *v)
                    .map(|_| "gray zone: the models predict a violation".to_string())
            })
        } else {
            None
        };
        let (next, reason) = if let Some(r) = up_reason {
            (current + 1, r)
        } else if self.cpu_low >= w
            && !self.scorer.as_ref().is_some_and(|s| {
                s.violation_at(f, current, current.saturating_sub(1)) == Some(true)
            })
        {
            (
                current.saturating_sub(1),
                format!("CPU below {}% for {} polls", self.lower, self.cpu_low),
            )
        } else {
            (current, "no trigger".to_string())
        };
        let next = obs.bounds.clamp(next);
        if next > current {
            self.hold_until = obs.t_secs + self.cooldown_up;
            self.cpu_high = 0;
        } else if next < current {
            self.hold_until = obs.t_secs + self.cooldown_down;
            self.cpu_low = 0;
        }
        Recommendation::new(next, reason)
    }
}
