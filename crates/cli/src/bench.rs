//! What the benchmark commands (`bench-kafka`, `bench-footprint`) share: the feature vectors
//! they publish and percentiles.

use std::time::Duration;

use autoscaler_contract::{FeatureVector, Features, VectorId, SCHEMA_VERSION};

/// A complete feature vector of `service` at `poll`; `i` varies the load (40 levels) so the
/// models see different rows.
pub fn vector(service: &str, poll: u64, i: usize) -> FeatureVector {
    let now = chrono::Utc::now();
    let load = 20.0 + (i % 40) as f64;
    FeatureVector {
        schema_version: SCHEMA_VERSION,
        vector_id: VectorId::new(service, poll, now),
        timestamp: now,
        metric_time: now,
        service: service.to_string(),
        poll,
        replicas: Some(3),
        stale: false,
        stale_reason: None,
        features: Features {
            request_rate_rps: Some(load),
            error_rate_pct: Some(0.0),
            p50_latency_ms: Some(15.0 + load / 4.0),
            p95_latency_ms: Some(60.0 + load * 2.0),
            p99_latency_ms: Some(90.0 + load * 3.0),
            cpu_usage_pct: Some(6.0 * load + 3.0),
            memory_usage_mb: Some(360.0),
            delta_rps: Some(1.0),
            delta_p95_latency_ms: Some(2.0),
            delta_cpu_usage_pct: Some(6.0),
        },
    }
}

/// The `p`-th percentile (0-100, nearest rank) of sorted durations; zero when empty.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let d: Vec<Duration> = (1..=101).map(Duration::from_millis).collect();
        assert_eq!(pct(&d, 50.0), Duration::from_millis(51));
        assert_eq!(pct(&d, 99.0), Duration::from_millis(100));
        assert_eq!(pct(&d, 100.0), Duration::from_millis(101));
        assert_eq!(pct(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn vectors_are_complete_and_valid() {
        let v = vector("svc", 3, 7);
        assert!(v.features.missing().is_empty());
        v.features.validate().expect("valid features");
        assert_eq!(v.poll, 3);
    }
}
