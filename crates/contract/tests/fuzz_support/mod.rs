//! Structured random input for the decoders' fuzz tests (shared by the contract's, the
//! scaler's and the aggregator's `tests/fuzz.rs` through `#[path]`).
//!
//! Inputs are drawn by `proptest` strategies, in four shapes: a valid sample with random
//! mutations at random paths (values replaced by hostile ones — far-future and out-of-range
//! times, huge numbers, long or odd strings, wrong types —, fields removed or added); the same
//! then mutated byte by byte (flips, cuts, insertions); random JSON documents; random bytes.
//!
//! Case count: `FUZZ_CASES` (default: the short run of the test suite). The long run is
//! `scripts/fuzz.sh` (1,000,000 per decoder).

#![allow(dead_code)]

use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Number, Value};

/// Cases per decoder: `FUZZ_CASES`, or `short` (the run in the test suite).
pub fn cases(short: u32) -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(short)
}

/// Hostile strings: times at and past chrono's range, vector ids, long and non-ASCII text.
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<String>(),
        2 => "[a-z0-9@:.+TZ-]{0,40}",
        2 => prop_oneof![
            Just("+262143-12-31T23:59:59.999Z".to_string()),
            Just("-262143-01-01T00:00:00Z".to_string()),
            Just("9999-12-31T23:59:59Z".to_string()),
            Just("1970-01-01T00:00:00Z".to_string()),
            Just("2026-12-01T10:00:00+14:00".to_string()),
            Just("2026-02-30T25:61:61Z".to_string()),
            (-400_000i64..400_000, 1u32..13, 1u32..29)
                .prop_map(|(y, m, d)| format!("{y:+}-{m:02}-{d:02}T00:00:00Z")),
            any::<i64>().prop_map(|s| match chrono::DateTime::from_timestamp(s / 1000, 0) {
                Some(t) => t.to_rfc3339(),
                None => s.to_string(),
            }),
        ],
        2 => ("[a-z-]{0,12}", any::<u64>(), any::<i64>())
            .prop_map(|(s, p, ms)| format!("{s}@{p}@{ms}")),
        2 => ("[a-z-]{0,12}", "[0-9a-z@-]{0,24}").prop_map(|(s, r)| format!("{s}@{r}")),
        1 => (0usize..80_000, prop_oneof![Just("x"), Just("é"), Just("\u{0}"), Just("\"\\")])
            .prop_map(|(n, c)| c.repeat(n)),
        1 => prop_oneof![
            Just("xgboost".to_string()),
            Just("random_forest".to_string()),
            Just("logistic_regression".to_string()),
            Just("majority".to_string()),
            Just("SCALE_UP".to_string()),
            Just("SCALE_DOWN".to_string()),
            Just("NO_ACTION".to_string()),
            Just("NaN".to_string()),
            Just("Infinity".to_string()),
        ],
    ]
    .boxed()
}

/// Hostile numbers: the edges of every integer type, huge and tiny floats, probabilities just
/// outside [0, 1].
pub fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(1.0),
            Just(1.000_000_1),
            Just(-1e-9),
            Just(0.5),
            Just(1e308),
            Just(-1e308),
            Just(5e-324),
            Just(4_294_967_296.0),
            Just(9.3e18),
        ]
        .prop_map(|f| Value::Number(Number::from_f64(f).unwrap())),
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(2),
            Just(-1),
            Just(255),
            Just(256),
            Just(u32::MAX as i64),
            Just(u32::MAX as i64 + 1),
            Just(i64::MIN),
            Just(i64::MAX),
            Just(8_210_298_412_799_999),
        ]
        .prop_map(Value::from),
    ]
    .boxed()
}

/// A random JSON leaf.
pub fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => number(),
        3 => text().prop_map(Value::String),
    ]
    .boxed()
}

/// A random JSON document (nested arrays and objects, some keys from `keys`).
pub fn json(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    let key = prop_oneof![
        2 => proptest::sample::select(keys).prop_map(String::from),
        1 => "[a-z_]{1,12}",
    ];
    leaf()
        .prop_recursive(3, 24, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
            ]
        })
        .boxed()
}

/// One change at a path of a document.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Replace the value at the path.
    Set(Vec<usize>, Value),
    /// Remove what is at the path.
    Remove(Vec<usize>),
    /// Add a key (to the object at the path).
    Insert(Vec<usize>, String, Value),
}

fn edit(keys: &'static [&'static str]) -> BoxedStrategy<Edit> {
    let path = || proptest::collection::vec(any::<usize>(), 1..4);
    prop_oneof![
        4 => (path(), json(keys)).prop_map(|(p, v)| Edit::Set(p, v)),
        2 => path().prop_map(Edit::Remove),
        1 => (path(), proptest::sample::select(keys).prop_map(String::from), json(keys))
            .prop_map(|(p, k, v)| Edit::Insert(p, k, v)),
    ]
    .boxed()
}

