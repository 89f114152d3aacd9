//! # The ensemble's three models
//!
//! Each model predicts **P(violation)**: the probability that the service's p95 latency breaks
//! its SLA within the horizon. Three kinds ([`ModelKind`]):
//!
//! | kind | library | `model.json` |
//! |---|---|---|
//! | `xgboost` | XGBoost 3.x C API through the `xgb` crate | XGBoost's own JSON (loadable by Python's xgboost) |
//! | `random_forest` | smartcore decision trees, bagged here (see [`forest`]) | the trees in smartcore's serde form |
//! | `logistic_regression` | linfa-logistic on standardised inputs | coefficients, intercept, means and stds |
//!
//! The flow: build rows with [`input_row`] (a missing input is an error, never a 0), gather a
//! time-ordered [`Dataset`], [`train`] a model with [`TrainParams`], [`save`] it to
//! `models/<kind>/{model.json,metadata.json}`, [`load`] it in the inference service and call
//! [`Model::predict_proba`].
//!
//! Determinism: the same data and the same [`TrainParams::seed`] give identical models and
//! predictions (XGBoost trains with `seed` and one thread; the forest's bootstrap and feature
//! subsets come from a ChaCha RNG seeded with it; logistic regression is deterministic).
//!
//! ## Linking XGBoost
//! `xgb` links `-lxgboost` (and `-lgomp`). The library is XGBoost 3.2.0 from the PyPI wheel
//! `xgboost-cpu==3.2.0`, installed into `/usr/local/lib` by `scripts/install-xgboost.sh`.
//! `xgb`'s build script downloads a prebuilt library unless `XGBOOST_LIB_DIR` is set, so builds
//! run with `XGBOOST_LIB_DIR=/usr/local/lib`.
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use autoscaler_contract::{Features, ModelKind, FEATURE_NAMES};

pub mod calibration;
mod features;
pub mod forest;
pub mod history;
mod logistic;
mod xgboost;

pub use features::{
    default_feature_names, input_row, input_row_one_fewer, is_known_feature, EXTRA_FEATURES,
};

