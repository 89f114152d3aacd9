//! Classification metrics: confusion counts, accuracy, precision, recall, F1, ROC-AUC, PR-AUC,
//! the curves, and the threshold for a target recall.
//!
//! A row is predicted positive when its score is **strictly above** the threshold (as the
//! inference service votes).

use serde::{Deserialize, Serialize};

/// Scores of one classifier on one data set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Rows.
    pub rows: usize,
    /// Positive rows.
    pub positives: usize,
    /// Decision threshold used for the counts.
    pub threshold: f64,
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// True negatives.
    pub tn: usize,
    /// False negatives (`fn` in JSON).
    #[serde(rename = "fn")]
    pub fn_: usize,
    /// (tp + tn) / rows.
    pub accuracy: f64,
    /// tp / (tp + fp); 0 when nothing is predicted positive.
    pub precision: f64,
    /// tp / (tp + fn); 0 without positives.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
    /// Area under the ROC curve (ties count half); `None` with one class only.
    pub roc_auc: Option<f64>,
    /// Average precision (area under the step precision/recall curve); `None` without
    /// positives.
    pub pr_auc: Option<f64>,
    /// Brier score: mean of (score − label)² over the rows (0 is perfect; lower is better).
    /// Meaningful when the scores are probabilities; `None` without rows.
    #[serde(default)]
    pub brier: Option<f64>,
}

/// Compute every metric of `scores` against `labels` at `threshold`.
pub fn metrics(scores: &[f64], labels: &[bool], threshold: f64) -> Metrics {
    let decisions: Vec<bool> = scores.iter().map(|s| *s > threshold).collect();
    metrics_from_decisions(&decisions, scores, labels, threshold)
}

/// Counts from `decisions` (e.g. a voting rule's), curves' areas from `scores`.
pub fn metrics_from_decisions(
    decisions: &[bool],
    scores: &[f64],
    labels: &[bool],
    threshold: f64,
) -> Metrics {
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for (d, y) in decisions.iter().zip(labels) {
        match (*d, *y) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fn_ += 1,
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Metrics {
        rows: labels.len(),
        positives: tp + fn_,
        threshold,
        tp,
        fp,
        tn,
        fn_,
        accuracy: ratio(tp + tn, labels.len()),
        precision,
        recall,
        f1,
        roc_auc: roc_auc(scores, labels),
        pr_auc: average_precision(scores, labels),
        brier: brier(scores, labels),
    }
}

/// Brier score: mean squared difference between each score and its label (1 or 0). `None`
/// without rows.
pub fn brier(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.is_empty() {
        return None;
    }
    let sum: f64 = scores
        .iter()
        .zip(labels)
        .map(|(s, y)| (s - f64::from(u8::from(*y))).powi(2))
        .sum();
    Some(sum / scores.len() as f64)
}

/// Indices sorted by score, highest first, then grouped by equal score.
fn tie_groups(scores: &[f64]) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in idx {
        match out.last_mut() {
            Some(g) if scores[g[0]] == scores[i] => g.push(i),
            _ => out.push(vec![i]),
        }
    }
    out
}

/// ROC-AUC = P(score of a random positive > score of a random negative) + ½ P(equal).
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|l| **l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    // Walk from the highest score down: each positive beats the negatives below it.
    let mut negs_above = 0usize;
    let mut sum = 0.0;
    for g in tie_groups(scores) {
        let p = g.iter().filter(|i| labels[**i]).count();
        let n = g.len() - p;
        // positives in this group beat all negatives with a lower score (counted later),
        // i.e. here: count pairs (positive, negative below) = p * (neg - negs_above - n),
        // plus half the ties.
        sum += p as f64 * (neg - negs_above - n) as f64 + 0.5 * (p * n) as f64;
        negs_above += n;
    }
    Some(sum / (pos as f64 * neg as f64))
}

/// Average precision: Σ over distinct thresholds (high to low) of (Δ recall) × precision.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|l| **l).count();
    if pos == 0 {
        return None;
    }
    let (mut tp, mut seen) = (0usize, 0usize);
    let mut ap = 0.0;
    for g in tie_groups(scores) {
        let p = g.iter().filter(|i| labels[**i]).count();
        tp += p;
        seen += g.len();
        ap += (p as f64 / pos as f64) * (tp as f64 / seen as f64);
    }
    Some(ap)
}

