//! Logistic regression (L2 penalty `alpha`, Newton's method) on standardised inputs.
//!
//! Inputs are standardised with the per-feature mean and standard deviation of the training data
//! (population std; a constant feature gets std 1). The fit minimises linfa-logistic's
//! objective, `Σᵢ wᵢ·logloss(yᵢ, zᵢ) + α/2·‖coef‖²` (the intercept is not penalised), by
//! Newton's method with a backtracking line search (a few passes over the rows; linfa's L-BFGS
//! took its 200 iterations, a minute on 100,000 rows), stopped when the largest gradient
//! component is below [`NEWTON_TOLERANCE`] per unit of weight or after `max_iterations`. With
//! class weighting the minority class's rows weigh `round(majority / minority)` (capped at
//! [`MAX_DUPLICATION`]): the objective of duplicating them that many times.
//!
//! `model.json` holds what prediction needs — means, stds, the coefficients on the standardised
//! inputs and the intercept — oriented so that `sigmoid(intercept + Σ coefᵢ·zᵢ)` = P(violation).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::artefact::{decode, encode, FileFeatures, Format, OwnFormat};
use crate::engine::{hyper, Engine};
use crate::params::{Checked, LogisticParams};
use crate::{Dataset, ModelError, Preprocessing};

/// Largest weight (duplication factor) applied to the minority class.
pub const MAX_DUPLICATION: usize = 100;
/// Newton's method stops when every gradient component, divided by the total weight of the
/// rows, is below this.
pub const NEWTON_TOLERANCE: f64 = 1e-9;
/// Halvings of a Newton step before the fit stops where it is.
const MAX_HALVINGS: u32 = 40;

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
        let mut z = Vec::with_capacity(data.rows.len() * d);
        for row in &data.rows {
            z.extend(
                row.iter()
                    .zip(&means)
                    .zip(&stds)
                    .map(|((v, m), s)| (v - m) / s),
            );
        }
        // A minority row weighs `dup`: the objective of duplicating it `dup` times.
        let weights: Vec<f64> = data
            .labels
            .iter()
            .map(|l| if *l == minority { dup as f64 } else { 1.0 })
            .collect();
        let (coefficients, intercept) = newton(
            &z,
            d,
            &data.labels,
            &weights,
            params.alpha,
            params.max_iterations,
        )?;
        let model = Logistic {
            coefficients,
            intercept,
            means,
            stds,
        };
        let hp = hyper(&[
            ("alpha", params.alpha.into()),
            ("max_iterations", params.max_iterations.into()),
            ("solver", "newton".into()),
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

/// `log(1 + e^m)`, computed stably.
fn softplus(m: f64) -> f64 {
    if m > 0.0 {
        m + (-m).exp().ln_1p()
    } else {
        m.exp().ln_1p()
    }
}

/// The penalised weighted log loss of `(coef, intercept)` on row-major `z` (`d` columns).
fn objective(z: &[f64], d: usize, y: &[bool], w: &[f64], alpha: f64, theta: &[f64]) -> f64 {
    let (coef, b) = (&theta[..d], theta[d]);
    let loss: f64 = z
        .chunks_exact(d)
        .zip(y)
        .zip(w)
        .map(|((x, y), w)| {
            let m = b + x.iter().zip(coef).map(|(x, c)| x * c).sum::<f64>();
            w * (softplus(m) - if *y { m } else { 0.0 })
        })
        .sum();
    loss + 0.5 * alpha * coef.iter().map(|c| c * c).sum::<f64>()
}

/// Solve `a · x = g` for a symmetric positive-definite `a` (`n × n`, row-major) by Cholesky.
fn cholesky_solve(mut a: Vec<f64>, n: usize, g: &[f64]) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut s = a[j * n + j];
        for k in 0..j {
            s -= a[j * n + k] * a[j * n + k];
        }
        if !(s.is_finite() && s > 0.0) {
            return None;
        }
        let l = s.sqrt();
        a[j * n + j] = l;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / l;
        }
    }
    let mut x = g.to_vec();
    for i in 0..n {
        for k in 0..i {
            x[i] -= a[i * n + k] * x[k];
        }
        x[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            x[i] -= a[k * n + i] * x[k];
        }
        x[i] /= a[i * n + i];
    }
    Some(x)
}