/// Version of the `metadata.json` layout written by this build.
pub const METADATA_FORMAT_VERSION: u32 = 1;
/// File name of the model itself inside `models_dir/<kind>/`.
pub const MODEL_FILE: &str = "model.json";
/// File name of the metadata inside `models_dir/<kind>/`.
pub const METADATA_FILE: &str = "metadata.json";
/// Decision threshold on P(violation) when none is given.
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// Everything that can go wrong when building inputs, training, saving, loading or predicting.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Inputs that could not be computed (missing, not finite, or needing an unknown replica
    /// count). They are never replaced by 0.
    #[error("missing features: {}", .0.join(", "))]
    MissingFeatures(Vec<String>),
    /// A model taking history features (lags, rolling statistics) was given fewer polls of the
    /// service than it needs ([`history::MIN_HISTORY_POINTS`]): it abstains.
    #[error("not enough history: the model needs {need} polls of the service, {have} seen")]
    NotEnoughHistory {
        /// Polls in the window.
        have: usize,
        /// Polls needed.
        need: usize,
    },
    /// A history feature asked of a row built from one vector alone.
    #[error("feature `{0}` is computed from the service's recent polls: build the row with history::input_row_from_history")]
    NeedsHistory(String),
    /// A feature name this crate does not know how to build.
    #[error(
        "unknown feature `{0}` (known: the ten contract features, rps_per_replica, cpu_per_replica_pct)"
    )]
    UnknownFeature(String),
    /// `input_row_one_fewer` needs at least two replicas.
    #[error("cannot compute the load at one replica fewer: replicas is {}", match .replicas { Some(r) => r.to_string(), None => "unknown".to_string() })]
    NoFewerReplicas {
        /// The replica count given.
        replicas: Option<u32>,
    },
    /// A row of the wrong length was given to a model.
    #[error("row has {found} values but the model takes {expected} features")]
    RowLength {
        /// Number of features of the model.
        expected: usize,
        /// Length of the row given.
        found: usize,
    },
    /// A value the model cannot take (NaN or infinite; only XGBoost takes NaN, as missing).
    #[error("feature `{feature}` = {value} is not a number the {kind} model accepts")]
    NonFiniteInput {
        /// The model kind.
        kind: ModelKind,
        /// The feature.
        feature: String,
        /// The value.
        value: f64,
    },
    /// Two feature lists that must agree do not.
    #[error("feature list mismatch ({context}): expected [{}], found [{}]", .expected.join(", "), .found.join(", "))]
    FeatureMismatch {
        /// Which two lists were compared.
        context: String,
        /// The list that was expected.
        expected: Vec<String>,
        /// The list that was found.
        found: Vec<String>,
    },
    /// Training data that cannot be used.
    #[error("invalid training data: {0}")]
    InvalidData(String),
    /// A training parameter out of range.
    #[error("invalid training parameter: {0}")]
    InvalidParams(String),
    /// A model file or directory that does not exist.
    #[error("model artefact not found: {} (train and save the models first)", .path.display())]
    MissingArtefact {
        /// The path looked for.
        path: PathBuf,
    },
    /// An artefact that exists but does not describe what was asked for.
    #[error("bad model artefact {}: {reason}", .path.display())]
    BadArtefact {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("I/O error on {}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A JSON artefact could not be parsed or written.
    #[error("JSON error in {}", .path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The XGBoost library failed.
    #[error("XGBoost failed while {context}")]
    Xgboost {
        /// What was being done.
        context: String,
        /// The library's message.
        #[source]
        source: xgb::XGBError,
    },
    /// smartcore failed.
    #[error("smartcore failed while {context}")]
    Smartcore {
        /// What was being done.
        context: String,
        /// The library's error.
        #[source]
        source: smartcore::error::Failed,
    },
    /// linfa-logistic failed.
    #[error("linfa-logistic failed while {context}")]
    Logistic {
        /// What was being done.
        context: String,
        /// The library's error.
        #[source]
        source: linfa_logistic::error::Error,
    },
    /// `save` was given a model not built by this crate.
    #[error("this model was not built by autoscaler-models and cannot be saved")]
    NotSaveable,
    /// An internal lock was poisoned by a panic in another thread.
    #[error("model lock poisoned")]
    Poisoned,
}

/// Training data: one row per feature vector, **in time order**, and its label
/// (`true` = an SLA violation within the horizon).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Column names, in row order.
    pub feature_names: Vec<String>,
    /// Input rows (time order), each `feature_names.len()` long.
    pub rows: Vec<Vec<f64>>,
    /// Labels, one per row.
    pub labels: Vec<bool>,
}

impl Dataset {
    /// Number of positive (violation) rows.
    pub fn positive_rows(&self) -> usize {
        self.labels.iter().filter(|l| **l).count()
    }

    /// The first `n` rows (time order), e.g. the training part of a time-ordered split.
    pub fn head(&self, n: usize) -> Dataset {
        let n = n.min(self.rows.len());
        Dataset {
            feature_names: self.feature_names.clone(),
            rows: self.rows[..n].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }

    /// The rows from `n` on (time order), e.g. the held-out part of a time-ordered split.
    pub fn tail_from(&self, n: usize) -> Dataset {
        let n = n.min(self.rows.len());
        Dataset {
            feature_names: self.feature_names.clone(),
            rows: self.rows[n..].to_vec(),
            labels: self.labels[n..].to_vec(),
        }
    }

    /// sha256 (hex) of the feature names (each followed by `\n`), then every row's values as
    /// little-endian f64 (row-major), then the labels as one byte each. Identifies the training
    /// data in `metadata.json`.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for name in &self.feature_names {
            h.update(name.as_bytes());
            h.update(b"\n");
        }
        for row in &self.rows {
            for v in row {
                h.update(v.to_le_bytes());
            }
        }
        for l in &self.labels {
            h.update([u8::from(*l)]);
        }
        hex(&h.finalize())
    }

    /// Check the dataset can be trained on: non-empty, consistent lengths, both classes present,
    /// known distinct feature names, and finite values (NaN allowed only when `allow_nan`, for
    /// XGBoost, which reads it as missing).
    pub fn validate(&self, allow_nan: bool) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::InvalidData(m));
        if self.feature_names.is_empty() {
            return bad("no features".into());
        }
        for (i, n) in self.feature_names.iter().enumerate() {
            if self.feature_names[..i].contains(n) {
                return bad(format!("feature `{n}` appears twice"));
            }
        }
        if self.rows.is_empty() {
            return bad("no rows".into());
        }
        if self.rows.len() != self.labels.len() {
            return bad(format!(
                "{} rows but {} labels",
                self.rows.len(),
                self.labels.len()
            ));
        }
        for (i, row) in self.rows.iter().enumerate() {
            if row.len() != self.feature_names.len() {
                return bad(format!(
                    "row {i} has {} values, expected {}",
                    row.len(),
                    self.feature_names.len()
                ));
            }
            for (v, name) in row.iter().zip(&self.feature_names) {
                if v.is_infinite() || (v.is_nan() && !allow_nan) {
                    return bad(format!("row {i}: feature `{name}` = {v} is not finite"));
                }
            }
        }
        let pos = self.positive_rows();
        if pos == 0 || pos == self.rows.len() {
            return bad(format!(
                "both classes are needed; {pos} of {} rows are violations",
                self.rows.len()
            ));
        }
        Ok(())
    }
}

