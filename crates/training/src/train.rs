//! Training the three models from loaded records, and writing their artefacts.

use std::path::Path;

use autoscaler_contract::ModelKind;
use std::collections::BTreeMap;

use autoscaler_models::calibration::{Calibration, CALIBRATION_KEY};
use autoscaler_models::{save, train, Dataset, MetadataExtra, TrainParams, DEFAULT_THRESHOLD};
use autoscaler_simulator::{generate_training_runs, write_training_csv, TrainingDataConfig};
use serde::Serialize;
use serde_json::json;

use crate::data::Loaded;
use crate::features::{default_features, feature_rows};
use crate::labels::{derive_labels, SlaSpec};
use crate::metrics::{
    average_precision, brier, metrics, reliability, threshold_for_recall, Metrics,
};
use crate::split::{split, SplitConfig};
use crate::TrainingError;

/// Recall the decision threshold aims for on the validation split, by default.
pub const DEFAULT_TARGET_RECALL: f64 = 0.8;
/// Default label horizon: a violation in any of the next 2 polls (never the current one).
pub const DEFAULT_HORIZON: usize = 2;

/// What to train, on what, how.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Models to train.
    pub kinds: Vec<ModelKind>,
    /// Label horizon, polls.
    pub horizon: usize,
    /// The SLA.
    pub sla: SlaSpec,
    /// The split.
    pub split: SplitConfig,
    /// Hyper-parameters (and the seed).
    pub params: TrainParams,
    /// The threshold is the highest whose validation recall reaches this.
    pub target_recall: f64,
    /// Input features; `None` = [`crate::default_features`] (contract, per-replica when every
    /// row has a replica count, lags and rolling statistics, service identity).
    pub features: Option<Vec<String>>,
    /// Use the CSV's `sla_violated` column instead of re-deriving labels.
    pub use_csv_labels: bool,
    /// `created_at` written in the metadata (RFC 3339); fixed for reproducible artefacts.
    pub created_at: String,
    /// How the probabilities are calibrated on the validation split.
    pub calibration: CalibrationMethod,
}

/// Per-feature medians of the training split: what stands in for a missing value (random
/// forest and logistic regression; XGBoost takes NaN as missing).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Imputer {
    /// One per feature.
    pub medians: Vec<f64>,
}

impl Imputer {
    /// Learn the medians of `rows` (NaN skipped). A feature never present is an error.
    pub fn fit(rows: &[Vec<f64>], names: &[String]) -> Result<Imputer, TrainingError> {
        let mut medians = Vec::with_capacity(names.len());
        for (j, name) in names.iter().enumerate() {
            let mut v: Vec<f64> = rows.iter().map(|r| r[j]).filter(|x| !x.is_nan()).collect();
            if v.is_empty() {
                return Err(TrainingError::Config(format!(
                    "feature `{name}` is missing in every training row (drop it with --features)"
                )));
            }
            v.sort_by(f64::total_cmp);
            let n = v.len();
            medians.push(if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            });
        }
        Ok(Imputer { medians })
    }

    /// Replace NaN by the median, in place.
    pub fn apply(&self, row: &mut [f64]) {
        for (v, m) in row.iter_mut().zip(&self.medians) {
            if v.is_nan() {
                *v = *m;
            }
        }
    }
}

/// The input rows of `kind`: XGBoost keeps NaN (missing); the others are imputed.
pub(crate) fn prepare(
    kind: ModelKind,
    rows: &[Vec<f64>],
    imputer: Option<&[f64]>,
) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            if kind != ModelKind::Xgboost {
                if let Some(m) = imputer {
                    Imputer {
                        medians: m.to_vec(),
                    }
                    .apply(&mut r);
                }
            }
            r
        })
        .collect()
}

