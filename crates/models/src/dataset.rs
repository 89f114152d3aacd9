//! Training data: rows in time order, their labels, and the fingerprint that identifies them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ModelError;

/// Training data: one row per feature vector, **in time order**, and its label
/// (`true` = an SLA violation within the horizon).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Column names, in row order.
    pub feature_names: Vec<String>,
    /// Input rows (time order), each `feature_names.len()` long.
    pub rows: Vec<Vec<f64>>,
    /// Labels, one per row.
    pub labels: Vec<bool>,
}

impl Dataset {
    /// Number of positive (violation) rows.
    pub fn positive_rows(&self) -> usize {
        self.labels.iter().filter(|l| **l).count()
    }

    /// The first `n` rows (time order), e.g. the training part of a time-ordered split.
    pub fn head(&self, n: usize) -> Dataset {
        let n = n.min(self.rows.len());
        Dataset {
            feature_names: self.feature_names.clone(),
            rows: self.rows[..n].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }

    /// The rows from `n` on (time order), e.g. the held-out part of a time-ordered split.
    pub fn tail_from(&self, n: usize) -> Dataset {
        let n = n.min(self.rows.len());
        Dataset {
            feature_names: self.feature_names.clone(),
            rows: self.rows[n..].to_vec(),
            labels: self.labels[n..].to_vec(),
        }
    }

    /// sha256 (hex) of the feature names (each followed by `\n`), then every row's values as
    /// little-endian f64 (row-major), then the labels as one byte each. Identifies the training
    /// data in `metadata.json`.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for name in &self.feature_names {
            h.update(name.as_bytes());
            h.update(b"\n");
        }
        for row in &self.rows {
            for v in row {
                h.update(v.to_le_bytes());
            }
        }
        for l in &self.labels {
            h.update([u8::from(*l)]);
        }
        hex(&h.finalize())
    }

    /// Check the dataset can be trained on: non-empty, consistent lengths, both classes present,
    /// known distinct feature names, and finite values (NaN allowed only when `allow_nan`, for
    /// XGBoost, which reads it as missing).
    pub fn validate(&self, allow_nan: bool) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::InvalidData(m));
        if self.feature_names.is_empty() {
            return bad("no features".into());
        }
        for (i, n) in self.feature_names.iter().enumerate() {
            if self.feature_names[..i].contains(n) {
                return bad(format!("feature `{n}` appears twice"));
            }
        }
        if self.rows.is_empty() {
            return bad("no rows".into());
        }
        if self.rows.len() != self.labels.len() {
            return bad(format!(
                "{} rows but {} labels",
                self.rows.len(),
                self.labels.len()
            ));
        }
        for (i, row) in self.rows.iter().enumerate() {
            if row.len() != self.feature_names.len() {
                return bad(format!(
                    "row {i} has {} values, expected {}",
                    row.len(),
                    self.feature_names.len()
                ));
            }
            for (v, name) in row.iter().zip(&self.feature_names) {
                if v.is_infinite() || (v.is_nan() && !allow_nan) {
                    return bad(format!("row {i}: feature `{name}` = {v} is not finite"));
                }
            }
        }
        let pos = self.positive_rows();
        if pos == 0 || pos == self.rows.len() {
            return bad(format!(
                "both classes are needed; {pos} of {} rows are violations",
                self.rows.len()
            ));
        }
        Ok(())
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_validation_needs_both_classes() {
        let d = Dataset {
            feature_names: vec!["p95_latency_ms".into()],
            rows: vec![vec![1.0], vec![2.0]],
            labels: vec![false, false],
        };
        let e = d.validate(false).unwrap_err().to_string();
        assert!(e.contains("both classes"), "{e}");
    }

    #[test]
    fn fingerprint_changes_with_data() {
        let mut d = Dataset {
            feature_names: vec!["p95_latency_ms".into()],
            rows: vec![vec![1.0], vec![2.0]],
            labels: vec![false, true],
        };
        let a = d.fingerprint();
        assert_eq!(a.len(), 64);
        d.rows[1][0] = 2.5;
        assert_ne!(a, d.fingerprint());
    }
}
