//! Train / validation / test splits that never leak rows across time or runs.
//!
//! Never a random row split: neighbouring polls are nearly identical, so a random split puts
//! the same moment in both parts and flatters every model.
//!
//! * **time**: cut-off times `c_val < c_test` at the `1 − val − test` and `1 − test` quantiles
//!   of the labelled rows' timestamps; train = before `c_val`, validation = `[c_val, c_test)`,
//!   test = from `c_test`. A row whose label window (the next `horizon` polls) reaches past its
//!   part's end is **purged**: its label would be computed from rows of the next part.
//! * **by-run** / **by-pattern**: whole runs (patterns) go to test, to validation, or to
//!   training, chosen with the seed (or named). With fewer than three groups, validation is the
//!   last `val_fraction` (in time, purged) of the training groups.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::Record;
use crate::labels::{groups, label_window_end};
use crate::TrainingError;

/// How to split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitKind {
    /// By time.
    Time,
    /// By run.
    ByRun,
    /// By load pattern.
    ByPattern,
}

impl std::fmt::Display for SplitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SplitKind::Time => "time",
            SplitKind::ByRun => "by-run",
            SplitKind::ByPattern => "by-pattern",
        })
    }
}

impl std::str::FromStr for SplitKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "time" => Ok(SplitKind::Time),
            "by-run" => Ok(SplitKind::ByRun),
            "by-pattern" => Ok(SplitKind::ByPattern),
            o => Err(format!("unknown split `{o}` (time, by-run, by-pattern)")),
        }
    }
}

/// Split settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// The kind.
    pub kind: SplitKind,
    /// Fraction for validation (time split; groups otherwise). Default 0.2.
    pub val_fraction: f64,
    /// Fraction for test. Default 0.2.
    pub test_fraction: f64,
    /// Runs or patterns to test on (by-run / by-pattern); empty = chosen with the seed.
    pub test_groups: Vec<String>,
    /// Seed of the group choice.
    pub seed: u64,
}

/// Default fraction for validation.
pub const DEFAULT_VAL_FRACTION: f64 = 0.2;
/// Default fraction for test.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            kind: SplitKind::Time,
            val_fraction: DEFAULT_VAL_FRACTION,
            test_fraction: DEFAULT_TEST_FRACTION,
            test_groups: Vec::new(),
            seed: autoscaler_models::DEFAULT_SEED,
        }
    }
}

/// Indices (into the records) of each part, each in record order.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Split {
    /// Training rows.
    pub train: Vec<usize>,
    /// Validation rows (threshold choice).
    pub val: Vec<usize>,
    /// Test rows (the scores).
    pub test: Vec<usize>,
    /// Labelled rows left out because their label window crosses into a later part.
    pub purged: usize,
    /// In words.
    pub description: String,
}

/// Split the labelled records (`labels[i].is_some()`).
pub fn split(
    records: &[Record],
    labels: &[Option<bool>],
    horizon: usize,
    cfg: &SplitConfig,
) -> Result<Split, TrainingError> {
    let bad = |m: String| Err(TrainingError::Config(m));
    if !(0.0..1.0).contains(&cfg.val_fraction)
        || !(0.0..1.0).contains(&cfg.test_fraction)
        || cfg.val_fraction + cfg.test_fraction >= 1.0
        || cfg.test_fraction <= 0.0
    {
        return bad(format!(
            "validation ({}) and test ({}) fractions must be in [0, 1), test > 0, sum < 1",
            cfg.val_fraction, cfg.test_fraction
        ));
    }
    let labelled: Vec<usize> = (0..records.len())
        .filter(|i| labels[*i].is_some())
        .collect();
    if labelled.is_empty() {
        return bad(
            "no labelled rows (every run shorter than the horizon, or no p95 at all)".into(),
        );
    }
    let ends = label_window_end(records, horizon);
    match cfg.kind {
        SplitKind::Time => Ok(time_split(records, &labelled, &ends, cfg)),
        SplitKind::ByRun | SplitKind::ByPattern => group_split(records, &labelled, &ends, cfg),
    }
}

fn quantile_time(sorted: &[DateTime<Utc>], q: f64) -> DateTime<Utc> {
    let k = ((sorted.len() as f64) * q).floor() as usize;
    sorted[k.min(sorted.len() - 1)]
}

fn time_split(
    records: &[Record],
    labelled: &[usize],
    ends: &[Option<DateTime<Utc>>],
    cfg: &SplitConfig,
) -> Split {
    let mut ts: Vec<DateTime<Utc>> = labelled.iter().map(|i| records[*i].timestamp).collect();
    ts.sort_unstable();
    let c_val = quantile_time(&ts, 1.0 - cfg.val_fraction - cfg.test_fraction);
    let c_test = quantile_time(&ts, 1.0 - cfg.test_fraction);
    let mut s = Split::default();
    for &i in labelled {
        let t = records[i].timestamp;
        // A labelled row always has its window end.
        let end = ends[i].unwrap_or(t);
        if t < c_val {
            if end < c_val {
                s.train.push(i);
            } else {
                s.purged += 1;
            }
        } else if t < c_test {
            if end < c_test {
                s.val.push(i);
            } else {
                s.purged += 1;
            }
        } else {
            s.test.push(i);
        }
    }
    s.description = format!(
        "time: train before {}, validation until {}, test from then on ({} rows purged at the cut-offs)",
        c_val.to_rfc3339(),
        c_test.to_rfc3339(),
        s.purged
    );
    s
}

