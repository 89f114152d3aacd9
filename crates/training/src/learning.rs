//! # The learning loop
//!
//! Each step is one function (and one `autoscaler` command), and each is resumable: it reads
//! everything it needs from files and writes its result atomically, so running it again after
//! a crash or on a schedule gives the same answer on the same inputs.
//!
//! 1. **Prediction logs** (`predictions_<model>.csv`, written by the inference services, rotated
//!    files included): [`prediction_files`], [`read_predictions`]. A file cut mid-row (a crash
//!    while writing) gives a [`BadRow`] naming the file and line, never a half-read vector.
//! 2. **Outcomes** ([`outcomes`]): each logged vector joined with what followed — the p95 and
//!    error rate of the **next** `horizon` polls of the same service, from the logs themselves
//!    and from any metrics CSV given (future-only labels, as in training). A vector whose future
//!    is not known yet is counted per service in [`Outcomes::pending`], not labelled.
//!    [`write_outcomes`] writes `outcomes.csv` (one row per vector, in the training CSV format
//!    with `sla_violated`) and `outcome_votes.csv` (one row per logged vote and its outcome).
//! 3. **Retrain** ([`retrain`]): a candidate trained on a rolling window of the most recent
//!    labelled rows, split **in time**: training, then validation (calibration, thresholds,
//!    weights), then the most recent slice, held out, *after* all the training data. The live
//!    models are scored on the same slice. A model card (`card.json`) records all of it.
//! 4. **Drift** ([`psi`], [`drift`]): population stability of each feature of the recent slice
//!    against the reference distribution in the live card (or the window's training part), and
//!    the live models' recall on the recent slice against their validation recall; past
//!    [`DEFAULT_PSI_ALARM`] or a recall drop of [`DEFAULT_RECALL_DROP_ALARM`] → an alarm (and
//!    the scheduled loop retrains at once).
//! 5. **Shadow**: the candidate votes on the recent slice's vectors under its own model version;
//!    its votes are logged (`<candidate>/shadow/predictions_<model>.csv`), never published.
//! 6. **Promotion** ([`promote`]): only when the candidate beats the live models on the same
//!    recent slice by [`DEFAULT_PROMOTION_MARGIN`] (mean F1 of the three at their thresholds),
//!    and only after every candidate model loads; each model directory is swapped by rename,
//!    the previous one kept in `<live>/.previous/`. Otherwise the card is the report.
//!
//! Bad input — a window with one class only or too few rows, a CSV that stops mid-row, a
//! candidate that fails to load — gives a clear [`TrainingError`] and leaves the live models
//! untouched.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use autoscaler_contract::{Features, ModelKind, FEATURE_NAMES};
use autoscaler_models::{load, read_metadata, Model, TrainParams};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::data::{load_csvs, BadRow, BadRows, DataInput, Loaded};
use crate::features::FeatureCache;
use crate::labels::{derive_labels, SlaSpec};
use crate::metrics::{metrics, Metrics};
use crate::split::{SplitConfig, SplitKind};
use crate::train::{prepare, train_candidates, TrainConfig};
use crate::TrainingError;

/// Rows of the rolling window `retrain` trains on (the most recent ones), by default.
pub const DEFAULT_WINDOW_ROWS: usize = 100_000;
/// Fewest labelled rows a retrain accepts.
pub const MIN_RETRAIN_ROWS: usize = 200;
/// Share of the window (the most recent rows) held out to compare candidate and live.
pub const DEFAULT_HOLDOUT_FRACTION: f64 = 0.2;
/// Share of the window (before the held-out slice) for validation.
pub const DEFAULT_VALIDATION_FRACTION: f64 = 0.2;
/// A candidate is promoted only when its mean F1 on the recent slice beats the live models' by
/// this much.
pub const DEFAULT_PROMOTION_MARGIN: f64 = 0.02;
/// A feature whose population stability index exceeds this is drifting (the usual rule of
/// thumb: < 0.1 stable, 0.1–0.25 moderate, > 0.25 a shift).
pub const DEFAULT_PSI_ALARM: f64 = 0.25;
/// A live model whose recall on the recent slice is this far below its validation recall is
/// drifting.
pub const DEFAULT_RECALL_DROP_ALARM: f64 = 0.15;
/// Bins (reference quantiles) of the PSI.
pub const PSI_BINS: usize = 10;
/// Minutes between two scheduled retrains (`--schedule`), by default.
pub const DEFAULT_RETRAIN_INTERVAL_MIN: u64 = 60;
/// Where the inference services write their prediction logs, by default.
pub const DEFAULT_PREDICTIONS_DIR: &str = "output";
/// Where `outcomes` writes `outcomes.csv` and `outcome_votes.csv`, by default.
pub const DEFAULT_LEARNING_DIR: &str = "output/learning";
/// The labelled rows `retrain` and `drift` read by default (what `outcomes` writes).
pub const DEFAULT_OUTCOMES_CSV: &str = "output/learning/outcomes.csv";
/// Where `retrain` writes its candidates (`<dir>/<created_at>/`), by default.
pub const DEFAULT_CANDIDATES_DIR: &str = "output/candidates";
/// Minutes between two drift checks of the scheduled loop (a drift alarm retrains at once).
pub const DEFAULT_DRIFT_CHECK_MIN: u64 = 10;
/// The model card's file name, beside the model directories.
pub const CARD_FILE: &str = "card.json";
/// Run name the outcome rows carry.
pub const LIVE_RUN: &str = "live";

// ---------------------------------------------------------------------------------------------
// Prediction logs

