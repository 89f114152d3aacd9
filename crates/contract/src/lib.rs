//! # The autoscaler's message contract
//!
//! Three kinds of message flow through the pipeline, one JSON object per message, each keyed by
//! its `service` so that everything about one service lands on the same partition:
//!
//! | topic | message | producer → consumer |
//! |---|---|---|
//! | `metrics` | [`FeatureVector`] | metrics-aggregator → every inference service |
//! | `model-votes` | [`Vote`] | each inference service → authoritative scaler |
//! | `scaling-decisions` | [`Decision`] | authoritative scaler → operators, the replay source |
//!
//! Field names follow the Sock Shop ML autoscaler where it has one (`timestamp`, `service`,
//! `features{…}`, `model`, `prediction`, `probability`, `confidence`, `scale_up_votes`, …) so its
//! tooling reads ours. We add what correctness needs:
//!
//! * a [`VectorId`] unique per (service, poll), carried by every vote and decision, so the scaler
//!   can gather the votes of one vector and decide it exactly once;
//! * `metric_time`, the time the metrics describe (cooldowns are measured on it, so a replay at
//!   any speed behaves like real time);
//! * explicit missing values: a feature that could not be measured is `null`, **never 0**, and a
//!   vector whose inputs are out of date carries `stale: true` with a reason;
//! * the model version, explicit abstentions, replicas from → to, the reason and the dry-run flag.
//!
//! Start with [`FeatureVector`], then [`Vote`], then [`Decision`]. Every message carries
//! `schema_version` ([`SCHEMA_VERSION`]); a consumer rejects (dead-letters) a version it does not
//! know rather than guessing.
#![deny(missing_docs)]

use std::fmt;
use std::str::FromStr;

#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
mod sla;
#[cfg(any(test, feature = "test-support"))]
pub mod tmpfs;
pub use sla::{violates_sla, within_sla, DEFAULT_SLA_P95_MS, ERROR_VIOLATION_PCT};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod legacy;
pub mod predictions;

pub use legacy::decode_vector;

/// The schema version written into every message by this build.
pub const SCHEMA_VERSION: u32 = 1;

/// Default topic of feature vectors.
pub const METRICS_TOPIC: &str = "metrics";
/// Default topic of model votes.
pub const VOTES_TOPIC: &str = "model-votes";
/// Default topic of scaling decisions.
pub const DECISIONS_TOPIC: &str = "scaling-decisions";

/// Default allowed skew between a message's metric time and the consumer's clock, seconds, in
/// either direction (as in the Sock Shop seed): older is stale, further ahead is a bad clock.
pub const DEFAULT_MAX_SKEW_SECS: u64 = 60;
/// Largest accepted skew setting, seconds (one day): a larger one is a configuration error.
pub const MAX_MAX_SKEW_SECS: u64 = 86_400;

/// Largest message [`decode`] reads, bytes. Our messages are well under 4 KiB; this is far below
/// a broker's `message.max.bytes` (1 MB), so a dead-letter copy of a refused one always fits.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest `service` name, bytes (Docker allows 63; Kubernetes names 253).
pub const MAX_SERVICE_LEN: usize = 253;
/// Longest vector id, bytes (`<service>@<poll>@<ms>`).
pub const MAX_VECTOR_ID_LEN: usize = MAX_SERVICE_LEN + 48;
/// Longest `model_version`, bytes.
pub const MAX_MODEL_VERSION_LEN: usize = 128;
/// Longest free-text reason (`stale_reason`, `abstain_reason`, a decision's `reason` and each
/// adjustment), bytes.
pub const MAX_REASON_LEN: usize = 1024;
/// Most entries of a decision's lists (`votes`, `missing_models`, `adjustments`).
pub const MAX_LIST_LEN: usize = 32;
/// Longest error message quoted from the JSON parser (it may echo the input), bytes.
pub const MAX_ERROR_LEN: usize = 256;

/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub fn truncate_text(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Errors found when a message breaks the contract.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ContractError {
    /// The bytes are not a JSON message of the expected shape.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message was written by a schema this build does not know.
    #[error("unknown schema_version {found} (this build reads {expected})")]
    UnknownSchemaVersion {
        /// Version found in the message.
        found: u32,
        /// Version this build reads.
        expected: u32,
    },
    /// A number that must be finite is NaN or infinite.
    #[error("field `{field}` is not a finite number")]
    NonFinite {
        /// The offending field.
        field: String,
    },
    /// A number is outside its allowed range.
    #[error("field `{field}` = {value} is out of range ({range})")]
    OutOfRange {
        /// The offending field.
        field: String,
        /// Its value.
        value: f64,
        /// The allowed range, in words.
        range: &'static str,
    },
    /// A required text field is empty.
    #[error("field `{0}` is empty")]
    Empty(&'static str),
    /// The message is older than the allowed skew.
    #[error("message is {age_secs:.0} s old, older than the allowed skew of {max_skew_secs} s")]
    TooOld {
        /// Age of the message (now − metric time), seconds.
        age_secs: f64,
        /// The allowed skew, seconds.
        max_skew_secs: u64,
    },
    /// The message's metric time is further ahead of the clock than the allowed skew.
    #[error(
        "message is {ahead_secs:.0} s in the future, beyond the allowed skew of {max_skew_secs} s"
    )]
    InFuture {
        /// How far ahead (metric time − now), seconds.
        ahead_secs: f64,
        /// The allowed skew, seconds.
        max_skew_secs: u64,
    },
    /// A text field is longer than its bound.
    #[error("field `{field}` is {len} bytes long, longer than {max}")]
    TooLong {
        /// The offending field.
        field: &'static str,
        /// Its length, bytes.
        len: usize,
        /// The bound, bytes.
        max: usize,
    },
    /// The message is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message is {len} bytes, larger than {max}")]
    TooLarge {
        /// Its size, bytes.
        len: usize,
        /// The bound, bytes.
        max: usize,
    },
    /// Two fields of the message contradict each other (e.g. a vote's `service` and the service
    /// named in its vector id).
    #[error("inconsistent message: {0}")]
    Inconsistent(String),
}