/// Follow `path` (each step picks a child by index modulo the number of children) as deep as
/// the document goes; apply `f` to the parent and the chosen key/index there.
fn at_path(doc: &mut Value, path: &[usize], f: &mut dyn FnMut(&mut Value, usize)) {
    let (first, rest) = match path.split_first() {
        Some(x) => x,
        None => return,
    };
    let descend = match doc {
        Value::Object(m) if !m.is_empty() => {
            let k = m.keys().nth(first % m.len()).cloned().unwrap();
            matches!(m.get(&k), Some(Value::Object(_) | Value::Array(_))) && !rest.is_empty()
        }
        Value::Array(a) if !a.is_empty() => {
            matches!(a[first % a.len()], Value::Object(_) | Value::Array(_)) && !rest.is_empty()
        }
        _ => false,
    };
    if descend {
        let child = match doc {
            Value::Object(m) => {
                let n = m.len();
                m.values_mut().nth(first % n).unwrap()
            }
            Value::Array(a) => {
                let n = a.len();
                &mut a[first % n]
            }
            _ => unreachable!(),
        };
        at_path(child, rest, f);
    } else {
        f(doc, *first);
    }
}

/// Apply `e` to `doc`.
pub fn apply(doc: &mut Value, e: &Edit) {
    match e {
        Edit::Set(p, v) => at_path(doc, p, &mut |parent, i| match parent {
            Value::Object(m) if !m.is_empty() => {
                let n = m.len();
                *m.values_mut().nth(i % n).unwrap() = v.clone();
            }
            Value::Array(a) if !a.is_empty() => {
                let n = a.len();
                a[i % n] = v.clone();
            }
            other => *other = v.clone(),
        }),
        Edit::Remove(p) => at_path(doc, p, &mut |parent, i| match parent {
            Value::Object(m) if !m.is_empty() => {
                let k = m.keys().nth(i % m.len()).cloned().unwrap();
                m.remove(&k);
            }
            Value::Array(a) if !a.is_empty() => {
                let n = a.len();
                a.remove(i % n);
            }
            _ => {}
        }),
        Edit::Insert(p, k, v) => at_path(doc, p, &mut |parent, _| {
            if let Value::Object(m) = parent {
                m.insert(k.clone(), v.clone());
            }
        }),
    }
}

/// One change to the bytes.
#[derive(Debug, Clone)]
pub enum ByteEdit {
    /// XOR a byte.
    Flip(usize, u8),
    /// Cut the input here.
    Cut(usize),
    /// Insert bytes here.
    Insert(usize, Vec<u8>),
}

/// Bytes that break JSON in interesting ways.
const TOKENS: &[&[u8]] = &[
    b"\"", b"\\", b"{", b"}", b"[", b",", b":", b"\\u0000", b"\\ud800", b"1e999", b"-",
];

fn byte_edit() -> BoxedStrategy<ByteEdit> {
    prop_oneof![
        3 => (any::<usize>(), 1u8..=255).prop_map(|(i, x)| ByteEdit::Flip(i, x)),
        1 => any::<usize>().prop_map(ByteEdit::Cut),
        2 => (
            any::<usize>(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..8),
                proptest::sample::select(TOKENS).prop_map(|b| b.to_vec()),
            ]
        )
            .prop_map(|(i, b)| ByteEdit::Insert(i, b)),
    ]
    .boxed()
}

fn apply_bytes(b: &mut Vec<u8>, e: &ByteEdit) {
    if b.is_empty() {
        return;
    }
    match e {
        ByteEdit::Flip(i, x) => {
            let n = b.len();
            b[i % n] ^= x;
        }
        ByteEdit::Cut(i) => {
            let n = b.len();
            b.truncate(i % n);
        }
        ByteEdit::Insert(i, bytes) => {
            let at = i % (b.len() + 1);
            b.splice(at..at, bytes.iter().copied());
        }
    }
}

/// The inputs for a decoder whose valid documents look like `samples`; `keys` are field names
/// it knows (used for inserted keys and random documents).
pub fn inputs(samples: Vec<Value>, keys: &'static [&'static str]) -> BoxedStrategy<Vec<u8>> {
    let samples = std::sync::Arc::new(samples);
    let s1 = samples.clone();
    let structured = (
        0..samples.len(),
        proptest::collection::vec(edit(keys), 0..5),
    )
        .prop_map(move |(i, edits)| {
            let mut doc = s1[i].clone();
            for e in &edits {
                apply(&mut doc, e);
            }
            serde_json::to_vec(&doc).unwrap()
        });
    let s2 = samples.clone();
    let bytes = (
        0..samples.len(),
        proptest::collection::vec(edit(keys), 0..3),
        proptest::collection::vec(byte_edit(), 1..5),
    )
        .prop_map(move |(i, edits, bedits)| {
            let mut doc = s2[i].clone();
            for e in &edits {
                apply(&mut doc, e);
            }
            let mut b = serde_json::to_vec(&doc).unwrap();
            for e in &bedits {
                apply_bytes(&mut b, e);
            }
            b
        });
    prop_oneof![
        5 => structured,
        3 => bytes,
        1 => json(keys).prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => proptest::collection::vec(any::<u8>(), 0..256),
    ]
    .boxed()
}

/// Run `check` on `n` inputs; a panic (or a failed check) fails the test with the shrunk
/// input. Prints the count and the time taken.
pub fn run(
    name: &str,
    n: u32,
    strategy: BoxedStrategy<Vec<u8>>,
    check: impl Fn(&[u8]) -> Result<(), String>,
) {
    let mut runner = TestRunner::new(Config {
        cases: n,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    });
    let start = Instant::now();
    let result = runner.run(&strategy, |input| {
        check(&input).map_err(TestCaseError::fail)
    });
    let took = start.elapsed();
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "fuzz {name}: {n} cases in {:.1} s ({:.0} cases/s): {}",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64().max(1e-9),
        if result.is_ok() {
            "no panic, every check held"
        } else {
            "FAILED"
        }
    );
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}
