//! # Calibrated probabilities
//!
//! A model's raw score is not a probability one can compare across models or replica counts:
//! class re-weighting pushes it up, a forest's vote share clusters, and so on. The training
//! crate fits a [`Calibration`] on the **validation split** (never the test split) and records
//! it in the metadata (`scores.calibration`); [`crate::load`] then wraps the model in
//! [`Calibrated`], so every caller of [`Model::predict_proba`] gets calibrated probabilities
//! and the threshold in the metadata (chosen on calibrated validation scores) means what it
//! says.
//!
//! Two methods: Platt scaling (a logistic fit on the logit of the raw score: two parameters,
//! monotone, keeps the ranking, so ROC-AUC is unchanged) and isotonic regression (pool adjacent
//! violators: a monotone step function, better with many validation rows, but it merges ties).

use serde::{Deserialize, Serialize};

use crate::{Model, ModelError, ModelKind, TrainedModel};

/// Where the metadata keeps the calibration: `scores.<CALIBRATION_KEY>`.
pub const CALIBRATION_KEY: &str = "calibration";
/// Raw scores are clamped into `[EPS, 1 - EPS]` before taking their logit.
const EPS: f64 = 1e-6;

/// A monotone map from a model's raw score to a calibrated probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Calibration {
    /// `1 / (1 + exp(-(a · logit(p) + b)))`.
    Platt {
        /// Slope on the raw logit.
        a: f64,
        /// Intercept.
        b: f64,
    },
    /// Step function: the value of the last knot at or below the raw score (linear between
    /// knots), clamped at the ends.
    Isotonic {
        /// Raw scores of the knots, increasing.
        x: Vec<f64>,
        /// Calibrated probabilities at the knots, non-decreasing.
        y: Vec<f64>,
    },
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(EPS, 1.0 - EPS);
    (p / (1.0 - p)).ln()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Calibration {
    /// The calibrated probability of raw score `p`.
    pub fn apply(&self, p: f64) -> f64 {
        match self {
            Calibration::Platt { a, b } => sigmoid(a * logit(p) + b),
            Calibration::Isotonic { x, y } => {
                if x.is_empty() {
                    return p;
                }
                let k = x.partition_point(|v| *v <= p);
                if k == 0 {
                    y[0]
                } else if k == x.len() {
                    y[x.len() - 1]
                } else {
                    let (x0, x1, y0, y1) = (x[k - 1], x[k], y[k - 1], y[k]);
                    y0 + (y1 - y0) * (p - x0) / (x1 - x0)
                }
            }
        }
        .clamp(0.0, 1.0)
    }

    /// Platt scaling fitted by Newton's method on the log loss, with Platt's smoothed targets
    /// (`(n₊ + 1) / (n₊ + 2)` and `1 / (n₋ + 2)`) so that a separable validation split does not
    /// send the slope to infinity. Needs both classes.
    pub fn fit_platt(scores: &[f64], labels: &[bool]) -> Result<Calibration, ModelError> {
        check(scores, labels)?;
        let pos = labels.iter().filter(|l| **l).count() as f64;
        let neg = labels.len() as f64 - pos;
        let (t_pos, t_neg) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
        let z: Vec<f64> = scores.iter().map(|p| logit(*p)).collect();
        let t: Vec<f64> = labels
            .iter()
            .map(|l| if *l { t_pos } else { t_neg })
            .collect();
        // Mean log loss against the smoothed targets.
        let loss = |a: f64, b: f64| -> f64 {
            z.iter()
                .zip(&t)
                .map(|(zi, ti)| {
                    let m = a * zi + b;
                    // log(1 + e^m) − t·m, computed stably.
                    let softplus = if m > 0.0 {
                        m + (-m).exp().ln_1p()
                    } else {
                        m.exp().ln_1p()
                    };
                    softplus - ti * m
                })
                .sum::<f64>()
                / z.len() as f64
        };
        let (mut a, mut b) = (1.0, 0.0);
        let mut current = loss(a, b);
        for _ in 0..100 {
            // Gradient and Hessian of the log loss in (a, b), plus a tiny ridge.
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
            for (zi, ti) in z.iter().zip(&t) {
                let q = sigmoid(a * zi + b);
                let d = q - ti;
                let w = (q * (1.0 - q)).max(1e-12);
                ga += d * zi;
                gb += d;
                haa += w * zi * zi;
                hab += w * zi;
                hbb += w;
            }
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-18 {
                break;
            }
            let da = (hbb * ga - hab * gb) / det;
            let db = (haa * gb - hab * ga) / det;
            // Newton step, halved until the loss goes down (Platt's method as refined by Lin,
            // Lin and Weng, 2007).
            let mut step = 1.0;
            let mut moved = false;
            while step > 1e-10 {
                let (na, nb) = (a - step * da, b - step * db);
                let l = loss(na, nb);
                if l.is_finite() && l < current - 1e-12 {
                    a = na;
                    b = nb;
                    current = l;
                    moved = true;
                    break;
                }
                step /= 2.0;
            }
            if !moved || (step * da).abs() < 1e-10 && (step * db).abs() < 1e-10 {
                break;
            }
        }
        if a.is_nan() || a <= 0.0 || !b.is_finite() {
            return Err(ModelError::InvalidData(format!(
                "Platt scaling found no increasing map on the validation scores (slope {a}): \
                 the model ranks the validation split the wrong way round"
            )));
        }
        if !(a.is_finite() && b.is_finite()) {
            return Err(ModelError::InvalidData(
                "Platt scaling did not converge on the validation scores".into(),
            ));
        }
        Ok(Calibration::Platt { a, b })
    }

    /// Isotonic regression (pool adjacent violators) of the labels on the scores. Needs both
    /// classes.
    pub fn fit_isotonic(scores: &[f64], labels: &[bool]) -> Result<Calibration, ModelError> {
        check(scores, labels)?;
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
        // Blocks of (sum of labels, count, min score, max score).
        let mut blocks: Vec<(f64, f64, f64, f64)> = Vec::new();
        for i in idx {
            let (s, y) = (scores[i], f64::from(u8::from(labels[i])));
            match blocks.last_mut() {
                Some(b) if b.3 == s => {
                    b.0 += y;
                    b.1 += 1.0;
                }
                _ => blocks.push((y, 1.0, s, s)),
            }
            while blocks.len() >= 2 {
                let n = blocks.len();
                let (a, b) = (blocks[n - 2], blocks[n - 1]);
                if a.0 / a.1 <= b.0 / b.1 {
                    break;
                }
                blocks.truncate(n - 2);
                blocks.push((a.0 + b.0, a.1 + b.1, a.2, b.3));
            }
        }
        let mut x = Vec::new();
        let mut y = Vec::new();
        for b in blocks {
            let v = b.0 / b.1;
            x.push(b.2);
            y.push(v);
            if b.3 > b.2 {
                x.push(b.3);
                y.push(v);
            }
        }
        Ok(Calibration::Isotonic { x, y })
    }

    /// The calibration recorded in a metadata's `scores` (`None` when there is none).
    pub fn from_scores(scores: &serde_json::Value) -> Result<Option<Calibration>, String> {
        match scores.get(CALIBRATION_KEY) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| format!("scores.{CALIBRATION_KEY}: {e}")),
        }
    }
}

