//! The random forest's `model.json` (smartcore decision trees in their serde form, bagged by
//! [`crate::forest`]) read into a flat [`Ensemble`]: each tree's split features are mapped from
//! its feature subset to the model's row, a leaf is worth 1 when its class is 1 (violation), and
//! P(violation) = votes / trees — exactly smartcore's walk (`x <= split` goes to the true child,
//! in `f64`) and this crate's vote count.

use std::path::Path;

use serde::Deserialize;

use super::trees::{Ensemble, RawSplit, RawTree, SmartcoreSplit};
use crate::ModelError;

const MODEL_FORMAT: &str = "autoscaler-random-forest";
const MODEL_FORMAT_VERSION: u32 = 1;

#[derive(Deserialize)]
struct FileIn {
    feature_names: Vec<String>,
    trees: Vec<ForestTree>,
}

#[derive(Deserialize)]
struct ForestTree {
    features: Vec<usize>,
    tree: ScTree,
}

/// The fields of smartcore 0.7's `DecisionTreeClassifier` serde form that prediction reads.
#[derive(Deserialize)]
struct ScTree {
    nodes: Vec<ScNode>,
    classes: Vec<u32>,
}

#[derive(Deserialize)]
struct ScNode {
    output: usize,
    split_feature: usize,
    split_value: Option<f64>,
    true_child: Option<usize>,
    false_child: Option<usize>,
}

/// A random forest of this crate's format, flattened.
#[derive(Debug)]
pub struct ForestNative {
    trees: Ensemble<SmartcoreSplit>,
    n_trees: f64,
}

impl ForestNative {
    /// Read the forest's `model.json`; also returns its feature names.
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<(Self, Vec<String>), ModelError> {
        let file: FileIn = crate::read_artefact(bytes, path, (MODEL_FORMAT, MODEL_FORMAT_VERSION))?;
        let bad = |reason: String| ModelError::BadArtefact {
            path: path.to_path_buf(),
            reason,
        };
        let n_features = file.feature_names.len();
        let mut raw = Vec::with_capacity(file.trees.len());
        for (t, ft) in file.trees.iter().enumerate() {
            raw.push(raw_tree(t, ft, n_features).map_err(bad)?);
        }
        let trees = Ensemble::build(&raw, n_features, f64::INFINITY).map_err(bad)?;
        Ok((
            ForestNative {
                n_trees: trees.trees() as f64,
                trees,
            },
            file.feature_names,
        ))
    }

    /// The ensemble.
    pub(crate) fn ensemble(&self) -> &Ensemble<SmartcoreSplit> {
        &self.trees
    }

    /// Fraction of trees voting for violation, for one row of [`Self::n_features`] values.
    #[inline]
    pub fn predict_row(&self, row: &[f64]) -> f64 {
        // Votes are whole numbers: exact in f32 far beyond any forest's size.
        f64::from(self.trees.sum(row, 0.0)) / self.n_trees
    }

    /// The trees in scikit-learn's layout (global feature indices; a leaf's value is 1 for a
    /// vote for violation): what `scripts/bench_models.py` builds a scikit-learn forest from.
    pub fn export(&self) -> Vec<super::trees::ExportTree<f64>> {
        self.trees.export()
    }

    /// Features a row has.
    pub fn n_features(&self) -> usize {
        self.trees.n_features()
    }

    /// Trees in the forest.
    pub fn trees(&self) -> usize {
        self.trees.trees()
    }
}

fn raw_tree(t: usize, ft: &ForestTree, n_features: usize) -> Result<RawTree<f64>, String> {
    if let Some(f) = ft.features.iter().find(|f| **f >= n_features) {
        return Err(format!(
            "tree {t} uses feature index {f} but the file lists {n_features} features"
        ));
    }
    let mut splits = Vec::with_capacity(ft.tree.nodes.len());
    let mut values = Vec::with_capacity(ft.tree.nodes.len());
    for (i, node) in ft.tree.nodes.iter().enumerate() {
        match (node.true_child, node.false_child) {
            (None, _) => {
                // smartcore returns `classes[output]` at a node without a true child.
                let class = ft.tree.classes.get(node.output).ok_or_else(|| {
                    format!(
                        "tree {t} leaf {i} has output {} but the tree has {} classes",
                        node.output,
                        ft.tree.classes.len()
                    )
                })?;
                splits.push(None);
                values.push(if *class == 1 { 1.0 } else { 0.0 });
            }
            (Some(left), Some(right)) => {
                let feature = *ft.features.get(node.split_feature).ok_or_else(|| {
                    format!(
                        "tree {t} node {i} splits on column {} of its {} columns",
                        node.split_feature,
                        ft.features.len()
                    )
                })?;
                splits.push(Some(RawSplit {
                    feature,
                    // smartcore compares with `split_value.unwrap_or(NaN)`: always false.
                    threshold: node.split_value.unwrap_or(f64::NAN),
                    default_left: false,
                    left,
                    right,
                }));
                values.push(0.0);
            }
            (Some(_), None) => {
                return Err(format!(
                    "tree {t} node {i} has a true child but no false child"
                ))
            }
        }
    }
    Ok(RawTree { splits, values })
}