/// One logged vote.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRow {
    /// The vector voted on.
    pub vector_id: String,
    /// Its service.
    pub service: String,
    /// The time its metrics describe.
    pub metric_time: DateTime<Utc>,
    /// The model.
    pub model: ModelKind,
    /// The artefact's version (a shadow candidate's differs from the live one's).
    pub model_version: String,
    /// Replicas measured at.
    pub replicas: Option<u32>,
    /// The vector's features.
    pub features: Features,
    /// P(violation); `None` when the model abstained.
    pub probability: Option<f64>,
    /// 1 up, 0 no action; `None` when the model abstained.
    pub prediction: Option<u8>,
    /// The model's threshold.
    pub threshold: Option<f64>,
}

/// The rows of some prediction logs.
#[derive(Debug, Clone, Default)]
pub struct PredictionLog {
    /// Rows read, in file order.
    pub rows: Vec<PredictionRow>,
    /// Rows that could not be read (a file cut mid-row, a bad value), with file and line.
    pub bad_rows: Vec<BadRow>,
    /// Files read.
    pub files: Vec<PathBuf>,
}

/// The prediction logs in `dir`: `predictions_<model>.csv` and its rotated files (any file
/// whose name starts with `predictions_` and contains `.csv`), sorted by name.
pub fn prediction_files(dir: &Path) -> Result<Vec<PathBuf>, TrainingError> {
    let io = |source| TrainingError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("predictions_") && name.contains(".csv") && !name.ends_with(".tmp") {
            out.push(e.path());
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(TrainingError::Config(format!(
            "no prediction log (predictions_<model>.csv) in {}",
            dir.display()
        )));
    }
    Ok(out)
}

fn opt_f64(s: Option<&str>) -> Result<Option<f64>, String> {
    match s.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.eq_ignore_ascii_case("nan") => Ok(None),
        Some(t) => match t.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(format!("`{t}` is not a number")),
        },
    }
}

/// Read prediction logs (columns by header name; `vector_id`, `service`, `metric_time`,
/// `model`, `model_version` and the ten features are required).
pub fn read_predictions(files: &[PathBuf]) -> Result<PredictionLog, TrainingError> {
    let mut log = PredictionLog::default();
    for path in files {
        let bytes = std::fs::read(path).map_err(|source| TrainingError::Io {
            path: path.clone(),
            source,
        })?;
        log.files.push(path.clone());
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(bytes.as_slice());
        let header = rdr
            .headers()
            .map_err(|e| TrainingError::Csv {
                path: path.clone(),
                reason: e.to_string(),
            })?
            .clone();
        let col: HashMap<String, usize> = header
            .iter()
            .enumerate()
            .map(|(i, h)| (h.trim().to_string(), i))
            .collect();
        let required = [
            "vector_id",
            "service",
            "metric_time",
            "model",
            "model_version",
        ];
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .chain(FEATURE_NAMES)
            .filter(|c| !col.contains_key(*c))
            .collect();
        if !missing.is_empty() {
            return Err(TrainingError::Csv {
                path: path.clone(),
                reason: format!(
                    "not a prediction log: missing column(s) {}",
                    missing.join(", ")
                ),
            });
        }
        for rec in rdr.records() {
            let (line, row) = match rec {
                Err(e) => (e.position().map_or(0, |p| p.line()), Err(e.to_string())),
                Ok(rec) => {
                    let line = rec.position().map_or(0, |p| p.line());
                    let row = if rec.len() < header.len() {
                        Err(format!(
                            "cut short: {} of {} fields (a file cut mid-row?)",
                            rec.len(),
                            header.len()
                        ))
                    } else {
                        parse_prediction(&rec, &col)
                    };
                    (line, row)
                }
            };
            match row {
                Ok(r) => log.rows.push(r),
                Err(reason) => {
                    let bad = BadRow {
                        file: path.clone(),
                        line,
                        reason,
                    };
                    tracing::warn!(%bad, "skipping a bad prediction row");
                    log.bad_rows.push(bad);
                }
            }
        }
    }
    Ok(log)
}

fn parse_prediction(
    rec: &csv::StringRecord,
    col: &HashMap<String, usize>,
) -> Result<PredictionRow, String> {
    let get = |n: &str| col.get(n).and_then(|i| rec.get(*i));
    let need = |n: &str| {
        get(n)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("empty `{n}`"))
    };
    let metric_time = DateTime::parse_from_rfc3339(need("metric_time")?)
        .map_err(|e| format!("metric_time: {e}"))?
        .with_timezone(&Utc);
    let model: ModelKind = need("model")?
        .parse()
        .map_err(|e| format!("model: {e:?}"))?;
    let mut v = [None; 10];
    for (slot, name) in v.iter_mut().zip(FEATURE_NAMES) {
        *slot = opt_f64(get(name)).map_err(|e| format!("{name}: {e}"))?;
    }
    let replicas = match get("replicas").map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<u32>()
                .map_err(|_| format!("replicas `{s}` is not a whole number"))?,
        ),
    };
    let prediction = match get("prediction").map(str::trim) {
        None | Some("") => None,
        Some("1") => Some(1),
        Some("0") => Some(0),
        Some(s) => return Err(format!("prediction `{s}` is not 0/1")),
    };
    Ok(PredictionRow {
        vector_id: need("vector_id")?.to_string(),
        service: need("service")?.to_string(),
        metric_time,
        model,
        model_version: need("model_version")?.to_string(),
        replicas,
        features: Features {
            request_rate_rps: v[0],
            error_rate_pct: v[1],
            p50_latency_ms: v[2],
            p95_latency_ms: v[3],
            p99_latency_ms: v[4],
            cpu_usage_pct: v[5],
            memory_usage_mb: v[6],
            delta_rps: v[7],
            delta_p95_latency_ms: v[8],
            delta_cpu_usage_pct: v[9],
        },
        probability: opt_f64(get("probability")).map_err(|e| format!("probability: {e}"))?,
        prediction,
        threshold: opt_f64(get("threshold")).map_err(|e| format!("threshold: {e}"))?,
    })
}

