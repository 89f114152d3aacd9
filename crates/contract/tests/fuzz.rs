//! Fuzzing the contract's decoders (vector, vote, decision) under structured random input
//! (`fuzz_support`): no input panics, a decode error never echoes more than
//! [`MAX_ERROR_LEN`] bytes of the input, and what decodes and validates keeps its bounds and
//! encodes again.
//!
//! The suite runs a short pass; `FUZZ_CASES=1000000 cargo test -p autoscaler-contract --test
//! fuzz -- --ignored` (or `scripts/fuzz.sh`) the long one.

mod fuzz_support;

use autoscaler_contract::{
    decode, encode, ClockMode, ContractError, Decision, FeatureVector, SkewCheck, Vote,
    DEFAULT_MAX_SKEW_SECS, MAX_ERROR_LEN, MAX_LIST_LEN, MAX_REASON_LEN, MAX_SERVICE_LEN,
};
use chrono::Utc;
use fuzz_support::{cases, inputs, run};
use serde_json::{json, Value};

/// Short runs in the test suite.
const SHORT: u32 = 3_000;

const VECTOR_KEYS: &[&str] = &[
    "schema_version",
    "vector_id",
    "timestamp",
    "metric_time",
    "service",
    "poll",
    "replicas",
    "stale",
    "stale_reason",
    "features",
    "request_rate_rps",
    "p95_latency_ms",
    "cpu_usage_pct",
    "delta_rps",
];
const VOTE_KEYS: &[&str] = &[
    "schema_version",
    "vector_id",
    "timestamp",
    "metric_time",
    "service",
    "model",
    "model_version",
    "prediction",
    "probability",
    "confidence",
    "threshold",
    "abstain_reason",
    "replicas",
    "probability_one_fewer",
    "p95_latency_ms",
];
const DECISION_KEYS: &[&str] = &[
    "schema_version",
    "vector_id",
    "service",
    "decision",
    "timestamp",
    "metric_time",
    "scale_up_votes",
    "no_action_votes",
    "abstentions",
    "missing_models",
    "total_votes",
    "confidence",
    "strategy",
    "weighted_score",
    "votes",
    "from_replicas",
    "to_replicas",
    "reason",
    "adjustments",
    "acted",
    "dry_run",
    "model",
    "prediction",
    "probability",
];

fn now_id(service: &str) -> (String, String) {
    let t = Utc::now();
    (
        format!("{service}@42@{}", t.timestamp_millis()),
        t.to_rfc3339(),
    )
}

fn vector_samples() -> Vec<Value> {
    let (id, t) = now_id("orders");
    vec![
        json!({"schema_version":1,"vector_id":id,"timestamp":t,"metric_time":t,"service":"orders",
            "poll":42,"replicas":3,"stale":false,"stale_reason":null,
            "features":{"request_rate_rps":41.2,"error_rate_pct":0.0,"p50_latency_ms":12.1,
            "p95_latency_ms":48.9,"p99_latency_ms":80.3,"cpu_usage_pct":152.0,
            "memory_usage_mb":310.5,"delta_rps":3.1,"delta_p95_latency_ms":4.2,
            "delta_cpu_usage_pct":11.0}}),
        json!({"schema_version":1,"vector_id":id,"timestamp":t,"metric_time":t,"service":"orders",
            "poll":42,"replicas":null,"stale":true,"stale_reason":"prometheus unreachable",
            "features":{}}),
    ]
}

fn vote_samples() -> Vec<Value> {
    let (id, t) = now_id("orders");
    vec![
        json!({"schema_version":1,"vector_id":id,"timestamp":t,"metric_time":t,"service":"orders",
            "model":"xgboost","model_version":"xgboost-3f2a9c1e","prediction":1,"probability":0.87,
            "confidence":0.87,"threshold":0.5,"abstain_reason":null,"replicas":3,
            "probability_one_fewer":0.97,"p95_latency_ms":48.9}),
        json!({"schema_version":1,"vector_id":id,"timestamp":t,"metric_time":t,"service":"orders",
            "model":"random_forest","model_version":"rf-1","prediction":null,"probability":null,
            "confidence":null,"threshold":0.5,"abstain_reason":"stale input","replicas":null,
            "probability_one_fewer":null}),
    ]
}

fn decision_samples() -> Vec<Value> {
    let (id, t) = now_id("orders");
    let vote = json!({"model":"xgboost","model_version":"x-1","prediction":1,"probability":0.8,
        "confidence":0.8,"abstain_reason":null,"probability_one_fewer":0.9});
    vec![
        json!({"schema_version":1,"vector_id":id,"service":"orders","decision":"SCALE_UP",
            "timestamp":t,"metric_time":t,"scale_up_votes":2,"no_action_votes":1,"abstentions":0,
            "missing_models":[],"total_votes":3,"confidence":0.7467,"strategy":"majority",
            "weighted_score":null,"votes":[vote.clone(), vote],"from_replicas":3,"to_replicas":4,
            "reason":"2 of 3 expected models vote SCALE UP (majority)","adjustments":[],
            "acted":true,"dry_run":false}),
        json!({"schema_version":1,"vector_id":id,"service":"orders","decision":"NO_ACTION",
            "timestamp":t,"metric_time":t,"scale_up_votes":0,"no_action_votes":0,"abstentions":3,
            "missing_models":["logistic_regression"],"total_votes":2,"confidence":0.0,"strategy":"weighted",
            "weighted_score":0.1,"votes":[],"from_replicas":null,"to_replicas":null,
            "reason":"held","adjustments":["cooldown: 120 s left"],"acted":false,"dry_run":true}),
    ]
}

