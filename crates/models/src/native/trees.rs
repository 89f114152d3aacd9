//! Flat tree ensembles, walked in lock-step.
//!
//! Every tree of an ensemble lives in one `Vec<Node>`, numbered breadth-first so that a split's
//! two children are neighbours (`right = left + 1`): a node is its threshold, its feature, its
//! missing-value side and the index of its left child (12 bytes for XGBoost's `f32` thresholds).
//! A **leaf's left child is itself**, and a leaf sends every value left (its threshold is +∞ and
//! its missing side is left), so a walk of `depth` steps from the root ends on the leaf whatever
//! the row. That lets [`LANES`] trees be walked side by side with no branch per node: the walks
//! are independent, so the CPU overlaps their loads instead of waiting on one chain of loads at
//! a time. Trees are grouped by [`LANES`] in file order and leaf values are added in file order
//! (XGBoost adds its trees' outputs in that order in `f32`; the same order gives the same sum).
//!
//! The row is first copied into a fixed [`ROW`]-wide buffer in the comparison's type (`f32` for
//! XGBoost), so a feature index is masked rather than bounds-checked; models with more features
//! than [`ROW`] take the one-tree-at-a-time walk instead. Rows without a NaN take a kernel that
//! skips the missing-value test.
//!
//! Index 0 of the node array is a padding leaf (value 0, never added) for the empty lanes of the
//! last group.

use std::fmt;

/// Trees walked side by side.
pub const LANES: usize = 8;
/// Width of the row buffer (a power of two): models with more features take the plain walk.
pub const ROW: usize = 64;

/// One node. For a leaf, `left` is the node itself, `threshold` is +∞ and `default_left` is 1.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub(crate) struct Node<T> {
    /// Split threshold.
    pub(crate) threshold: T,
    /// Feature index in the model's row.
    pub(crate) feature: u16,
    /// 1 when a missing value (NaN) goes left.
    pub(crate) default_left: u16,
    /// Left child; the right child is `left + 1`.
    pub(crate) left: u32,
}

/// How a node compares; one implementation per model family, so the hot loop is compiled once
/// for each with its comparison inlined.
pub(crate) trait Split: 'static {
    /// Threshold and row-buffer type (XGBoost compares in `f32`, smartcore in `f64`).
    type T: Copy + fmt::Debug + Send + Sync + PartialEq + Default + 'static;
    /// A row value as the comparison sees it.
    fn load(x: f64) -> Self::T;
    /// Whether a non-missing `x` goes left of `threshold`.
    fn left(x: Self::T, threshold: Self::T) -> bool;
    /// Whether `x` is missing.
    fn missing(x: Self::T) -> bool;
}

/// XGBoost: the row is `f32` (as its `DMatrix` stores it); `x < threshold` goes left, a
/// missing value (NaN) goes to the node's default side. A finite value beyond `f32`'s range
/// (which XGBoost itself refuses as `inf`) is held at ±`f32::MAX`, so it never reads as +∞.
#[derive(Debug)]
pub(crate) struct XgbSplit;

impl Split for XgbSplit {
    type T = f32;
    #[inline(always)]
    fn load(x: f64) -> f32 {
        (x as f32).clamp(f32::MIN, f32::MAX)
    }
    #[inline(always)]
    fn left(x: f32, threshold: f32) -> bool {
        x < threshold
    }
    #[inline(always)]
    fn missing(x: f32) -> bool {
        x.is_nan()
    }
}

/// smartcore's decision tree: `x <= threshold` goes to the "true" (left) child, in `f64`; a NaN
/// (or a split without a value, stored as a NaN threshold) goes right, as smartcore's own
/// comparison does (its splits have missing side "right").
#[derive(Debug)]
pub(crate) struct SmartcoreSplit;

impl Split for SmartcoreSplit {
    type T = f64;
    #[inline(always)]
    fn load(x: f64) -> f64 {
        x
    }
    #[inline(always)]
    fn left(x: f64, threshold: f64) -> bool {
        x <= threshold
    }
    #[inline(always)]
    fn missing(x: f64) -> bool {
        x.is_nan()
    }
}

/// A tree as read from a model file, before flattening: nodes indexed from 0 (the root).
#[derive(Debug, Clone)]
pub(crate) struct RawTree<T> {
    /// Per node: `None` for a leaf, else the split.
    pub(crate) splits: Vec<Option<RawSplit<T>>>,
    /// Per node: the leaf value (ignored for splits).
    pub(crate) values: Vec<f32>,
}