fn check(scores: &[f64], labels: &[bool]) -> Result<(), ModelError> {
    if scores.len() != labels.len() {
        return Err(ModelError::InvalidData(format!(
            "{} scores but {} labels",
            scores.len(),
            labels.len()
        )));
    }
    let pos = labels.iter().filter(|l| **l).count();
    if pos == 0 || pos == labels.len() {
        return Err(ModelError::InvalidData(format!(
            "calibration needs both classes; {pos} of {} validation rows are violations",
            labels.len()
        )));
    }
    if scores.iter().any(|s| !s.is_finite()) {
        return Err(ModelError::InvalidData("a score is not finite".into()));
    }
    Ok(())
}

/// A model whose probabilities pass through a [`Calibration`].
pub struct Calibrated {
    inner: Box<dyn Model>,
    calibration: Calibration,
}

impl Calibrated {
    /// Wrap `inner`.
    pub fn new(inner: Box<dyn Model>, calibration: Calibration) -> Calibrated {
        Calibrated { inner, calibration }
    }

    /// The calibration applied.
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }
}

impl Model for Calibrated {
    fn kind(&self) -> ModelKind {
        self.inner.kind()
    }
    fn version(&self) -> &str {
        self.inner.version()
    }
    fn threshold(&self) -> f64 {
        self.inner.threshold()
    }
    fn feature_names(&self) -> &[String] {
        self.inner.feature_names()
    }
    fn predict_proba_batch(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, ModelError> {
        let mut p = self.inner.predict_proba_batch(rows)?;
        for v in &mut p {
            *v = self.calibration.apply(*v);
        }
        Ok(p)
    }
    fn as_trained(&self) -> Option<&TrainedModel> {
        self.inner.as_trained()
    }
}

/// `model`, calibrated when `calibration` is given.
pub fn wrap(model: Box<dyn Model>, calibration: Option<Calibration>) -> Box<dyn Model> {
    match calibration {
        Some(c) => Box::new(Calibrated::new(model, c)),
        None => model,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platt_recovers_a_known_map_and_keeps_the_order() {
        // Labels drawn deterministically so that P(y | p) = sigmoid(2·logit(p) − 1).
        let mut s = Vec::new();
        let mut y = Vec::new();
        for i in 1..200 {
            let p = f64::from(i) / 200.0;
            let q = sigmoid(2.0 * logit(p) - 1.0);
            for k in 0..50 {
                s.push(p);
                y.push(f64::from(k) + 0.5 < q * 50.0);
            }
        }
        let Calibration::Platt { a, b } = Calibration::fit_platt(&s, &y).unwrap() else {
            panic!()
        };
        assert!(
            (a - 2.0).abs() < 0.1 && (b + 1.0).abs() < 0.1,
            "a {a} b {b}"
        );
        let c = Calibration::Platt { a, b };
        assert!(c.apply(0.2) < c.apply(0.3));
    }

    #[test]
    fn isotonic_is_monotone_and_matches_block_means() {
        let s = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
        let y = [false, true, false, false, true, true];
        let c = Calibration::fit_isotonic(&s, &y).unwrap();
        // PAV: [0], [1, 0, 0] pooled to 1/3, [1], [1].
        assert!((c.apply(0.1) - 0.0).abs() < 1e-12);
        assert!((c.apply(0.3) - 1.0 / 3.0).abs() < 1e-12);
        assert!((c.apply(0.6) - 1.0).abs() < 1e-12);
        let mut last = 0.0;
        for i in 0..=100 {
            let v = c.apply(f64::from(i) / 100.0);
            assert!(v >= last - 1e-12);
            last = v;
        }
    }

    #[test]
    fn one_class_is_refused_and_scores_round_trip() {
        let e = Calibration::fit_platt(&[0.1, 0.2], &[false, false]).unwrap_err();
        assert!(e.to_string().contains("both classes"), "{e}");
        let c = Calibration::Platt { a: 1.5, b: -0.2 };
        let scores = serde_json::json!({ "f1": 0.5, CALIBRATION_KEY: c });
        assert_eq!(Calibration::from_scores(&scores).unwrap(), Some(c));
        assert_eq!(
            Calibration::from_scores(&serde_json::json!({})).unwrap(),
            None
        );
        assert!(Calibration::from_scores(&serde_json::json!({ CALIBRATION_KEY: 3 })).is_err());
    }
}