/// ROC curve points (false-positive rate, true-positive rate), from (0, 0) to (1, 1).
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> Vec<(f64, f64)> {
    let pos = labels.iter().filter(|l| **l).count().max(1) as f64;
    let neg = (labels.len() - labels.iter().filter(|l| **l).count()).max(1) as f64;
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut out = vec![(0.0, 0.0)];
    for g in tie_groups(scores) {
        let p = g.iter().filter(|i| labels[**i]).count();
        tp += p;
        fp += g.len() - p;
        out.push((fp as f64 / neg, tp as f64 / pos));
    }
    out
}

/// Precision/recall curve points (recall, precision), highest threshold first.
pub fn pr_curve(scores: &[f64], labels: &[bool]) -> Vec<(f64, f64)> {
    let pos = labels.iter().filter(|l| **l).count().max(1) as f64;
    let (mut tp, mut seen) = (0usize, 0usize);
    let mut out = Vec::new();
    for g in tie_groups(scores) {
        tp += g.iter().filter(|i| labels[**i]).count();
        seen += g.len();
        out.push((tp as f64 / pos, tp as f64 / seen as f64));
    }
    out
}

/// The highest threshold `t` whose recall (`score > t`) is at least `target`, placed halfway
/// between the score that reaches the target and the next lower score. `None` without
/// positives.
pub fn threshold_for_recall(scores: &[f64], labels: &[bool], target: f64) -> Option<f64> {
    let mut pos: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, y)| **y)
        .map(|(s, _)| *s)
        .collect();
    if pos.is_empty() {
        return None;
    }
    pos.sort_by(|a, b| b.total_cmp(a));
    let k = ((target.clamp(0.0, 1.0) * pos.len() as f64).ceil() as usize).clamp(1, pos.len());
    let s_k = pos[k - 1];
    let below = scores
        .iter()
        .copied()
        .filter(|s| *s < s_k)
        .fold(f64::NEG_INFINITY, f64::max);
    let t = if below.is_finite() {
        (s_k + below) / 2.0
    } else {
        // Nothing scores lower: just under s_k.
        s_k - 1e-9_f64.max(s_k.abs() * 1e-9)
    };
    Some(t.clamp(0.0, 1.0))
}

/// One bin of a reliability curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// Lower edge of the bin (scores in `[lo, hi)`; the last bin includes 1).
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Rows in the bin.
    pub rows: usize,
    /// Mean score of those rows.
    pub mean_predicted: f64,
    /// Share of them that are violations.
    pub observed: f64,
}