fn malformed(e: serde_json::Error) -> ContractError {
    // serde's messages quote the input (`unknown variant `…``): bounded, so a hostile message
    // never makes a dead-letter reason or a log line large.
    ContractError::Malformed(truncate_text(&e.to_string(), MAX_ERROR_LEN))
}

fn check_len(field: &'static str, s: &str, max: usize) -> Result<(), ContractError> {
    if s.len() > max {
        return Err(ContractError::TooLong {
            field,
            len: s.len(),
            max,
        });
    }
    Ok(())
}

fn check_opt_len(field: &'static str, s: &Option<String>, max: usize) -> Result<(), ContractError> {
    s.as_deref().map_or(Ok(()), |s| check_len(field, s, max))
}

/// The clock services check metric times against unless told otherwise: the wall clock.
pub const DEFAULT_CLOCK: ClockMode = ClockMode::Wall;

/// Whether a clock check runs against the wall clock or against the log's own time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockMode {
    /// Production: a message's metric time must be within the skew of this host's clock, in
    /// both directions.
    #[default]
    Wall,
    /// Replays, whose metric time is simulated and may run ahead of the wall clock at any speed:
    /// the reference is the latest metric time accepted so far (the log's own clock), and a
    /// message may be at most the skew ahead of it or behind it. The first message sets it.
    /// Never for production: a first message far in the future would hold the clock there.
    Replay,
}

impl FromStr for ClockMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "wall" => Ok(ClockMode::Wall),
            "replay" => Ok(ClockMode::Replay),
            _ => Err(format!("unknown clock `{s}` (valid: wall, replay)")),
        }
    }
}

impl fmt::Display for ClockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClockMode::Wall => "wall",
            ClockMode::Replay => "replay",
        })
    }
}

/// The two-sided skew check of a consumer: a message's metric time at most `max_skew_secs`
/// behind its clock ([`ContractError::TooOld`]) and at most as far ahead
/// ([`ContractError::InFuture`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SkewCheck {
    /// Which clock.
    pub mode: ClockMode,
    /// Allowed skew, seconds, each way.
    pub max_skew_secs: u64,
    high_water: Option<DateTime<Utc>>,
}

impl SkewCheck {
    /// A check of `mode` allowing `max_skew_secs` each way.
    pub fn new(mode: ClockMode, max_skew_secs: u64) -> Self {
        SkewCheck {
            mode,
            max_skew_secs,
            high_water: None,
        }
    }

    /// Every problem with the setting.
    pub fn problems(&self) -> Vec<String> {
        if self.max_skew_secs == 0 || self.max_skew_secs > MAX_MAX_SKEW_SECS {
            vec![format!(
                "max skew must be between 1 and {MAX_MAX_SKEW_SECS} s, got {}",
                self.max_skew_secs
            )]
        } else {
            Vec::new()
        }
    }

    /// The clock's current reading: the wall clock `wall_now`, or in a replay the latest metric
    /// time accepted (`None` before the first).
    pub fn now(&self, wall_now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.mode {
            ClockMode::Wall => Some(wall_now),
            ClockMode::Replay => self.high_water,
        }
    }

    /// Check `t` against the clock at `wall_now` (ignored in a replay), and, when it passes,
    /// advance a replay's clock to it.
    pub fn check(
        &mut self,
        wall_now: DateTime<Utc>,
        t: DateTime<Utc>,
    ) -> Result<(), ContractError> {
        if let Some(now) = self.now(wall_now) {
            check_skew(now, t, self.max_skew_secs)?;
        }
        if self.mode == ClockMode::Replay && self.high_water.is_none_or(|h| t > h) {
            self.high_water = Some(t);
        }
        Ok(())
    }
}

/// Decode a message from JSON bytes, checking its schema version before anything else.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ContractError> {
    #[derive(Deserialize)]
    struct Versioned {
        schema_version: Option<u32>,
    }
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ContractError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    let v: Versioned = serde_json::from_slice(bytes).map_err(malformed)?;
    match v.schema_version {
        Some(SCHEMA_VERSION) => {}
        Some(found) => {
            return Err(ContractError::UnknownSchemaVersion {
                found,
                expected: SCHEMA_VERSION,
            })
        }
        None => return Err(ContractError::Malformed("missing `schema_version`".into())),
    }
    serde_json::from_slice(bytes).map_err(malformed)
}

/// Encode a message as one line of JSON.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail: no maps with non-string keys, no custom impls
    // that error.
    serde_json::to_vec(msg).expect("contract types always serialise")
}

/// The three models of the ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Gradient-boosted trees (XGBoost).
    Xgboost,
    /// Random forest (smartcore).
    RandomForest,
    /// Logistic regression on standardised inputs (linfa-logistic).
    LogisticRegression,
}

impl ModelKind {
    /// All models, in the order the decision block prints them.
    pub const ALL: [ModelKind; 3] = [
        ModelKind::Xgboost,
        ModelKind::RandomForest,
        ModelKind::LogisticRegression,
    ];