/// Default directory of model artefacts (`<dir>/<model>/model.json` + `metadata.json`).
pub const DEFAULT_MODELS_DIR: &str = "models";
/// Default seed of every random choice in training.
pub const DEFAULT_SEED: u64 = 42;
/// Default XGBoost boosting rounds.
pub const DEFAULT_XGB_ROUNDS: u32 = 100;
/// Default XGBoost maximum tree depth.
pub const DEFAULT_XGB_MAX_DEPTH: u32 = 4;
/// Default XGBoost learning rate.
pub const DEFAULT_XGB_ETA: f64 = 0.1;
/// Default trees in the random forest.
pub const DEFAULT_RF_TREES: usize = 100;
/// Default maximum depth of a forest tree.
pub const DEFAULT_RF_MAX_DEPTH: u16 = 8;
/// Default L2 penalty of the logistic regression.
pub const DEFAULT_LR_ALPHA: f64 = 1.0;
/// Default L-BFGS iterations of the logistic regression.
pub const DEFAULT_LR_MAX_ITERATIONS: u64 = 200;

/// Hyper-parameters of the three models. [`Default`] gives the values below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    /// Seed of every random choice (XGBoost's `seed`, the forest's bootstrap and feature subsets).
    /// Default 42.
    pub seed: u64,
    /// XGBoost boosting rounds. Default 100.
    pub xgb_rounds: u32,
    /// XGBoost maximum tree depth. Default 4.
    pub xgb_max_depth: u32,
    /// XGBoost learning rate (`eta`), in (0, 1]. Default 0.1.
    pub xgb_eta: f64,
    /// Trees in the random forest. Default 100.
    pub rf_trees: usize,
    /// Maximum depth of each forest tree; `None` = unlimited. Default `Some(8)`.
    pub rf_max_depth: Option<u16>,
    /// L2 penalty of the logistic regression (linfa's `alpha`), ≥ 0. Default 1.0.
    pub lr_alpha: f64,
    /// Maximum L-BFGS iterations of the logistic regression. Default 200.
    pub lr_max_iterations: u64,
    /// Re-weight classes so that violations (usually rare) count as much as the rest:
    /// XGBoost `scale_pos_weight = negatives / positives`; the forest draws balanced bootstraps;
    /// logistic regression duplicates the minority class's rows `round(majority / minority)`
    /// times. Default `true`.
    pub class_weighting: bool,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            seed: DEFAULT_SEED,
            xgb_rounds: DEFAULT_XGB_ROUNDS,
            xgb_max_depth: DEFAULT_XGB_MAX_DEPTH,
            xgb_eta: DEFAULT_XGB_ETA,
            rf_trees: DEFAULT_RF_TREES,
            rf_max_depth: Some(DEFAULT_RF_MAX_DEPTH),
            lr_alpha: DEFAULT_LR_ALPHA,
            lr_max_iterations: DEFAULT_LR_MAX_ITERATIONS,
            class_weighting: true,
        }
    }
}

impl TrainParams {
    /// Check every parameter is in range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: &str| Err(ModelError::InvalidParams(m.to_string()));
        if self.xgb_rounds == 0 {
            return bad("xgb_rounds must be ≥ 1");
        }
        if self.xgb_max_depth == 0 {
            return bad("xgb_max_depth must be ≥ 1");
        }
        if !(self.xgb_eta > 0.0 && self.xgb_eta <= 1.0) {
            return bad("xgb_eta must be in (0, 1]");
        }
        if self.rf_trees == 0 {
            return bad("rf_trees must be ≥ 1");
        }
        if self.rf_max_depth == Some(0) {
            return bad("rf_max_depth must be ≥ 1 or None");
        }
        if !(self.lr_alpha.is_finite() && self.lr_alpha >= 0.0) {
            return bad("lr_alpha must be finite and ≥ 0");
        }
        if self.lr_max_iterations == 0 {
            return bad("lr_max_iterations must be ≥ 1");
        }
        Ok(())
    }
}

