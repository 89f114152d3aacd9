//! Training the three models from loaded records, and writing their artefacts.

use std::path::Path;

use autoscaler_contract::{ModelKind, FEATURE_NAMES};
use autoscaler_models::{
    default_feature_names, save, train, Dataset, MetadataExtra, TrainParams, DEFAULT_THRESHOLD,
};
use autoscaler_simulator::{generate_training_runs, write_training_csv, TrainingDataConfig};
use serde::Serialize;
use serde_json::json;

use crate::data::{raw_row, Loaded};
use crate::labels::{derive_labels, SlaSpec};
use crate::metrics::{metrics, threshold_for_recall, Metrics};
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
    /// Input features; `None` = the ten contract features, plus `rps_per_replica` and
    /// `cpu_per_replica_pct` when every row has a replica count.
    pub features: Option<Vec<String>>,
    /// Use the CSV's `sla_violated` column instead of re-deriving labels.
    pub use_csv_labels: bool,
    /// `created_at` written in the metadata (RFC 3339); fixed for reproducible artefacts.
    pub created_at: String,
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
    /// Rows with a label.
    pub labelled: usize,
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

/// Label, split, train every model of `cfg.kinds`, choose thresholds, score, and save the
/// artefacts in `out_dir/<model>/`. `progress` is told each step.
pub fn train_models(
    loaded: &Loaded,
    cfg: &TrainConfig,
    out_dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<TrainReport, TrainingError> {
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
        None if loaded.all_have_replicas() => default_feature_names(),
        None => FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
    };
    progress("splitting");
    let sp = split(records, &labels, cfg.horizon, &cfg.split)?;
    let rows_of = |idx: &[usize]| -> Result<(Vec<Vec<f64>>, Vec<bool>), TrainingError> {
        let mut x = Vec::with_capacity(idx.len());
        let mut y = Vec::with_capacity(idx.len());
        for &i in idx {
            x.push(raw_row(&records[i], &names)?);
            y.push(labels[i].unwrap_or(false));
        }
        Ok((x, y))
    };
    let (x_train, y_train) = rows_of(&sp.train)?;
    let (x_val, y_val) = rows_of(&sp.val)?;
    let (x_test, y_test) = rows_of(&sp.test)?;
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
        train_rows: sp.train.len(),
        val_rows: sp.val.len(),
        test_rows: sp.test.len(),
        purged: sp.purged,
        train_positives,
        split: sp.description.clone(),
        feature_names: names.clone(),
        models: Vec::new(),
    };
    let training_data = json!({
        "inputs": loaded.files.iter().zip(&loaded.file_sha256)
            .map(|(p, h)| json!({"path": p.display().to_string(), "sha256": h}))
            .collect::<Vec<_>>(),
        "inputs_sha256": loaded.inputs_sha256(),
        "rows_read": records.len(),
        "bad_rows_skipped": loaded.bad_rows.len(),
        "labelled_rows": report.labelled,
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
        let p_val = predict(&x_val)?;
        let p_test = predict(&x_test)?;
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
            "validation": validation,
            "test": test,
        });
        let extra = MetadataExtra {
            horizon: cfg.horizon as u32,
            sla_p95_ms: cfg.sla.headline_ms(),
            created_at: cfg.created_at.clone(),
            threshold: Some(threshold),
            scores,
            imputation: Some(imputer.medians.clone()),
            training_data: training_data.clone(),
        };
        save(model.as_ref(), out_dir, &extra)?;
        report.models.push(ModelSummary {
            kind,
            threshold,
            threshold_source: source,
            validation,
            test,
        });
    }
    Ok(report)
}
