//! Random forest: bagged CART trees, stored as smartcore decision trees.
//!
//! smartcore's `RandomForestClassifier` keeps its trees private and has no `predict_proba`, so
//! the forest is built here, and smartcore's own tree fit scans every training row at every
//! node (minutes on 100,000 rows), so the trees are grown here too and stored in smartcore's
//! `DecisionTreeClassifier` serde form (the file format, the native evaluator and smartcore's
//! `predict`, the reference, are unchanged):
//!
//! * each tree is fitted on a **bootstrap** of the training rows drawn per class (stratified):
//!   without class weighting each class keeps its own count, with class weighting each class gets
//!   half of the draws (a *balanced* random forest, Chen, Liaw & Breiman 2004); the bootstrap is
//!   kept as a count per row, never copied;
//! * each tree sees a **random subset of the features** (random subspace method), of
//!   `ceil(FEATURE_FRACTION × n_features)` features;
//! * a node's split is the best Gini gain over **histogram cuts**: each feature is cut once
//!   into at most [`MAX_BINS`] quantile bins (every distinct value when it has fewer), and a
//!   node's candidate cuts are the bin edges (midpoints between neighbouring training values,
//!   as smartcore's); a node stops when pure, at the maximum depth, or when no cut gains;
//! * trees are fitted in parallel on every core; tree `t` draws from its own RNG stream, so the
//!   forest is the same whatever the number of threads;
//! * **P(violation) = the fraction of trees that vote for class 1** (violation).
//!
//! Every random choice comes from a ChaCha8 RNG seeded with [`crate::TrainParams::seed`] (stream
//! `t` for tree `t`). `model.json` holds each tree's feature indices and the tree in
//! smartcore's serde form.