/// A trained model that predicts P(violation).
pub trait Model: Send + Sync {
    /// Which of the three models this is.
    fn kind(&self) -> ModelKind;
    /// `<kind>-<first 8 hex digits of the sha256 of model.json's bytes>`, e.g. `xgboost-1a2b3c4d`.
    fn version(&self) -> &str;
    /// Decision threshold on P(violation), from the metadata (default 0.5).
    fn threshold(&self) -> f64;
    /// Names of the input features, in row order.
    fn feature_names(&self) -> &[String];
    /// P(violation) in [0, 1] for one row in [`Model::feature_names`] order.
    fn predict_proba(&self, row: &[f64]) -> Result<f64, ModelError> {
        let mut p = self.predict_proba_batch(std::slice::from_ref(&row.to_vec()))?;
        p.pop().ok_or(ModelError::RowLength {
            expected: self.feature_names().len(),
            found: row.len(),
        })
    }
    /// P(violation) for each row.
    fn predict_proba_batch(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, ModelError>;
    /// The concrete model when it was built by this crate (what [`save`] needs). Test doubles
    /// keep the default `None`.
    fn as_trained(&self) -> Option<&TrainedModel> {
        None
    }
}

impl std::fmt::Debug for dyn Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("kind", &self.kind())
            .field("version", &self.version())
            .field("threshold", &self.threshold())
            .field("feature_names", &self.feature_names())
            .finish()
    }
}

/// Training facts recorded in the metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// [`Dataset::fingerprint`] of the training data.
    pub training_fingerprint: String,
    /// Rows trained on.
    pub train_rows: usize,
    /// Of which violations.
    pub positive_rows: usize,
}

/// How inputs are transformed before the model sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Preprocessing {
    /// Inputs are used as they are (tree models).
    None,
    /// `(x - mean) / std` per feature, learned on the training data (logistic regression).
    Standardise {
        /// Per-feature means.
        means: Vec<f64>,
        /// Per-feature standard deviations (a constant feature gets 1).
        stds: Vec<f64>,
    },
}

/// The contents of `metadata.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// Layout version of this file ([`METADATA_FORMAT_VERSION`]).
    pub format_version: u32,
    /// Which model.
    pub model_kind: ModelKind,
    /// [`Model::version`] of the model saved beside it.
    pub version: String,
    /// Input features, in order.
    pub feature_names: Vec<String>,
    /// Input transformation.
    pub preprocessing: Preprocessing,
    /// Decision threshold on P(violation).
    pub threshold: f64,
    /// Label horizon, in polls.
    pub horizon: u32,
    /// The SLA on p95 latency the labels were computed with, ms.
    pub sla_p95_ms: f64,
    /// [`Dataset::fingerprint`] of the training data.
    pub training_fingerprint: String,
    /// Rows trained on.
    pub train_rows: usize,
    /// Of which violations.
    pub positive_rows: usize,
    /// Validation metrics (free form, e.g. `{"f1": 0.9, "roc_auc": 0.95}`).
    pub scores: serde_json::Value,
    /// When the model was trained, RFC 3339.
    pub created_at: String,
    /// Hyper-parameters used by this model.
    pub hyper_parameters: serde_json::Value,
    /// Library that fitted the model.
    pub library: String,
    /// Per-feature values (training-split medians) that stand in for a missing input, in
    /// [`ModelMetadata::feature_names`] order; `None` for models saved without one. Written by
    /// `autoscaler train`; used by `autoscaler evaluate` (the inference service abstains on a
    /// missing input instead: it never acts on a guess).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imputation: Option<Vec<f64>>,
    /// What the model was trained on (input files and their sha256, split, label definition,
    /// per-service SLAs); free form, `null` when unknown.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub training_data: serde_json::Value,
}

