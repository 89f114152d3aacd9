//! Fuzzing the state store's row decoders (outbox rows, service-state rows) under structured
//! random input, and a pass through a real SQLite file holding such rows: no row panics or
//! stops the scaler's store; a corrupt row is an error value (outbox) or a repaired state.
//!
//! `FUZZ_CASES=1000000 cargo test -p autoscaler-scaler --test fuzz -- --ignored` (or
//! `scripts/fuzz.sh`) is the long run.

#[path = "../../../crates/contract/tests/fuzz_support/mod.rs"]
mod fuzz_support;

use autoscaler_scaler::store::{outbox_entry_from_row, state_from_row, Store};
use fuzz_support::{cases, inputs, run};
use proptest::prelude::*;
use serde_json::{json, Value};

const SHORT: u32 = 3_000;

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
];

fn decision_samples() -> Vec<Value> {
    vec![
        json!({"schema_version":1,"vector_id":"orders@1@1720000000000","service":"orders",
        "decision":"SCALE_UP","timestamp":"2024-07-03T09:46:41Z",
        "metric_time":"2024-07-03T09:46:40Z","scale_up_votes":2,"no_action_votes":1,
        "abstentions":0,"missing_models":[],"total_votes":3,"confidence":0.7,
        "strategy":"majority","weighted_score":null,"votes":[],"from_replicas":3,
        "to_replicas":4,"reason":"r","adjustments":[],"acted":true,"dry_run":false}),
    ]
}

fn state_samples() -> Vec<Value> {
    vec![
        json!([[1_720_000_000_000i64, 3], [1_720_000_010_000i64, 4]]),
        json!([]),
    ]
}

/// An outbox row: (id, attempts, json) in the input bytes as `attempts(8) json`.
fn outbox_strategy() -> BoxedStrategy<Vec<u8>> {
    (any::<i64>(), inputs(decision_samples(), DECISION_KEYS))
        .prop_map(|(a, j)| {
            let mut v = a.to_be_bytes().to_vec();
            v.extend(j);
            v
        })
        .boxed()
}

fn check_outbox(b: &[u8]) -> Result<(), String> {
    let attempts = i64::from_be_bytes(b[..8].try_into().unwrap());
    let json = String::from_utf8_lossy(&b[8..]);
    let e = outbox_entry_from_row("orders@1@0".into(), attempts, &json);
    if attempts >= 0 && i64::from(e.attempts) != attempts.min(u32::MAX as i64) {
        return Err(format!("attempts {attempts} read as {}", e.attempts));
    }
    if let Err(why) = &e.decision {
        if why.len() > 2_048 {
            return Err(format!("a reason of {} bytes", why.len()));
        }
    }
    Ok(())
}

/// A state row: two optional cooldown starts and the history JSON.
fn state_strategy() -> BoxedStrategy<Vec<u8>> {
    let ms = prop_oneof![
        Just(None),
        any::<i64>().prop_map(Some),
        (1_600_000_000_000i64..1_900_000_000_000).prop_map(Some),
    ];
    (ms.clone(), ms, inputs(state_samples(), &["0", "1"]))
        .prop_map(|(u, d, j)| {
            let mut v = Vec::new();
            for x in [u, d] {
                v.push(u8::from(x.is_some()));
                v.extend(x.unwrap_or(0).to_be_bytes());
            }
            v.extend(j);
            v
        })
        .boxed()
}

fn opt(b: &[u8]) -> Option<i64> {
    (b[0] == 1).then(|| i64::from_be_bytes(b[1..9].try_into().unwrap()))
}

fn check_state(b: &[u8]) -> Result<(), String> {
    let (up, down) = (opt(&b[..9]), opt(&b[9..18]));
    let json = String::from_utf8_lossy(&b[18..]);
    match state_from_row(up, down, &json) {
        Ok(s) => {
            if up.is_some_and(|u| chrono::DateTime::from_timestamp_millis(u).is_some())
                != s.last_scale_up.is_some()
            {
                return Err(format!(
                    "cooldown start {up:?} read as {:?}",
                    s.last_scale_up
                ));
            }
            Ok(())
        }
        Err(why) if why.len() > 2_048 => Err(format!("a reason of {} bytes", why.len())),
        Err(_) => Ok(()),
    }
}

#[test]
fn fuzz_store_rows_short() {
    let n = cases(SHORT).min(SHORT);
    run("outbox row", n, outbox_strategy(), check_outbox);
    run("state row", n, state_strategy(), check_state);
}

/// Random rows written into a real database file: opening it, loading the states and reading
/// the outbox never fail or panic because of what the rows hold.
#[test]
fn hostile_rows_in_a_real_database_are_read_without_failing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    drop(Store::open(&db).unwrap());
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    let (outbox, state) = (outbox_strategy(), state_strategy());
    for i in 0..500 {
        let b = outbox.new_tree(&mut runner).unwrap().current();
        let attempts = i64::from_be_bytes(b[..8].try_into().unwrap());
        tx.execute(
            "INSERT INTO outbox (vector_id, decision_json, attempts) VALUES (?1, ?2, ?3)",
            rusqlite::params![
                format!("orders@{i}@0"),
                String::from_utf8_lossy(&b[8..]),
                attempts
            ],
        )
        .unwrap();
        let b = state.new_tree(&mut runner).unwrap().current();
        tx.execute(
            "INSERT INTO service_state (service, last_scale_up_ms, last_scale_down_ms, recent_json) \
             VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![format!("s{i}"), opt(&b[..9]), opt(&b[9..18]), String::from_utf8_lossy(&b[18..])],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    drop(conn);
    let store = Store::open(&db).expect("opens");
    assert_eq!(store.load_states().expect("states load").len(), 500);
    assert_eq!(store.outbox().expect("outbox reads").len(), 500);
}

#[test]
#[ignore = "long: FUZZ_CASES=1000000 (scripts/fuzz.sh)"]
fn fuzz_outbox_row_decoder() {
    run(
        "outbox row",
        cases(1_000_000),
        outbox_strategy(),
        check_outbox,
    );
}

#[test]
#[ignore = "long: FUZZ_CASES=1000000 (scripts/fuzz.sh)"]
fn fuzz_state_row_decoder() {
    run("state row", cases(1_000_000), state_strategy(), check_state);
}
