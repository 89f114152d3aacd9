//! # History features: the one feature function
//!
//! A feature vector describes one poll. Many violations are announced by how the last polls
//! moved (load rising, latency creeping up), so the models also take features computed from the
//! service's **recent polls**: lags, rolling statistics, time of day and the service's identity.
//! [`feature_values`] computes every feature a model can take from a window of polls; training,
//! evaluation, the inference service and the backtest all call it (through
//! [`input_row_from_history`] when a missing value must be an error), so the four compute the
//! same value on the same row.
//!
//! The window is built by [`History`], the same way everywhere: per service, the last
//! [`HISTORY_LEN`] polls in time order; a poll older than the last one, or one more than
//! [`DEFAULT_MAX_GAP_SECS`] after it, starts a new window (a restart or an outage breaks the
//! history; a redelivered poll with the same time replaces the last one). Memory is bounded:
//! [`HISTORY_LEN`] points per service, at most [`DEFAULT_MAX_SERVICES`] services.
//!
//! **Needs ≥ N points**: a model taking any lag or rolling feature needs at least
//! [`MIN_HISTORY_POINTS`] polls in the window (the current one included); before that,
//! [`feature_values`] fails with [`ModelError::NotEnoughHistory`] and the inference service
//! abstains (training and evaluation leave such rows out and say how many).
//!
//! Features (`<signal>` is one of [`HISTORY_SIGNALS`]):
//!
//! | name | value |
//! |---|---|
//! | `<signal>_lag<k>`, k = 1..=[`LAGS`] | the signal `k` polls ago; with fewer polls in the window, the oldest one's (a start-of-window pad) |
//! | `<signal>_roll_mean` | mean over the last [`ROLL_WINDOW`] polls (those in the window) |
//! | `<signal>_roll_std` | population standard deviation over the same polls |
//! | `<signal>_roll_slope` | least-squares slope per poll over the same polls (0 with one poll) |
//! | `rps_per_replica_roll_mean`, `cpu_per_replica_roll_mean` | the rolling mean of `request_rate_rps` / `cpu_usage_pct` divided by the replica count given |
//! | `time_of_day_sin`, `time_of_day_cos` | the current poll's UTC time of day on the unit circle |
//! | `service=<name>` | 1 when the window's service is `<name>`, else 0 (one-hot identity for a shared model) |
//!
//! Per-replica features divide by the replica count passed in, never by one stored in the
//! window: the what-if for a candidate replica count passes that count, and every per-replica
//! feature (current or rolling) moves with it while the totals stay as measured — the same rule
//! as [`crate::input_row_one_fewer`].
//!
//! A missing signal value (not measured) stays missing: a lag of a missing poll, or a rolling
//! statistic with no measured poll, is `None` — never 0. Rolling statistics use the measured
//! polls of the window only.

use std::collections::{HashMap, VecDeque};

use autoscaler_contract::{FeatureVector, Features, FEATURE_NAMES};
use chrono::{DateTime, Timelike, Utc};

use crate::features::EXTRA_FEATURES;
use crate::ModelError;

/// Lags taken of each signal: the last 5 polls.
pub const LAGS: usize = 5;
/// Polls kept per service: the current one and [`LAGS`] before it.
pub const HISTORY_LEN: usize = LAGS + 1;
/// Polls the rolling statistics cover (the current one included).
pub const ROLL_WINDOW: usize = 5;
/// A model taking a lag or rolling feature abstains until the window holds this many polls
/// (the current one included): one earlier poll at least, so that a slope exists.
pub const MIN_HISTORY_POINTS: usize = 2;
/// A poll arriving more than this many seconds after the previous one starts a new window.
pub const DEFAULT_MAX_GAP_SECS: i64 = 300;
/// Services whose history [`History`] keeps at most (the least recently seen is dropped).
pub const DEFAULT_MAX_SERVICES: usize = 10_000;

/// Signals whose lags and rolling statistics are features.
pub const HISTORY_SIGNALS: [&str; 4] = [
    "request_rate_rps",
    "p95_latency_ms",
    "p99_latency_ms",
    "cpu_usage_pct",
];

