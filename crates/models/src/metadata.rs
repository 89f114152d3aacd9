//! What is recorded beside a model: `metadata.json` and the facts that go into it.

use std::path::Path;

use autoscaler_contract::ModelKind;
use serde::{Deserialize, Serialize};

use crate::artefact::read_file;
use crate::{ModelError, METADATA_FILE};

/// Version of the `metadata.json` layout written by this build.
pub const METADATA_FORMAT_VERSION: u32 = 1;

/// Training facts recorded in the metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// [`Dataset::fingerprint`](crate::Dataset::fingerprint) of the training data.
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
    /// [`Model::version`](crate::Model::version) of the model saved beside it.
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
    /// [`Dataset::fingerprint`](crate::Dataset::fingerprint) of the training data.
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

/// What [`save`](crate::save) records beside the model that the model itself does not know.
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

/// Read and parse `models_dir/<kind>/metadata.json` (no model file is read).
pub fn read_metadata(kind: ModelKind, models_dir: &Path) -> Result<ModelMetadata, ModelError> {
    let meta_path = models_dir.join(kind.as_str()).join(METADATA_FILE);
    let bytes = read_file(&meta_path)?;
    serde_json::from_slice(&bytes).map_err(|source| ModelError::Json {
        path: meta_path,
        source,
    })
}
