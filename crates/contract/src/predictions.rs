//! # The prediction log: `output/predictions_<model>.csv`
//!
//! Every inference service appends one row per vote to `predictions_<model>.csv` in its
//! predictions directory, so each prediction can later be joined (on `vector_id`, or on
//! `service` + `metric_time`) with the outcome the next polls measured, for retraining. This
//! module defines the columns; the writer (size rotation, safe with several replicas of one
//! model) is `autoscaler_telemetry::predictions`.
//!
//! Columns, in order ([`PREDICTION_COLUMNS`]):
//!
//! | column | meaning |
//! |---|---|
//! | `vector_id` | the vector voted on ([`crate::VectorId`]) |
//! | `service` | its service |
//! | `metric_time` | the time its metrics describe, RFC 3339 UTC |
//! | `vote_time` | when the vote was cast, RFC 3339 UTC |
//! | `model` | `xgboost`, `random_forest` or `logistic_regression` |
//! | `model_version` | the artefact's version |
//! | `replicas` | replicas the vector was measured at (empty: unknown) |
//! | the ten [`crate::FEATURE_NAMES`] | the vector's features (empty: not measured — never 0) |
//! | `probability` | P(SLA violation within the horizon) (empty: abstained) |
//! | `prediction` | 1 scale up, 0 no action (empty: abstained) |
//! | `threshold` | the model's decision threshold |
//! | `probability_one_fewer` | P(violation) at one replica fewer (empty: not computable) |
//! | `abstain_reason` | why the model abstained (empty otherwise) |
//!
//! An empty field is a missing value; numbers are written with Rust's shortest round-trip
//! formatting, so a reader gets back the exact `f64`.

use crate::{FeatureVector, Vote, FEATURE_NAMES};

/// Columns of the prediction log before the features.
const HEAD: [&str; 7] = [
    "vector_id",
    "service",
    "metric_time",
    "vote_time",
    "model",
    "model_version",
    "replicas",
];
/// Columns of the prediction log after the features.
const TAIL: [&str; 5] = [
    "probability",
    "prediction",
    "threshold",
    "probability_one_fewer",
    "abstain_reason",
];

/// The prediction log's columns, in order (22 of them).
pub const PREDICTION_COLUMNS: [&str; 22] = {
    let mut cols = [""; 22];
    let mut i = 0;
    while i < HEAD.len() {
        cols[i] = HEAD[i];
        i += 1;
    }
    let mut j = 0;
    while j < FEATURE_NAMES.len() {
        cols[HEAD.len() + j] = FEATURE_NAMES[j];
        j += 1;
    }
    let mut k = 0;
    while k < TAIL.len() {
        cols[HEAD.len() + FEATURE_NAMES.len() + k] = TAIL[k];
        k += 1;
    }
    cols
};

/// The prediction log's file name for `model`: `predictions_<model>.csv`.
pub fn predictions_file_name(model: crate::ModelKind) -> String {
    format!("predictions_{}.csv", model.as_str())
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// One row of the prediction log: `vote` on `vector`, as fields in [`PREDICTION_COLUMNS`] order.
pub fn prediction_record(vector: &FeatureVector, vote: &Vote) -> Vec<String> {
    let mut row = Vec::with_capacity(PREDICTION_COLUMNS.len());
    row.push(vote.vector_id.0.clone());
    row.push(vote.service.clone());
    row.push(
        vote.metric_time
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    row.push(
        vote.timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    row.push(vote.model.as_str().to_string());
    row.push(vote.model_version.clone());
    row.push(opt(vote.replicas));
    for (_, v) in vector.features.named() {
        row.push(opt(v));
    }
    row.push(opt(vote.probability));
    row.push(opt(vote.prediction));
    row.push(vote.threshold.to_string());
    row.push(opt(vote.probability_one_fewer));
    row.push(vote.abstain_reason.clone().unwrap_or_default());
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Features, ModelKind, VectorId, SCHEMA_VERSION};
    use chrono::DateTime;

    #[test]
    fn columns_and_record_line_up_and_missing_is_empty() {
        assert_eq!(PREDICTION_COLUMNS[0], "vector_id");
        assert_eq!(PREDICTION_COLUMNS[7], "request_rate_rps");
        assert_eq!(PREDICTION_COLUMNS[16], "delta_cpu_usage_pct");
        assert_eq!(PREDICTION_COLUMNS[21], "abstain_reason");
        assert!(PREDICTION_COLUMNS.iter().all(|c| !c.is_empty()));
        let t = DateTime::from_timestamp(1_720_000_000, 0).unwrap();
        let vector = FeatureVector {
            schema_version: SCHEMA_VERSION,
            vector_id: VectorId::new("orders", 3, t),
            timestamp: t,
            metric_time: t,
            service: "orders".into(),
            poll: 3,
            replicas: Some(2),
            stale: false,
            stale_reason: None,
            features: Features {
                request_rate_rps: Some(0.1 + 0.2),
                p95_latency_ms: None,
                ..Features::default()
            },
        };
        let vote = Vote {
            schema_version: SCHEMA_VERSION,
            vector_id: vector.vector_id.clone(),
            timestamp: t,
            metric_time: t,
            service: "orders".into(),
            model: ModelKind::RandomForest,
            model_version: "random_forest-1".into(),
            prediction: Some(1),
            probability: Some(0.75),
            confidence: Some(0.75),
            threshold: 0.5,
            abstain_reason: None,
            replicas: Some(2),
            probability_one_fewer: None,
            p95_latency_ms: None,
        };
        let row = prediction_record(&vector, &vote);
        assert_eq!(row.len(), PREDICTION_COLUMNS.len());
        let get = |c: &str| &row[PREDICTION_COLUMNS.iter().position(|x| *x == c).unwrap()];
        assert_eq!(get("vector_id"), "orders@3@1720000000000");
        assert_eq!(get("metric_time"), "2024-07-03T09:46:40.000Z");
        assert_eq!(get("replicas"), "2");
        assert_eq!(get("p95_latency_ms"), "", "missing is empty, never 0");
        assert_eq!(get("request_rate_rps").parse::<f64>().unwrap(), 0.1 + 0.2);
        assert_eq!(get("probability"), "0.75");
        assert_eq!(get("prediction"), "1");
        assert_eq!(get("probability_one_fewer"), "");
        assert_eq!(
            predictions_file_name(ModelKind::RandomForest),
            "predictions_random_forest.csv"
        );
    }
}