/// One trained model's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    /// The model.
    pub kind: ModelKind,
    /// Chosen threshold.
    pub threshold: f64,
    /// Where it came from.
    pub threshold_source: String,
    /// Validation scores at the threshold.
    pub validation: Option<Metrics>,
    /// Test scores at the threshold.
    pub test: Option<Metrics>,
}

/// What [`train_models`] did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Rows read.
    pub rows: usize,
    /// Rows skipped as bad.
    pub bad_rows: usize,
    /// Rows with a label (and enough history for the features).
    pub labelled: usize,
    /// Labelled rows left out because the features need more history than the row has.
    pub without_history: usize,
    /// Training / validation / test rows, and purged.
    pub train_rows: usize,
    /// Validation rows.
    pub val_rows: usize,
    /// Test rows.
    pub test_rows: usize,
    /// Purged rows.
    pub purged: usize,
    /// Positives in training.
    pub train_positives: usize,
    /// The split in words.
    pub split: String,
    /// Input features.
    pub feature_names: Vec<String>,
    /// One per model.
    pub models: Vec<ModelSummary>,
    /// The weighted rule's defaults (when the three models are trained).
    pub ensemble: Option<EnsembleSummary>,
}

/// Simulate training runs (see [`autoscaler_simulator::generate_training_runs`]) and write
/// them as a training CSV with `replicas`, `run` and `pattern` columns. Deterministic in the
/// seed. Returns the number of rows.
pub fn simulated_csv(cfg: &TrainingDataConfig, path: &Path) -> Result<usize, TrainingError> {
    let runs = generate_training_runs(cfg);
    if runs.is_empty() {
        return Err(TrainingError::Config("invalid simulation settings".into()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| TrainingError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let io = |source| TrainingError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    let base = chrono::DateTime::from_timestamp(1_704_067_200, 0).unwrap_or_default(); // 2024-01-01
    write_training_csv(&runs, base, file).map_err(|e| TrainingError::Csv {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(runs.iter().map(|r| r.rows.len()).sum())
}

/// How the probabilities are calibrated on the validation split by default.
pub const DEFAULT_CALIBRATION: CalibrationMethod = CalibrationMethod::Platt;
/// Bins of the reliability curves in the model card.
pub const RELIABILITY_BINS: usize = 10;

/// How to calibrate a model's probabilities on the validation split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMethod {
    /// Raw scores.
    None,
    /// Platt scaling (keeps the ranking).
    Platt,
    /// Isotonic regression.
    Isotonic,
}

impl std::fmt::Display for CalibrationMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CalibrationMethod::None => "none",
            CalibrationMethod::Platt => "platt",
            CalibrationMethod::Isotonic => "isotonic",
        })
    }
}

impl std::str::FromStr for CalibrationMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(CalibrationMethod::None),
            "platt" => Ok(CalibrationMethod::Platt),
            "isotonic" => Ok(CalibrationMethod::Isotonic),
            o => Err(format!("unknown calibration `{o}` (none, platt, isotonic)")),
        }
    }
}

/// Steps [`train_models`] and [`train_candidates`] report to their `progress` for `kinds`
/// models: labels, features, split; per model training, scoring, calibration, threshold and
/// scores; the weighted rule when the three are trained (what a progress bar counts).
pub fn train_steps(kinds: usize) -> u64 {
    3 + 4 * kinds as u64 + u64::from(kinds == ModelKind::ALL.len())
}

/// Label, split, train every model of `cfg.kinds`, calibrate on the validation split, choose
/// thresholds there, score, and save the artefacts in `out_dir/<model>/`. `progress` is told
/// each step.
pub fn train_models(
    loaded: &Loaded,
    cfg: &TrainConfig,
    out_dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<TrainReport, TrainingError> {
    let t = train_candidates(loaded, cfg, progress)?;
    t.save(out_dir)?;
    Ok(t.report)
}

/// Trained models not yet saved: what [`train_models`] saves, and what `retrain` evaluates
/// before deciding whether to save it as a candidate.
pub struct Trained {
    /// What was done.
    pub report: TrainReport,
    /// Each model with its metadata.
    pub models: Vec<(Box<dyn autoscaler_models::Model>, MetadataExtra)>,
    /// Indices (into the records) of the training rows.
    pub train_index: Vec<usize>,
    /// Of the validation rows.
    pub val_index: Vec<usize>,
    /// Of the test rows.
    pub test_index: Vec<usize>,
}

impl std::fmt::Debug for Trained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trained")
            .field("report", &self.report)
            .finish()
    }
}