// ---------------------------------------------------------------------------------------------
// Outcomes

/// One logged vector with its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeVector {
    /// The vector.
    pub vector_id: String,
    /// Its service.
    pub service: String,
    /// Its metric time.
    pub time: DateTime<Utc>,
    /// Replicas measured at.
    pub replicas: Option<u32>,
    /// Features.
    #[serde(skip)]
    pub features: Features,
    /// Whether the SLA broke in the next `horizon` polls.
    pub label: bool,
}

/// One logged vote with the outcome of its vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeVote {
    /// The vector.
    pub vector_id: String,
    /// Its service.
    pub service: String,
    /// Its metric time.
    pub time: DateTime<Utc>,
    /// The model.
    pub model: ModelKind,
    /// The model's version.
    pub model_version: String,
    /// P(violation); `None` when the model abstained.
    pub probability: Option<f64>,
    /// The prediction; `None` when the model abstained.
    pub prediction: Option<u8>,
    /// The outcome.
    pub label: bool,
}

/// What [`outcomes`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcomes {
    /// Labelled vectors, per service in time order.
    pub vectors: Vec<OutcomeVector>,
    /// Labelled votes.
    pub votes: Vec<OutcomeVote>,
    /// Per service: logged vectors whose outcome is not known yet (the last `horizon` polls, or
    /// no p95 after them).
    pub pending: BTreeMap<String, usize>,
    /// Votes logged more than once (same vector and model version), counted once.
    pub duplicates: usize,
}

/// Join the logged vectors with what followed: the next `horizon` polls of the same service in
/// the logs and in `metrics` (rows of other services ignored). Future-only labels
/// ([`autoscaler_simulator::label_violations`]).
pub fn outcomes(
    log: &PredictionLog,
    metrics_rows: Option<&Loaded>,
    sla: &SlaSpec,
    horizon: usize,
) -> Result<Outcomes, TrainingError> {
    if horizon == 0 {
        return Err(TrainingError::Config("--horizon must be at least 1".into()));
    }
    // Per service: the measured series (time → p95, error rate), from both sources.
    type Point = (Option<f64>, Option<f64>);
    let mut series: BTreeMap<&str, BTreeMap<DateTime<Utc>, Point>> = BTreeMap::new();
    for r in &log.rows {
        series.entry(r.service.as_str()).or_default().insert(
            r.metric_time,
            (r.features.p95_latency_ms, r.features.error_rate_pct),
        );
    }
    if let Some(m) = metrics_rows {
        for r in &m.records {
            if let Some(s) = series.get_mut(r.service.as_str()) {
                s.entry(r.timestamp)
                    .or_insert((r.features.p95_latency_ms, r.features.error_rate_pct));
            }
        }
    }
    let mut label_at: HashMap<(&str, DateTime<Utc>), Option<bool>> = HashMap::new();
    for (service, pts) in &series {
        let sla_ms = sla.for_service(service)?;
        let p95: Vec<Option<f64>> = pts.values().map(|p| p.0).collect();
        let err: Vec<Option<f64>> = pts.values().map(|p| p.1).collect();
        let labels = autoscaler_simulator::label_violations(&p95, &err, sla_ms, horizon);
        for (t, l) in pts.keys().zip(labels) {
            label_at.insert((service, *t), l);
        }
    }
    let mut out = Outcomes::default();
    let mut seen_vectors: BTreeSet<&str> = BTreeSet::new();
    let mut seen_votes: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut pending_vectors: BTreeSet<&str> = BTreeSet::new();
    let mut order: Vec<&PredictionRow> = log.rows.iter().collect();
    order.sort_by(|a, b| {
        (a.service.as_str(), a.metric_time).cmp(&(b.service.as_str(), b.metric_time))
    });
    for r in order {
        if !seen_votes.insert((r.vector_id.as_str(), r.model_version.as_str())) {
            out.duplicates += 1;
            continue;
        }
        let Some(label) = label_at
            .get(&(r.service.as_str(), r.metric_time))
            .copied()
            .flatten()
        else {
            if pending_vectors.insert(r.vector_id.as_str()) {
                *out.pending.entry(r.service.clone()).or_default() += 1;
            }
            continue;
        };
        out.votes.push(OutcomeVote {
            vector_id: r.vector_id.clone(),
            service: r.service.clone(),
            time: r.metric_time,
            model: r.model,
            model_version: r.model_version.clone(),
            probability: r.probability,
            prediction: r.prediction,
            label,
        });
        if seen_vectors.insert(r.vector_id.as_str()) {
            out.vectors.push(OutcomeVector {
                vector_id: r.vector_id.clone(),
                service: r.service.clone(),
                time: r.metric_time,
                replicas: r.replicas,
                features: r.features.clone(),
                label,
            });
        }
    }
    Ok(out)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Write `bytes` via a temporary file and a rename: a reader never sees half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainingError> {
    let io = |source| TrainingError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Outcome files written by [`write_outcomes`].
pub const OUTCOMES_FILE: &str = "outcomes.csv";
/// One row per labelled vote.
pub const OUTCOME_VOTES_FILE: &str = "outcome_votes.csv";

/// Write `outcomes.csv` (training CSV format: `timestamp,service,run,replicas`, the ten
/// features, `sla_violated`, `vector_id`) and `outcome_votes.csv` into `dir`. Returns the two
/// paths.
pub fn write_outcomes(o: &Outcomes, dir: &Path) -> Result<(PathBuf, PathBuf), TrainingError> {
    let csv_err = |path: &Path, e: csv::Error| TrainingError::Csv {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let vectors_path = dir.join(OUTCOMES_FILE);
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["timestamp", "service", "run", "replicas"];
    header.extend(FEATURE_NAMES);
    header.extend(["sla_violated", "vector_id"]);
    w.write_record(&header)
        .map_err(|e| csv_err(&vectors_path, e))?;
    for v in &o.vectors {
        let mut row = vec![
            v.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            v.service.clone(),
            LIVE_RUN.to_string(),
            opt(v.replicas),
        ];
        row.extend(v.features.named().iter().map(|(_, x)| opt(*x)));
        row.push(u8::from(v.label).to_string());
        row.push(v.vector_id.clone());
        w.write_record(&row)
            .map_err(|e| csv_err(&vectors_path, e))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| TrainingError::Config(e.to_string()))?;
    write_atomic(&vectors_path, &bytes)?;

    let votes_path = dir.join(OUTCOME_VOTES_FILE);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "vector_id",
        "service",
        "metric_time",
        "model",
        "model_version",
        "probability",
        "prediction",
        "sla_violated",
    ])
    .map_err(|e| csv_err(&votes_path, e))?;
    for v in &o.votes {
        w.write_record([
            v.vector_id.clone(),
            v.service.clone(),
            v.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            v.model.as_str().to_string(),
            v.model_version.clone(),
            opt(v.probability),
            opt(v.prediction),
            u8::from(v.label).to_string(),
        ])
        .map_err(|e| csv_err(&votes_path, e))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| TrainingError::Config(e.to_string()))?;
    write_atomic(&votes_path, &bytes)?;
    Ok((vectors_path, votes_path))
}

// ---------------------------------------------------------------------------------------------
// Drift

/// The reference distribution of one feature: quantile bin edges and the share of rows in each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Inner bin edges (increasing; `edges.len() + 1` bins).
    pub edges: Vec<f64>,
    /// Share of the reference rows in each bin.
    pub shares: Vec<f64>,
}