/// One split of a [`RawTree`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawSplit<T> {
    pub(crate) feature: usize,
    pub(crate) threshold: T,
    pub(crate) default_left: bool,
    pub(crate) left: usize,
    pub(crate) right: usize,
}

/// One tree of [`Ensemble::export`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportTree<T> {
    /// Left child per node (-1 for a leaf).
    pub left: Vec<i64>,
    /// Right child per node (-1 for a leaf).
    pub right: Vec<i64>,
    /// Split feature per node (-1 for a leaf).
    pub feature: Vec<i64>,
    /// Split threshold per node (the filler for a leaf).
    pub threshold: Vec<T>,
    /// Whether a missing value goes left, per node.
    pub default_left: Vec<bool>,
    /// Leaf value per node (0 for splits).
    pub value: Vec<f32>,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    /// Index of the group's first tree in `roots`.
    first: usize,
    /// Trees in the group (1..=LANES).
    len: usize,
    /// Steps that bring every tree of the group to a leaf (its deepest leaf's depth).
    depth: usize,
}

/// A tree ensemble, flattened.
pub(crate) struct Ensemble<S: Split> {
    nodes: Vec<Node<S::T>>,
    /// Leaf value per node (0 for splits).
    values: Vec<f32>,
    /// Root node of each tree, in file order.
    roots: Vec<u32>,
    groups: Vec<Group>,
    n_features: usize,
    max_depth: usize,
}

impl<S: Split> fmt::Debug for Ensemble<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ensemble")
            .field("trees", &self.roots.len())
            .field("nodes", &(self.nodes.len() - 1))
            .field("n_features", &self.n_features)
            .field("max_depth", &self.max_depth)
            .finish()
    }
}

/// Checks that a tree is a tree (every node reached once from the root, indices in range) and
/// returns its nodes in breadth-first order (original indices) with each node's depth.
fn breadth_first<T>(
    t: usize,
    tree: &RawTree<T>,
    n_features: usize,
) -> Result<Vec<(usize, usize)>, String> {
    let n = tree.splits.len();
    if n == 0 {
        return Err(format!("tree {t} has no nodes"));
    }
    if tree.values.len() != n {
        return Err(format!(
            "tree {t} has {n} nodes but {} values",
            tree.values.len()
        ));
    }
    let mut seen = vec![false; n];
    seen[0] = true;
    let mut order = vec![(0usize, 0usize)];
    let mut k = 0;
    while k < order.len() {
        let (i, d) = order[k];
        k += 1;
        if let Some(s) = &tree.splits[i] {
            if s.feature >= n_features {
                return Err(format!(
                    "tree {t} node {i} splits on feature {} but the model has {n_features}",
                    s.feature
                ));
            }
            for c in [s.left, s.right] {
                if c >= n || seen[c] {
                    return Err(format!(
                        "tree {t} node {i} has child {c}, which is out of range or reached twice"
                    ));
                }
                seen[c] = true;
                order.push((c, d + 1));
            }
        }
    }
    if order.len() != n {
        return Err(format!(
            "tree {t}: {} of its {n} nodes are not reachable from the root",
            n - order.len()
        ));
    }
    Ok(order)
}

impl<S: Split> Ensemble<S> {
    /// Flatten `trees`, checking every child index and feature index and that each tree is a
    /// tree. `leaf_threshold` must send every value left (+∞). The error is a sentence naming
    /// the tree and node.
    pub(crate) fn build(
        trees: &[RawTree<S::T>],
        n_features: usize,
        leaf_threshold: S::T,
    ) -> Result<Self, String> {
        if trees.is_empty() {
            return Err("no trees".into());
        }
        if n_features == 0 || n_features > usize::from(u16::MAX) {
            return Err(format!("{n_features} features"));
        }
        let total: usize = trees.iter().map(|t| t.splits.len()).sum();
        if total >= u32::MAX as usize {
            return Err(format!("{total} nodes"));
        }
        let leaf = |me: usize| Node {
            threshold: leaf_threshold,
            feature: 0,
            default_left: 1,
            left: me as u32,
        };
        let mut nodes = Vec::with_capacity(total + 1);
        let mut values = Vec::with_capacity(total + 1);
        nodes.push(leaf(0));
        values.push(0.0);
        let mut roots = Vec::with_capacity(trees.len());
        let mut depths = Vec::with_capacity(trees.len());
        for (t, tree) in trees.iter().enumerate() {
            let order = breadth_first(t, tree, n_features)?;
            let offset = nodes.len();
            // Breadth-first position of each original node: children of one split are
            // consecutive in that order, so `right = left + 1`.
            let mut pos = vec![0usize; order.len()];
            for (p, (i, _)) in order.iter().enumerate() {
                pos[*i] = p;
            }
            for (p, (i, _)) in order.iter().enumerate() {
                let me = offset + p;
                match &tree.splits[*i] {
                    None => {
                        nodes.push(leaf(me));
                        values.push(tree.values[*i]);
                    }
                    Some(s) => {
                        debug_assert_eq!(pos[s.right], pos[s.left] + 1);
                        nodes.push(Node {
                            threshold: s.threshold,
                            feature: s.feature as u16,
                            default_left: u16::from(s.default_left),
                            left: (offset + pos[s.left]) as u32,
                        });
                        values.push(0.0);
                    }
                }
            }
            roots.push(offset as u32);
            depths.push(order.iter().map(|(_, d)| *d).max().unwrap_or(0));
        }
        let groups = (0..trees.len())
            .step_by(LANES)
            .map(|first| {
                let len = LANES.min(trees.len() - first);
                Group {
                    first,
                    len,
                    depth: depths[first..first + len]
                        .iter()
                        .copied()
                        .max()
                        .unwrap_or(0),
                }
            })
            .collect();
        Ok(Ensemble {
            nodes,
            values,
            roots,
            groups,
            n_features,
            max_depth: depths.iter().copied().max().unwrap_or(0),
        })
    }

