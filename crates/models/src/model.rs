//! The [`Model`] trait the inference service and the evaluation call, the [`TrainedModel`] this
//! crate builds, and [`train`].

use autoscaler_contract::{Features, ModelKind};
use sha2::{Digest, Sha256};

use crate::dataset::hex;
use crate::engine::{self, Engine};
use crate::native::{self, Candidate};
use crate::{is_known_feature, Dataset, ModelError, Preprocessing, TrainParams, TrainingInfo};

/// Decision threshold on P(violation) when none is given.
pub const DEFAULT_THRESHOLD: f64 = 0.5;

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
    /// P(violation) of each row of `rows`, a row-major matrix of `feature_names().len()`
    /// columns, into `out` (one slot per row). This crate's models allocate nothing.
    fn predict_proba_into(&self, rows: &[f64], out: &mut [f64]) -> Result<(), ModelError> {
        let n = self.feature_names().len();
        native::check_batch(rows.len(), n, out.len())?;
        for (row, o) in rows.chunks_exact(n).zip(out) {
            *o = self.predict_proba(row)?;
        }
        Ok(())
    }
    /// One feature vector at several replica counts: P(violation) per [`Candidate`] into `out`
    /// (same length). At each count the per-replica features use that count and each feature
    /// the candidate projects replaces the measured one (see [`native::Candidate`]). A missing
    /// input is an error naming it, never a 0. This crate's models allocate nothing.
    fn predict_proba_at_counts(
        &self,
        base: &Features,
        candidates: &[Candidate],
        out: &mut [f64],
    ) -> Result<(), ModelError> {
        native::at_counts_by_rows(self, base, candidates, out)
    }
    /// The concrete model when it was built by this crate (what [`save`](crate::save) needs). Test doubles
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

/// A model built by this crate (returned boxed by [`train`] and [`load`]).
pub struct TrainedModel {
    pub(crate) kind: ModelKind,
    pub(crate) version: String,
    pub(crate) threshold: f64,
    pub(crate) feature_names: Vec<String>,
    pub(crate) training: TrainingInfo,
    pub(crate) hyper_parameters: serde_json::Value,
    pub(crate) model_bytes: Vec<u8>,
    /// The fitting library's model: the reference (and what trains and saves).
    pub(crate) engine: Box<dyn Engine>,
    /// What predictions run on.
    pub(crate) native: native::Native,
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

    /// The native engine predictions run on.
    pub fn native(&self) -> &native::NativeModel {
        &self.native.model
    }

    /// P(violation) per row from the library that fitted the model — XGBoost's C API,
    /// smartcore's `predict`, linfa's coefficients — the reference the native engine is tested
    /// and benchmarked against.
    pub fn predict_proba_reference(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, ModelError> {
        for row in rows {
            self.check_row(row)?;
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let refs: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
        let out = self.engine.predict(&refs, &self.model_bytes)?;
        if out.len() != rows.len() {
            return Err(ModelError::InvalidData(format!(
                "{} predictions for {} rows",
                out.len(),
                rows.len()
            )));
        }
        Ok(out)
    }

    /// Change the decision threshold (must be in [0, 1]).
    pub fn set_threshold(&mut self, threshold: f64) -> Result<(), ModelError> {
        check_threshold(threshold)?;
        self.threshold = threshold;
        Ok(())
    }

    pub(crate) fn preprocessing(&self) -> Preprocessing {
        self.engine.preprocessing()
    }

    pub(crate) fn library(&self) -> String {
        engine::library(self.kind).into()
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
        Ok(self.native.model.predict_row(row))
    }
    fn predict_proba_batch(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, ModelError> {
        rows.iter().map(|row| self.predict_proba(row)).collect()
    }
    fn predict_proba_into(&self, rows: &[f64], out: &mut [f64]) -> Result<(), ModelError> {
        let n = self.feature_names.len();
        native::check_batch(rows.len(), n, out.len())?;
        for row in rows.chunks_exact(n) {
            self.check_row(row)?;
        }
        self.native.model.predict_batch(rows, out)
    }
    fn predict_proba_at_counts(
        &self,
        base: &Features,
        candidates: &[Candidate],
        out: &mut [f64],
    ) -> Result<(), ModelError> {
        self.native
            .predict_at_counts(base, candidates, out, |row| self.check_row(row))
    }
    fn as_trained(&self) -> Option<&TrainedModel> {
        Some(self)
    }
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
    let (engine, hyper_parameters) = engine::fit(kind, data, params)?;
    let model_bytes = engine.to_bytes(&data.feature_names)?;
    let (native, _) = native::Native::new(
        kind,
        &model_bytes,
        std::path::Path::new(kind.as_str()),
        &data.feature_names,
    )?;
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
        native,
    }))
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

/// Check a threshold is in [0, 1].
pub(crate) fn check_threshold(t: f64) -> Result<(), ModelError> {
    if (0.0..=1.0).contains(&t) {
        Ok(())
    } else {
        Err(ModelError::InvalidParams(format!(
            "threshold {t} is not in [0, 1]"
        )))
    }
}

/// `<kind>-<first 8 hex digits of the sha256 of bytes>`.
pub(crate) fn version_of(kind: ModelKind, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("{}-{}", kind.as_str(), &hex(&digest)[..8])
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
}