fn bin_of(edges: &[f64], v: f64) -> usize {
    edges.partition_point(|e| *e < v)
}

impl Reference {
    /// Quantile bins of `values` (NaN skipped); `None` without values.
    pub fn fit(values: &[f64], bins: usize) -> Option<Reference> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mut edges: Vec<f64> = (1..bins.max(2))
            .map(|k| v[(k * v.len() / bins.max(2)).min(v.len() - 1)])
            .collect();
        edges.dedup();
        let shares = shares(&edges, &v);
        Some(Reference { edges, shares })
    }

    /// Population stability index of `values` against this reference:
    /// Σ (q − p) · ln(q / p) over the bins (shares floored at 1e-4); `None` without values.
    pub fn psi(&self, values: &[f64]) -> Option<f64> {
        let v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        let q = shares(&self.edges, &v);
        Some(
            self.shares
                .iter()
                .zip(&q)
                .map(|(p, q)| {
                    let (p, q) = (p.max(1e-4), q.max(1e-4));
                    (q - p) * (q / p).ln()
                })
                .sum(),
        )
    }
}

fn shares(edges: &[f64], v: &[f64]) -> Vec<f64> {
    let mut counts = vec![0usize; edges.len() + 1];
    for x in v {
        counts[bin_of(edges, *x)] += 1;
    }
    counts
        .iter()
        .map(|c| *c as f64 / v.len().max(1) as f64)
        .collect()
}

/// PSI of `recent` against `reference` with [`PSI_BINS`] reference quantile bins.
pub fn psi(reference: &[f64], recent: &[f64]) -> Option<f64> {
    Reference::fit(reference, PSI_BINS)?.psi(recent)
}

/// The drift of the recent slice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// PSI per feature.
    pub psi: BTreeMap<String, f64>,
    /// Each live model's recall on the recent slice and on its validation split.
    pub live_recall: BTreeMap<String, (f64, f64)>,
    /// Whether anything is past its threshold.
    pub alarm: bool,
    /// Why, in words.
    pub reasons: Vec<String>,
}

/// Drift of `recent` rows (in `names` order) against `reference`, plus the live models' recall
/// drop (`(recent recall, validation recall)` per model).
pub fn drift(
    reference: &BTreeMap<String, Reference>,
    names: &[String],
    recent: &[Vec<f64>],
    live_recall: BTreeMap<String, (f64, f64)>,
    psi_alarm: f64,
    recall_drop: f64,
) -> DriftReport {
    let mut r = DriftReport {
        live_recall,
        ..DriftReport::default()
    };
    for (j, name) in names.iter().enumerate() {
        let Some(refd) = reference.get(name) else {
            continue;
        };
        let col: Vec<f64> = recent.iter().map(|row| row[j]).collect();
        if let Some(p) = refd.psi(&col) {
            if p > psi_alarm {
                r.reasons.push(format!(
                    "feature `{name}` drifted: PSI {p:.3} > {psi_alarm}"
                ));
            }
            r.psi.insert(name.clone(), p);
        }
    }
    for (m, (recent, val)) in &r.live_recall {
        if val - recent > recall_drop {
            r.reasons.push(format!(
                "live {m}: recall {recent:.3} on the recent slice, {val:.3} on validation \
                 (drop > {recall_drop})"
            ));
        }
    }
    r.alarm = !r.reasons.is_empty();
    r
}