    /// Number of trees.
    pub(crate) fn trees(&self) -> usize {
        self.roots.len()
    }

    /// Features a row must have.
    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    /// Depth of the deepest leaf.
    pub(crate) fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// Nodes (splits and leaves) over all trees.
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len() - 1
    }

    /// Bytes of the flat arrays.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node<S::T>>()
            + self.values.capacity() * 4
            + self.roots.capacity() * 4
            + self.groups.capacity() * std::mem::size_of::<Group>()
    }

    /// Each tree as parallel arrays in scikit-learn's layout (node 0 the root; a leaf has
    /// children -1), for handing the same model to another library.
    pub(crate) fn export(&self) -> Vec<ExportTree<S::T>> {
        let mut ends: Vec<usize> = self.roots.iter().skip(1).map(|r| *r as usize).collect();
        ends.push(self.nodes.len());
        self.roots
            .iter()
            .zip(ends)
            .map(|(root, end)| {
                let root = *root as usize;
                let mut t = ExportTree {
                    left: Vec::new(),
                    right: Vec::new(),
                    feature: Vec::new(),
                    threshold: Vec::new(),
                    default_left: Vec::new(),
                    value: Vec::new(),
                };
                for i in root..end {
                    let n = &self.nodes[i];
                    let leaf = n.left as usize == i;
                    let l = n.left as i64 - root as i64;
                    t.left.push(if leaf { -1 } else { l });
                    t.right.push(if leaf { -1 } else { l + 1 });
                    t.feature.push(if leaf { -1 } else { i64::from(n.feature) });
                    t.threshold.push(n.threshold);
                    t.default_left.push(n.default_left != 0);
                    t.value.push(self.values[i]);
                }
                t
            })
            .collect()
    }

    /// `start + Σ leaf value` over the trees in file order, in `f32`. `row` must have
    /// [`Self::n_features`] values (checked by the callers; a shorter row panics on the index).
    #[inline]
    pub(crate) fn sum(&self, row: &[f64], start: f32) -> f32 {
        if self.n_features > ROW {
            return self.sum_plain(row, start);
        }
        let row = &row[..self.n_features];
        let mut x = [S::T::default(); ROW];
        let mut missing = false;
        for (b, v) in x.iter_mut().zip(row) {
            *b = S::load(*v);
            missing |= S::missing(*b);
        }
        if missing {
            self.sum_lock_step::<true>(&x, start)
        } else {
            self.sum_lock_step::<false>(&x, start)
        }
    }

    #[inline]
    fn sum_lock_step<const MISSING: bool>(&self, x: &[S::T; ROW], start: f32) -> f32 {
        let mut acc = start;
        let nodes = self.nodes.as_slice();
        for g in &self.groups {
            let mut idx = [0u32; LANES];
            idx[..g.len].copy_from_slice(&self.roots[g.first..g.first + g.len]);
            for _ in 0..g.depth {
                for i in &mut idx {
                    let node = &nodes[*i as usize];
                    let v = x[usize::from(node.feature) & (ROW - 1)];
                    // `|` and `&`, not `||`/`&&`: no branch.
                    let left = S::left(v, node.threshold)
                        | (MISSING & (node.default_left != 0) & S::missing(v));
                    *i = node.left + u32::from(!left);
                }
            }
            for i in &idx[..g.len] {
                acc += self.values[*i as usize];
            }
        }
        acc
    }

    /// The same sum walking one tree at a time, one node after another (for models with more
    /// than [`ROW`] features, and a cross-check of the lock-step walk in tests).
    pub(crate) fn sum_plain(&self, row: &[f64], start: f32) -> f32 {
        let mut acc = start;
        for root in &self.roots {
            let mut i = *root as usize;
            loop {
                let node = &self.nodes[i];
                if node.left as usize == i {
                    break;
                }
                let v = S::load(row[usize::from(node.feature)]);
                let left = if S::missing(v) {
                    node.default_left != 0
                } else {
                    S::left(v, node.threshold)
                };
                i = node.left as usize + usize::from(!left);
            }
            acc += self.values[i];
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stump(feature: usize, threshold: f32, default_left: bool) -> RawTree<f32> {
        RawTree {
            splits: vec![
                Some(RawSplit {
                    feature,
                    threshold,
                    default_left,
                    left: 1,
                    right: 2,
                }),
                None,
                None,
            ],
            values: vec![0.0, -1.0, 1.0],
        }
    }

    #[test]
    fn stumps_split_missing_to_their_default_side() {
        let e = Ensemble::<XgbSplit>::build(
            &[stump(0, 0.5, true), stump(1, 0.5, false)],
            2,
            f32::INFINITY,
        )
        .unwrap();
        assert_eq!(e.sum(&[0.0, 0.0], 0.0), -2.0);
        assert_eq!(e.sum(&[1.0, 0.0], 0.0), 0.0);
        assert_eq!(e.sum(&[f64::NAN, f64::NAN], 0.0), 0.0); // left -1, right +1
        assert_eq!(e.sum(&[0.5, 0.5], 0.0), 2.0); // `<` is strict
    }

    /// Random unbalanced trees: the lock-step walk ends on the same leaves as the plain one.
    #[test]
    fn lock_step_walk_equals_plain_walk() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..50 {
            let n_trees = rng.random_range(1..30);
            let trees: Vec<RawTree<f32>> = (0..n_trees)
                .map(|_| {
                    let mut splits = vec![None];
                    let mut depth = vec![0];
                    let mut i = 0;
                    while i < splits.len() {
                        if depth[i] < 9 && (i == 0 || rng.random_bool(0.6)) {
                            let l = splits.len();
                            splits[i] = Some(RawSplit {
                                feature: rng.random_range(0..3),
                                threshold: rng.random_range(-1.0..1.0),
                                default_left: rng.random_bool(0.5),
                                left: l,
                                right: l + 1,
                            });
                            splits.extend([None, None]);
                            depth.extend([depth[i] + 1; 2]);
                        }
                        i += 1;
                    }
                    let values = (0..splits.len())
                        .map(|_| rng.random_range(-1.0..1.0))
                        .collect();
                    RawTree { splits, values }
                })
                .collect();
            let e = Ensemble::<XgbSplit>::build(&trees, 3, f32::INFINITY).unwrap();
            for _ in 0..100 {
                let row: Vec<f64> = (0..3)
                    .map(|_| {
                        if rng.random_bool(0.2) {
                            f64::NAN
                        } else {
                            rng.random_range(-1.0..1.0)
                        }
                    })
                    .collect();
                assert_eq!(
                    e.sum(&row, 0.25).to_bits(),
                    e.sum_plain(&row, 0.25).to_bits()
                );
            }
        }
    }

    #[test]
    fn a_child_reached_twice_is_refused() {
        let mut t = stump(0, 0.5, true);
        if let Some(s) = t.splits[0].as_mut() {
            s.right = 1;
        }
        let e = Ensemble::<XgbSplit>::build(&[t], 1, f32::INFINITY).unwrap_err();
        assert!(e.contains("reached twice"), "{e}");
        let mut t = stump(0, 0.5, true);
        if let Some(s) = t.splits[0].as_mut() {
            s.left = 0;
        }
        let e = Ensemble::<XgbSplit>::build(&[t], 1, f32::INFINITY).unwrap_err();
        assert!(e.contains("reached twice"), "{e}");
    }

    #[test]
    fn a_feature_out_of_range_is_refused() {
        let e = Ensemble::<XgbSplit>::build(&[stump(3, 0.5, true)], 2, f32::INFINITY).unwrap_err();
        assert!(e.contains("feature 3"), "{e}");
    }
}
