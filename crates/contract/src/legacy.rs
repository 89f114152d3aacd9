//! # The legacy vector form (drop-in with the Python Sock Shop autoscaler)
//!
//! The Sock Shop seed's aggregator publishes on `metrics`
//!
//! ```json
//! {"timestamp":"2024-07-03T09:46:40","service":"orders",
//!  "features":{"request_rate_rps":41.2,"error_rate_pct":0.0,"p50_latency_ms":12.1,…}}
//! ```
//!
//! with no `schema_version` and no `vector_id`. [`decode_vector`] reads that form as well as
//! ours, so an operator can swap one service at a time. A legacy vector becomes a
//! [`FeatureVector`] with:
//!
//! * `vector_id` = `<service>@0@<timestamp, unix ms>` (derived from service and timestamp:
//!   the same message redelivered gets the same id, so it is still decided once);
//! * `metric_time` = `timestamp` = the message's `timestamp`: RFC 3339, or the seed's
//!   `datetime.isoformat()` without an offset (read as UTC), or unix seconds as a number;
//! * `poll` 0, `stale` false, `replicas` from an optional top-level `replicas` (the seed sends
//!   none; without it the models that need per-replica features abstain, saying why);
//! * each of the ten features from `features`, a missing key or `null` being *not measured*.
//!
//! Every other check still applies ([`FeatureVector::validate`]: non-empty service, finite
//! non-negative levels, error rate ≤ 100, the age limit). A message with a `schema_version` is
//! read only as the current form; a message that is neither is refused with the current form's
//! error.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use crate::{decode, ContractError, FeatureVector, Features, VectorId, SCHEMA_VERSION};

#[derive(Deserialize)]
struct Probe {
    schema_version: Option<serde_json::Value>,
    vector_id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct LegacyVector {
    timestamp: serde_json::Value,
    service: String,
    features: Features,
    #[serde(default)]
    replicas: Option<u32>,
}

/// Decode a feature vector in the current form or the legacy Sock Shop form (see the module
/// docs). Does not validate: call [`FeatureVector::validate`] as for any vector.
pub fn decode_vector(bytes: &[u8]) -> Result<FeatureVector, ContractError> {
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| ContractError::Malformed(e.to_string()))?;
    if probe.schema_version.is_some() || probe.vector_id.is_some() {
        return decode(bytes);
    }
    let legacy: LegacyVector = serde_json::from_slice(bytes).map_err(|e| {
        ContractError::Malformed(format!(
            "missing `schema_version`, and not the legacy Sock Shop form either: {e}"
        ))
    })?;
    let t = legacy_time(&legacy.timestamp)?;
    Ok(FeatureVector {
        schema_version: SCHEMA_VERSION,
        vector_id: legacy_vector_id(&legacy.service, t),
        timestamp: t,
        metric_time: t,
        service: legacy.service,
        poll: 0,
        replicas: legacy.replicas,
        stale: false,
        stale_reason: None,
        features: legacy.features,
    })
}

/// The id given to a legacy vector of `service` at `t`: `<service>@0@<unix ms>`.
pub fn legacy_vector_id(service: &str, t: DateTime<Utc>) -> VectorId {
    VectorId(format!("{service}@0@{}", t.timestamp_millis()))
}