fn references(names: &[String], rows: &[Vec<f64>]) -> BTreeMap<String, Reference> {
    names
        .iter()
        .enumerate()
        .filter_map(|(j, n)| {
            let col: Vec<f64> = rows.iter().map(|r| r[j]).collect();
            Reference::fit(&col, PSI_BINS).map(|r| (n.clone(), r))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Retrain, shadow, promotion

/// What `retrain` does.
#[derive(Debug, Clone)]
pub struct RetrainConfig {
    /// Labelled rows: `outcomes.csv` files (their `sla_violated` is the label) and/or metrics
    /// CSVs (labels derived with `sla` and `horizon`).
    pub data: Vec<DataInput>,
    /// The live models (`<live>/<model>/`); absent = nothing to compare with.
    pub live_dir: PathBuf,
    /// Where candidates go (`<candidates>/<created_at>/`).
    pub candidates_dir: PathBuf,
    /// Most recent rows kept.
    pub window_rows: usize,
    /// Fewest labelled rows accepted.
    pub min_rows: usize,
    /// Held-out share (most recent).
    pub holdout_fraction: f64,
    /// Validation share.
    pub validation_fraction: f64,
    /// Label horizon, polls.
    pub horizon: usize,
    /// The SLA.
    pub sla: SlaSpec,
    /// Hyper-parameters.
    pub params: TrainParams,
    /// Target recall of the thresholds.
    pub target_recall: f64,
    /// Promotion margin on the mean F1.
    pub margin: f64,
    /// PSI alarm threshold.
    pub psi_alarm: f64,
    /// Recall-drop alarm threshold.
    pub recall_drop: f64,
    /// Promote when better (else only report).
    pub promote: bool,
    /// `created_at` of the candidate (RFC 3339); also its directory name.
    pub created_at: String,
}

/// One model's scores on the recent slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceScore {
    /// The model.
    pub model: ModelKind,
    /// Its version.
    pub version: String,
    /// Scores at its threshold.
    pub metrics: Metrics,
}

/// The decision on a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether it was promoted.
    pub promoted: bool,
    /// Why, in words.
    pub reason: String,
    /// Mean F1 of the candidate's models on the recent slice.
    pub candidate_f1: f64,
    /// Mean F1 of the live models on the same slice (`None` without live models).
    pub live_f1: Option<f64>,
}

/// The model card of a candidate: `<candidate>/card.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// When trained.
    pub created_at: String,
    /// Rows in the window, and its time span.
    pub window_rows: usize,
    /// First and last row time of the window.
    pub window: (DateTime<Utc>, DateTime<Utc>),
    /// The split, in words.
    pub split: String,
    /// Training / validation / held-out rows.
    pub rows: (usize, usize, usize),
    /// Input features.
    pub feature_names: Vec<String>,
    /// The training report (per model: threshold, validation and test scores; ensemble).
    pub training: serde_json::Value,
    /// Candidate models on the recent slice.
    pub candidate: Vec<SliceScore>,
    /// Live models on the same slice.
    pub live: Vec<SliceScore>,
    /// Reference distributions of the features (the candidate's training rows), for drift.
    pub reference: BTreeMap<String, Reference>,
    /// Drift of the recent slice against the live card (or the window's training part).
    pub drift: DriftReport,
    /// Shadow votes logged.
    pub shadow_votes: usize,
    /// The decision.
    pub decision: Decision,
}

/// What [`retrain`] did.
#[derive(Debug, Clone)]
pub struct RetrainOutcome {
    /// The candidate's directory.
    pub candidate_dir: PathBuf,
    /// Its card.
    pub card: ModelCard,
}

/// A loaded model, its score on a slice, and its probabilities on that slice's rows.
type Scored = (Box<dyn Model>, SliceScore, Vec<f64>);

/// Score the models in `dir` on `idx` rows of `records` (features over all of them, for the
/// history), at each model's threshold.
fn score_dir(
    dir: &Path,
    features: &mut FeatureCache<'_>,
    labels: &[Option<bool>],
    idx: &[usize],
) -> Result<Vec<Scored>, TrainingError> {
    let mut out = Vec::new();
    for kind in ModelKind::ALL {
        let model = load(kind, dir)?;
        let meta = read_metadata(kind, dir)?;
        let rows = features.rows(model.feature_names())?;
        let mut x = Vec::new();
        let mut y = Vec::new();
        for &i in idx {
            if let (Some(r), Some(l)) = (&rows[i], labels[i]) {
                x.push(r.clone());
                y.push(l);
            }
        }
        let x = prepare(kind, &x, meta.imputation.as_deref());
        if x.iter()
            .any(|r| kind != ModelKind::Xgboost && r.iter().any(|v| v.is_nan()))
        {
            return Err(TrainingError::Config(format!(
                "the {kind} model in {} has no imputation for a missing value",
                dir.display()
            )));
        }
        let p = if x.is_empty() {
            Vec::new()
        } else {
            model.predict_proba_batch(&x)?
        };
        let score = SliceScore {
            model: kind,
            version: model.version().to_string(),
            metrics: metrics(&p, &y, model.threshold()),
        };
        out.push((model, score, p));
    }
    Ok(out)
}