/// What [`save`] records beside the model that the model itself does not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataExtra {
    /// Label horizon, in polls.
    pub horizon: u32,
    /// The SLA on p95 latency, ms.
    pub sla_p95_ms: f64,
    /// Creation time, RFC 3339 (given so that tests are deterministic).
    pub created_at: String,
    /// Decision threshold to record; `None` keeps the model's own (0.5 unless loaded otherwise).
    pub threshold: Option<f64>,
    /// Validation metrics.
    pub scores: serde_json::Value,
    /// See [`ModelMetadata::imputation`].
    #[serde(default)]
    pub imputation: Option<Vec<f64>>,
    /// See [`ModelMetadata::training_data`].
    #[serde(default)]
    pub training_data: serde_json::Value,
}

enum Engine {
    Xgboost(xgboost::XgbModel),
    RandomForest(forest::Forest),
    Logistic(logistic::Logistic),
}

/// A model built by this crate (returned boxed by [`train`] and [`load`]).
pub struct TrainedModel {
    kind: ModelKind,
    version: String,
    threshold: f64,
    feature_names: Vec<String>,
    training: TrainingInfo,
    hyper_parameters: serde_json::Value,
    model_bytes: Vec<u8>,
    engine: Engine,
}

impl std::fmt::Debug for TrainedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainedModel")
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("threshold", &self.threshold)
            .field("feature_names", &self.feature_names)
            .finish_non_exhaustive()
    }
}

impl TrainedModel {
    /// Training facts (from training, or from the metadata when loaded).
    pub fn training_info(&self) -> &TrainingInfo {
        &self.training
    }

    /// The bytes [`save`] writes to `model.json`.
    pub fn model_bytes(&self) -> &[u8] {
        &self.model_bytes
    }

    /// Change the decision threshold (must be in [0, 1]).
    pub fn set_threshold(&mut self, threshold: f64) -> Result<(), ModelError> {
        check_threshold(threshold)?;
        self.threshold = threshold;
        Ok(())
    }

    fn preprocessing(&self) -> Preprocessing {
        match &self.engine {
            Engine::Logistic(l) => l.preprocessing(),
            _ => Preprocessing::None,
        }
    }

    fn library(&self) -> String {
        match self.kind {
            ModelKind::Xgboost => "xgboost (C API via the xgb 3.4.0 crate)".into(),
            ModelKind::RandomForest => "smartcore 0.7 decision trees, bagged".into(),
            ModelKind::LogisticRegression => "linfa-logistic 0.8".into(),
        }
    }

    fn check_row(&self, row: &[f64]) -> Result<(), ModelError> {
        if row.len() != self.feature_names.len() {
            return Err(ModelError::RowLength {
                expected: self.feature_names.len(),
                found: row.len(),
            });
        }
        let nan_ok = self.kind == ModelKind::Xgboost;
        for (v, name) in row.iter().zip(&self.feature_names) {
            if v.is_infinite() || (v.is_nan() && !nan_ok) {
                return Err(ModelError::NonFiniteInput {
                    kind: self.kind,
                    feature: name.clone(),
                    value: *v,
                });
            }
        }
        Ok(())
    }
}

impl Model for TrainedModel {
    fn kind(&self) -> ModelKind {
        self.kind
    }
    fn version(&self) -> &str {
        &self.version
    }
    fn threshold(&self) -> f64 {
        self.threshold
    }
    fn feature_names(&self) -> &[String] {
        &self.feature_names
    }
    fn predict_proba(&self, row: &[f64]) -> Result<f64, ModelError> {
        self.check_row(row)?;
        let p = match &self.engine {
            Engine::Xgboost(m) => m.predict(&[row])?.pop(),
            Engine::RandomForest(m) => m.predict(&[row])?.pop(),
            Engine::Logistic(m) => Some(m.predict_one(row)),
        };
        p.ok_or_else(|| ModelError::InvalidData("no prediction returned for one row".into()))
    }
    fn predict_proba_batch(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, ModelError> {
        for row in rows {
            self.check_row(row)?;
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let refs: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
        let out = match &self.engine {
            Engine::Xgboost(m) => m.predict(&refs)?,
            Engine::RandomForest(m) => m.predict(&refs)?,
            Engine::Logistic(m) => refs.iter().map(|r| m.predict_one(r)).collect(),
        };
        if out.len() != rows.len() {
            return Err(ModelError::InvalidData(format!(
                "{} predictions for {} rows",
                out.len(),
                rows.len()
            )));
        }
        Ok(out)
    }
    fn as_trained(&self) -> Option<&TrainedModel> {
        Some(self)
    }
}

/// Decode a model file of this crate's own JSON formats, naming the file on error. Its
/// `format` and `format_version` are checked first, so a file of another format or version is
/// reported as such rather than as whatever field its body lacks.
pub(crate) fn read_artefact<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
    (expected, expected_version): (&str, u32),
) -> Result<T, ModelError> {
    #[derive(serde::Deserialize)]
    struct Header {
        format: String,
        format_version: u32,
    }
    let json = |source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    };
    let h: Header = serde_json::from_slice(bytes).map_err(json)?;
    if h.format != expected || h.format_version != expected_version {
        return Err(ModelError::BadArtefact {
            path: path.to_path_buf(),
            reason: format!(
                "format `{}` v{}, expected `{expected}` v{expected_version}",
                h.format, h.format_version
            ),
        });
    }
    serde_json::from_slice(bytes).map_err(json)
}