/// A decode error is bounded: it never carries a large part of a hostile input.
fn bounded_error(e: &ContractError) -> Result<(), String> {
    let s = e.to_string();
    if s.len() > MAX_ERROR_LEN + 256 {
        return Err(format!("error of {} bytes: {}", s.len(), &s[..200]));
    }
    Ok(())
}

fn check_vector(b: &[u8]) -> Result<(), String> {
    match decode::<FeatureVector>(b) {
        Err(e) => bounded_error(&e),
        Ok(v) => {
            let now = Utc::now();
            let _ = v.features.missing();
            let _ = v.vector_id.parse();
            let mut replay = SkewCheck::new(ClockMode::Replay, DEFAULT_MAX_SKEW_SECS);
            let _ = replay.check(now, v.metric_time);
            let mut wall = SkewCheck::new(ClockMode::Wall, DEFAULT_MAX_SKEW_SECS);
            let _ = wall.check(now, v.metric_time);
            if let Err(e) = v.validate(Some(now), DEFAULT_MAX_SKEW_SECS) {
                return bounded_error(&e);
            }
            if v.service.len() > MAX_SERVICE_LEN || v.vector_id.check_service(&v.service).is_err() {
                return Err(format!("validated but out of bounds: {v:?}"));
            }
            let ahead = (v.metric_time - now).num_seconds().abs();
            if ahead > DEFAULT_MAX_SKEW_SECS as i64 + 1 {
                return Err(format!("validated with a skew of {ahead} s"));
            }
            decode::<FeatureVector>(&encode(&v))
                .map(|_| ())
                .or_else(|e| match e {
                    ContractError::TooLarge { .. } => Ok(()),
                    e => Err(format!("a valid vector does not decode again: {e}")),
                })
        }
    }
}

fn check_vote(b: &[u8]) -> Result<(), String> {
    match decode::<Vote>(b) {
        Err(e) => bounded_error(&e),
        Ok(v) => {
            let _ = v.ballot();
            let _ = v.vector_id.parse();
            let mut replay = SkewCheck::new(ClockMode::Replay, DEFAULT_MAX_SKEW_SECS);
            let _ = replay.check(Utc::now(), v.metric_time);
            if let Err(e) = v.validate() {
                return bounded_error(&e);
            }
            if v.abstain_reason
                .as_ref()
                .is_some_and(|r| r.len() > MAX_REASON_LEN)
                || v.probability.is_some_and(|p| !(0.0..=1.0).contains(&p))
                || v.prediction.is_some_and(|p| p > 1)
            {
                return Err(format!("validated but out of bounds: {v:?}"));
            }
            decode::<Vote>(&encode(&v))
                .map(|_| ())
                .map_err(|e| format!("a valid vote does not decode again: {e}"))
        }
    }
}

fn check_decision(b: &[u8]) -> Result<(), String> {
    match decode::<Decision>(b) {
        Err(e) => bounded_error(&e),
        Ok(d) => {
            let _ = d.vector_id.parse();
            let valid = d.validate();
            let bounded = d.clone().bounded();
            if bounded.reason.len() > MAX_REASON_LEN
                || bounded.adjustments.len() > MAX_LIST_LEN
                || bounded.adjustments.iter().any(|a| a.len() > MAX_REASON_LEN)
            {
                return Err("bounded() left a text or list over its bound".into());
            }
            match valid {
                Err(e) => bounded_error(&e),
                Ok(()) => decode::<Decision>(&encode(&d))
                    .map(|_| ())
                    .or_else(|e| match e {
                        ContractError::TooLarge { .. } => Ok(()),
                        e => Err(format!("a valid decision does not decode again: {e}")),
                    }),
            }
        }
    }
}

#[test]
fn fuzz_decoders_short() {
    let n = cases(SHORT).min(SHORT);
    run(
        "vector",
        n,
        inputs(vector_samples(), VECTOR_KEYS),
        check_vector,
    );
    run("vote", n, inputs(vote_samples(), VOTE_KEYS), check_vote);
    run(
        "decision",
        n,
        inputs(decision_samples(), DECISION_KEYS),
        check_decision,
    );
}

#[test]
#[ignore = "long: FUZZ_CASES=1000000 (scripts/fuzz.sh)"]
fn fuzz_vector_decoder() {
    run(
        "vector",
        cases(1_000_000),
        inputs(vector_samples(), VECTOR_KEYS),
        check_vector,
    );
}

#[test]
#[ignore = "long: FUZZ_CASES=1000000 (scripts/fuzz.sh)"]
fn fuzz_vote_decoder() {
    run(
        "vote",
        cases(1_000_000),
        inputs(vote_samples(), VOTE_KEYS),
        check_vote,
    );
}

#[test]
#[ignore = "long: FUZZ_CASES=1000000 (scripts/fuzz.sh)"]
fn fuzz_decision_decoder() {
    run(
        "decision",
        cases(1_000_000),
        inputs(decision_samples(), DECISION_KEYS),
        check_decision,
    );
}