    /// The wire name (`xgboost`, `random_forest`, `logistic_regression`).
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Xgboost => "xgboost",
            ModelKind::RandomForest => "random_forest",
            ModelKind::LogisticRegression => "logistic_regression",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelKind::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("unknown model `{s}` (valid: xgboost, random_forest, logistic_regression)")
            })
    }
}

/// Names of the ten features, in the Sock Shop CSV's column order.
pub const FEATURE_NAMES: [&str; 10] = [
    "request_rate_rps",
    "error_rate_pct",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "cpu_usage_pct",
    "memory_usage_mb",
    "delta_rps",
    "delta_p95_latency_ms",
    "delta_cpu_usage_pct",
];

/// The Sock Shop metrics CSV's columns, in order: `timestamp`, `service`, the ten
/// [`FEATURE_NAMES`], `sla_violated` — what development mode writes and `train` reads. Writers
/// append their own extra columns (`replicas`, `run`, `pattern`) after these.
pub fn metrics_csv_columns() -> Vec<&'static str> {
    let mut cols = Vec::with_capacity(FEATURE_NAMES.len() + 3);
    cols.extend(["timestamp", "service"]);
    cols.extend(FEATURE_NAMES);
    cols.push("sla_violated");
    cols
}

/// The ten measured features of one service at one poll.
///
/// Every field is `Option`: `None` (JSON `null`) means *not measured* — the query failed, returned
/// nothing, or returned NaN/Inf — and is never to be read as zero. All keys are always present in
/// the JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// Requests per second over the last minute, summed over replicas.
    pub request_rate_rps: Option<f64>,
    /// Percentage (0–100) of requests that answered 5xx over the last minute.
    pub error_rate_pct: Option<f64>,
    /// Median request latency, milliseconds. `None` when there was no traffic.
    pub p50_latency_ms: Option<f64>,
    /// 95th-percentile request latency, milliseconds (the SLA is written on this).
    pub p95_latency_ms: Option<f64>,
    /// 99th-percentile request latency, milliseconds.
    pub p99_latency_ms: Option<f64>,
    /// CPU used, percent of one core, summed over replicas (as Sock Shop's
    /// `100 * sum(rate(process_cpu_seconds_total[1m]))`), so it can exceed 100.
    pub cpu_usage_pct: Option<f64>,
    /// Resident memory, MiB, summed over replicas.
    pub memory_usage_mb: Option<f64>,
    /// `request_rate_rps` minus its value at the previous poll of the same service; `None` when
    /// either is unknown (e.g. the first poll after an outage).
    pub delta_rps: Option<f64>,
    /// Change of `p95_latency_ms` since the previous poll; `None` when either is unknown.
    pub delta_p95_latency_ms: Option<f64>,
    /// Change of `cpu_usage_pct` since the previous poll; `None` when either is unknown.
    pub delta_cpu_usage_pct: Option<f64>,
}

impl Features {
    /// Set the three delta features against `prev`, the same service's previous poll (`None`:
    /// no previous poll, e.g. the first one or the first after an outage). A delta is `None`
    /// unless both polls measured its feature: a missing value is never a jump from 0.
    pub fn set_deltas_from(&mut self, prev: Option<&Features>) {
        let delta = |now: Option<f64>, before: Option<f64>| Some(now? - before?);
        let (rps, p95, cpu) = match prev {
            Some(p) => (
                delta(self.request_rate_rps, p.request_rate_rps),
                delta(self.p95_latency_ms, p.p95_latency_ms),
                delta(self.cpu_usage_pct, p.cpu_usage_pct),
            ),
            None => (None, None, None),
        };
        self.delta_rps = rps;
        self.delta_p95_latency_ms = p95;
        self.delta_cpu_usage_pct = cpu;
    }

    /// The features as `(name, value)` pairs, in [`FEATURE_NAMES`] order.
    pub fn named(&self) -> [(&'static str, Option<f64>); 10] {
        [
            (FEATURE_NAMES[0], self.request_rate_rps),
            (FEATURE_NAMES[1], self.error_rate_pct),
            (FEATURE_NAMES[2], self.p50_latency_ms),
            (FEATURE_NAMES[3], self.p95_latency_ms),
            (FEATURE_NAMES[4], self.p99_latency_ms),
            (FEATURE_NAMES[5], self.cpu_usage_pct),
            (FEATURE_NAMES[6], self.memory_usage_mb),
            (FEATURE_NAMES[7], self.delta_rps),
            (FEATURE_NAMES[8], self.delta_p95_latency_ms),
            (FEATURE_NAMES[9], self.delta_cpu_usage_pct),
        ]
    }

    /// Look a feature up by name; `None` both for an unknown name and a missing value.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.named()
            .into_iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v)
    }

    /// Names of the features that are missing.
    pub fn missing(&self) -> Vec<&'static str> {
        self.named()
            .into_iter()
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| n)
            .collect()
    }

    /// Check every present value is finite and every rate, latency and usage is non-negative.
    pub fn validate(&self) -> Result<(), ContractError> {
        for (i, (name, value)) in self.named().into_iter().enumerate() {
            let Some(v) = value else { continue };
            if !v.is_finite() {
                return Err(ContractError::NonFinite {
                    field: format!("features.{name}"),
                });
            }
            // The first seven are levels (never negative); the last three are deltas.
            if i < 7 && v < 0.0 {
                return Err(ContractError::OutOfRange {
                    field: format!("features.{name}"),
                    value: v,
                    range: ">= 0",
                });
            }
        }
        if let Some(e) = self.error_rate_pct {
            if e > 100.0 {
                return Err(ContractError::OutOfRange {
                    field: "features.error_rate_pct".into(),
                    value: e,
                    range: "0..=100",
                });
            }
        }
        Ok(())
    }
}

