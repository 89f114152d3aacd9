//! # Native inference: the three models evaluated in plain Rust
//!
//! What [`crate::Model::predict_proba`] runs for every model this crate trains or loads. The
//! libraries that fit the models stay the reference — the XGBoost C API and smartcore's
//! `predict` (see [`crate::TrainedModel::predict_proba_reference`]) — and the tests hold the
//! native path to them: XGBoost within 1e-6 of libxgboost (Python's own predictions on the
//! fixture, randomised models and rows with missing values), the forest and logistic regression
//! exactly.
//!
//! * [`XgbNative`] reads XGBoost's own JSON (booster `gbtree`, objective `binary:logistic`,
//!   numerical splits; anything else is refused at load, [`crate::ModelError::Unsupported`]).
//! * [`ForestNative`] reads this crate's random-forest file (smartcore trees).
//! * Logistic regression is this crate's own formula already.
//!
//! Trees are flattened into one node array per model and walked in lock-step (see the `trees`
//! module's notes): no allocation per prediction, no lock, no foreign call.
//!
//! Three ways to ask, none allocating per call:
//! * one row: [`NativeModel::predict_row`] (or `Model::predict_proba`);
//! * a batch, as one row-major slice: [`NativeModel::predict_batch`] (or
//!   `Model::predict_proba_into`);
//! * **one feature vector at several replica counts** — the policy lab's candidate counts: the
//!   caller passes the measured [`Features`](autoscaler_contract::Features) and a list of
//!   [`Candidate`]s (a count, plus any features it projects at that count, e.g. p95 latency) and
//!   gets one P(violation) per candidate: `Model::predict_proba_at_counts`.

pub mod bench;
mod candidates;
mod forest;
mod trees;
mod xgboost;

use std::path::Path;

use autoscaler_contract::{Features, ModelKind};

pub use candidates::{Candidate, RowPlan};
pub use forest::ForestNative;
pub use trees::{ExportTree, LANES};
pub use xgboost::{XgbNative, SUPPORTED_OBJECTIVES};

use crate::{FileFeatures, ModelError};

/// Rows up to this many features are built on the stack by
/// [`Native::predict_at_counts`]; longer ones (no model of the known features has them) use a
/// heap buffer.
pub const STACK_ROW: usize = 32;

/// A model ready for native prediction.
#[derive(Debug)]
pub enum NativeModel {
    /// Gradient-boosted trees from XGBoost's JSON.
    Xgboost(XgbNative),
    /// This crate's random forest.
    RandomForest(ForestNative),
    /// This crate's logistic regression.
    Logistic(LogisticNative),
}

/// Logistic regression: `sigmoid(intercept + Σ coefᵢ·(xᵢ − meanᵢ)/stdᵢ)`, the crate's own model.
#[derive(Debug)]
pub struct LogisticNative {
    model: crate::logistic::Logistic,
    n_features: usize,
}

/// Facts about a loaded native model, for benchmarks and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Trees (0 for logistic regression).
    pub trees: usize,
    /// Nodes over all trees.
    pub nodes: usize,
    /// Deepest leaf.
    pub max_depth: usize,
    /// Bytes of the flat arrays.
    pub heap_bytes: usize,
}

impl NativeModel {
    /// Read `model.json` of `kind` (XGBoost's JSON, or this crate's forest or logistic format);
    /// `path` only names the file in errors.
    pub fn from_json(kind: ModelKind, bytes: &[u8], path: &Path) -> Result<Self, ModelError> {
        Ok(Self::from_json_with_features(kind, bytes, path)?.0)
    }

    pub(crate) fn from_json_with_features(
        kind: ModelKind,
        bytes: &[u8],
        path: &Path,
    ) -> Result<(Self, FileFeatures), ModelError> {
        Ok(match kind {
            ModelKind::Xgboost => {
                let (m, names, n) = XgbNative::from_json(bytes, path)?;
                let f = if names.is_empty() {
                    FileFeatures::Count(n)
                } else if names.len() != n {
                    return Err(ModelError::BadArtefact {
                        path: path.to_path_buf(),
                        reason: format!("{} feature names for {n} features", names.len()),
                    });
                } else {
                    FileFeatures::Names(names)
                };
                (NativeModel::Xgboost(m), f)
            }
            ModelKind::RandomForest => {
                let (m, names) = ForestNative::from_json(bytes, path)?;
                (NativeModel::RandomForest(m), FileFeatures::Names(names))
            }
            ModelKind::LogisticRegression => {
                let (model, f) = crate::logistic::Logistic::from_bytes(bytes, path)?;
                let n_features = match &f {
                    FileFeatures::Names(n) => n.len(),
                    FileFeatures::Count(n) => *n,
                };
                (
                    NativeModel::Logistic(LogisticNative { model, n_features }),
                    f,
                )
            }
        })
    }

    /// Which model.
    pub fn kind(&self) -> ModelKind {
        match self {
            NativeModel::Xgboost(_) => ModelKind::Xgboost,
            NativeModel::RandomForest(_) => ModelKind::RandomForest,
            NativeModel::Logistic(_) => ModelKind::LogisticRegression,
        }
    }

    /// Values per row.
    pub fn n_features(&self) -> usize {
        match self {
            NativeModel::Xgboost(m) => m.n_features(),
            NativeModel::RandomForest(m) => m.n_features(),
            NativeModel::Logistic(m) => m.n_features,
        }
    }