/// Minimise [`objective`] by Newton's method: the coefficients and the intercept.
fn newton(
    z: &[f64],
    d: usize,
    y: &[bool],
    w: &[f64],
    alpha: f64,
    max_iterations: u64,
) -> Result<(Vec<f64>, f64), ModelError> {
    let total: f64 = w.iter().sum();
    let p = d + 1;
    // Start from the weighted base rate.
    let base = y
        .iter()
        .zip(w)
        .filter(|(y, _)| **y)
        .map(|(_, w)| w)
        .sum::<f64>()
        / total;
    let mut theta = vec![0.0; p];
    theta[d] = (base / (1.0 - base)).ln();
    let mut current = objective(z, d, y, w, alpha, &theta);
    let mut x1 = vec![0.0; p];
    for _ in 0..max_iterations {
        let mut grad = vec![0.0; p];
        let mut hess = vec![0.0; p * p];
        for ((x, y), wi) in z.chunks_exact(d).zip(y).zip(w) {
            x1[..d].copy_from_slice(x);
            x1[d] = 1.0;
            let m = x1.iter().zip(&theta).map(|(x, t)| x * t).sum::<f64>();
            let q = sigmoid(m);
            let r = wi * (q - f64::from(u8::from(*y)));
            let h = wi * q * (1.0 - q);
            for (j, xj) in x1.iter().enumerate() {
                grad[j] += r * xj;
                let hx = h * xj;
                // Lower triangle; mirrored below.
                for (k, xk) in x1[..=j].iter().enumerate() {
                    hess[j * p + k] += hx * xk;
                }
            }
        }
        for j in 0..d {
            grad[j] += alpha * theta[j];
            hess[j * p + j] += alpha;
        }
        if grad.iter().all(|g| g.abs() <= NEWTON_TOLERANCE * total) {
            break;
        }
        for j in 0..p {
            // A tiny ridge keeps the system solvable (a constant column, separable data).
            hess[j * p + j] += 1e-10 * total;
            for k in 0..j {
                hess[k * p + j] = hess[j * p + k];
            }
        }
        let Some(step) = cholesky_solve(hess, p, &grad) else {
            break;
        };
        let slope: f64 = grad.iter().zip(&step).map(|(g, s)| g * s).sum();
        let mut t = 1.0;
        let mut moved = false;
        for _ in 0..MAX_HALVINGS {
            let trial: Vec<f64> = theta.iter().zip(&step).map(|(a, s)| a - t * s).collect();
            let f = objective(z, d, y, w, alpha, &trial);
            if f.is_finite() && f <= current - 1e-4 * t * slope {
                theta = trial;
                current = f;
                moved = true;
                break;
            }
            t /= 2.0;
        }
        if !moved {
            break;
        }
    }
    if theta.iter().any(|t| !t.is_finite()) {
        return Err(ModelError::InvalidData(
            "logistic regression did not converge (a non-finite coefficient)".into(),
        ));
    }
    let intercept = theta[d];
    theta.truncate(d);
    Ok((theta, intercept))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamGuard;
    use linfa::traits::Fit;
    use rand::{Rng, SeedableRng};

    fn data(n: usize) -> Dataset {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..n {
            let a: f64 = rng.random::<f64>() * 10.0;
            let b: f64 = rng.random::<f64>() * 3.0 - 1.0;
            let c: f64 = rng.random();
            let q = sigmoid(0.8 * a - 2.0 * b - 5.0);
            rows.push(vec![a, b, c]);
            labels.push(rng.random::<f64>() < q);
        }
        Dataset {
            feature_names: vec![
                "request_rate_rps".into(),
                "cpu_usage_pct".into(),
                "p95_latency_ms".into(),
            ],
            rows,
            labels,
        }
    }

    #[test]
    fn newton_reaches_linfas_optimum_on_the_duplicated_rows() {
        let d = data(3000);
        let p = LogisticParams {
            alpha: 1.0,
            max_iterations: 100,
            class_weighting: true,
        }
        .check()
        .unwrap();
        let (ours, hp) = Logistic::fit(&d, &p).unwrap();
        let dup = hp["minority_duplication"].as_u64().unwrap() as usize;
        assert!(dup > 1, "the test wants a re-weighted minority");
        // linfa on the same standardised rows, the minority duplicated: the same objective.
        let minority = d.positive_rows() * 2 <= d.rows.len();
        let mut flat = Vec::new();
        let mut t = Vec::new();
        for (row, y) in d.rows.iter().zip(&d.labels) {
            for _ in 0..if *y == minority { dup } else { 1 } {
                flat.extend(
                    row.iter()
                        .zip(&ours.means)
                        .zip(&ours.stds)
                        .map(|((v, m), s)| (v - m) / s),
                );
                t.push(*y);
            }
        }
        let x = ndarray::Array2::from_shape_vec((t.len(), 3), flat).unwrap();
        let ds = linfa::Dataset::new(x, ndarray::Array1::from_vec(t));
        let fitted = linfa_logistic::LogisticRegression::default()
            .alpha(1.0)
            .max_iterations(500)
            .gradient_tolerance(1e-8)
            .fit(&ds)
            .unwrap();
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        for (a, b) in ours.coefficients.iter().zip(fitted.params().iter()) {
            assert!((a - sign * b).abs() < 1e-3, "{a} vs {}", sign * b);
        }
        assert!((ours.intercept - sign * fitted.intercept()).abs() < 1e-3);
    }

    #[test]
    fn cholesky_solves_a_small_system() {
        // [[4, 2], [2, 3]] x = [2, 1] → x = [0.5, 0].
        let x = cholesky_solve(vec![4.0, 2.0, 2.0, 3.0], 2, &[2.0, 1.0]).unwrap();
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12, "{x:?}");
        assert!(cholesky_solve(vec![0.0, 0.0, 0.0, 0.0], 2, &[1.0, 1.0]).is_none());
    }
}