/// Identifies one feature vector: unique per (service, poll). Votes and decisions carry it.
///
/// Written as `<service>@<poll sequence>@<metric time, unix ms>`, so it is readable in logs and
/// stable across a replay with the same seed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VectorId(pub String);

impl VectorId {
    /// The id of the `poll`-th vector of `service`, describing metrics at `metric_time`.
    pub fn new(service: &str, poll: u64, metric_time: DateTime<Utc>) -> Self {
        VectorId(format!(
            "{service}@{poll}@{}",
            metric_time.timestamp_millis()
        ))
    }
}

impl VectorId {
    /// The parts of an id written by [`VectorId::new`]: service, poll, metric time (unix ms).
    /// `None` for any other shape. The service is everything before the last two `@`s (a
    /// service name with an `@` in it still parses).
    pub fn parse(&self) -> Option<(&str, u64, i64)> {
        let (rest, ms) = self.0.rsplit_once('@')?;
        let (service, poll) = rest.rsplit_once('@')?;
        if service.is_empty() {
            return None;
        }
        Some((service, poll.parse().ok()?, ms.parse().ok()?))
    }

    /// Check the id names `service` (a vote or decision must not steer another service), and
    /// has the shape of [`VectorId::new`].
    pub fn check_service(&self, service: &str) -> Result<(), ContractError> {
        match self.parse() {
            None => Err(ContractError::Inconsistent(format!(
                "vector id `{}` is not `<service>@<poll>@<unix ms>`",
                truncate_text(&self.0, 80)
            ))),
            Some((s, _, _)) if s != service => Err(ContractError::Inconsistent(format!(
                "vector id names service `{}` but the message is for `{}`",
                truncate_text(s, 80),
                truncate_text(service, 80)
            ))),
            Some(_) => Ok(()),
        }
    }
}

impl fmt::Display for VectorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One service's measurements at one poll: what the models vote on.
///
/// ```json
/// {"schema_version":1,"vector_id":"orders@42@1720000000000",
///  "timestamp":"2024-07-03T09:46:40Z","metric_time":"2024-07-03T09:46:40Z",
///  "service":"orders","poll":42,"replicas":3,"stale":false,"stale_reason":null,
///  "features":{"request_rate_rps":41.2,"error_rate_pct":0.0,"p50_latency_ms":12.1,
///   "p95_latency_ms":48.9,"p99_latency_ms":80.3,"cpu_usage_pct":152.0,"memory_usage_mb":310.5,
///   "delta_rps":3.1,"delta_p95_latency_ms":4.2,"delta_cpu_usage_pct":11.0}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureVector {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// Unique per (service, poll).
    pub vector_id: VectorId,
    /// When the vector was published (wall clock of the aggregator; simulated time in a replay).
    pub timestamp: DateTime<Utc>,
    /// The time the metrics describe (the end of the PromQL evaluation window).
    pub metric_time: DateTime<Utc>,
    /// The service (Swarm service name, or the Sock Shop service label).
    pub service: String,
    /// Poll sequence number of this service, from 0 at the aggregator's start.
    pub poll: u64,
    /// Replicas running when measured; `None` when the aggregator could not tell.
    pub replicas: Option<u32>,
    /// True when the inputs are known to be out of date (e.g. Prometheus unreachable):
    /// consumers must abstain, not guess.
    pub stale: bool,
    /// Why the vector is stale.
    pub stale_reason: Option<String>,
    /// The measurements.
    pub features: Features,
}

impl FeatureVector {
    /// Check the contract: version, non-empty bounded texts, a vector id naming the vector's
    /// service, finite non-negative features, and that the metrics are within `max_skew_secs`
    /// of `now` in either direction (skipped when `now` is `None`; see [`SkewCheck`]).
    pub fn validate(
        &self,
        now: Option<DateTime<Utc>>,
        max_skew_secs: u64,
    ) -> Result<(), ContractError> {
        check_version(self.schema_version)?;
        if self.service.is_empty() {
            return Err(ContractError::Empty("service"));
        }
        if self.vector_id.0.is_empty() {
            return Err(ContractError::Empty("vector_id"));
        }
        check_len("service", &self.service, MAX_SERVICE_LEN)?;
        check_len("vector_id", &self.vector_id.0, MAX_VECTOR_ID_LEN)?;
        check_opt_len("stale_reason", &self.stale_reason, MAX_REASON_LEN)?;
        self.vector_id.check_service(&self.service)?;
        self.features.validate()?;
        if let Some(now) = now {
            check_skew(now, self.metric_time, max_skew_secs)?;
        }
        Ok(())
    }
}

fn check_version(v: u32) -> Result<(), ContractError> {
    if v == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(ContractError::UnknownSchemaVersion {
            found: v,
            expected: SCHEMA_VERSION,
        })
    }
}

fn check_skew(
    now: DateTime<Utc>,
    t: DateTime<Utc>,
    max_skew_secs: u64,
) -> Result<(), ContractError> {
    // Both ends are valid `DateTime`s, so their difference fits a `TimeDelta` (±262 000 years
    // against its ±292 million): no overflow.
    let age = (now - t).num_milliseconds() as f64 / 1000.0;
    if age > max_skew_secs as f64 {
        return Err(ContractError::TooOld {
            age_secs: age,
            max_skew_secs,
        });
    }
    if -age > max_skew_secs as f64 {
        return Err(ContractError::InFuture {
            ahead_secs: -age,
            max_skew_secs,
        });
    }
    Ok(())
}