fn mean_f1(s: &[SliceScore]) -> f64 {
    s.iter().map(|s| s.metrics.f1).sum::<f64>() / s.len().max(1) as f64
}

/// The rolling window of `cfg`: its data's most recent `window_rows` rows in time order, their
/// labels (the CSV's `sla_violated` when every row has one, as `outcomes.csv` does; else derived,
/// future-only), and whether the CSV labels were used.
fn load_window(cfg: &RetrainConfig) -> Result<(Loaded, Vec<Option<bool>>, bool), TrainingError> {
    let mut loaded = load_csvs(&cfg.data, BadRows::Skip)?;
    for b in &loaded.bad_rows {
        tracing::warn!(%b, "skipped a bad row");
    }
    loaded
        .records
        .sort_by(|a, b| (a.timestamp, &a.service).cmp(&(b.timestamp, &b.service)));
    if loaded.records.len() > cfg.window_rows {
        let drop = loaded.records.len() - cfg.window_rows;
        loaded.records.drain(..drop);
    }
    let records = &loaded.records;
    let use_csv = !records.is_empty() && records.iter().all(|r| r.csv_label.is_some());
    let labels = if use_csv {
        records.iter().map(|r| r.csv_label).collect::<Vec<_>>()
    } else {
        derive_labels(records, &cfg.sla, cfg.horizon)?
    };
    Ok((loaded, labels, use_csv))
}

/// Each live model's recall on the recent slice and on its own validation split (from its
/// metadata), for the recall-drop alarm.
fn live_recalls(live_dir: &Path, live: &[SliceScore]) -> BTreeMap<String, (f64, f64)> {
    let mut out = BTreeMap::new();
    for s in live {
        let val = read_metadata(s.model, live_dir)
            .ok()
            .and_then(|m| m.scores["validation"]["recall"].as_f64());
        if let (Some(v), true) = (val, s.metrics.positives > 0) {
            out.insert(s.model.to_string(), (s.metrics.recall, v));
        }
    }
    out
}

/// The drift check on its own (`autoscaler drift`, and the scheduled loop between two
/// retrains): the most recent `cfg.holdout_fraction` of the window against the live card's
/// reference distributions, and the live models' recall there against their validation
/// recall. Needs a live card (written when a candidate is promoted); nothing is trained or
/// written.
pub fn check_drift(cfg: &RetrainConfig) -> Result<DriftReport, TrainingError> {
    let card_path = cfg.live_dir.join(CARD_FILE);
    let bytes = std::fs::read(&card_path).map_err(|source| TrainingError::Io {
        path: card_path.clone(),
        source,
    })?;
    let card: ModelCard = serde_json::from_slice(&bytes).map_err(|e| TrainingError::Csv {
        path: card_path.clone(),
        reason: format!("not a model card: {e}"),
    })?;
    let (loaded, labels, _) = load_window(cfg)?;
    let records = &loaded.records;
    if records.is_empty() {
        return Err(TrainingError::Config("no rows in the window".into()));
    }
    let n = records.len();
    let cut = n - ((n as f64 * cfg.holdout_fraction).round() as usize).clamp(1, n);
    let recent: Vec<usize> = (cut..n).collect();
    let mut features = FeatureCache::new(records);
    let rows = features.rows(&card.feature_names)?;
    let recent_rows: Vec<Vec<f64>> = recent.iter().filter_map(|i| rows[*i].clone()).collect();
    let live = score_dir(&cfg.live_dir, &mut features, &labels, &recent)?;
    let scores: Vec<SliceScore> = live.into_iter().map(|l| l.1).collect();
    Ok(drift(
        &card.reference,
        &card.feature_names,
        &recent_rows,
        live_recalls(&cfg.live_dir, &scores),
        cfg.psi_alarm,
        cfg.recall_drop,
    ))
}

/// Steps [`retrain`] reports to its `progress` (at most; `promoting` only when it promotes):
/// reading the window, the training steps ([`crate::train_steps`]), saving, scoring, drift,
/// shadow votes, promoting.
pub fn retrain_steps() -> u64 {
    crate::train_steps(ModelKind::ALL.len()) + 6
}