fn group_split(
    records: &[Record],
    labelled: &[usize],
    ends: &[Option<DateTime<Utc>>],
    cfg: &SplitConfig,
) -> Result<Split, TrainingError> {
    let by_pattern = cfg.kind == SplitKind::ByPattern;
    let key = |i: usize| -> Result<String, TrainingError> {
        if by_pattern {
            records[i].pattern.clone().ok_or_else(|| {
                TrainingError::Config(format!(
                    "--split by-pattern: a row of run `{}` has no pattern (add a `pattern` column \
                     or pass the file as PATTERN=PATH)",
                    records[i].run
                ))
            })
        } else {
            Ok(records[i].run.clone())
        }
    };
    let mut names = BTreeSet::new();
    for &i in labelled {
        names.insert(key(i)?);
    }
    let names: Vec<String> = names.into_iter().collect();
    let what = if by_pattern { "patterns" } else { "runs" };
    if names.len() < 2 {
        return Err(TrainingError::Config(format!(
            "--split {}: needs at least 2 {what} with labelled rows, found {} ({}); use --split time",
            cfg.kind,
            names.len(),
            names.join(", ")
        )));
    }
    for g in &cfg.test_groups {
        if !names.contains(g) {
            return Err(TrainingError::Config(format!(
                "test {what} `{g}` not in the data ({})",
                names.join(", ")
            )));
        }
    }
    let mut order = names.clone();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed));
    let n = names.len();
    let test: BTreeSet<String> = if cfg.test_groups.is_empty() {
        let k = ((n as f64 * cfg.test_fraction).round() as usize).clamp(1, n - 1);
        order.iter().take(k).cloned().collect()
    } else {
        cfg.test_groups.iter().cloned().collect()
    };
    if test.len() >= n {
        return Err(TrainingError::Config(format!(
            "every one of the {n} {what} is a test group: nothing left to train on"
        )));
    }
    let rest: Vec<String> = order
        .iter()
        .filter(|g| !test.contains(*g))
        .cloned()
        .collect();
    let val: BTreeSet<String> = if rest.len() >= 2 && cfg.val_fraction > 0.0 {
        let k = ((n as f64 * cfg.val_fraction).round() as usize).clamp(1, rest.len() - 1);
        rest.iter().take(k).cloned().collect()
    } else {
        BTreeSet::new()
    };
    let mut s = Split::default();
    let mut train_rows = Vec::new();
    for &i in labelled {
        let g = key(i)?;
        if test.contains(&g) {
            s.test.push(i);
        } else if val.contains(&g) {
            s.val.push(i);
        } else {
            train_rows.push(i);
        }
    }
    let mut val_how = format!("validation {what} [{}]", join(&val));
    if val.is_empty() && cfg.val_fraction > 0.0 {
        // Too few groups: validate on the last part (in time) of each training (run, service).
        let (tr, va, purged) = tail_per_group(records, &train_rows, ends, cfg.val_fraction);
        train_rows = tr;
        s.val = va;
        s.purged += purged;
        val_how = format!(
            "validation = the last {:.0} % in time of each training run and service",
            cfg.val_fraction * 100.0
        );
    }
    s.train = train_rows;
    s.description = format!(
        "{}: test {what} [{}], {val_how}, training on the rest",
        cfg.kind,
        join(&test)
    );
    Ok(s)
}

fn join(s: &BTreeSet<String>) -> String {
    s.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Per (run, service): the last `frac` of its rows (in time) to validation, the rest to
/// training, purging training rows whose label window reaches the validation start.
fn tail_per_group(
    records: &[Record],
    rows: &[usize],
    ends: &[Option<DateTime<Utc>>],
    frac: f64,
) -> (Vec<usize>, Vec<usize>, usize) {
    let keep: BTreeSet<usize> = rows.iter().copied().collect();
    let mut train = Vec::new();
    let mut val = Vec::new();
    let mut purged = 0;
    for g in groups(records) {
        let g: Vec<usize> = g.into_iter().filter(|i| keep.contains(i)).collect();
        if g.is_empty() {
            continue;
        }
        let cut_k = ((g.len() as f64) * (1.0 - frac)).floor() as usize;
        let Some(cut) = g.get(cut_k).map(|i| records[*i].timestamp) else {
            train.extend(g);
            continue;
        };
        for i in g {
            let t = records[i].timestamp;
            if t >= cut {
                val.push(i);
            } else if ends[i].is_some_and(|e| e < cut) {
                train.push(i);
            } else {
                purged += 1;
            }
        }
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val, purged)
}
