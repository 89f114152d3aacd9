//! Flat tree ensembles, walked in lock-step.
//!
//! Every tree of an ensemble lives in one `Vec<Node>`; a node holds its split feature, its
//! threshold and the indices of its two children. A **leaf's two children are itself**, so a walk
//! of `depth` steps from the root ends on the leaf whatever the row, and [`LANES`] trees can be
//! walked side by side without a branch per node: the walks are independent, so the CPU
//! overlaps their memory loads instead of waiting for one chain of loads at a time. Trees are
//! grouped by [`LANES`] in file order, and leaf values are added in file order (XGBoost adds its
//! trees' outputs in that order in `f32`; the same order gives the same sum).
//!
//! Index 0 of the node array is a padding leaf (value 0, never added) for the empty lanes of the
//! last group.

use std::fmt;

/// Trees walked side by side.
pub const LANES: usize = 8;

/// Bit of [`Node::feature`] set when a missing value (NaN) goes to the left child.
pub(crate) const DEFAULT_LEFT: u32 = 1 << 31;
const FEATURE_MASK: u32 = !DEFAULT_LEFT;

/// One node: a split (`children[0]` = left, `children[1]` = right) or a leaf (both children
/// are the node itself).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub(crate) struct Node<T> {
    /// Feature index in the model's row, with [`DEFAULT_LEFT`] or'ed in.
    pub(crate) feature: u32,
    /// Split threshold (anything for a leaf).
    pub(crate) threshold: T,
    /// Left, right.
    pub(crate) children: [u32; 2],
}

/// How a node sends a value left; one implementation per model family, so the hot loop is
/// compiled once for each with its comparison inlined.
pub(crate) trait Split: 'static {
    /// Threshold type (XGBoost compares in `f32`, smartcore in `f64`).
    type T: Copy + fmt::Debug + Send + Sync + PartialEq + 'static;
    /// Whether `x` goes to the left child of `node`.
    fn go_left(x: f64, node: &Node<Self::T>) -> bool;
}

/// XGBoost: the row is `f32` (as its `DMatrix` stores it); `x < threshold` goes left, a
/// missing value (NaN) goes to the node's default side.
#[derive(Debug)]
pub(crate) struct XgbSplit;

impl Split for XgbSplit {
    type T = f32;
    #[inline(always)]
    fn go_left(x: f64, node: &Node<f32>) -> bool {
        let x = x as f32;
        // `|` and `&`, not `||`/`&&`: no branch.
        (x < node.threshold) | ((node.feature & DEFAULT_LEFT != 0) & x.is_nan())
    }
}

/// smartcore's decision tree: `x <= threshold` goes to the "true" (left) child, in `f64`; a NaN
/// (or a split without a value, stored as a NaN threshold) goes right, as smartcore's own
/// comparison does.
#[derive(Debug)]
pub(crate) struct SmartcoreSplit;

impl Split for SmartcoreSplit {
    type T = f64;
    #[inline(always)]
    fn go_left(x: f64, node: &Node<f64>) -> bool {
        x <= node.threshold
    }
}