/// Retrain: window, checks, candidate, scores of candidate and live on the recent slice,
/// drift, shadow votes, decision (and promotion when `cfg.promote` and better). `progress` is
/// told each step. The live models are never touched unless promoted.
pub fn retrain(
    cfg: &RetrainConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<RetrainOutcome, TrainingError> {
    progress("reading the window");
    let (loaded, labels, use_csv) = load_window(cfg)?;
    let records = &loaded.records;
    let labelled = labels.iter().filter(|l| l.is_some()).count();
    let positives = labels.iter().filter(|l| **l == Some(true)).count();
    if labelled < cfg.min_rows {
        return Err(TrainingError::Config(format!(
            "too few rows to retrain: {labelled} labelled rows in the window, at least {} \
             needed (the live models are untouched)",
            cfg.min_rows
        )));
    }
    if positives == 0 || positives == labelled {
        return Err(TrainingError::Config(format!(
            "the window has one class only ({positives} violations in {labelled} labelled \
             rows): nothing to learn from (the live models are untouched)"
        )));
    }
    let tcfg = TrainConfig {
        kinds: ModelKind::ALL.to_vec(),
        horizon: cfg.horizon,
        sla: cfg.sla.clone(),
        split: SplitConfig {
            kind: SplitKind::Time,
            val_fraction: cfg.validation_fraction,
            test_fraction: cfg.holdout_fraction,
            ..SplitConfig::default()
        },
        params: cfg.params.clone(),
        target_recall: cfg.target_recall,
        features: None,
        use_csv_labels: use_csv,
        created_at: cfg.created_at.clone(),
        calibration: crate::train::DEFAULT_CALIBRATION,
    };
    let trained = train_candidates(&loaded, &tcfg, progress)?;
    if trained.test_index.is_empty() {
        return Err(TrainingError::Config(
            "the held-out recent slice is empty: more rows or a larger holdout fraction".into(),
        ));
    }
    let name = cfg.created_at.replace(':', "-");
    let candidate_dir = cfg.candidates_dir.join(&name);
    progress("saving the candidate");
    trained.save(&candidate_dir)?;
    // A candidate that does not load is never promoted: scoring loads it back.
    progress("scoring candidate and live models on the recent slice");
    let mut features = FeatureCache::new(records);
    let candidate = score_dir(&candidate_dir, &mut features, &labels, &trained.test_index)
        .map_err(|e| {
            TrainingError::Config(format!("the candidate does not load: {e} (not promoted)"))
        })?;
    let live = if autoscaler_models::artefacts_present(&cfg.live_dir) {
        match score_dir(&cfg.live_dir, &mut features, &labels, &trained.test_index) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "the live models cannot be scored on the recent slice");
                None
            }
        }
    } else {
        None
    };
    // Drift: reference = the live card's, else the window's training part.
    progress("drift");
    let names = trained.report.feature_names.clone();
    let all_rows = features.rows(&names)?;
    let pick = |idx: &[usize]| -> Vec<Vec<f64>> {
        idx.iter().filter_map(|i| all_rows[*i].clone()).collect()
    };
    let train_rows = pick(&trained.train_index);
    let recent_rows = pick(&trained.test_index);
    let reference_here = references(&names, &train_rows);
    let live_card: Option<ModelCard> = std::fs::read(cfg.live_dir.join(CARD_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let reference = live_card
        .as_ref()
        .map(|c| c.reference.clone())
        .unwrap_or_else(|| reference_here.clone());
    let live_recall = match &live {
        Some(l) => {
            let scores: Vec<SliceScore> = l.iter().map(|c| c.1.clone()).collect();
            live_recalls(&cfg.live_dir, &scores)
        }
        None => BTreeMap::new(),
    };
    let drift_report = drift(
        &reference,
        &names,
        &recent_rows,
        live_recall,
        cfg.psi_alarm,
        cfg.recall_drop,
    );
    for r in &drift_report.reasons {
        tracing::warn!(reason = %r, "DRIFT ALARM");
    }
    // Shadow: the candidate's votes on the recent slice, logged under its version, never
    // published.
    progress("shadow votes");
    let shadow_votes = write_shadow_votes(
        &candidate_dir,
        &mut features,
        &trained.test_index,
        &candidate,
    )?;
    let cand_scores: Vec<SliceScore> = candidate.iter().map(|c| c.1.clone()).collect();
    let live_scores: Vec<SliceScore> = live
        .as_ref()
        .map(|l| l.iter().map(|c| c.1.clone()).collect())
        .unwrap_or_default();
    let candidate_f1 = mean_f1(&cand_scores);
    let live_f1 = live.as_ref().map(|_| mean_f1(&live_scores));
    let better = match live_f1 {
        None => true,
        Some(l) => candidate_f1 >= l + cfg.margin,
    };
    let mut decision = Decision {
        promoted: false,
        reason: match live_f1 {
            None => "no live model to compare with".to_string(),
            Some(l) if better => format!(
                "candidate mean F1 {candidate_f1:.3} beats live {l:.3} by at least {}",
                cfg.margin
            ),
            Some(l) => format!(
                "candidate mean F1 {candidate_f1:.3} does not beat live {l:.3} by {}: kept as a \
                 report",
                cfg.margin
            ),
        },
        candidate_f1,
        live_f1,
    };
    let card = ModelCard {
        created_at: cfg.created_at.clone(),
        window_rows: records.len(),
        window: (
            records.first().map(|r| r.timestamp).unwrap_or_default(),
            records.last().map(|r| r.timestamp).unwrap_or_default(),
        ),
        split: trained.report.split.clone(),
        rows: (
            trained.report.train_rows,
            trained.report.val_rows,
            trained.report.test_rows,
        ),
        feature_names: names,
        training: serde_json::to_value(&trained.report).unwrap_or_default(),
        candidate: cand_scores,
        live: live_scores,
        reference: reference_here,
        drift: drift_report,
        shadow_votes,
        decision: decision.clone(),
    };
    write_card(&candidate_dir, &card)?;
    let mut card = card;
    if better && cfg.promote {
        progress("promoting");
        promote(&candidate_dir, &cfg.live_dir)?;
        decision.promoted = true;
        card.decision = decision;
        write_card(&candidate_dir, &card)?;
        write_card(&cfg.live_dir, &card)?;
    }
    Ok(RetrainOutcome {
        candidate_dir,
        card,
    })
}

fn write_card(dir: &Path, card: &ModelCard) -> Result<(), TrainingError> {
    let mut bytes = serde_json::to_vec_pretty(card)
        .map_err(|e| TrainingError::Config(format!("model card: {e}")))?;
    bytes.push(b'\n');
    write_atomic(&dir.join(CARD_FILE), &bytes)
}

/// The shadow log's columns (those of the inference services' prediction log).
pub const SHADOW_COLUMNS: [&str; 22] = [
    "vector_id",
    "service",
    "metric_time",
    "vote_time",
    "model",
    "model_version",
    "replicas",
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
    "probability",
    "prediction",
    "threshold",
    "probability_one_fewer",
    "abstain_reason",
];

fn write_shadow_votes(
    candidate_dir: &Path,
    features: &mut FeatureCache<'_>,
    idx: &[usize],
    scored: &[(Box<dyn Model>, SliceScore, Vec<f64>)],
) -> Result<usize, TrainingError> {
    let records = features.records;
    let mut n = 0;
    for (model, _, _) in scored {
        let rows = features.rows(model.feature_names())?;
        let path = candidate_dir
            .join("shadow")
            .join(format!("predictions_{}.csv", model.kind().as_str()));
        let mut w = csv::Writer::from_writer(Vec::new());
        let e = |e: csv::Error| TrainingError::Config(format!("shadow log: {e}"));
        w.write_record(SHADOW_COLUMNS).map_err(e)?;
        let meta = read_metadata(model.kind(), candidate_dir)?;
        for &i in idx {
            let r = &records[i];
            let (p, reason) = match &rows[i] {
                None => (None, "not enough history".to_string()),
                Some(x) => {
                    let x = prepare(
                        model.kind(),
                        std::slice::from_ref(x),
                        meta.imputation.as_deref(),
                    );
                    match model.predict_proba_batch(&x) {
                        Ok(p) => (p.first().copied(), String::new()),
                        Err(err) => (None, err.to_string()),
                    }
                }
            };
            let t = r
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let mut row = vec![
                format!("{}@{}", r.service, r.line),
                r.service.clone(),
                t.clone(),
                t,
                model.kind().as_str().to_string(),
                model.version().to_string(),
                opt(r.replicas),
            ];
            row.extend(r.features.named().iter().map(|(_, x)| opt(*x)));
            row.push(opt(p));
            row.push(opt(p.map(|p| u8::from(p > model.threshold()))));
            row.push(model.threshold().to_string());
            row.push(String::new());
            row.push(reason);
            w.write_record(&row).map_err(e)?;
            n += 1;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| TrainingError::Config(e.to_string()))?;
        write_atomic(&path, &bytes)?;
    }
    Ok(n)
}

/// Promote the candidate in `candidate_dir` to `live_dir`: every candidate model must load
/// first (else nothing changes); then each `<live>/<model>/` is replaced by rename (the
/// previous one moved to `<live>/.previous/<model>`), so a reader sees the old model or the new
/// one, never half of either. The inference services pick the new models up on their hot
/// reload (SIGHUP).
pub fn promote(candidate_dir: &Path, live_dir: &Path) -> Result<(), TrainingError> {
    for kind in ModelKind::ALL {
        load(kind, candidate_dir).map_err(|e| {
            TrainingError::Config(format!(
                "candidate {kind} in {} does not load, not promoted (the live models are \
                 untouched): {e}",
                candidate_dir.display()
            ))
        })?;
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainingError::Io { path, source }
    };
    let previous = live_dir.join(".previous");
    std::fs::create_dir_all(&previous).map_err(io(&previous))?;
    for kind in ModelKind::ALL {
        // Stage a full copy beside the live directory (same file system), then swap by rename.
        let staged = live_dir.join(format!(".incoming-{}", kind.as_str()));
        let _ = std::fs::remove_dir_all(&staged);
        std::fs::create_dir_all(&staged).map_err(io(&staged))?;
        for f in [
            autoscaler_models::MODEL_FILE,
            autoscaler_models::METADATA_FILE,
        ] {
            let from = candidate_dir.join(kind.as_str()).join(f);
            std::fs::copy(&from, staged.join(f)).map_err(io(&from))?;
        }
        let target = live_dir.join(kind.as_str());
        let old = previous.join(kind.as_str());
        let _ = std::fs::remove_dir_all(&old);
        if target.exists() {
            std::fs::rename(&target, &old).map_err(io(&target))?;
        }
        std::fs::rename(&staged, &target).map_err(io(&target))?;
    }
    tracing::info!(from = %candidate_dir.display(), to = %live_dir.display(), "promoted");
    Ok(())
}

/// The scheduled loop's pause, from `RETRAIN_INTERVAL_MIN` style minutes.
pub fn interval(minutes: u64) -> std::time::Duration {
    std::time::Duration::from_secs(minutes.max(1) * 60)
}

/// A one-line summary of a retrain, for logs and the CLI.
pub fn summary(o: &RetrainOutcome) -> String {
    let c = &o.card;
    let mut s = Vec::new();
    let _ = write!(
        s,
        "candidate {} ({} rows in the window; train/validation/recent {}/{}/{}): {}",
        o.candidate_dir.display(),
        c.window_rows,
        c.rows.0,
        c.rows.1,
        c.rows.2,
        c.decision.reason
    );
    if c.drift.alarm {
        let _ = write!(s, "; DRIFT: {}", c.drift.reasons.join("; "));
    }
    if c.decision.promoted {
        let _ = write!(s, "; promoted");
    }
    String::from_utf8_lossy(&s).to_string()
}

/// JSON of a card's headline numbers (for `--json`).
pub fn headline(o: &RetrainOutcome) -> serde_json::Value {
    json!({
        "candidate": o.candidate_dir.display().to_string(),
        "promoted": o.card.decision.promoted,
        "candidate_f1": o.card.decision.candidate_f1,
        "live_f1": o.card.decision.live_f1,
        "drift_alarm": o.card.drift.alarm,
        "drift_reasons": o.card.drift.reasons,
    })
}