use std::path::Path;

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::DecisionTreeClassifier;

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
        Self::fit_with_threads(data, params, fit_threads(params.trees))
    }

    /// [`Forest::fit`] on `threads` threads: the same forest whatever the count (each tree
    /// draws from its own RNG stream).
    pub(crate) fn fit_with_threads(
        data: &Dataset,
        params: &Checked<ForestParams>,
        threads: usize,
    ) -> Result<(Self, serde_json::Value), ModelError> {
        let n_features = data.feature_names.len();
        let subset = ((FEATURE_FRACTION * n_features as f64).ceil() as usize).clamp(1, n_features);
        let binned = Binned::new(data);
        let shared = Shared {
            binned: &binned,
            labels: &data.labels,
            pos: (0..data.rows.len()).filter(|i| data.labels[*i]).collect(),
            neg: (0..data.rows.len()).filter(|i| !data.labels[*i]).collect(),
            n_features,
            subset,
            params,
        };
        if shared.pos.is_empty() || shared.neg.is_empty() {
            return Err(ModelError::InvalidData(
                "the random forest needs both classes in its training rows".into(),
            ));
        }
        let threads = threads.clamp(1, params.trees);
        // Tree t is fitted by thread t % threads; results are put back in tree order.
        let mut per_thread: Vec<Result<Vec<(usize, ForestTree)>, ModelError>> = Vec::new();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|k| {
                    let shared = &shared;
                    s.spawn(move || {
                        (k..params.trees)
                            .step_by(threads)
                            .map(|t| shared.tree(t).map(|tree| (t, tree)))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            for h in handles {
                per_thread.push(h.join().unwrap_or_else(|_| {
                    Err(ModelError::InvalidData("a forest thread panicked".into()))
                }));
            }
        });
        let mut trees: Vec<(usize, ForestTree)> = Vec::with_capacity(params.trees);
        for r in per_thread {
            trees.extend(r?);
        }
        trees.sort_by_key(|(t, _)| *t);
        let trees: Vec<ForestTree> = trees.into_iter().map(|(_, t)| t).collect();
        let hp = hyper(&[
            ("n_trees", params.trees.into()),
            (
                "max_depth",
                serde_json::to_value(params.max_depth).unwrap_or_default(),
            ),
            ("features_per_tree", subset.into()),
            ("feature_fraction", FEATURE_FRACTION.into()),
            ("criterion", "gini".into()),
            ("max_bins", MAX_BINS.into()),
            (
                "splits",
                "histogram: the best cut between the feature's quantile bins".into(),
            ),
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

/// Bins a feature is cut into at most for the split search: a tree's cut on a feature is one of
/// its (at most `MAX_BINS - 1`) bin edges, midpoints between neighbouring training values at
/// its quantiles. A feature with fewer distinct values keeps every midpoint (an exact search).
pub const MAX_BINS: usize = 256;

/// Threads fitting trees: every core the process may use, at most one per tree.
fn fit_threads(trees: usize) -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, trees.max(1))
}

/// The training rows cut into bins once for every tree: `codes[f][row]` is the bin of the row's
/// value of feature `f`; `x <= cuts[f][b]` exactly when the bin is `<= b`.
struct Binned {
    cuts: Vec<Vec<f64>>,
    codes: Vec<Vec<u8>>,
}

impl Binned {
    fn new(data: &Dataset) -> Binned {
        let n_features = data.feature_names.len();
        let mut cuts = Vec::with_capacity(n_features);
        let mut codes = Vec::with_capacity(n_features);
        for f in 0..n_features {
            let mut v: Vec<f64> = data.rows.iter().map(|r| r[f]).collect();
            v.sort_by(f64::total_cmp);
            let c = bin_edges(&v, MAX_BINS);
            codes.push(
                data.rows
                    .iter()
                    .map(|r| c.partition_point(|cut| *cut < r[f]) as u8)
                    .collect(),
            );
            cuts.push(c);
        }
        Binned { cuts, codes }
    }
}

/// Cut points of sorted values `v` into at most `bins` bins: midpoints between neighbouring
/// distinct values, all of them when there are few, else those at the quantiles.
fn bin_edges(v: &[f64], bins: usize) -> Vec<f64> {
    let mut distinct: Vec<f64> = v.to_vec();
    distinct.dedup();
    let mut cuts: Vec<f64> = if distinct.len() <= bins {
        distinct.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect()
    } else {
        (1..bins)
            .filter_map(|b| {
                let hi = v[b * v.len() / bins];
                // The largest value below `hi`: the cut sits between the two.
                let k = v.partition_point(|x| *x < hi);
                (k > 0).then(|| (v[k - 1] + hi) / 2.0)
            })
            .collect()
    };
    cuts.dedup();
    cuts.truncate(bins.saturating_sub(1).min(usize::from(u8::MAX)));
    cuts
}

/// What every tree of one forest reads.
struct Shared<'a> {
    binned: &'a Binned,
    labels: &'a [bool],
    pos: Vec<usize>,
    neg: Vec<usize>,
    n_features: usize,
    subset: usize,
    params: &'a Checked<ForestParams>,
}

/// Gini impurity of class counts.
fn gini(c0: u64, c1: u64) -> f64 {
    let n = (c0 + c1) as f64;
    if n == 0.0 {
        return 0.0;
    }
    let (p0, p1) = (c0 as f64 / n, c1 as f64 / n);
    1.0 - p0 * p0 - p1 * p1
}

/// One node as smartcore 0.7 serialises it.
#[derive(Serialize)]
struct ScNode {
    output: usize,
    n_node_samples: u64,
    split_feature: usize,
    split_value: Option<f64>,
    split_score: Option<f64>,
    true_child: Option<usize>,
    false_child: Option<usize>,
    impurity: Option<f64>,
}

impl Shared<'_> {
    /// Tree `t`: its feature subset, its bootstrap (as a count per row) and its CART fit on
    /// the binned rows, stored as a smartcore tree (the same walk: `x <= split_value` goes to
    /// the true child; the leaf's class is the majority of its bootstrap rows).
    fn tree(&self, t: usize) -> Result<ForestTree, ModelError> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.params.seed);
        rng.set_stream(t as u64);
        let mut features = sample(&mut rng, self.n_features, self.subset).into_vec();
        features.sort_unstable();
        let n = self.labels.len();
        let (n_pos, n_neg) = if self.params.class_weighting {
            (n / 2, n - n / 2)
        } else {
            (self.pos.len(), self.neg.len())
        };
        let mut weight = vec![0u32; n];
        for (idx, count) in [(&self.pos, n_pos), (&self.neg, n_neg)] {
            for _ in 0..count {
                weight[idx[rng.random_range(0..idx.len())]] += 1;
            }
        }
        let mut rows: Vec<u32> = (0..n as u32).filter(|r| weight[*r as usize] > 0).collect();
        let max_level = self.params.max_depth.unwrap_or(u16::MAX);
        let mut nodes: Vec<ScNode> = Vec::new();
        let mut depth = 0u16;
        // Breadth first, as smartcore: (node, rows range, level; the root is level 1).
        let mut queue = std::collections::VecDeque::from([(0usize, 0usize, rows.len(), 1u16)]);
        let counts = |rows: &[u32]| -> (u64, u64) {
            let (mut c0, mut c1) = (0u64, 0u64);
            for r in rows {
                let w = u64::from(weight[*r as usize]);
                if self.labels[*r as usize] {
                    c1 += w;
                } else {
                    c0 += w;
                }
            }
            (c0, c1)
        };
        let (c0, c1) = counts(&rows);
        nodes.push(leaf(c0, c1));
        let mut hist = vec![[0u64; 2]; MAX_BINS];
        let mut scratch: Vec<u32> = Vec::with_capacity(rows.len());
        while let Some((node, lo, hi, level)) = queue.pop_front() {
            let here = &rows[lo..hi];
            let (c0, c1) = counts(here);
            let total = c0 + c1;
            if level >= max_level || c0 == 0 || c1 == 0 || total < 2 {
                continue;
            }
            let parent = gini(c0, c1);
            // Best (gain, local feature, bin): the first best in feature then bin order.
            let mut best: Option<(f64, usize, usize)> = None;
            for (lf, &f) in features.iter().enumerate() {
                let n_bins = self.binned.cuts[f].len() + 1;
                if n_bins < 2 {
                    continue;
                }
                let codes = &self.binned.codes[f];
                for h in &mut hist[..n_bins] {
                    *h = [0, 0];
                }
                for r in here {
                    let r = *r as usize;
                    hist[usize::from(codes[r])][usize::from(self.labels[r])] +=
                        u64::from(weight[r]);
                }
                let (mut l0, mut l1) = (0u64, 0u64);
                for (b, h) in hist[..n_bins - 1].iter().enumerate() {
                    l0 += h[0];
                    l1 += h[1];
                    let left = l0 + l1;
                    if left == 0 {
                        continue;
                    }
                    if left == total {
                        break;
                    }
                    let right = total - left;
                    let gain = parent
                        - left as f64 / total as f64 * gini(l0, l1)
                        - right as f64 / total as f64 * gini(c0 - l0, c1 - l1);
                    if gain > 0.0 && best.is_none_or(|(g, _, _)| gain > g) {
                        best = Some((gain, lf, b));
                    }
                }
            }
            let Some((gain, lf, b)) = best else {
                continue;
            };
            let f = features[lf];
            let codes = &self.binned.codes[f];
            // Stable partition: rows at or below the cut first (the true child).
            scratch.clear();
            let mut k = lo;
            for i in lo..hi {
                let r = rows[i];
                if usize::from(codes[r as usize]) <= b {
                    rows[k] = r;
                    k += 1;
                } else {
                    scratch.push(r);
                }
            }
            rows[k..hi].copy_from_slice(&scratch);
            let (t0, t1) = counts(&rows[lo..k]);
            let (f0, f1) = counts(&rows[k..hi]);
            let (true_child, false_child) = (nodes.len(), nodes.len() + 1);
            nodes.push(leaf(t0, t1));
            nodes.push(leaf(f0, f1));
            let n = &mut nodes[node];
            n.split_feature = lf;
            n.split_value = Some(self.binned.cuts[f][b]);
            n.split_score = Some(gain);
            n.true_child = Some(true_child);
            n.false_child = Some(false_child);
            // smartcore's `depth`: the deepest level a split created (0 for a lone root).
            depth = depth.max(level + 1);
            queue.push_back((true_child, lo, k, level + 1));
            queue.push_back((false_child, k, hi, level + 1));
        }
        let tree = serde_json::json!({
            "nodes": nodes,
            "parameters": {
                "criterion": "Gini",
                "max_depth": self.params.max_depth,
                "min_samples_leaf": 1,
                "min_samples_split": 2,
                "seed": self.params.seed.wrapping_add(t as u64),
            },
            "num_classes": 2,
            "classes": [0, 1],
            "depth": depth,
            "num_features": features.len(),
            "_phantom_tx": null,
            "_phantom_x": null,
            "_phantom_y": null,
        });
        let tree: Tree = serde_json::from_value(tree).map_err(|e| {
            ModelError::InvalidData(format!("forest tree {t} in smartcore's form: {e}"))
        })?;
        Ok(ForestTree { features, tree })
    }
}

