//! Logistic regression (linfa-logistic, L-BFGS, L2 penalty `alpha`) on standardised inputs.
//!
//! Inputs are standardised with the per-feature mean and standard deviation of the training data
//! (population std; a constant feature gets std 1). linfa-logistic has no class weights, so with
//! class weighting the minority class's rows are duplicated `round(majority / minority)` times
//! (capped at [`MAX_DUPLICATION`]) before fitting.
//!
//! `model.json` holds what prediction needs — means, stds, the coefficients on the standardised
//! inputs and the intercept — oriented so that `sigmoid(intercept + Σ coefᵢ·zᵢ)` = P(violation).

use std::path::Path;

use linfa::traits::Fit;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::artefact::{decode, encode, FileFeatures, Format, OwnFormat};
use crate::engine::{hyper, Engine};
use crate::params::{Checked, LogisticParams};
use crate::{Dataset, ModelError, Preprocessing};

/// Largest duplication factor applied to the minority class.
pub const MAX_DUPLICATION: usize = 100;

/// The fitted model, in the form saved to `model.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Logistic {
    means: Vec<f64>,
    stds: Vec<f64>,
    coefficients: Vec<f64>,
    intercept: f64,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Logistic {
    pub(crate) fn fit(
        data: &Dataset,
        params: &Checked<LogisticParams>,
    ) -> Result<(Self, serde_json::Value), ModelError> {
        let d = data.feature_names.len();
        let n = data.rows.len() as f64;
        let mut means = vec![0.0; d];
        for row in &data.rows {
            for (m, v) in means.iter_mut().zip(row) {
                *m += v / n;
            }
        }
        let mut stds = vec![0.0; d];
        for row in &data.rows {
            for ((s, v), m) in stds.iter_mut().zip(row).zip(&means) {
                *s += (v - m).powi(2) / n;
            }
        }
        for s in &mut stds {
            *s = s.sqrt();
            if !(s.is_finite() && *s > 1e-12) {
                *s = 1.0;
            }
        }

        let positives = data.positive_rows();
        let negatives = data.rows.len() - positives;
        let (minority, dup) = if !params.class_weighting {
            (true, 1)
        } else if positives <= negatives {
            (
                true,
                ((negatives as f64 / positives as f64).round() as usize).clamp(1, MAX_DUPLICATION),
            )
        } else {
            (
                false,
                ((positives as f64 / negatives as f64).round() as usize).clamp(1, MAX_DUPLICATION),
            )
        };
        let mut flat = Vec::new();
        let mut targets = Vec::new();
        for (row, label) in data.rows.iter().zip(&data.labels) {
            let times = if *label == minority { dup } else { 1 };
            for _ in 0..times {
                flat.extend(
                    row.iter()
                        .zip(&means)
                        .zip(&stds)
                        .map(|((v, m), s)| (v - m) / s),
                );
                targets.push(*label);
            }
        }
        let rows = targets.len();
        let x = Array2::from_shape_vec((rows, d), flat)
            .map_err(|e| ModelError::InvalidData(format!("shaping the inputs: {e}")))?;
        let y = Array1::from_vec(targets);
        let dataset = linfa::Dataset::new(x, y);
        let fitted = linfa_logistic::LogisticRegression::default()
            .alpha(params.alpha)
            .max_iterations(params.max_iterations)
            .fit(&dataset)
            .map_err(|source| ModelError::Logistic {
                context: "fitting".into(),
                source,
            })?;
        // linfa calls the more frequent class "pos"; orient the model so it gives P(true).
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        let model = Logistic {
            coefficients: fitted.params().iter().map(|c| sign * c).collect(),
            intercept: sign * fitted.intercept(),
            means,
            stds,
        };
        let hp = hyper(&[
            ("alpha", params.alpha.into()),
            ("max_iterations", params.max_iterations.into()),
            ("solver", "lbfgs".into()),
            ("class_weighting", params.class_weighting.into()),
            ("minority_duplication", dup.into()),
        ]);
        Ok((model, hp))
    }

    pub(crate) fn from_bytes(
        bytes: &[u8],
        path: &Path,
    ) -> Result<(Self, FileFeatures), ModelError> {
        decode(bytes, path)
    }

    /// P(violation) of one (already checked) row.
    pub(crate) fn predict_one(&self, row: &[f64]) -> f64 {
        let z = row
            .iter()
            .zip(&self.means)
            .zip(&self.stds)
            .zip(&self.coefficients)
            .map(|(((v, m), s), c)| c * (v - m) / s)
            .sum::<f64>()
            + self.intercept;
        sigmoid(z)
    }
}

impl OwnFormat for Logistic {
    const FORMAT: Format = ("autoscaler-logistic-regression", 1);
    const FILE: &'static str = "logistic_regression/model.json";
    const PRETTY: bool = true;

    fn check(&self, feature_names: &[String]) -> Result<(), String> {
        let d = feature_names.len();
        if self.means.len() != d || self.stds.len() != d || self.coefficients.len() != d {
            return Err(format!(
                "{d} features but {} means, {} stds, {} coefficients",
                self.means.len(),
                self.stds.len(),
                self.coefficients.len()
            ));
        }
        let all = self
            .means
            .iter()
            .chain(&self.stds)
            .chain(&self.coefficients);
        if !self.intercept.is_finite() || all.clone().any(|v| !v.is_finite()) {
            return Err("non-finite parameter".into());
        }
        if self.stds.iter().any(|s| *s <= 0.0) {
            return Err("a standard deviation is not positive".into());
        }
        Ok(())
    }
}

impl Engine for Logistic {
    fn predict(&self, rows: &[&[f64]], _model_file: &[u8]) -> Result<Vec<f64>, ModelError> {
        Ok(rows.iter().map(|r| self.predict_one(r)).collect())
    }

    fn to_bytes(&self, feature_names: &[String]) -> Result<Vec<u8>, ModelError> {
        encode(self, feature_names)
    }

    fn preprocessing(&self) -> Preprocessing {
        Preprocessing::Standardise {
            means: self.means.clone(),
            stds: self.stds.clone(),
        }
    }
}
