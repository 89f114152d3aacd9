//! XGBoost's own JSON model (what `Booster.save_model("model.json")` writes), read into a flat
//! [`Ensemble`] and evaluated as libxgboost's CPU predictor does: the row in `f32`, `x < split`
//! goes left, NaN goes to the node's default side, leaf values summed in tree order in `f32`
//! onto the base margin, then the logistic function in `f32`.
//!
//! Supported: booster `gbtree` with numerical splits, one output (`num_class` 0 or 1,
//! `num_target` 1, scalar leaves), objective `binary:logistic`. Anything else is refused at load
//! with an error naming it ([`ModelError::Unsupported`]) — never a silently different
//! prediction.

use std::path::Path;

use serde::Deserialize;

use super::trees::{Ensemble, RawSplit, RawTree, XgbSplit};
use crate::ModelError;

/// Objectives this evaluator computes.
pub const SUPPORTED_OBJECTIVES: [&str; 1] = ["binary:logistic"];

#[derive(Deserialize)]
struct File {
    learner: Learner,
}

#[derive(Deserialize)]
struct Learner {
    #[serde(default)]
    feature_types: Vec<String>,
    gradient_booster: GradientBooster,
    learner_model_param: LearnerModelParam,
    objective: Objective,
}

#[derive(Deserialize)]
struct Objective {
    name: String,
}

#[derive(Deserialize)]
struct LearnerModelParam {
    base_score: String,
    num_feature: String,
    #[serde(default)]
    num_class: Option<String>,
    #[serde(default)]
    num_target: Option<String>,
}

#[derive(Deserialize)]
struct GradientBooster {
    name: String,
    #[serde(default)]
    model: Option<GbtreeModel>,
}

#[derive(Deserialize)]
struct GbtreeModel {
    #[serde(default)]
    tree_info: Vec<i64>,
    /// XGBoost 3's categorical re-coding (`{"enc": [...], ...}`); empty without categories.
    #[serde(default)]
    cats: Option<serde_json::Value>,
    trees: Vec<Tree>,
}

/// `default_left` is written as 0/1 by XGBoost ≥ 2 and as booleans by older versions.
#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Int(i64),
}

impl Flag {
    fn get(self) -> bool {
        match self {
            Flag::Bool(b) => b,
            Flag::Int(i) => i != 0,
        }
    }
}

#[derive(Deserialize)]
struct Tree {
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    split_indices: Vec<i64>,
    split_conditions: Vec<f32>,
    default_left: Vec<Flag>,
    #[serde(default)]
    split_type: Vec<i64>,
    #[serde(default)]
    categories: Vec<i64>,
    tree_param: TreeParam,
}

#[derive(Deserialize)]
struct TreeParam {
    #[serde(default)]
    size_leaf_vector: Option<String>,
}

/// An XGBoost binary classifier, flattened.
#[derive(Debug)]
pub struct XgbNative {
    trees: Ensemble<XgbSplit>,
    base_margin: f32,
}

/// `base_score` is `"[5E-1]"` (a vector, XGBoost ≥ 3) or `"5E-1"` (older).
fn parse_base_score(s: &str) -> Option<f32> {
    let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
    let mut parts = inner.split(',');
    let first = parts.next()?.trim().parse::<f32>().ok()?;
    parts.next().is_none().then_some(first)
}

fn parse_count(s: &Option<String>) -> Option<u64> {
    s.as_deref().map_or(Some(0), |v| v.trim().parse().ok())
}

/// XGBoost's `common::Sigmoid` (`src/common/math.h`), in `f32`.
#[inline]
fn sigmoid(x: f32) -> f32 {
    let e = (-x).min(88.7).exp();
    1.0 / (e + 1.0 + 1e-16)
}