/// The reliability curve of `scores`: `bins` equal-width bins over [0, 1], empty bins left out.
/// A calibrated model has `observed ≈ mean_predicted` in every bin.
pub fn reliability(scores: &[f64], labels: &[bool], bins: usize) -> Vec<ReliabilityBin> {
    let bins = bins.max(1);
    let mut acc = vec![(0usize, 0.0f64, 0usize); bins];
    for (s, y) in scores.iter().zip(labels) {
        let k = ((s.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        acc[k].0 += 1;
        acc[k].1 += s;
        acc[k].2 += usize::from(*y);
    }
    acc.iter()
        .enumerate()
        .filter(|(_, a)| a.0 > 0)
        .map(|(k, a)| ReliabilityBin {
            lo: k as f64 / bins as f64,
            hi: (k + 1) as f64 / bins as f64,
            rows: a.0,
            mean_predicted: a.1 / a.0 as f64,
            observed: a.2 as f64 / a.0 as f64,
        })
        .collect()
}

/// Precision at the highest threshold whose recall reaches `target` (see
/// [`threshold_for_recall`]); `None` without positives.
pub fn precision_at_recall(scores: &[f64], labels: &[bool], target: f64) -> Option<f64> {
    threshold_for_recall(scores, labels, target).map(|t| metrics(scores, labels, t).precision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_counts_and_ratios() {
        // scores > 0.5 predicted positive: rows 0, 1, 3
        let s = [0.9, 0.8, 0.3, 0.6, 0.1, 0.5];
        let y = [true, false, true, true, false, false];
        let m = metrics(&s, &y, 0.5);
        assert_eq!((m.tp, m.fp, m.tn, m.fn_), (2, 1, 2, 1));
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.f1 - 2.0 / 3.0).abs() < 1e-12);
        // Pairs (pos, neg): pos {0.9, 0.3, 0.6}, neg {0.8, 0.1, 0.5}:
        // 0.9 beats 3, 0.6 beats 2, 0.3 beats 1 → 6 of 9.
        assert!((m.roc_auc.unwrap() - 6.0 / 9.0).abs() < 1e-12);
        // Ranked: 0.9+ (P=1/1), 0.8-, 0.6+ (P=2/3), 0.5-, 0.3+ (P=3/5), 0.1-.
        let ap = (1.0 + 2.0 / 3.0 + 3.0 / 5.0) / 3.0;
        assert!((m.pr_auc.unwrap() - ap).abs() < 1e-12);
        // (0.1² + 0.8² + 0.7² + 0.4² + 0.1² + 0.5²) / 6
        let b = (0.01 + 0.64 + 0.49 + 0.16 + 0.01 + 0.25) / 6.0;
        assert!((m.brier.unwrap() - b).abs() < 1e-12);
        assert_eq!(brier(&[], &[]), None);
    }

    #[test]
    fn ties_count_half_and_perfect_is_one() {
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(roc_auc(&[0.9, 0.1], &[true, false]), Some(1.0));
        assert_eq!(roc_auc(&[0.1, 0.9], &[true, false]), Some(0.0));
        assert_eq!(roc_auc(&[0.1, 0.9], &[true, true]), None);
        assert_eq!(average_precision(&[0.9, 0.1], &[true, false]), Some(1.0));
        // All tied: precision = base rate.
        assert_eq!(
            average_precision(&[0.5; 4], &[true, false, false, false]),
            Some(0.25)
        );
        assert_eq!(average_precision(&[0.5], &[false]), None);
    }

    #[test]
    fn empty_predictions_give_zero_not_nan() {
        let m = metrics(&[0.1, 0.2], &[true, false], 0.5);
        assert_eq!((m.precision, m.recall, m.f1), (0.0, 0.0, 0.0));
        assert_eq!(m.accuracy, 0.5);
    }

    #[test]
    fn threshold_reaches_the_target_recall() {
        let s = [0.9, 0.8, 0.7, 0.6, 0.4, 0.2];
        let y = [true, false, true, true, false, true];
        // 4 positives; 75 % needs 3: the third positive scores 0.6, next lower 0.4 → 0.5.
        let t = threshold_for_recall(&s, &y, 0.75).unwrap();
        assert!((t - 0.5).abs() < 1e-12);
        assert!(metrics(&s, &y, t).recall >= 0.75);
        // Full recall: below 0.2, nothing lower → just under it.
        let t = threshold_for_recall(&s, &y, 1.0).unwrap();
        assert!(t < 0.2 && t > 0.19);
        assert_eq!(metrics(&s, &y, t).recall, 1.0);
        assert_eq!(threshold_for_recall(&s, &[false; 6], 0.8), None);
    }

    #[test]
    fn reliability_bins_by_hand() {
        let s = [0.05, 0.15, 0.12, 0.95, 1.0];
        let y = [false, true, false, true, true];
        let r = reliability(&s, &y, 10);
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].rows, r[0].observed), (1, 0.0));
        assert_eq!((r[1].rows, r[1].observed), (2, 0.5));
        assert!((r[1].mean_predicted - 0.135).abs() < 1e-12);
        assert_eq!((r[2].rows, r[2].lo), (2, 0.9), "1.0 falls in the last bin");
        let p = precision_at_recall(&[0.9, 0.8, 0.7, 0.1], &[true, false, true, false], 1.0);
        assert!((p.unwrap() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn curves_run_from_corner_to_corner() {
        let s = [0.9, 0.8, 0.3];
        let y = [true, false, true];
        let roc = roc_curve(&s, &y);
        assert_eq!(roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(roc.last(), Some(&(1.0, 1.0)));
        let pr = pr_curve(&s, &y);
        assert_eq!(pr[0], (0.5, 1.0));
        assert_eq!(pr.last(), Some(&(1.0, 2.0 / 3.0)));
    }
}