impl Trained {
    /// Save every model in `out_dir/<model>/`.
    pub fn save(&self, out_dir: &Path) -> Result<(), TrainingError> {
        for (m, extra) in &self.models {
            save(m.as_ref(), out_dir, extra)?;
        }
        Ok(())
    }
}

/// [`train_models`] without saving.
pub fn train_candidates(
    loaded: &Loaded,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<Trained, TrainingError> {
    if !(cfg.target_recall > 0.0 && cfg.target_recall <= 1.0) {
        return Err(TrainingError::Config(format!(
            "--target-recall must be in (0, 1], got {}",
            cfg.target_recall
        )));
    }
    cfg.params.validate()?;
    let records = &loaded.records;
    progress("deriving labels");
    let labels = if cfg.use_csv_labels {
        records.iter().map(|r| r.csv_label).collect()
    } else {
        derive_labels(records, &cfg.sla, cfg.horizon)?
    };
    let names = match &cfg.features {
        Some(f) => f.clone(),
        None => default_features(loaded),
    };
    progress("building features");
    let rows = feature_rows(records, &names)?;
    let without_history = (0..records.len())
        .filter(|i| labels[*i].is_some() && rows[*i].is_none())
        .count();
    // A row the models would abstain on (too little history) is neither trained nor scored.
    let labels: Vec<Option<bool>> = labels
        .iter()
        .zip(&rows)
        .map(|(l, r)| l.filter(|_| r.is_some()))
        .collect();
    progress("splitting");
    let sp = split(records, &labels, cfg.horizon, &cfg.split)?;
    let rows_of = |idx: &[usize]| -> (Vec<Vec<f64>>, Vec<bool>) {
        let x = idx.iter().filter_map(|&i| rows[i].clone()).collect();
        let y = idx.iter().map(|&i| labels[i].unwrap_or(false)).collect();
        (x, y)
    };
    let (x_train, y_train) = rows_of(&sp.train);
    let (x_val, y_val) = rows_of(&sp.val);
    let (x_test, y_test) = rows_of(&sp.test);
    let train_positives = y_train.iter().filter(|y| **y).count();
    if train_positives == 0 || train_positives == y_train.len() {
        return Err(TrainingError::Config(format!(
            "the training split has {train_positives} violations in {} rows: both classes are \
             needed (another split, SLA or more data?)",
            y_train.len()
        )));
    }
    let imputer = Imputer::fit(&x_train, &names)?;
    let missing_rows = x_train
        .iter()
        .filter(|r| r.iter().any(|v| v.is_nan()))
        .count();

    let mut report = TrainReport {
        rows: records.len(),
        bad_rows: loaded.bad_rows.len(),
        labelled: labels.iter().filter(|l| l.is_some()).count(),
        without_history,
        train_rows: sp.train.len(),
        val_rows: sp.val.len(),
        test_rows: sp.test.len(),
        purged: sp.purged,
        train_positives,
        split: sp.description.clone(),
        feature_names: names.clone(),
        models: Vec::new(),
        ensemble: None,
    };
    let training_data = json!({
        "inputs": loaded.files.iter().zip(&loaded.file_sha256)
            .map(|(p, h)| json!({"path": p.display().to_string(), "sha256": h}))
            .collect::<Vec<_>>(),
        "inputs_sha256": loaded.inputs_sha256(),
        "rows_read": records.len(),
        "bad_rows_skipped": loaded.bad_rows.len(),
        "labelled_rows": report.labelled,
        "rows_without_history": without_history,
        "history": format!(
            "lags and rolling features need {} polls of the service (the current one \
             included); {without_history} labelled rows with fewer were left out (the \
             inference service abstains there)",
            autoscaler_models::history::MIN_HISTORY_POINTS
        ),
        "label": if cfg.use_csv_labels {
            "the CSV's sla_violated column".to_string()
        } else {
            format!("p95 above the service's SLA (or error rate >= 50 %) in any of the next {} \
                     polls of the same service and run; the current row is not part of its label",
                    cfg.horizon)
        },
        "sla": cfg.sla,
        "split": {
            "kind": cfg.split.kind.to_string(),
            "description": sp.description,
            "seed": cfg.split.seed,
            "train_rows": sp.train.len(),
            "validation_rows": sp.val.len(),
            "test_rows": sp.test.len(),
            "purged_rows": sp.purged,
        },
        "missing_values": format!(
            "{missing_rows} training rows had a missing value: imputed with the training split's \
             medians (`imputation`) for random forest and logistic regression; XGBoost takes \
             them as missing"
        ),
        "target_recall": cfg.target_recall,
    });

    struct Fitted {
        model: Box<dyn autoscaler_models::Model>,
        p_val: Vec<f64>,
        p_test: Vec<f64>,
        scores: serde_json::Value,
        threshold: f64,
    }
    let mut fitted: Vec<Fitted> = Vec::new();
    for &kind in &cfg.kinds {
        progress(&format!("training {kind}"));
        let data = Dataset {
            feature_names: names.clone(),
            rows: prepare(kind, &x_train, Some(&imputer.medians)),
            labels: y_train.clone(),
        };
        let model = train(kind, &data, &cfg.params)?;
        progress(&format!("scoring {kind}"));
        let predict = |x: &[Vec<f64>]| -> Result<Vec<f64>, TrainingError> {
            if x.is_empty() {
                return Ok(Vec::new());
            }
            Ok(model.predict_proba_batch(&prepare(kind, x, Some(&imputer.medians)))?)
        };
        let raw_val = predict(&x_val)?;
        let raw_test = predict(&x_test)?;
        // Calibration on the validation split only.
        progress(&format!("calibrating {kind}"));
        let (calibration, calibration_note) = fit_calibration(cfg.calibration, &raw_val, &y_val);
        let cal = |p: &[f64]| -> Vec<f64> {
            match &calibration {
                Some(c) => p.iter().map(|v| c.apply(*v)).collect(),
                None => p.to_vec(),
            }
        };
        let p_val = cal(&raw_val);
        let p_test = cal(&raw_test);
        progress(&format!("threshold and scores of {kind}"));
        let (threshold, source) = match threshold_for_recall(&p_val, &y_val, cfg.target_recall) {
            Some(t) => (
                t,
                format!("highest with validation recall >= {}", cfg.target_recall),
            ),
            None => (
                DEFAULT_THRESHOLD,
                "default (no violation in the validation split)".to_string(),
            ),
        };
        let validation = (!y_val.is_empty()).then(|| metrics(&p_val, &y_val, threshold));
        let test = (!y_test.is_empty()).then(|| metrics(&p_test, &y_test, threshold));
        let scores = json!({
            "split": sp.description,
            "threshold": threshold,
            "threshold_source": source,
            "precision_at_target_recall": validation.map(|m| m.precision),
            "validation": validation,
            "test": test,
            CALIBRATION_KEY: calibration,
            "calibration_fit": calibration_note,
            "brier": {
                "validation_raw": brier(&raw_val, &y_val),
                "validation": brier(&p_val, &y_val),
                "test_raw": brier(&raw_test, &y_test),
                "test": brier(&p_test, &y_test),
            },
            "reliability": {
                "validation": reliability(&p_val, &y_val, RELIABILITY_BINS),
                "test": reliability(&p_test, &y_test, RELIABILITY_BINS),
            },
        });
        report.models.push(ModelSummary {
            kind,
            threshold,
            threshold_source: source,
            validation,
            test,
        });
        fitted.push(Fitted {
            model,
            p_val,
            p_test,
            scores,
            threshold,
        });
    }
    // The weighted rule: weights from each model's validation PR-AUC, its threshold for the
    // target recall on the validation split.
    if fitted.len() == ModelKind::ALL.len() && !y_val.is_empty() {
        progress("weighted rule");
        let weights: BTreeMap<ModelKind, f64> = fitted
            .iter()
            .map(|f| {
                let w = average_precision(&f.p_val, &y_val).unwrap_or(1.0).max(1e-3);
                (f.model.kind(), w)
            })
            .collect();
        let combine = |ps: Vec<&Vec<f64>>, n: usize| -> Vec<f64> {
            let total: f64 = weights.values().sum();
            (0..n)
                .map(|i| {
                    fitted
                        .iter()
                        .zip(&ps)
                        .map(|(f, p)| weights[&f.model.kind()] * p[i])
                        .sum::<f64>()
                        / total
                })
                .collect()
        };
        let w_val = combine(fitted.iter().map(|f| &f.p_val).collect(), y_val.len());
        let w_test = combine(fitted.iter().map(|f| &f.p_test).collect(), y_test.len());
        let wt = threshold_for_recall(&w_val, &y_val, cfg.target_recall).unwrap_or(0.5);
        let ens = EnsembleSummary {
            weights,
            weights_source: "each model's validation PR-AUC".into(),
            weighted_threshold: wt,
            validation: metrics(&w_val, &y_val, wt),
            test: (!y_test.is_empty()).then(|| metrics(&w_test, &y_test, wt)),
        };
        for f in &mut fitted {
            f.scores[ENSEMBLE_KEY] = serde_json::to_value(&ens).unwrap_or_default();
        }
        report.ensemble = Some(ens);
    }
    let models = fitted
        .into_iter()
        .map(|f| {
            let extra = MetadataExtra {
                horizon: cfg.horizon as u32,
                sla_p95_ms: cfg.sla.headline_ms(),
                created_at: cfg.created_at.clone(),
                threshold: Some(f.threshold),
                scores: f.scores,
                imputation: Some(imputer.medians.clone()),
                training_data: training_data.clone(),
            };
            (f.model, extra)
        })
        .collect();
    Ok(Trained {
        report,
        models,
        train_index: sp.train,
        val_index: sp.val,
        test_index: sp.test,
    })
}

/// Where the metadata keeps the weighted rule's defaults: `scores.<ENSEMBLE_KEY>`.
pub const ENSEMBLE_KEY: &str = "ensemble";

/// The weighted rule as trained: weights and threshold from the validation split.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct EnsembleSummary {
    /// Weight of each model.
    pub weights: BTreeMap<ModelKind, f64>,
    /// Where the weights come from.
    pub weights_source: String,
    /// The weighted rule's threshold (the highest with validation recall at the target).
    pub weighted_threshold: f64,
    /// Validation scores of the weighted rule.
    pub validation: Metrics,
    /// Test scores of the weighted rule.
    pub test: Option<Metrics>,
}

fn fit_calibration(
    method: CalibrationMethod,
    p: &[f64],
    y: &[bool],
) -> (Option<Calibration>, String) {
    let fit = match method {
        CalibrationMethod::None => return (None, "not calibrated (asked for)".into()),
        CalibrationMethod::Platt => Calibration::fit_platt(p, y),
        CalibrationMethod::Isotonic => Calibration::fit_isotonic(p, y),
    };
    match fit {
        Ok(c) => (
            Some(c),
            format!("{method:?} on the {} validation rows", y.len()),
        ),
        Err(e) => (None, format!("not calibrated: {e}")),
    }
}
