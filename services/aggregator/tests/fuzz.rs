//! Fuzzing the Prometheus answer parser ([`read_answer`]) under structured random input: no
//! body and no status panics; every text it returns is bounded; a value is finite.
//!
//! `FUZZ_CASES=1000000 cargo test -p autoscaler-aggregator --test fuzz -- --ignored` (or
//! `scripts/fuzz.sh`) is the long run.

#[path = "../../../crates/contract/tests/fuzz_support/mod.rs"]
mod fuzz_support;

use autoscaler_aggregator::prometheus::{read_answer, Answer};
use fuzz_support::{cases, inputs, run};
use proptest::prelude::*;
use serde_json::{json, Value};

const SHORT: u32 = 3_000;

const KEYS: &[&str] = &[
    "status",
    "data",
    "resultType",
    "result",
    "metric",
    "value",
    "values",
    "errorType",
    "error",
    "warnings",
    "__name__",
    "success",
    "vector",
    "scalar",
    "matrix",
    "string",
];

fn samples() -> Vec<Value> {
    vec![
        json!({"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"service":"orders"},"value":[1_720_000_000.5,"41.2"]}]}}),
        json!({"status":"success","data":{"resultType":"vector","result":[
            {"metric":{},"value":[1_720_000_000,"NaN"]},{"metric":{"a":"b"},"value":[1,"+Inf"]}]}}),
        json!({"status":"success","data":{"resultType":"scalar","result":[1_720_000_000,"3"]}}),
        json!({"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[1,"1"],[2,"2"]]}]}}),
        json!({"status":"success","data":{"resultType":"string","result":[1,"x"]}}),
        json!({"status":"error","errorType":"bad_data","error":"parse error at char 3"}),
        json!({"status":"error","errorType":"timeout","error":"query timed out"}),
    ]
}

/// Status codes an answer comes with, the interesting ones more often.
fn status() -> BoxedStrategy<u16> {
    prop_oneof![
        3 => Just(200u16),
        1 => proptest::sample::select(&[400u16, 401, 403, 404, 407, 422, 429, 500, 502, 503, 504][..]),
        1 => 100u16..1000,
    ]
    .boxed()
}

fn check(status: u16, body: &[u8]) -> Result<(), String> {
    let code = reqwest::StatusCode::from_u16(status).map_err(|e| e.to_string())?;
    match read_answer(code, body) {
        Answer::Value(v) if !v.is_finite() => Err(format!("a non-finite value: {v}")),
        Answer::Value(_) => Ok(()),
        Answer::Missing(t) | Answer::Unreachable(t) | Answer::Refused(t) if t.len() > 2_048 => {
            Err(format!("a reason of {} bytes", t.len()))
        }
        _ => Ok(()),
    }
}

fn strategy() -> BoxedStrategy<Vec<u8>> {
    // The status travels in the first two bytes, so the shared byte-input runner fits.
    (status(), inputs(samples(), KEYS))
        .prop_map(|(s, body)| {
            let mut v = s.to_be_bytes().to_vec();
            v.extend(body);
            v
        })
        .boxed()
}

fn check_input(b: &[u8]) -> Result<(), String> {
    let status = u16::from_be_bytes([b[0], b[1]]);
    check(status, &b[2..])
}

#[test]
fn fuzz_prometheus_answers_short() {
    run(
        "prometheus answer",
        cases(SHORT).min(SHORT),
        strategy(),
        check_input,
    );
}

#[test]
#[ignore = "long: FUZZ_CASES=1000000 (scripts/fuzz.sh)"]
fn fuzz_prometheus_answer_parser() {
    run(
        "prometheus answer",
        cases(1_000_000),
        strategy(),
        check_input,
    );
}