/// Train one model on a time-ordered dataset.
pub fn train(
    kind: ModelKind,
    data: &Dataset,
    params: &TrainParams,
) -> Result<Box<dyn Model>, ModelError> {
    params.validate()?;
    data.validate(kind == ModelKind::Xgboost)?;
    for name in &data.feature_names {
        if !is_known_feature(name) {
            return Err(ModelError::UnknownFeature(name.clone()));
        }
    }
    let (engine, hyper_parameters) = match kind {
        ModelKind::Xgboost => {
            let (m, hp) = xgboost::XgbModel::train(data, params)?;
            (Engine::Xgboost(m), hp)
        }
        ModelKind::RandomForest => {
            let (m, hp) = forest::Forest::train(data, params)?;
            (Engine::RandomForest(m), hp)
        }
        ModelKind::LogisticRegression => {
            let (m, hp) = logistic::Logistic::train(data, params)?;
            (Engine::Logistic(m), hp)
        }
    };
    let model_bytes = match &engine {
        Engine::Xgboost(m) => m.to_bytes()?,
        Engine::RandomForest(m) => m.to_bytes(&data.feature_names)?,
        Engine::Logistic(m) => m.to_bytes(&data.feature_names)?,
    };
    let training = TrainingInfo {
        training_fingerprint: data.fingerprint(),
        train_rows: data.rows.len(),
        positive_rows: data.positive_rows(),
    };
    tracing::info!(
        model = %kind,
        rows = training.train_rows,
        positives = training.positive_rows,
        "trained model"
    );
    Ok(Box::new(TrainedModel {
        kind,
        version: version_of(kind, &model_bytes),
        threshold: DEFAULT_THRESHOLD,
        feature_names: data.feature_names.clone(),
        training,
        hyper_parameters,
        model_bytes,
        engine,
    }))
}

/// Write `models_dir/<kind>/model.json` (the library's format) and
/// `models_dir/<kind>/metadata.json`, creating the directory.
pub fn save(
    model: &dyn Model,
    models_dir: &Path,
    meta_extra: &MetadataExtra,
) -> Result<(), ModelError> {
    let m = model.as_trained().ok_or(ModelError::NotSaveable)?;
    let threshold = meta_extra.threshold.unwrap_or(m.threshold);
    check_threshold(threshold)?;
    let dir = models_dir.join(m.kind.as_str());
    fs::create_dir_all(&dir).map_err(|source| ModelError::Io {
        path: dir.clone(),
        source,
    })?;
    let meta = ModelMetadata {
        format_version: METADATA_FORMAT_VERSION,
        model_kind: m.kind,
        version: m.version.clone(),
        feature_names: m.feature_names.clone(),
        preprocessing: m.preprocessing(),
        threshold,
        horizon: meta_extra.horizon,
        sla_p95_ms: meta_extra.sla_p95_ms,
        training_fingerprint: m.training.training_fingerprint.clone(),
        train_rows: m.training.train_rows,
        positive_rows: m.training.positive_rows,
        scores: meta_extra.scores.clone(),
        created_at: meta_extra.created_at.clone(),
        hyper_parameters: m.hyper_parameters.clone(),
        library: m.library(),
        imputation: meta_extra.imputation.clone(),
        training_data: meta_extra.training_data.clone(),
    };
    if let Some(imp) = &meta.imputation {
        if imp.len() != meta.feature_names.len() || imp.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::InvalidParams(format!(
                "imputation has {} values for {} features (all must be finite)",
                imp.len(),
                meta.feature_names.len()
            )));
        }
    }
    let model_path = dir.join(MODEL_FILE);
    write_file(&model_path, &m.model_bytes)?;
    let meta_path = dir.join(METADATA_FILE);
    let mut meta_bytes = serde_json::to_vec_pretty(&meta).map_err(|source| ModelError::Json {
        path: meta_path.clone(),
        source,
    })?;
    meta_bytes.push(b'\n');
    write_file(&meta_path, &meta_bytes)?;
    tracing::info!(model = %m.kind, version = %m.version, dir = %dir.display(), "saved model");
    Ok(())
}

