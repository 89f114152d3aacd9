//! Parameters of one simulated service.

use serde::{Deserialize, Serialize};

use crate::SimError;

/// Default [`ServiceParams::capacity_rps_per_replica`].
pub const DEFAULT_CAPACITY_RPS_PER_REPLICA: f64 = 10.0;
/// Default [`ServiceParams::base_latency_ms`].
pub const DEFAULT_BASE_LATENCY_MS: f64 = 20.0;
/// Default [`ServiceParams::startup_delay_secs`].
pub const DEFAULT_STARTUP_DELAY_SECS: f64 = 60.0;
/// Default [`ServiceParams::cpu_pct_per_rps`].
pub const DEFAULT_CPU_PCT_PER_RPS: f64 = 6.0;
/// Default [`ServiceParams::idle_cpu_pct_per_replica`].
pub const DEFAULT_IDLE_CPU_PCT_PER_REPLICA: f64 = 1.0;
/// Default [`ServiceParams::memory_base_mb_per_replica`].
pub const DEFAULT_MEMORY_BASE_MB_PER_REPLICA: f64 = 120.0;
/// Default [`ServiceParams::memory_per_inflight_mb`].
pub const DEFAULT_MEMORY_PER_INFLIGHT_MB: f64 = 0.5;
/// Default [`ServiceParams::queue_limit_secs`].
pub const DEFAULT_QUEUE_LIMIT_SECS: f64 = 5.0;
/// Default [`ServiceParams::noise`].
pub const DEFAULT_NOISE: f64 = 0.05;
/// Default [`ServiceParams::trace_scale`].
pub const DEFAULT_TRACE_SCALE: f64 = 10.0;

/// Default seed of the simulation noise (replays and simulated training runs).
pub const DEFAULT_SEED: u64 = 42;

/// How one simulated service behaves. See the crate docs for the queueing model that uses them.
///
/// Missing fields in a serialised form take their defaults; unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceParams {
    /// Requests/s one ready replica can serve (μ). Default 10.
    pub capacity_rps_per_replica: f64,
    /// Mean response time at zero load, ms. Default 20.
    pub base_latency_ms: f64,
    /// A new replica serves only this many seconds after it was asked for. Default 60.
    pub startup_delay_secs: f64,
    /// CPU, percent of one core, per request/s served. Default 6.
    pub cpu_pct_per_rps: f64,
    /// CPU, percent of one core, of an idle ready replica. Default 1.
    pub idle_cpu_pct_per_replica: f64,
    /// Resident memory of an idle ready replica, MiB. Default 120.
    pub memory_base_mb_per_replica: f64,
    /// Extra memory per queued request, MiB. Default 0.5.
    pub memory_per_inflight_mb: f64,
    /// Largest backlog, in seconds of the ready capacity, before requests are rejected with
    /// 5xx. Default 5.
    pub queue_limit_secs: f64,
    /// Relative multiplicative noise (standard deviation) on arrivals, latencies and CPU; 0
    /// turns noise off. Default 0.05.
    pub noise: f64,
    /// Multiplier on the trace's rates (the NASA sample peaks at 6.75 requests/s). Default 10.
    pub trace_scale: f64,
}

impl Default for ServiceParams {
    fn default() -> Self {
        ServiceParams {
            capacity_rps_per_replica: DEFAULT_CAPACITY_RPS_PER_REPLICA,
            base_latency_ms: DEFAULT_BASE_LATENCY_MS,
            startup_delay_secs: DEFAULT_STARTUP_DELAY_SECS,
            cpu_pct_per_rps: DEFAULT_CPU_PCT_PER_RPS,
            idle_cpu_pct_per_replica: DEFAULT_IDLE_CPU_PCT_PER_REPLICA,
            memory_base_mb_per_replica: DEFAULT_MEMORY_BASE_MB_PER_REPLICA,
            memory_per_inflight_mb: DEFAULT_MEMORY_PER_INFLIGHT_MB,
            queue_limit_secs: DEFAULT_QUEUE_LIMIT_SECS,
            noise: DEFAULT_NOISE,
            trace_scale: DEFAULT_TRACE_SCALE,
        }
    }
}

impl ServiceParams {
    /// Check every parameter, collecting all problems: capacity and base latency must be > 0,
    /// everything else ≥ 0 and finite, and noise < 1/3 (so the clamped factor stays positive).
    pub fn validate(&self) -> Result<(), SimError> {
        let mut problems = Vec::new();
        let positive = [
            ("capacity_rps_per_replica", self.capacity_rps_per_replica),
            ("base_latency_ms", self.base_latency_ms),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                problems.push(format!("{name} = {v} must be > 0"));
            }
        }
        let non_negative = [
            ("startup_delay_secs", self.startup_delay_secs),
            ("cpu_pct_per_rps", self.cpu_pct_per_rps),
            ("idle_cpu_pct_per_replica", self.idle_cpu_pct_per_replica),
            (
                "memory_base_mb_per_replica",
                self.memory_base_mb_per_replica,
            ),
            ("memory_per_inflight_mb", self.memory_per_inflight_mb),
            ("queue_limit_secs", self.queue_limit_secs),
            ("noise", self.noise),
            ("trace_scale", self.trace_scale),
        ];
        for (name, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                problems.push(format!("{name} = {v} must be >= 0"));
            }
        }
        if self.noise >= 1.0 / 3.0 {
            problems.push(format!("noise = {} must be < 0.33", self.noise));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SimError::InvalidParams(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_serde_fills_missing_fields() {
        assert!(ServiceParams::default().validate().is_ok());
        let p: ServiceParams = serde_json::from_str(r#"{"trace_scale": 2.0}"#).unwrap();
        assert_eq!(p.trace_scale, 2.0);
        assert_eq!(p.capacity_rps_per_replica, 10.0);
        assert!(serde_json::from_str::<ServiceParams>(r#"{"bogus": 1}"#).is_err());
    }

    #[test]
    fn validation_collects_every_problem() {
        let p = ServiceParams {
            capacity_rps_per_replica: 0.0,
            noise: -1.0,
            trace_scale: f64::NAN,
            ..ServiceParams::default()
        };
        match p.validate() {
            Err(SimError::InvalidParams(v)) => assert_eq!(v.len(), 3, "{v:?}"),
            other => panic!("expected InvalidParams, got {other:?}"),
        }
    }
}