fn check_probability(field: &str, p: Option<f64>) -> Result<(), ContractError> {
    if let Some(p) = p {
        if !p.is_finite() {
            return Err(ContractError::NonFinite {
                field: field.into(),
            });
        }
        if !(0.0..=1.0).contains(&p) {
            return Err(ContractError::OutOfRange {
                field: field.into(),
                value: p,
                range: "0..=1",
            });
        }
    }
    Ok(())
}

/// What one model says about one vector, as the tally sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ballot {
    /// Predicts an SLA violation within the horizon: scale up.
    Up,
    /// Predicts no violation.
    NoAction,
    /// Declines to vote (stale or incomplete input, model not ready).
    Abstain,
}

/// One model's vote on one feature vector.
///
/// `prediction` is 1 (SLA violation predicted: scale up), 0 (no action) or `null` (abstained,
/// with `abstain_reason`). **`probability` is always P(violation)**, whichever way the vote goes
/// (the Sock Shop seed wrote the probability of the predicted class instead); `confidence` is the
/// probability of the predicted class, `max(p, 1 − p)`.
///
/// ```json
/// {"schema_version":1,"vector_id":"orders@42@1720000000000","timestamp":"2024-07-03T09:46:40Z",
///  "metric_time":"2024-07-03T09:46:40Z","service":"orders","model":"xgboost",
///  "model_version":"xgboost-3f2a9c1e","prediction":1,"probability":0.87,"confidence":0.87,
///  "threshold":0.5,"abstain_reason":null,"replicas":3,"probability_one_fewer":0.97,
///  "p95_latency_ms":48.9}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The vector voted on.
    pub vector_id: VectorId,
    /// When the vote was cast.
    pub timestamp: DateTime<Utc>,
    /// The vector's metric time.
    pub metric_time: DateTime<Utc>,
    /// The vector's service.
    pub service: String,
    /// Which model voted.
    pub model: ModelKind,
    /// Version of the model artefact (name plus a fingerprint of its file).
    pub model_version: String,
    /// 1 = scale up, 0 = no action, `null` = abstained.
    pub prediction: Option<u8>,
    /// P(SLA violation within the horizon); `null` when abstained.
    pub probability: Option<f64>,
    /// Probability of the predicted class; `null` when abstained.
    pub confidence: Option<f64>,
    /// The model's decision threshold on `probability`.
    pub threshold: f64,
    /// Why the model abstained.
    pub abstain_reason: Option<String>,
    /// Replicas the vector was measured at.
    pub replicas: Option<u32>,
    /// P(violation) for the same load at one replica fewer (per-replica features rescaled);
    /// `null` when not computable (one replica, replicas unknown, abstained). The scaler scales
    /// down only when the models find one replica fewer safe.
    pub probability_one_fewer: Option<f64>,
    /// The vector's p95 latency, ms (copied from it; `null` when missing), so the scaler can
    /// size a scale-up by how far the service is from its SLA. Absent in older votes.
    #[serde(default)]
    pub p95_latency_ms: Option<f64>,
}

impl Vote {
    /// The ballot this vote casts.
    pub fn ballot(&self) -> Ballot {
        match self.prediction {
            Some(1) => Ballot::Up,
            Some(_) => Ballot::NoAction,
            None => Ballot::Abstain,
        }
    }

    /// Check the contract: version, non-empty bounded texts, a vector id naming the vote's
    /// service, probabilities in [0, 1], prediction 0/1 consistent with an abstention. (The
    /// vote's time is checked by the scaler's [`SkewCheck`]: a stale vote is held, not
    /// dead-lettered.)
    pub fn validate(&self) -> Result<(), ContractError> {
        check_version(self.schema_version)?;
        if self.service.is_empty() {
            return Err(ContractError::Empty("service"));
        }
        check_len("service", &self.service, MAX_SERVICE_LEN)?;
        check_len("vector_id", &self.vector_id.0, MAX_VECTOR_ID_LEN)?;
        check_len("model_version", &self.model_version, MAX_MODEL_VERSION_LEN)?;
        check_opt_len("abstain_reason", &self.abstain_reason, MAX_REASON_LEN)?;
        self.vector_id.check_service(&self.service)?;
        check_probability("probability", self.probability)?;
        check_probability("confidence", self.confidence)?;
        check_probability("probability_one_fewer", self.probability_one_fewer)?;
        check_probability("threshold", Some(self.threshold))?;
        if let Some(p95) = self.p95_latency_ms {
            if !p95.is_finite() || p95 < 0.0 {
                return Err(ContractError::OutOfRange {
                    field: "p95_latency_ms".into(),
                    value: p95,
                    range: "a finite number >= 0",
                });
            }
        }
        match (self.prediction, self.probability) {
            (Some(p), Some(_)) if p <= 1 => Ok(()),
            (None, None) => Ok(()),
            (Some(p), _) if p > 1 => Err(ContractError::OutOfRange {
                field: "prediction".into(),
                value: p as f64,
                range: "0 or 1",
            }),
            _ => Err(ContractError::Malformed(
                "`prediction` and `probability` must both be set, or both null (abstention)".into(),
            )),
        }
    }
}