/// Read and parse `models_dir/<kind>/metadata.json` (no model file is read).
pub fn read_metadata(kind: ModelKind, models_dir: &Path) -> Result<ModelMetadata, ModelError> {
    let meta_path = models_dir.join(kind.as_str()).join(METADATA_FILE);
    let bytes = read_file(&meta_path)?;
    serde_json::from_slice(&bytes).map_err(|source| ModelError::Json {
        path: meta_path,
        source,
    })
}

/// Load `models_dir/<kind>/{model.json,metadata.json}`.
///
/// Fails with a clear error when the directory or a file is missing, when the metadata describes
/// another kind or an unknown format version, or when the feature list in the metadata disagrees
/// with the one in the model file. The version is recomputed from `model.json`'s bytes (a
/// mismatch with the metadata's is logged, not fatal, so a model saved by Python's xgboost with
/// hand-written metadata loads).
pub fn load(kind: ModelKind, models_dir: &Path) -> Result<Box<dyn Model>, ModelError> {
    let dir = models_dir.join(kind.as_str());
    if !dir.is_dir() {
        return Err(ModelError::MissingArtefact { path: dir });
    }
    let meta_path = dir.join(METADATA_FILE);
    let meta_bytes = read_file(&meta_path)?;
    let meta: ModelMetadata =
        serde_json::from_slice(&meta_bytes).map_err(|source| ModelError::Json {
            path: meta_path.clone(),
            source,
        })?;
    let bad_meta = |reason: String| ModelError::BadArtefact {
        path: meta_path.clone(),
        reason,
    };
    if meta.format_version != METADATA_FORMAT_VERSION {
        return Err(bad_meta(format!(
            "format_version {} (this build reads {METADATA_FORMAT_VERSION})",
            meta.format_version
        )));
    }
    if meta.model_kind != kind {
        return Err(bad_meta(format!(
            "describes a {} model, expected {kind}",
            meta.model_kind
        )));
    }
    check_threshold(meta.threshold).map_err(|e| bad_meta(e.to_string()))?;
    if let Some(unknown) = meta.feature_names.iter().find(|n| !is_known_feature(n)) {
        return Err(bad_meta(format!("unknown feature `{unknown}`")));
    }
    let model_path = dir.join(MODEL_FILE);
    let model_bytes = read_file(&model_path)?;
    let (engine, file_features) = match kind {
        ModelKind::Xgboost => {
            let (m, f) = xgboost::XgbModel::from_bytes(&model_bytes, &model_path)?;
            (Engine::Xgboost(m), f)
        }
        ModelKind::RandomForest => {
            let (m, f) = forest::Forest::from_bytes(&model_bytes, &model_path)?;
            (Engine::RandomForest(m), f)
        }
        ModelKind::LogisticRegression => {
            let (m, f) = logistic::Logistic::from_bytes(&model_bytes, &model_path)?;
            (Engine::Logistic(m), f)
        }
    };
    match file_features {
        FileFeatures::Names(names) if names != meta.feature_names => {
            return Err(ModelError::FeatureMismatch {
                context: format!("{} vs {}", meta_path.display(), model_path.display()),
                expected: meta.feature_names,
                found: names,
            });
        }
        FileFeatures::Count(n) if n != meta.feature_names.len() => {
            return Err(ModelError::BadArtefact {
                path: model_path,
                reason: format!(
                    "the model takes {n} features but {} lists {}",
                    meta_path.display(),
                    meta.feature_names.len()
                ),
            });
        }
        _ => {}
    }
    let version = version_of(kind, &model_bytes);
    if version != meta.version {
        tracing::warn!(
            model = %kind,
            metadata_version = %meta.version,
            file_version = %version,
            "model.json does not hash to the version in metadata.json; using the file's"
        );
    }
    tracing::info!(model = %kind, version = %version, dir = %dir.display(), "loaded model");
    // Probabilities calibrated on the validation split, when the metadata records it.
    let calibration = calibration::Calibration::from_scores(&meta.scores).map_err(bad_meta)?;
    let model = Box::new(TrainedModel {
        kind,
        version,
        threshold: meta.threshold,
        feature_names: meta.feature_names,
        training: TrainingInfo {
            training_fingerprint: meta.training_fingerprint,
            train_rows: meta.train_rows,
            positive_rows: meta.positive_rows,
        },
        hyper_parameters: meta.hyper_parameters,
        model_bytes,
        engine,
    });
    Ok(calibration::wrap(model, calibration))
}