/// A tree as read from a model file, before flattening: nodes indexed from 0 (the root).
#[derive(Debug, Clone)]
pub(crate) struct RawTree<T> {
    /// Per node: `None` for a leaf, else (feature, threshold, default_left, left, right).
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

impl<S: Split> Ensemble<S> {
    /// Flatten `trees`, checking every child index and feature index and that each tree is a
    /// tree (every node reached once from the root). `leaf_threshold` fills a leaf's threshold.
    /// The error is a sentence naming the tree and node.
    pub(crate) fn build(
        trees: &[RawTree<S::T>],
        n_features: usize,
        leaf_threshold: S::T,
    ) -> Result<Self, String> {
        if trees.is_empty() {
            return Err("no trees".into());
        }
        if n_features == 0 || n_features > FEATURE_MASK as usize {
            return Err(format!("{n_features} features"));
        }
        let total: usize = trees.iter().map(|t| t.splits.len()).sum();
        if total >= u32::MAX as usize {
            return Err(format!("{total} nodes"));
        }
        let mut nodes = Vec::with_capacity(total + 1);
        let mut values = Vec::with_capacity(total + 1);
        nodes.push(Node {
            feature: 0,
            threshold: leaf_threshold,
            children: [0, 0],
        });
        values.push(0.0);
        let mut roots = Vec::with_capacity(trees.len());
        let mut depths = Vec::with_capacity(trees.len());
        for (t, tree) in trees.iter().enumerate() {
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
            let offset = nodes.len();
            // Depth of every node, found from the root; a node reached twice (or never) means
            // the arrays do not describe a tree.
            let mut depth = vec![usize::MAX; n];
            depth[0] = 0;
            let mut stack = vec![0usize];
            let mut seen = 0usize;
            let mut deepest = 0usize;
            while let Some(i) = stack.pop() {
                seen += 1;
                match &tree.splits[i] {
                    None => deepest = deepest.max(depth[i]),
                    Some(s) => {
                        if s.feature >= n_features {
                            return Err(format!(
                                "tree {t} node {i} splits on feature {} but the model has {n_features}",
                                s.feature
                            ));
                        }
                        for c in [s.left, s.right] {
                            if c >= n || depth[c] != usize::MAX || c == 0 {
                                return Err(format!(
                                    "tree {t} node {i} has child {c}, which is out of range or \
                                     reached twice"
                                ));
                            }
                            depth[c] = depth[i] + 1;
                            stack.push(c);
                        }
                    }
                }
            }
            if seen != n {
                return Err(format!(
                    "tree {t}: {} of its {n} nodes are not reachable from the root",
                    n - seen
                ));
            }
            for (i, (split, value)) in tree.splits.iter().zip(&tree.values).enumerate() {
                let me = (offset + i) as u32;
                nodes.push(match split {
                    None => Node {
                        feature: 0,
                        threshold: leaf_threshold,
                        children: [me, me],
                    },
                    Some(s) => Node {
                        feature: s.feature as u32 | if s.default_left { DEFAULT_LEFT } else { 0 },
                        threshold: s.threshold,
                        children: [(offset + s.left) as u32, (offset + s.right) as u32],
                    },
                });
                values.push(if split.is_none() { *value } else { 0.0 });
            }
            roots.push(offset as u32);
            depths.push(deepest);
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
                    let leaf = n.children[0] as usize == i;
                    let child = |c: u32| if leaf { -1 } else { c as i64 - root as i64 };
                    t.left.push(child(n.children[0]));
                    t.right.push(child(n.children[1]));
                    t.feature.push(if leaf {
                        -1
                    } else {
                        i64::from(n.feature & FEATURE_MASK)
                    });
                    t.threshold.push(n.threshold);
                    t.default_left.push(n.feature & DEFAULT_LEFT != 0);
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
        let mut acc = start;
        let nodes = self.nodes.as_slice();
        for g in &self.groups {
            let mut idx = [0u32; LANES];
            idx[..g.len].copy_from_slice(&self.roots[g.first..g.first + g.len]);
            for _ in 0..g.depth {
                for i in &mut idx {
                    let node = &nodes[*i as usize];
                    let x = row[(node.feature & FEATURE_MASK) as usize];
                    *i = node.children[usize::from(!S::go_left(x, node))];
                }
            }
            for i in &idx[..g.len] {
                acc += self.values[*i as usize];
            }
        }
        acc
    }

    /// The leaf each tree sends `row` to, walking one node at a time (the plain algorithm,
    /// kept as a cross-check of [`Self::sum`] in tests).
    #[cfg(test)]
    pub(crate) fn sum_plain(&self, row: &[f64], start: f32) -> f32 {
        let mut acc = start;
        for root in &self.roots {
            let mut i = *root as usize;
            loop {
                let node = &self.nodes[i];
                if node.children[0] as usize == i {
                    break;
                }
                let x = row[(node.feature & FEATURE_MASK) as usize];
                i = node.children[usize::from(!S::go_left(x, node))] as usize;
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
    }

    #[test]
    fn a_feature_out_of_range_is_refused() {
        let e = Ensemble::<XgbSplit>::build(&[stump(3, 0.5, true)], 2, f32::INFINITY).unwrap_err();
        assert!(e.contains("feature 3"), "{e}");
    }
}