/// What the ensemble decided about one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Add replicas.
    ScaleUp,
    /// Remove replicas.
    ScaleDown,
    /// Keep the replica count.
    NoAction,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::ScaleUp => "SCALE UP",
            Verdict::ScaleDown => "SCALE DOWN",
            Verdict::NoAction => "NO ACTION",
        })
    }
}

/// The voting strategy a decision was tallied with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// More than half of the expected models vote up.
    Majority,
    /// Every expected model votes up.
    Unanimous,
    /// Weighted mean probability of the votes received, against a threshold, with a quorum.
    Weighted,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Majority => "majority",
            Strategy::Unanimous => "unanimous",
            Strategy::Weighted => "weighted",
        })
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "majority" => Ok(Strategy::Majority),
            "unanimous" => Ok(Strategy::Unanimous),
            "weighted" => Ok(Strategy::Weighted),
            _ => Err(format!(
                "unknown strategy `{s}` (valid: majority, unanimous, weighted)"
            )),
        }
    }
}

/// One model's vote as summarised in a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoteSummary {
    /// The model.
    pub model: ModelKind,
    /// Its version.
    pub model_version: String,
    /// 1, 0, or `null` for an abstention.
    pub prediction: Option<u8>,
    /// P(violation), or `null`.
    pub probability: Option<f64>,
    /// Probability of the predicted class, or `null`.
    pub confidence: Option<f64>,
    /// Why it abstained.
    pub abstain_reason: Option<String>,
    /// P(violation) at one replica fewer, or `null`.
    pub probability_one_fewer: Option<f64>,
}

impl From<&Vote> for VoteSummary {
    fn from(v: &Vote) -> Self {
        VoteSummary {
            model: v.model,
            model_version: v.model_version.clone(),
            prediction: v.prediction,
            probability: v.probability,
            confidence: v.confidence,
            abstain_reason: v.abstain_reason.clone(),
            probability_one_fewer: v.probability_one_fewer,
        }
    }
}

/// A scaling decision, with everything that explains it.
///
/// `decision` is what the ensemble decided; `from_replicas → to_replicas` is what the safety
/// envelope let happen (equal when held), `adjustments` names every envelope rule that changed it,
/// `acted` says whether the actuator changed anything, and `dry_run` that it was not allowed to.
///
/// ```json
/// {"schema_version":1,"vector_id":"orders@42@1720000000000","service":"orders",
///  "decision":"SCALE_UP","timestamp":"2024-07-03T09:46:41Z",
///  "metric_time":"2024-07-03T09:46:40Z","scale_up_votes":2,"no_action_votes":1,
///  "abstentions":0,"missing_models":[],"total_votes":3,"confidence":0.7467,
///  "strategy":"majority","weighted_score":null,"votes":[…],"from_replicas":3,"to_replicas":4,
///  "reason":"2 of 3 expected models vote SCALE UP (majority)","adjustments":[],
///  "acted":true,"dry_run":false}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The vector decided.
    pub vector_id: VectorId,
    /// The service.
    pub service: String,
    /// What the ensemble decided.
    pub decision: Verdict,
    /// When the decision was made.
    pub timestamp: DateTime<Utc>,
    /// The vector's metric time.
    pub metric_time: DateTime<Utc>,
    /// Votes for scaling up.
    pub scale_up_votes: u32,
    /// Votes for no action.
    pub no_action_votes: u32,
    /// Models that abstained.
    pub abstentions: u32,
    /// Expected models that did not vote within the decision window.
    pub missing_models: Vec<ModelKind>,
    /// Votes received (including abstentions).
    pub total_votes: u32,
    /// Mean confidence of the non-abstaining votes (0 when none).
    pub confidence: f64,
    /// The voting strategy used.
    pub strategy: Strategy,
    /// Σw·p/Σw for the weighted strategy; `null` otherwise.
    pub weighted_score: Option<f64>,
    /// Each vote received, in model order.
    pub votes: Vec<VoteSummary>,
    /// Replicas before; `null` when they could not be read (the scaler then holds).
    pub from_replicas: Option<u32>,
    /// Replicas after (the desired count); `null` when held with replicas unknown.
    pub to_replicas: Option<u32>,
    /// Why, in words.
    pub reason: String,
    /// Every safety-envelope rule that changed or blocked the action, e.g. "clamped to max 10",
    /// "cooldown: 120 s left".
    pub adjustments: Vec<String>,
    /// Whether the actuator changed the replica count.
    pub acted: bool,
    /// True when the action was only logged ("would scale").
    pub dry_run: bool,
}

impl Decision {
    /// Check the contract: version, bounded texts and lists, a vector id naming the service,
    /// finite numbers (what a decision read back from the log or the outbox must satisfy).
    pub fn validate(&self) -> Result<(), ContractError> {
        check_version(self.schema_version)?;
        if self.service.is_empty() {
            return Err(ContractError::Empty("service"));
        }
        check_len("service", &self.service, MAX_SERVICE_LEN)?;
        check_len("vector_id", &self.vector_id.0, MAX_VECTOR_ID_LEN)?;
        check_len("reason", &self.reason, MAX_REASON_LEN)?;
        for a in &self.adjustments {
            check_len("adjustments[]", a, MAX_REASON_LEN)?;
        }
        for (field, n) in [
            ("adjustments", self.adjustments.len()),
            ("votes", self.votes.len()),
            ("missing_models", self.missing_models.len()),
        ] {
            if n > MAX_LIST_LEN {
                return Err(ContractError::OutOfRange {
                    field: field.into(),
                    value: n as f64,
                    range: "at most 32 entries",
                });
            }
        }
        for v in &self.votes {
            check_len(
                "votes[].model_version",
                &v.model_version,
                MAX_MODEL_VERSION_LEN,
            )?;
            check_opt_len("votes[].abstain_reason", &v.abstain_reason, MAX_REASON_LEN)?;
        }
        if !self.confidence.is_finite() {
            return Err(ContractError::NonFinite {
                field: "confidence".into(),
            });
        }
        if self.weighted_score.is_some_and(|w| !w.is_finite()) {
            return Err(ContractError::NonFinite {
                field: "weighted_score".into(),
            });
        }
        self.vector_id.check_service(&self.service)
    }

