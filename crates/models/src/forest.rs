//! Random forest: bagged smartcore decision trees.
//!
//! smartcore's `RandomForestClassifier` keeps its trees private and has no `predict_proba`, so
//! the forest is built here from smartcore `DecisionTreeClassifier`s:
//!
//! * each tree is fitted on a **bootstrap** of the training rows drawn per class (stratified):
//!   without class weighting each class keeps its own count, with class weighting each class gets
//!   half of the draws (a *balanced* random forest, Chen, Liaw & Breiman 2004);
//! * each tree sees a **random subset of the features** (random subspace method), of
//!   `ceil(FEATURE_FRACTION × n_features)` features;
//! * **P(violation) = the fraction of trees that vote for class 1** (violation).
//!
//! Every random choice comes from a ChaCha8 RNG seeded with [`crate::TrainParams::seed`].
//! `model.json` holds each tree's feature indices and the tree in smartcore's serde form.

use std::path::Path;

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::{
    DecisionTreeClassifier, DecisionTreeClassifierParameters,
};

use crate::artefact::{decode, encode, FileFeatures, Format, OwnFormat};
use crate::engine::{hyper, Engine};
use crate::params::{Checked, ForestParams};
use crate::Dataset;
use crate::ModelError;

/// Fraction of the features each tree sees.
pub const FEATURE_FRACTION: f64 = 0.5;

type Tree = DecisionTreeClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;

#[derive(Debug, Serialize, Deserialize)]
struct ForestTree {
    /// Indices (into the model's feature list) of the columns this tree takes, in order.
    features: Vec<usize>,
    tree: Tree,
}

/// The fitted forest.
pub(crate) struct Forest {
    body: Body,
}

/// `model.json` after its envelope.
#[derive(Serialize, Deserialize)]
struct Body {
    trees: Vec<ForestTree>,
}

fn sc_err(context: String) -> impl FnOnce(smartcore::error::Failed) -> ModelError {
    move |source| ModelError::Smartcore { context, source }
}

impl Forest {
    pub(crate) fn fit(
        data: &Dataset,
        params: &Checked<ForestParams>,
    ) -> Result<(Self, serde_json::Value), ModelError> {
        let n_features = data.feature_names.len();
        let subset = ((FEATURE_FRACTION * n_features as f64).ceil() as usize).clamp(1, n_features);
        let pos: Vec<usize> = (0..data.rows.len()).filter(|i| data.labels[*i]).collect();
        let neg: Vec<usize> = (0..data.rows.len()).filter(|i| !data.labels[*i]).collect();
        let n = data.rows.len();
        let (n_pos, n_neg) = if params.class_weighting {
            (n / 2, n - n / 2)
        } else {
            (pos.len(), neg.len())
        };
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let mut trees = Vec::with_capacity(params.trees);
        for t in 0..params.trees {
            let mut features = sample(&mut rng, n_features, subset).into_vec();
            features.sort_unstable();
            let mut x = Vec::with_capacity(n);
            let mut y = Vec::with_capacity(n);
            for (class, idx, count) in [(1u32, &pos, n_pos), (0u32, &neg, n_neg)] {
                for _ in 0..count {
                    let row = &data.rows[idx[rng.random_range(0..idx.len())]];
                    x.push(features.iter().map(|f| row[*f]).collect::<Vec<f64>>());
                    y.push(class);
                }
            }
            let x = DenseMatrix::from_2d_vec(&x)
                .map_err(sc_err(format!("building the matrix of tree {t}")))?;
            let tree_params = DecisionTreeClassifierParameters {
                max_depth: params.max_depth,
                seed: Some(params.seed.wrapping_add(t as u64)),
                ..DecisionTreeClassifierParameters::default()
            };
            let tree = DecisionTreeClassifier::fit(&x, &y, tree_params)
                .map_err(sc_err(format!("fitting tree {t}")))?;
            trees.push(ForestTree { features, tree });
        }
        let hp = hyper(&[
            ("n_trees", params.trees.into()),
            (
                "max_depth",
                serde_json::to_value(params.max_depth).unwrap_or_default(),
            ),
            ("features_per_tree", subset.into()),
            ("feature_fraction", FEATURE_FRACTION.into()),
            ("criterion", "gini".into()),
            (
                "bootstrap",
                if params.class_weighting {
                    "balanced"
                } else {
                    "stratified"
                }
                .into(),
            ),
            ("seed", params.seed.into()),
            ("class_weighting", params.class_weighting.into()),
            (
                "probability",
                "fraction of trees voting for violation".into(),
            ),
        ]);
        Ok((
            Forest {
                body: Body { trees },
            },
            hp,
        ))
    }

    pub(crate) fn from_bytes(
        bytes: &[u8],
        path: &Path,
    ) -> Result<(Self, FileFeatures), ModelError> {
        decode(bytes, path).map(|(body, features)| (Forest { body }, features))
    }
}

impl OwnFormat for Body {
    const FORMAT: Format = ("autoscaler-random-forest", 1);
    const FILE: &'static str = "random_forest/model.json";

    fn check(&self, feature_names: &[String]) -> Result<(), String> {
        if self.trees.is_empty() {
            return Err("no trees".into());
        }
        let n = feature_names.len();
        match self
            .trees
            .iter()
            .find(|t| t.features.iter().any(|f| *f >= n))
        {
            Some(t) => Err(format!(
                "a tree uses feature index {:?} but the file lists {n} features",
                t.features
            )),
            None => Ok(()),
        }
    }
}

impl Engine for Forest {
    /// Fraction of trees voting for violation, per row.
    fn predict(&self, rows: &[&[f64]], _model_file: &[u8]) -> Result<Vec<f64>, ModelError> {
        let mut votes = vec![0usize; rows.len()];
        for (t, tree) in self.body.trees.iter().enumerate() {
            let x: Vec<Vec<f64>> = rows
                .iter()
                .map(|r| tree.features.iter().map(|f| r[*f]).collect())
                .collect();
            let x = DenseMatrix::from_2d_vec(&x)
                .map_err(sc_err(format!("building the input of tree {t}")))?;
            let y = tree
                .tree
                .predict(&x)
                .map_err(sc_err(format!("predicting with tree {t}")))?;
            for (v, class) in votes.iter_mut().zip(y) {
                *v += usize::from(class == 1);
            }
        }
        let n = self.body.trees.len() as f64;
        Ok(votes.into_iter().map(|v| v as f64 / n).collect())
    }

    fn to_bytes(&self, feature_names: &[String]) -> Result<Vec<u8>, ModelError> {
        encode(&self.body, feature_names)
    }
}