/// [`load`], then check the model's feature list is exactly `expected` (names and order).
pub fn load_expecting(
    kind: ModelKind,
    models_dir: &Path,
    expected: &[String],
) -> Result<Box<dyn Model>, ModelError> {
    let model = load(kind, models_dir)?;
    check_features(model.as_ref(), expected)?;
    Ok(model)
}

/// Check a model's feature list is exactly `expected` (names and order).
pub fn check_features(model: &dyn Model, expected: &[String]) -> Result<(), ModelError> {
    if model.feature_names() != expected {
        return Err(ModelError::FeatureMismatch {
            context: format!("caller's feature list vs the {} model's", model.kind()),
            expected: expected.to_vec(),
            found: model.feature_names().to_vec(),
        });
    }
    Ok(())
}

/// Whether `models_dir/<kind>/{model.json,metadata.json}` exist for all three kinds.
pub fn artefacts_present(models_dir: &Path) -> bool {
    ModelKind::ALL.iter().all(|k| {
        let dir = models_dir.join(k.as_str());
        dir.join(MODEL_FILE).is_file() && dir.join(METADATA_FILE).is_file()
    })
}

/// What a model file says about its inputs.
enum FileFeatures {
    /// The file names its features, in order.
    Names(Vec<String>),
    /// The file only knows how many (an XGBoost model saved without feature names).
    Count(usize),
}

fn check_threshold(t: f64) -> Result<(), ModelError> {
    if (0.0..=1.0).contains(&t) {
        Ok(())
    } else {
        Err(ModelError::InvalidParams(format!(
            "threshold {t} is not in [0, 1]"
        )))
    }
}

fn version_of(kind: ModelKind, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("{}-{}", kind.as_str(), &hex(&digest)[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_file(path: &Path) -> Result<Vec<u8>, ModelError> {
    fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingArtefact {
                path: path.to_path_buf(),
            }
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Write via a temporary file and rename, so a reader never sees half a model.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let tmp = path.with_extension("json.tmp");
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    fs::write(&tmp, bytes).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

/// Hyper-parameters as a JSON object (for the metadata).
fn hyper(pairs: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let map: BTreeMap<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    serde_json::to_value(map).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_kind_and_eight_hex_digits() {
        let v = version_of(ModelKind::Xgboost, b"abc");
        // sha256("abc") = ba7816bf…
        assert_eq!(v, "xgboost-ba7816bf");
    }

    #[test]
    fn params_validation_rejects_out_of_range() {
        assert!(TrainParams::default().validate().is_ok());
        let p = TrainParams {
            xgb_eta: 0.0,
            ..TrainParams::default()
        };
        assert!(matches!(p.validate(), Err(ModelError::InvalidParams(_))));
        let p = TrainParams {
            rf_max_depth: Some(0),
            ..TrainParams::default()
        };
        assert!(p.validate().is_err());
    }

    #[test]
    fn dataset_validation_needs_both_classes() {
        let d = Dataset {
            feature_names: vec!["p95_latency_ms".into()],
            rows: vec![vec![1.0], vec![2.0]],
            labels: vec![false, false],
        };
        let e = d.validate(false).unwrap_err().to_string();
        assert!(e.contains("both classes"), "{e}");
    }

    #[test]
    fn fingerprint_changes_with_data() {
        let mut d = Dataset {
            feature_names: vec!["p95_latency_ms".into()],
            rows: vec![vec![1.0], vec![2.0]],
            labels: vec![false, true],
        };
        let a = d.fingerprint();
        assert_eq!(a.len(), 64);
        d.rows[1][0] = 2.5;
        assert_ne!(a, d.fingerprint());
    }
}