/// A leaf with these class counts (smartcore's `which_max`: class 0 on a tie).
fn leaf(c0: u64, c1: u64) -> ScNode {
    ScNode {
        output: usize::from(c1 > c0),
        n_node_samples: c0 + c1,
        split_feature: 0,
        split_value: None,
        split_score: None,
        true_child: None,
        false_child: None,
        impurity: Some(gini(c0, c1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamGuard;

    /// Rows whose label is `x0 > 0.6` (x1 is noise), deterministic.
    fn data(n: usize) -> Dataset {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..n {
            let x0: f64 = rng.random();
            let x1: f64 = rng.random();
            rows.push(vec![x0, x1, (x0 * 1000.0).round()]);
            labels.push(x0 > 0.6);
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

    fn params(trees: usize) -> Checked<ForestParams> {
        ForestParams {
            trees,
            max_depth: Some(6),
            seed: 3,
            class_weighting: true,
        }
        .check()
        .unwrap()
    }

    #[test]
    fn bin_edges_keep_every_midpoint_when_few_and_quantiles_when_many() {
        assert_eq!(bin_edges(&[1.0, 1.0, 2.0, 4.0], 256), vec![1.5, 3.0]);
        assert!(bin_edges(&[5.0, 5.0], 256).is_empty());
        let v: Vec<f64> = (0..10_000).map(f64::from).collect();
        let c = bin_edges(&v, 256);
        assert_eq!(c.len(), 255);
        assert!(c.windows(2).all(|w| w[0] < w[1]));
        // Each cut sits between two neighbouring values, and bins are about equally filled.
        assert!(c.iter().all(|x| x.fract() == 0.5));
        assert!((c[127] - 5000.0).abs() < 60.0, "{}", c[127]);
    }

    #[test]
    fn binning_matches_the_stored_cut() {
        let d = data(2000);
        let b = Binned::new(&d);
        for f in 0..3 {
            for (r, row) in d.rows.iter().enumerate() {
                let code = usize::from(b.codes[f][r]);
                for (k, cut) in b.cuts[f].iter().enumerate() {
                    // x <= cut[k] exactly when the bin is <= k: the tree's walk and its fit agree.
                    assert_eq!(row[f] <= *cut, code <= k);
                }
            }
        }
    }

    #[test]
    fn the_forest_learns_a_threshold_and_does_not_depend_on_threads() {
        let d = data(3000);
        let (one, _) = Forest::fit_with_threads(&d, &params(8), 1).unwrap();
        let (three, _) = Forest::fit_with_threads(&d, &params(8), 3).unwrap();
        let names = d.feature_names.clone();
        assert_eq!(
            one.to_bytes(&names).unwrap(),
            three.to_bytes(&names).unwrap()
        );
        let rows: Vec<&[f64]> = d.rows.iter().map(Vec::as_slice).collect();
        let p = one.predict(&rows, &[]).unwrap();
        let right = p
            .iter()
            .zip(&d.labels)
            .filter(|(p, y)| (**p > 0.5) == **y)
            .count();
        assert!(right as f64 > 0.98 * d.rows.len() as f64, "{right}");
        // A tree that sees x0 (or its rounded copy) cuts near 0.6.
        let cut = one
            .body
            .trees
            .iter()
            .find(|t| t.features.contains(&0))
            .map(|t| serde_json::to_value(&t.tree).unwrap()["nodes"][0]["split_value"].clone());
        if let Some(serde_json::Value::Number(c)) = cut {
            let c = c.as_f64().unwrap();
            assert!((c - 0.6).abs() < 0.02 || (c - 600.0).abs() < 20.0, "{c}");
        }
    }

    #[test]
    fn depth_limit_is_smartcores_levels() {
        let d = data(3000);
        let p = ForestParams {
            trees: 2,
            max_depth: Some(2),
            seed: 1,
            class_weighting: false,
        }
        .check()
        .unwrap();
        let (f, _) = Forest::fit(&d, &p).unwrap();
        for t in &f.body.trees {
            let v = serde_json::to_value(&t.tree).unwrap();
            // Level 1 is the root: max_depth 2 allows one split, and every subset of two of the
            // three features holds an informative one, so the root splits.
            assert_eq!(v["nodes"].as_array().unwrap().len(), 3);
            assert_eq!(v["depth"].as_u64(), Some(2));
        }
    }
}