impl XgbNative {
    /// Read XGBoost JSON. Also returns the feature names the file lists (empty when it lists
    /// none) and its feature count.
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<(Self, Vec<String>, usize), ModelError> {
        #[derive(Deserialize)]
        struct Names {
            learner: NamesLearner,
        }
        #[derive(Deserialize)]
        struct NamesLearner {
            #[serde(default)]
            feature_names: Vec<String>,
        }
        let json = |source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        };
        let unsupported = |what: String| ModelError::Unsupported {
            path: path.to_path_buf(),
            what,
        };
        let bad = |reason: String| ModelError::BadArtefact {
            path: path.to_path_buf(),
            reason,
        };
        let file: File = serde_json::from_slice(bytes).map_err(json)?;
        let names: Names = serde_json::from_slice(bytes).map_err(json)?;
        let l = file.learner;
        if !SUPPORTED_OBJECTIVES.contains(&l.objective.name.as_str()) {
            return Err(unsupported(format!(
                "objective `{}` (supported: {})",
                l.objective.name,
                SUPPORTED_OBJECTIVES.join(", ")
            )));
        }
        if l.gradient_booster.name != "gbtree" {
            return Err(unsupported(format!(
                "booster `{}` (supported: gbtree)",
                l.gradient_booster.name
            )));
        }
        if let Some(t) = l.feature_types.iter().find(|t| t.as_str() == "c") {
            return Err(unsupported(format!("feature type `{t}` (categorical)")));
        }
        let p = &l.learner_model_param;
        match (parse_count(&p.num_class), parse_count(&p.num_target)) {
            (Some(0 | 1), Some(0 | 1)) => {}
            _ => {
                return Err(unsupported(format!(
                    "num_class `{}` / num_target `{}` (supported: one output)",
                    p.num_class.as_deref().unwrap_or("0"),
                    p.num_target.as_deref().unwrap_or("1")
                )))
            }
        }
        let n_features: usize = p
            .num_feature
            .trim()
            .parse()
            .map_err(|_| bad(format!("num_feature `{}` is not a count", p.num_feature)))?;
        let base_score = parse_base_score(&p.base_score).ok_or_else(|| {
            unsupported(format!(
                "base_score `{}` (one value expected)",
                p.base_score
            ))
        })?;
        if !(base_score > 0.0 && base_score < 1.0) {
            return Err(bad(format!(
                "base_score {base_score} is not a probability in (0, 1)"
            )));
        }
        // binary:logistic's ProbToMargin.
        let base_margin = -(1.0f32 / base_score - 1.0).ln();
        let model = l
            .gradient_booster
            .model
            .ok_or_else(|| bad("no gradient_booster.model".into()))?;
        let recoded = model
            .cats
            .as_ref()
            .and_then(|c| c.get("enc"))
            .and_then(|e| e.as_array())
            .is_some_and(|e| !e.is_empty());
        if recoded {
            return Err(unsupported(
                "categorical feature encoding (`cats.enc`)".into(),
            ));
        }
        if let Some(g) = model.tree_info.iter().find(|g| **g != 0) {
            return Err(unsupported(format!(
                "tree group {g} (one output group supported)"
            )));
        }
        let mut raw = Vec::with_capacity(model.trees.len());
        for (t, tree) in model.trees.iter().enumerate() {
            raw.push(raw_tree(t, tree).map_err(|e| match e {
                TreeProblem::Unsupported(w) => unsupported(w),
                TreeProblem::Bad(w) => bad(w),
            })?);
        }
        let trees = Ensemble::build(&raw, n_features, f32::INFINITY).map_err(bad)?;
        Ok((
            XgbNative { trees, base_margin },
            names.learner.feature_names,
            n_features,
        ))
    }

    /// The ensemble.
    pub(crate) fn ensemble(&self) -> &Ensemble<XgbSplit> {
        &self.trees
    }

    /// The margin (log-odds) of one row; NaN = missing.
    #[inline]
    pub fn margin(&self, row: &[f64]) -> f32 {
        self.trees.sum(row, self.base_margin)
    }

    /// P(class 1) of one row of [`Self::n_features`] values; NaN = missing.
    #[inline]
    pub fn predict_row(&self, row: &[f64]) -> f64 {
        f64::from(sigmoid(self.margin(row)))
    }

    /// Features a row has.
    pub fn n_features(&self) -> usize {
        self.trees.n_features()
    }

    /// Trees in the model.
    pub fn trees(&self) -> usize {
        self.trees.trees()
    }
}

enum TreeProblem {
    Unsupported(String),
    Bad(String),
}

fn raw_tree(t: usize, tree: &Tree) -> Result<RawTree<f32>, TreeProblem> {
    let n = tree.left_children.len();
    let lens = [
        tree.right_children.len(),
        tree.split_indices.len(),
        tree.split_conditions.len(),
        tree.default_left.len(),
    ];
    if lens.iter().any(|l| *l != n) {
        return Err(TreeProblem::Bad(format!(
            "tree {t}: node arrays of different lengths ({n} left children, {lens:?})"
        )));
    }
    if let Some(s) = tree.tree_param.size_leaf_vector.as_deref() {
        if !matches!(s.trim(), "0" | "1") {
            return Err(TreeProblem::Unsupported(format!(
                "tree {t}: vector leaves (size_leaf_vector {s})"
            )));
        }
    }
    if tree.split_type.iter().any(|s| *s != 0) || !tree.categories.is_empty() {
        return Err(TreeProblem::Unsupported(format!(
            "tree {t}: categorical splits"
        )));
    }
    let mut splits = Vec::with_capacity(n);
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let (l, r) = (tree.left_children[i], tree.right_children[i]);
        let c = tree.split_conditions[i];
        if l == -1 {
            if !c.is_finite() {
                return Err(TreeProblem::Bad(format!("tree {t} leaf {i} has value {c}")));
            }
            splits.push(None);
            values.push(c);
            continue;
        }
        let idx = |v: i64| usize::try_from(v).ok();
        let (Some(left), Some(right), Some(feature)) = (idx(l), idx(r), idx(tree.split_indices[i]))
        else {
            return Err(TreeProblem::Bad(format!(
                "tree {t} node {i}: negative child or feature index"
            )));
        };
        if c.is_nan() {
            return Err(TreeProblem::Bad(format!("tree {t} node {i} splits at NaN")));
        }
        splits.push(Some(RawSplit {
            feature,
            threshold: c,
            default_left: tree.default_left[i].get(),
            left,
            right,
        }));
        values.push(0.0);
    }
    Ok(RawTree { splits, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_score_forms() {
        assert_eq!(parse_base_score("[5E-1]"), Some(0.5));
        assert_eq!(parse_base_score("2.95E-1"), Some(0.295));
        assert_eq!(parse_base_score("[1E-1,2E-1]"), None);
        assert_eq!(parse_base_score("x"), None);
    }
}
