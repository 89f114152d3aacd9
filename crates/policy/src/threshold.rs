//! `threshold`: the CPU/RAM threshold start/stop script. Above the upper threshold add one
//! replica, below the lower remove one; it keeps its own desired count.

use crate::{params_json, Observation, Policy, PolicyContext, PolicySpec, Recommendation};

/// Default upper threshold, percent of the CPU request (or of the memory limit).
pub const DEFAULT_UPPER_PCT: f64 = 70.0;
/// Default lower threshold, percent.
pub const DEFAULT_LOWER_PCT: f64 = 30.0;
/// Memory limit of one replica, MiB, when the context does not give one.
pub const DEFAULT_MEMORY_LIMIT_MB: f64 = 512.0;
/// Parameters of `threshold`.
pub const PARAMETERS: &[&str] = &["upper", "lower", "cpu_request_pct", "memory_limit_mb"];

/// The script's state for one service.
#[derive(Debug, Clone)]
pub struct Threshold {
    upper: f64,
    lower: f64,
    cpu_request_pct: f64,
    memory_limit_mb: f64,
    desired: Option<u32>,
    spec: PolicySpec,
}

impl Threshold {
    /// From a spec.
    pub fn from_spec(spec: &PolicySpec, ctx: &PolicyContext) -> Result<Self, String> {
        let t = Threshold {
            upper: spec.get("upper", DEFAULT_UPPER_PCT),
            lower: spec.get("lower", DEFAULT_LOWER_PCT),
            cpu_request_pct: spec.get(
                "cpu_request_pct",
                ctx.cpu_request_pct
                    .unwrap_or(crate::hpa::DEFAULT_CPU_REQUEST_PCT),
            ),
            memory_limit_mb: spec.get(
                "memory_limit_mb",
                ctx.memory_limit_mb.unwrap_or(DEFAULT_MEMORY_LIMIT_MB),
            ),
            desired: None,
            spec: spec.clone(),
        };
        if !(t.lower >= 0.0 && t.lower < t.upper) {
            return Err(format!(
                "need 0 <= lower < upper, got lower {} upper {}",
                t.lower, t.upper
            ));
        }
        if !(t.cpu_request_pct > 0.0 && t.memory_limit_mb > 0.0) {
            return Err("cpu_request_pct and memory_limit_mb must be > 0".into());
        }
        Ok(t)
    }
}

impl Policy for Threshold {
    fn name(&self) -> String {
        "threshold".into()
    }

    fn params(&self) -> serde_json::Value {
        params_json(
            &self.spec,
            &[
                ("upper", DEFAULT_UPPER_PCT),
                ("lower", DEFAULT_LOWER_PCT),
                ("cpu_request_pct", self.cpu_request_pct),
                ("memory_limit_mb", self.memory_limit_mb),
            ],
        )
    }

    fn recommend(&mut self, obs: &Observation<'_>) -> Recommendation {
        let desired = obs.bounds.clamp(self.desired.unwrap_or(obs.replicas));
        let ready = obs.ready_replicas.max(1) as f64;
        let f = obs.features;
        let cpu = f
            .cpu_usage_pct
            .map(|c| 100.0 * c / ready / self.cpu_request_pct);
        let mem = f
            .memory_usage_mb
            .map(|m| 100.0 * m / ready / self.memory_limit_mb);
        let above = cpu.is_some_and(|c| c > self.upper) || mem.is_some_and(|m| m > self.upper);
        // Removing needs both known and both low: a missing metric never removes a replica.
        let below = cpu.is_some_and(|c| c < self.lower) && mem.is_some_and(|m| m < self.lower);
        let (next, reason) = if above {
            (desired + 1, "above the upper threshold: add one")
        } else if below {
            (
                desired.saturating_sub(1),
                "below the lower threshold: remove one",
            )
        } else {
            (desired, "between the thresholds")
        };
        let next = obs.bounds.clamp(next);
        self.desired = Some(next);
        Recommendation::new(next, reason)
    }
}