fn legacy_time(v: &serde_json::Value) -> Result<DateTime<Utc>, ContractError> {
    let bad = || {
        ContractError::Malformed(format!(
            "legacy `timestamp` {v} is neither RFC 3339, an ISO 8601 local time, nor unix seconds"
        ))
    };
    match v {
        serde_json::Value::String(s) => {
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Ok(t.with_timezone(&Utc));
            }
            // Python's `datetime.now().isoformat()`: no offset; read as UTC.
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                .map(|n| n.and_utc())
                .ok_or_else(bad)
        }
        serde_json::Value::Number(n) => {
            let secs = n.as_f64().filter(|s| s.is_finite()).ok_or_else(bad)?;
            DateTime::from_timestamp_millis((secs * 1000.0).round() as i64).ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{"timestamp":"2024-07-03T09:46:40.250000","service":"orders",
        "features":{"request_rate_rps":41.2,"error_rate_pct":0.0,"p50_latency_ms":12.1,
        "p95_latency_ms":48.9,"p99_latency_ms":80.3,"cpu_usage_pct":152.0,
        "memory_usage_mb":310.5,"delta_rps":3.1,"delta_p95_latency_ms":4.2,
        "delta_cpu_usage_pct":11.0}}"#;

    #[test]
    fn the_seeds_vector_is_read_with_a_derived_id() {
        let v = decode_vector(SEED.as_bytes()).unwrap();
        assert_eq!(v.service, "orders");
        assert_eq!(v.vector_id.0, "orders@0@1720000000250");
        assert_eq!(v.metric_time.timestamp_millis(), 1_720_000_000_250);
        assert_eq!(v.features.p95_latency_ms, Some(48.9));
        assert_eq!(v.replicas, None);
        assert!(v.validate(None, 60).is_ok());
        // Same message, same id: a redelivery is decided once.
        assert_eq!(
            decode_vector(SEED.as_bytes()).unwrap().vector_id,
            v.vector_id
        );
    }

    #[test]
    fn legacy_times_offsets_numbers_and_replicas() {
        let v = decode_vector(
            br#"{"timestamp":"2024-07-03T11:46:40+02:00","service":"a","features":{},"replicas":3}"#,
        )
        .unwrap();
        assert_eq!(v.metric_time.timestamp(), 1_720_000_000);
        assert_eq!(v.replicas, Some(3));
        assert_eq!(
            v.features.missing().len(),
            10,
            "absent features are not measured, not 0"
        );
        let v =
            decode_vector(br#"{"timestamp":1720000000.5,"service":"a","features":{}}"#).unwrap();
        assert_eq!(v.metric_time.timestamp_millis(), 1_720_000_000_500);
        for bad in [
            &br#"{"timestamp":"yesterday","service":"a","features":{}}"#[..],
            br#"{"timestamp":true,"service":"a","features":{}}"#,
            br#"{"service":"a","features":{}}"#,
            br#"{"timestamp":"2024-07-03T09:46:40Z","service":"a"}"#,
            b"not json",
        ] {
            assert!(
                matches!(decode_vector(bad), Err(ContractError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn every_other_check_still_applies() {
        let v = decode_vector(
            br#"{"timestamp":"2024-07-03T09:46:40Z","service":"","features":{"cpu_usage_pct":1}}"#,
        )
        .unwrap();
        assert_eq!(v.validate(None, 60), Err(ContractError::Empty("service")));
        let v = decode_vector(
            br#"{"timestamp":"2024-07-03T09:46:40Z","service":"a","features":{"error_rate_pct":140}}"#,
        )
        .unwrap();
        assert!(matches!(
            v.validate(None, 60),
            Err(ContractError::OutOfRange { .. })
        ));
        let old = decode_vector(SEED.as_bytes()).unwrap();
        assert!(matches!(
            old.validate(Some(Utc::now()), 60),
            Err(ContractError::TooOld { .. })
        ));
    }

    #[test]
    fn a_versioned_message_is_only_read_as_the_current_form() {
        assert!(matches!(
            decode_vector(br#"{"schema_version":2,"service":"a","timestamp":"2024-07-03T09:46:40Z","features":{}}"#),
            Err(ContractError::UnknownSchemaVersion { found: 2, .. })
        ));
        // A vector id without a version is the current form missing its version, not legacy.
        assert!(matches!(
            decode_vector(br#"{"vector_id":"a@1@1","service":"a","timestamp":"2024-07-03T09:46:40Z","features":{}}"#),
            Err(ContractError::Malformed(_))
        ));
    }
}