    /// This decision with every free text cut to its bound and every list to
    /// [`MAX_LIST_LEN`] (the scaler builds reasons from error messages it does not control).
    pub fn bounded(mut self) -> Decision {
        self.reason = truncate_text(&self.reason, MAX_REASON_LEN);
        if self.adjustments.len() > MAX_LIST_LEN {
            let dropped = self.adjustments.len() - (MAX_LIST_LEN - 1);
            self.adjustments.truncate(MAX_LIST_LEN - 1);
            self.adjustments.push(format!("… and {dropped} more"));
        }
        for a in &mut self.adjustments {
            *a = truncate_text(a, MAX_REASON_LEN);
        }
        self.votes.truncate(MAX_LIST_LEN);
        self.missing_models.truncate(MAX_LIST_LEN);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_need_both_polls_to_measure_the_feature() {
        let prev = Features {
            request_rate_rps: Some(10.0),
            p95_latency_ms: None,
            cpu_usage_pct: Some(50.0),
            ..Features::default()
        };
        let mut now = Features {
            request_rate_rps: Some(14.0),
            p95_latency_ms: Some(80.0),
            cpu_usage_pct: None,
            ..Features::default()
        };
        now.set_deltas_from(Some(&prev));
        assert_eq!(
            (
                now.delta_rps,
                now.delta_p95_latency_ms,
                now.delta_cpu_usage_pct
            ),
            (Some(4.0), None, None)
        );
        now.set_deltas_from(None);
        assert_eq!(
            now.delta_rps, None,
            "no previous poll: no delta, not a jump from 0"
        );
    }

    fn vector() -> FeatureVector {
        fixtures::vector("orders", 42)
            .replicas(3)
            .with(|f| f.request_rate_rps = Some(41.2))
            .build()
    }

    #[test]
    fn missing_feature_is_null_in_json_and_round_trips() {
        let v = vector();
        let json: serde_json::Value = serde_json::from_slice(&encode(&v)).unwrap();
        assert!(json["features"]["p95_latency_ms"].is_null());
        assert_eq!(json["features"]["request_rate_rps"], 41.2);
        let back: FeatureVector = decode(&encode(&v)).unwrap();
        assert_eq!(back, v);
        assert!(back.features.missing().contains(&"p95_latency_ms"));
        assert_eq!(back.features.get("p95_latency_ms"), None);
    }

    #[test]
    fn unknown_schema_version_is_rejected_before_shape() {
        let err = decode::<FeatureVector>(br#"{"schema_version":99}"#).unwrap_err();
        assert_eq!(
            err,
            ContractError::UnknownSchemaVersion {
                found: 99,
                expected: 1
            }
        );
        assert!(matches!(
            decode::<FeatureVector>(b"not json"),
            Err(ContractError::Malformed(_))
        ));
        assert!(matches!(
            decode::<FeatureVector>(br#"{"service":"x"}"#),
            Err(ContractError::Malformed(_))
        ));
    }

    #[test]
    fn validation_rejects_non_finite_negative_and_old() {
        let mut v = vector();
        v.features.cpu_usage_pct = Some(f64::NAN);
        assert!(matches!(
            v.validate(None, 60),
            Err(ContractError::NonFinite { .. })
        ));
        let mut v = vector();
        v.features.p50_latency_ms = Some(-1.0);
        assert!(matches!(
            v.validate(None, 60),
            Err(ContractError::OutOfRange { .. })
        ));
        let mut v = vector();
        v.features.delta_rps = Some(-5.0);
        assert!(v.validate(None, 60).is_ok(), "deltas may be negative");
        let now = v.metric_time + chrono::Duration::seconds(61);
        assert!(matches!(
            v.validate(Some(now), 60),
            Err(ContractError::TooOld { .. })
        ));
        assert!(v
            .validate(Some(v.metric_time + chrono::Duration::seconds(59)), 60)
            .is_ok());
    }

    #[test]
    fn vote_ballot_and_validation() {
        let mut vote = fixtures::vote(
            &VectorId::new("orders", 1, fixtures::t0()).0,
            ModelKind::Xgboost,
        )
        .up()
        .replicas(2)
        .version("x")
        .build();
        assert_eq!(vote.ballot(), Ballot::Up);
        assert!(vote.validate().is_ok());
        vote.probability = Some(1.5);
        assert!(vote.validate().is_err());
        vote.probability = None;
        assert!(vote.validate().is_err(), "prediction without probability");
        vote.prediction = None;
        assert_eq!(vote.ballot(), Ballot::Abstain);
        assert!(vote.validate().is_ok());
        vote.prediction = Some(2);
        vote.probability = Some(0.5);
        assert!(vote.validate().is_err());
    }

    #[test]
    fn skew_is_checked_both_ways_and_far_future_never_panics() {
        let v = vector();
        let t = v.metric_time;
        // 61 s ahead of the clock: a bad clock, not a fresh vector (issue 15, critical 1).
        assert!(matches!(
            v.validate(Some(t - chrono::Duration::seconds(61)), 60),
            Err(ContractError::InFuture { .. })
        ));
        assert!(v
            .validate(Some(t - chrono::Duration::seconds(59)), 60)
            .is_ok());
        // The largest time chrono can hold, against the smallest: refused, no overflow.
        let mut far = vector();
        far.metric_time = DateTime::<Utc>::MAX_UTC;
        far.vector_id = VectorId::new("orders", 1, far.metric_time);
        assert!(matches!(
            far.validate(Some(DateTime::<Utc>::MIN_UTC), 60),
            Err(ContractError::InFuture { .. })
        ));
        let json = encode(&far);
        let back: FeatureVector = decode(&json).unwrap();
        assert!(back.validate(Some(Utc::now()), 60).is_err());
    }

    #[test]
    fn the_replay_clock_follows_the_log_and_refuses_jumps() {
        let t = |s: i64| DateTime::from_timestamp(1_720_000_000 + s, 0).unwrap();
        let wall = DateTime::from_timestamp(1_000, 0).unwrap(); // ignored in a replay
        let mut c = SkewCheck::new(ClockMode::Replay, 60);
        assert!(
            c.check(wall, t(0)).is_ok(),
            "the first message sets the clock"
        );
        assert!(c.check(wall, t(30)).is_ok());
        assert!(c.check(wall, t(30)).is_ok(), "another service, same poll");
        assert!(matches!(
            c.check(wall, t(30 + 61)),
            Err(ContractError::InFuture { .. })
        ));
        assert_eq!(
            c.now(wall),
            Some(t(30)),
            "a refused message does not move it"
        );
        assert!(matches!(
            c.check(wall, t(30 - 61)),
            Err(ContractError::TooOld { .. })
        ));
        let mut w = SkewCheck::new(ClockMode::Wall, 60);
        assert!(w.check(t(0), t(0)).is_ok());
        assert!(w.check(t(100), t(0)).is_err());
        assert_eq!(w.now(t(5)), Some(t(5)));
        assert!(SkewCheck::new(ClockMode::Wall, 0).problems().len() == 1);
        assert!(SkewCheck::new(ClockMode::Wall, u64::MAX).problems().len() == 1);
        assert_eq!("replay".parse::<ClockMode>().unwrap(), ClockMode::Replay);
    }

    #[test]
    fn free_text_is_bounded_and_parser_errors_do_not_echo_the_input() {
        let mut v = vector();
        v.stale_reason = Some("x".repeat(MAX_REASON_LEN + 1));
        assert!(matches!(
            v.validate(None, 60),
            Err(ContractError::TooLong {
                field: "stale_reason",
                ..
            })
        ));
        let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            decode::<FeatureVector>(&huge),
            Err(ContractError::TooLarge { .. })
        ));
        // serde quotes an unknown variant: the message stays short.
        let bad = format!(r#"{{"schema_version":1,"model":"{}"}}"#, "m".repeat(20_000));
        let e = decode::<Vote>(bad.as_bytes()).unwrap_err().to_string();
        assert!(e.len() <= MAX_ERROR_LEN + 64, "{} bytes", e.len());
        // `…` is 3 bytes; a cut never splits the `é`.
        assert_eq!(truncate_text("héllo", 5), "h…");
        assert_eq!(truncate_text("héllo", 3), "…");
        assert_eq!(truncate_text("ok", 2), "ok");
    }

    #[test]
    fn a_vector_id_must_name_the_messages_service() {
        let t = DateTime::from_timestamp(1_720_000_000, 0).unwrap();
        let id = VectorId::new("front-end", 7, t);
        assert_eq!(id.parse(), Some(("front-end", 7, 1_720_000_000_000)));
        assert_eq!(VectorId("a@b@c@1@2".into()).parse(), Some(("a@b@c", 1, 2)));
        assert!(VectorId("x".into()).parse().is_none());
        assert!(VectorId("@1@2".into()).parse().is_none());
        assert!(id.check_service("front-end").is_ok());
        assert!(matches!(
            id.check_service("orders"),
            Err(ContractError::Inconsistent(_))
        ));
        let mut v = vector();
        v.vector_id = id;
        assert!(matches!(
            v.validate(None, 60),
            Err(ContractError::Inconsistent(_))
        ));
    }

    #[test]
    fn metrics_csv_columns_are_the_sock_shop_header() {
        assert_eq!(
            metrics_csv_columns().join(","),
            "timestamp,service,request_rate_rps,error_rate_pct,p50_latency_ms,p95_latency_ms,\
             p99_latency_ms,cpu_usage_pct,memory_usage_mb,delta_rps,delta_p95_latency_ms,\
             delta_cpu_usage_pct,sla_violated"
        );
    }

    #[test]
    fn names_parse_and_print() {
        for m in ModelKind::ALL {
            assert_eq!(m.as_str().parse::<ModelKind>().unwrap(), m);
        }
        assert!("svm".parse::<ModelKind>().unwrap_err().contains("xgboost"));
        assert_eq!("weighted".parse::<Strategy>().unwrap(), Strategy::Weighted);
        assert!("mostly"
            .parse::<Strategy>()
            .unwrap_err()
            .contains("majority"));
        let json = serde_json::to_string(&Verdict::ScaleUp).unwrap();
        assert_eq!(json, "\"SCALE_UP\"");
    }
}