/// Rolling per-replica features (see the module docs).
pub const PER_REPLICA_HISTORY_FEATURES: [&str; 2] =
    ["rps_per_replica_roll_mean", "cpu_per_replica_roll_mean"];

/// Time-of-day features.
pub const TIME_OF_DAY_FEATURES: [&str; 2] = ["time_of_day_sin", "time_of_day_cos"];

/// Prefix of the one-hot service-identity features (`service=front-end`).
pub const SERVICE_PREFIX: &str = "service=";

const ROLL_STATS: [&str; 3] = ["roll_mean", "roll_std", "roll_slope"];

/// One poll of one service, as the history keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPoint {
    /// The time the metrics describe.
    pub time: DateTime<Utc>,
    /// The measurements.
    pub features: Features,
}

impl HistoryPoint {
    /// The point of a feature vector (its `metric_time` and features).
    pub fn of_vector(v: &FeatureVector) -> HistoryPoint {
        HistoryPoint {
            time: v.metric_time,
            features: v.features.clone(),
        }
    }
}

/// What a history feature name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind<'a> {
    Lag(&'a str, usize),
    Roll(&'a str, &'a str),
    PerReplicaRoll(&'a str),
    TimeOfDay(bool),
    Service(&'a str),
}

fn parse(name: &str) -> Option<Kind<'_>> {
    if let Some(s) = name.strip_prefix(SERVICE_PREFIX) {
        return (!s.is_empty()).then_some(Kind::Service(s));
    }
    match name {
        "time_of_day_sin" => return Some(Kind::TimeOfDay(true)),
        "time_of_day_cos" => return Some(Kind::TimeOfDay(false)),
        "rps_per_replica_roll_mean" => return Some(Kind::PerReplicaRoll("request_rate_rps")),
        "cpu_per_replica_roll_mean" => return Some(Kind::PerReplicaRoll("cpu_usage_pct")),
        _ => {}
    }
    for sig in HISTORY_SIGNALS {
        let Some(rest) = name.strip_prefix(sig).and_then(|r| r.strip_prefix('_')) else {
            continue;
        };
        if let Some(k) = rest
            .strip_prefix("lag")
            .and_then(|k| k.parse::<usize>().ok())
        {
            return (1..=LAGS).contains(&k).then_some(Kind::Lag(sig, k));
        }
        if let Some(stat) = ROLL_STATS.into_iter().find(|s| *s == rest) {
            return Some(Kind::Roll(sig, stat));
        }
    }
    None
}

/// Whether `name` is a history feature (lag, rolling, time of day, service identity).
pub fn is_history_feature(name: &str) -> bool {
    parse(name).is_some()
}

/// Whether a model taking `names` needs [`MIN_HISTORY_POINTS`] polls (it takes a lag or a
/// rolling feature).
pub fn needs_history(names: &[String]) -> bool {
    names.iter().any(|n| {
        matches!(
            parse(n),
            Some(Kind::Lag(..) | Kind::Roll(..) | Kind::PerReplicaRoll(_))
        )
    })
}

/// The lag and rolling features of every [`HISTORY_SIGNALS`] signal, in a fixed order.
pub fn lag_and_roll_names() -> Vec<String> {
    let mut out = Vec::new();
    for sig in HISTORY_SIGNALS {
        for k in 1..=LAGS {
            out.push(format!("{sig}_lag{k}"));
        }
        for stat in ROLL_STATS {
            out.push(format!("{sig}_{stat}"));
        }
    }
    out
}

/// The default feature list of a model trained on `services`: the ten contract features, the
/// per-replica ones when `with_replicas`, the lags and rolling statistics, the time of day
/// when `time_of_day`, and one `service=<name>` per service when there are several (a shared
/// model told which service it is looking at).
pub fn default_history_feature_names(
    services: &[String],
    with_replicas: bool,
    time_of_day: bool,
) -> Vec<String> {
    let mut out: Vec<String> = FEATURE_NAMES.iter().map(|s| s.to_string()).collect();
    if with_replicas {
        out.extend(EXTRA_FEATURES.iter().map(|s| s.to_string()));
        out.extend(PER_REPLICA_HISTORY_FEATURES.iter().map(|s| s.to_string()));
    }
    out.extend(lag_and_roll_names());
    if time_of_day {
        out.extend(TIME_OF_DAY_FEATURES.iter().map(|s| s.to_string()));
    }
    let mut s: Vec<&String> = services.iter().collect();
    s.sort();
    s.dedup();
    if s.len() > 1 {
        out.extend(s.into_iter().map(|s| format!("{SERVICE_PREFIX}{s}")));
    }
    out
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// Mean, population std and least-squares slope (per poll) of the measured values among the
/// last [`ROLL_WINDOW`] polls; `None` when none is measured.
fn roll(window: &[HistoryPoint], sig: &str) -> Option<(f64, f64, f64)> {
    let start = window.len().saturating_sub(ROLL_WINDOW);
    let pts: Vec<(f64, f64)> = window[start..]
        .iter()
        .enumerate()
        .filter_map(|(i, p)| finite(p.features.get(sig)).map(|v| (i as f64, v)))
        .collect();
    if pts.is_empty() {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let var = pts.iter().map(|p| (p.1 - my).powi(2)).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    Some((my, var.sqrt(), slope))
}

/// **The one feature function.** Every feature in `names`, for the last poll of `window`
/// (oldest first; only the last [`HISTORY_LEN`] polls are used) of `service`, at `replicas`
/// replicas: `Some(value)`, or `None` when it cannot be computed (a value not measured, or no
/// replica count for a per-replica feature) — never 0.
///
/// Fails with [`ModelError::NotEnoughHistory`] when `names` need history and the window holds
/// fewer than [`MIN_HISTORY_POINTS`] polls, and with [`ModelError::UnknownFeature`] for a name
/// this crate does not know.
pub fn feature_values(
    window: &[HistoryPoint],
    service: &str,
    replicas: Option<u32>,
    names: &[String],
) -> Result<Vec<Option<f64>>, ModelError> {
    let Some(current) = window.last() else {
        return Err(ModelError::NotEnoughHistory { have: 0, need: 1 });
    };
    if needs_history(names) && window.len() < MIN_HISTORY_POINTS {
        return Err(ModelError::NotEnoughHistory {
            have: window.len(),
            need: MIN_HISTORY_POINTS,
        });
    }
    let window = &window[window.len().saturating_sub(HISTORY_LEN)..];
    let r = replicas.filter(|r| *r > 0).map(f64::from);
    let f = &current.features;
    let mut rolls: HashMap<&str, Option<(f64, f64, f64)>> = HashMap::new();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let v = match name.as_str() {
            n if FEATURE_NAMES.contains(&n) => finite(f.get(n)),
            "rps_per_replica" => finite(f.request_rate_rps).zip(r).map(|(a, b)| a / b),
            "cpu_per_replica_pct" => finite(f.cpu_usage_pct).zip(r).map(|(a, b)| a / b),
            n => match parse(n) {
                Some(Kind::Lag(sig, k)) => {
                    // k polls ago; before the window's start, its oldest poll.
                    let i = (window.len() - 1).saturating_sub(k);
                    finite(window[i].features.get(sig))
                }
                Some(Kind::Roll(sig, stat)) => {
                    let s = *rolls.entry(sig).or_insert_with(|| roll(window, sig));
                    s.map(|(m, sd, sl)| match stat {
                        "roll_mean" => m,
                        "roll_std" => sd,
                        _ => sl,
                    })
                }
                Some(Kind::PerReplicaRoll(sig)) => {
                    let s = *rolls.entry(sig).or_insert_with(|| roll(window, sig));
                    s.map(|(m, _, _)| m).zip(r).map(|(a, b)| a / b)
                }
                Some(Kind::TimeOfDay(sin)) => {
                    let secs = f64::from(current.time.num_seconds_from_midnight())
                        + f64::from(current.time.nanosecond()) / 1e9;
                    let angle = std::f64::consts::TAU * secs / 86_400.0;
                    Some(if sin { angle.sin() } else { angle.cos() })
                }
                Some(Kind::Service(s)) => Some(if s == service { 1.0 } else { 0.0 }),
                None => return Err(ModelError::UnknownFeature(n.to_string())),
            },
        };
        out.push(v);
    }
    Ok(out)
}

/// [`feature_values`] as a model input row: a value that cannot be computed is an error
/// ([`ModelError::MissingFeatures`], naming each one, plus `replicas` when a per-replica
/// feature lacks the count), never a 0. What the inference service calls.
pub fn input_row_from_history(
    window: &[HistoryPoint],
    service: &str,
    replicas: Option<u32>,
    names: &[String],
) -> Result<Vec<f64>, ModelError> {
    let values = feature_values(window, service, replicas, names)?;
    let mut missing: Vec<String> = names
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| n.clone())
        .collect();
    if missing.is_empty() {
        return Ok(values.into_iter().flatten().collect());
    }
    let per_replica =
        |n: &str| EXTRA_FEATURES.contains(&n) || PER_REPLICA_HISTORY_FEATURES.contains(&n);
    if replicas.filter(|r| *r > 0).is_none() && missing.iter().any(|n| per_replica(n)) {
        missing.push("replicas".into());
    }
    Err(ModelError::MissingFeatures(missing))
}

/// The recent polls of every service, bounded: [`HISTORY_LEN`] per service, at most
/// `max_services` services. The inference service keeps one; training builds its windows with
/// one too, so both apply the same rules (see the module docs).
#[derive(Debug, Clone)]
pub struct History {
    windows: HashMap<String, (u64, VecDeque<HistoryPoint>)>,
    max_gap_secs: i64,
    max_services: usize,
    clock: u64,
}

impl Default for History {
    fn default() -> Self {
        History::new(DEFAULT_MAX_GAP_SECS, DEFAULT_MAX_SERVICES)
    }
}

impl History {
    /// An empty history; a gap of more than `max_gap_secs` restarts a window; at most
    /// `max_services` services are kept (at least 1).
    pub fn new(max_gap_secs: i64, max_services: usize) -> History {
        History {
            windows: HashMap::new(),
            max_gap_secs,
            max_services: max_services.max(1),
            clock: 0,
        }
    }

    /// Add `point` to `service`'s window and return the window (oldest first, `point` last).
    pub fn push(&mut self, service: &str, point: HistoryPoint) -> &[HistoryPoint] {
        self.clock += 1;
        if !self.windows.contains_key(service) && self.windows.len() >= self.max_services {
            // Drop the service seen least recently (rare: only past `max_services`).
            if let Some(oldest) = self
                .windows
                .iter()
                .min_by_key(|(_, (seen, _))| *seen)
                .map(|(s, _)| s.clone())
            {
                self.windows.remove(&oldest);
            }
        }
        let (seen, w) = self
            .windows
            .entry(service.to_string())
            .or_insert_with(|| (0, VecDeque::with_capacity(HISTORY_LEN)));
        *seen = self.clock;
        match w.back() {
            Some(last) if point.time == last.time => {
                w.pop_back();
            }
            Some(last)
                if point.time < last.time
                    || (point.time - last.time).num_seconds() > self.max_gap_secs =>
            {
                w.clear();
            }
            _ => {}
        }
        if w.len() == HISTORY_LEN {
            w.pop_front();
        }
        w.push_back(point);
        w.make_contiguous()
    }

    /// Services currently tracked.
    pub fn services(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(secs: i64, rps: Option<f64>) -> HistoryPoint {
        HistoryPoint {
            time: DateTime::from_timestamp(secs, 0).unwrap(),
            features: Features {
                request_rate_rps: rps,
                cpu_usage_pct: Some(50.0),
                ..Features::default()
            },
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lags_rolls_and_padding_by_hand() {
        // rps 1, 2, 3, 4, 5, 6, 7 at 30 s polls: the window keeps the last six (2..=7).
        let mut h = History::default();
        let mut w = Vec::new();
        for (i, v) in (1..=7).enumerate() {
            w = h.push("a", pt(30 * i as i64, Some(f64::from(v)))).to_vec();
        }
        assert_eq!(w.len(), HISTORY_LEN);
        let n = names(&[
            "request_rate_rps",
            "request_rate_rps_lag1",
            "request_rate_rps_lag5",
            "request_rate_rps_roll_mean",
            "request_rate_rps_roll_std",
            "request_rate_rps_roll_slope",
            "rps_per_replica_roll_mean",
            "service=a",
            "service=b",
        ]);
        let v = feature_values(&w, "a", Some(2), &n).unwrap();
        // Rolling over the last five: 3..=7, mean 5, std sqrt(2), slope 1 per poll.
        let want = [7.0, 6.0, 2.0, 5.0, 2f64.sqrt(), 1.0, 2.5, 1.0, 0.0];
        for (got, want) in v.iter().zip(want) {
            assert!((got.unwrap() - want).abs() < 1e-12, "{v:?}");
        }
        // Two polls only: lag5 pads with the oldest, the slope is the one step.
        let short = [pt(0, Some(1.0)), pt(30, Some(4.0))];
        let v = feature_values(&short, "a", None, &n[..6]).unwrap();
        assert_eq!(
            v,
            vec![
                Some(4.0),
                Some(1.0),
                Some(1.0),
                Some(2.5),
                Some(1.5),
                Some(3.0)
            ]
        );
    }

    #[test]
    fn needs_min_points_and_missing_is_never_zero() {
        let n = names(&["request_rate_rps_lag1"]);
        let e = feature_values(&[pt(0, Some(1.0))], "a", None, &n).unwrap_err();
        assert!(
            matches!(e, ModelError::NotEnoughHistory { have: 1, need: 2 }),
            "{e}"
        );
        // Contract features alone need no history.
        let v = feature_values(
            &[pt(0, Some(1.0))],
            "a",
            None,
            &names(&["request_rate_rps"]),
        );
        assert_eq!(v.unwrap(), vec![Some(1.0)]);
        // A missing lag is None, and an error for inference.
        let w = [pt(0, None), pt(30, Some(2.0))];
        assert_eq!(feature_values(&w, "a", None, &n).unwrap(), vec![None]);
        let e = input_row_from_history(&w, "a", None, &n).unwrap_err();
        assert!(
            matches!(&e, ModelError::MissingFeatures(m) if m == &n),
            "{e}"
        );
        let e = input_row_from_history(&w, "a", None, &names(&["rps_per_replica_roll_mean"]));
        assert!(e.unwrap_err().to_string().contains("replicas"));
        assert!(matches!(
            feature_values(&w, "a", None, &names(&["bogus_lag1"])),
            Err(ModelError::UnknownFeature(_))
        ));
    }

    #[test]
    fn gaps_and_replays_restart_the_window_and_memory_is_bounded() {
        let mut h = History::new(300, 2);
        h.push("a", pt(0, Some(1.0)));
        assert_eq!(h.push("a", pt(30, Some(2.0))).len(), 2);
        // Redelivered: replaces the last.
        assert_eq!(h.push("a", pt(30, Some(3.0))).len(), 2);
        // Out of order, then a long gap: new windows.
        assert_eq!(h.push("a", pt(10, Some(1.0))).len(), 1);
        assert_eq!(h.push("a", pt(1000, Some(1.0))).len(), 1);
        h.push("b", pt(0, Some(1.0)));
        h.push("c", pt(0, Some(1.0)));
        assert_eq!(
            h.services(),
            2,
            "the least recently seen service is dropped"
        );
    }

    #[test]
    fn time_of_day_is_on_the_unit_circle() {
        let n = names(&TIME_OF_DAY_FEATURES);
        // 06:00 UTC: a quarter of the day.
        let v = feature_values(&[pt(6 * 3600, None)], "a", None, &n).unwrap();
        assert!((v[0].unwrap() - 1.0).abs() < 1e-12 && v[1].unwrap().abs() < 1e-12);
    }

    #[test]
    fn default_names_are_all_known_and_one_hot_only_when_shared() {
        let two = default_history_feature_names(&["b".into(), "a".into()], true, true);
        assert!(two.iter().all(|n| crate::is_known_feature(n)), "{two:?}");
        assert!(two.ends_with(&["service=a".to_string(), "service=b".to_string()]));
        let one = default_history_feature_names(&["a".into()], false, false);
        assert!(!one.iter().any(|n| n.starts_with(SERVICE_PREFIX)));
        assert!(needs_history(&one));
        assert!(!needs_history(&names(&["service=a", "time_of_day_sin"])));
    }
}