    /// Trees, nodes, depth and memory.
    pub fn shape(&self) -> Shape {
        match self {
            NativeModel::Xgboost(m) => shape(m.ensemble()),
            NativeModel::RandomForest(m) => shape(m.ensemble()),
            NativeModel::Logistic(m) => Shape {
                trees: 0,
                nodes: 0,
                max_depth: 0,
                heap_bytes: 3 * 8 * m.n_features,
            },
        }
    }

    /// P(violation) of one row of [`Self::n_features`] values (NaN = missing for XGBoost). The
    /// row is not checked beyond its length; [`crate::Model::predict_proba`] checks values.
    ///
    /// # Panics
    /// When `row` is shorter than [`Self::n_features`].
    #[inline]
    pub fn predict_row(&self, row: &[f64]) -> f64 {
        match self {
            NativeModel::Xgboost(m) => m.predict_row(row),
            NativeModel::RandomForest(m) => m.predict_row(row),
            NativeModel::Logistic(m) => m.model.predict_one(&row[..m.n_features]),
        }
    }

    /// P(violation) of each row of `rows`, a row-major matrix of [`Self::n_features`] columns,
    /// written to `out` (one value per row).
    pub fn predict_batch(&self, rows: &[f64], out: &mut [f64]) -> Result<(), ModelError> {
        let n = self.n_features();
        check_batch(rows.len(), n, out.len())?;
        // One match for the whole batch, so each loop is monomorphic.
        match self {
            NativeModel::Xgboost(m) => {
                for (row, o) in rows.chunks_exact(n).zip(out) {
                    *o = m.predict_row(row);
                }
            }
            NativeModel::RandomForest(m) => {
                for (row, o) in rows.chunks_exact(n).zip(out) {
                    *o = m.predict_row(row);
                }
            }
            NativeModel::Logistic(m) => {
                for (row, o) in rows.chunks_exact(n).zip(out) {
                    *o = m.model.predict_one(row);
                }
            }
        }
        Ok(())
    }
}

fn shape<S: trees::Split>(e: &trees::Ensemble<S>) -> Shape {
    Shape {
        trees: e.trees(),
        nodes: e.node_count(),
        max_depth: e.max_depth(),
        heap_bytes: e.heap_bytes(),
    }
}

/// `rows` must hold whole rows of `n` values, one `out` slot each.
pub(crate) fn check_batch(rows: usize, n: usize, out: usize) -> Result<(), ModelError> {
    if n == 0 || rows % n != 0 {
        return Err(ModelError::RowLength {
            expected: n,
            found: rows % n.max(1),
        });
    }
    if rows / n != out {
        return Err(ModelError::InvalidData(format!(
            "{} rows but {out} output slots",
            rows / n
        )));
    }
    Ok(())
}

/// A model's native engine and its row plan: what [`crate::TrainedModel`] predicts with.
#[derive(Debug)]
pub(crate) struct Native {
    pub(crate) model: NativeModel,
    plan: RowPlan,
}

impl Native {
    pub(crate) fn new(
        kind: ModelKind,
        bytes: &[u8],
        path: &Path,
        feature_names: &[String],
    ) -> Result<(Self, FileFeatures), ModelError> {
        let (model, f) = NativeModel::from_json_with_features(kind, bytes, path)?;
        let plan = RowPlan::new(feature_names)?;
        if plan.len() != model.n_features() {
            return Err(ModelError::BadArtefact {
                path: path.to_path_buf(),
                reason: format!(
                    "the model takes {} features but {} are listed",
                    model.n_features(),
                    plan.len()
                ),
            });
        }
        Ok((Native { model, plan }, f))
    }

    /// One P(violation) per candidate, each row built on the stack and checked by `check`.
    pub(crate) fn predict_at_counts(
        &self,
        base: &Features,
        candidates: &[Candidate],
        out: &mut [f64],
        check: impl Fn(&[f64]) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        if candidates.len() != out.len() {
            return Err(ModelError::InvalidData(format!(
                "{} candidates but {} output slots",
                candidates.len(),
                out.len()
            )));
        }
        let n = self.plan.len();
        let mut stack = [0.0f64; STACK_ROW];
        let mut heap = Vec::new();
        let row: &mut [f64] = if n <= STACK_ROW {
            &mut stack[..n]
        } else {
            heap.resize(n, 0.0);
            &mut heap
        };
        for (c, o) in candidates.iter().zip(out) {
            self.plan.fill(base, c, row)?;
            check(row)?;
            *o = self.model.predict_row(row);
        }
        Ok(())
    }
}

/// The default of `Model::predict_proba_at_counts` for models not built by this crate: rows
/// built with a [`RowPlan`] and predicted one by one.
pub(crate) fn at_counts_by_rows(
    model: &(impl crate::Model + ?Sized),
    base: &Features,
    candidates: &[Candidate],
    out: &mut [f64],
) -> Result<(), ModelError> {
    if candidates.len() != out.len() {
        return Err(ModelError::InvalidData(format!(
            "{} candidates but {} output slots",
            candidates.len(),
            out.len()
        )));
    }
    let plan = RowPlan::new(model.feature_names())?;
    let mut row = vec![0.0; plan.len()];
    for (c, o) in candidates.iter().zip(out) {
        plan.fill(base, c, &mut row)?;
        *o = model.predict_proba(&row)?;
    }
    Ok(())
}
