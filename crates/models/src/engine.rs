//! The three fitted models behind one interface, and the one place that picks an engine by
//! [`ModelKind`]: to fit it, to decode its file, to name its library.

use std::collections::BTreeMap;
use std::path::Path;

use autoscaler_contract::ModelKind;

use crate::artefact::FileFeatures;
use crate::params::ParamGuard;
use crate::{forest, logistic, xgboost, Dataset, ModelError, Preprocessing, TrainParams};

/// A fitted model of one of the three kinds.
pub(crate) trait Engine: Send + Sync {
    /// P(violation) per (already checked) row from the fitting library (the reference the
    /// native engine is checked against). `model_file` is the model's `model.json` (a loaded
    /// XGBoost model creates its booster from it on first use).
    fn predict(&self, rows: &[&[f64]], model_file: &[u8]) -> Result<Vec<f64>, ModelError>;
    /// The bytes of `model.json`.
    fn to_bytes(&self, feature_names: &[String]) -> Result<Vec<u8>, ModelError>;
    /// How inputs are transformed before the model sees them.
    fn preprocessing(&self) -> Preprocessing {
        Preprocessing::None
    }
}

/// A fitted engine and its hyper-parameters as recorded in the metadata.
pub(crate) type Fitted = (Box<dyn Engine>, serde_json::Value);

/// Fit a `kind` model on `data` with its part of `params`, checked first.
pub(crate) fn fit(
    kind: ModelKind,
    data: &Dataset,
    params: &TrainParams,
) -> Result<Fitted, ModelError> {
    fn boxed<E: Engine + 'static>(
        fitted: Result<(E, serde_json::Value), ModelError>,
    ) -> Result<Fitted, ModelError> {
        fitted.map(|(e, hp)| (Box::new(e) as Box<dyn Engine>, hp))
    }
    match kind {
        ModelKind::Xgboost => boxed(xgboost::XgbModel::fit(data, &params.xgboost().check()?)),
        ModelKind::RandomForest => boxed(forest::Forest::fit(data, &params.forest().check()?)),
        ModelKind::LogisticRegression => {
            boxed(logistic::Logistic::fit(data, &params.logistic().check()?))
        }
    }
}

/// Decode a `kind` model file (`path` names it in errors); also what it says of its inputs.
pub(crate) fn decode(
    kind: ModelKind,
    bytes: &[u8],
    path: &Path,
) -> Result<(Box<dyn Engine>, FileFeatures), ModelError> {
    fn boxed<E: Engine + 'static>(
        decoded: Result<(E, FileFeatures), ModelError>,
    ) -> Result<(Box<dyn Engine>, FileFeatures), ModelError> {
        decoded.map(|(e, f)| (Box::new(e) as Box<dyn Engine>, f))
    }
    match kind {
        ModelKind::Xgboost => boxed(xgboost::XgbModel::from_bytes(bytes, path)),
        ModelKind::RandomForest => boxed(forest::Forest::from_bytes(bytes, path)),
        ModelKind::LogisticRegression => boxed(logistic::Logistic::from_bytes(bytes, path)),
    }
}

/// The library that fits `kind` models, as recorded in the metadata.
pub(crate) fn library(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Xgboost => "xgboost (C API via the xgb 3.4.0 crate)",
        ModelKind::RandomForest => "histogram CART trees in smartcore 0.7's tree format, bagged",
        ModelKind::LogisticRegression => "Newton's method on linfa-logistic 0.8's objective",
    }
}

/// Hyper-parameters as a JSON object (for the metadata).
pub(crate) fn hyper(pairs: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let map: BTreeMap<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    serde_json::to_value(map).unwrap_or_default()
}
