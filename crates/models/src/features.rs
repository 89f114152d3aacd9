//! Model inputs: the feature list and how one input row is built from a feature vector.

use autoscaler_contract::{Features, FEATURE_NAMES};

use crate::ModelError;

/// Features derived from [`Features`] and the replica count, appended after the ten contract
/// features in the default feature list.
///
/// * `rps_per_replica` = `request_rate_rps / replicas`
/// * `cpu_per_replica_pct` = `cpu_usage_pct / replicas`
pub const EXTRA_FEATURES: [&str; 2] = ["rps_per_replica", "cpu_per_replica_pct"];

/// The default feature list: the ten contract [`FEATURE_NAMES`] followed by [`EXTRA_FEATURES`].
pub fn default_feature_names() -> Vec<String> {
    FEATURE_NAMES
        .iter()
        .chain(EXTRA_FEATURES.iter())
        .map(|s| s.to_string())
        .collect()
}

/// Whether `name` is a feature this crate can build (a contract feature or an extra one).
pub fn is_known_feature(name: &str) -> bool {
    FEATURE_NAMES.contains(&name)
        || EXTRA_FEATURES.contains(&name)
        || crate::history::is_history_feature(name)
}

/// Build one input row, in `names` order, from a vector's features and replica count.
///
/// A value that is missing (`None`, or not finite) is never replaced by 0: the call fails with
/// [`ModelError::MissingFeatures`] naming every requested feature that cannot be computed, plus
/// `replicas` when a per-replica feature is requested and the replica count is unknown or 0.
/// A name this crate does not know gives [`ModelError::UnknownFeature`].
pub fn input_row(
    features: &Features,
    replicas: Option<u32>,
    names: &[String],
) -> Result<Vec<f64>, ModelError> {
    let replicas = replicas.filter(|r| *r > 0).map(f64::from);
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    let mut row = Vec::with_capacity(names.len());
    let mut missing = Vec::new();
    let mut replicas_missing = false;
    for name in names {
        let value = match name.as_str() {
            "rps_per_replica" | "cpu_per_replica_pct" => {
                let total = if name == "rps_per_replica" {
                    features.request_rate_rps
                } else {
                    features.cpu_usage_pct
                };
                replicas_missing |= replicas.is_none();
                match (finite(total), replicas) {
                    (Some(t), Some(r)) => Some(t / r),
                    _ => None,
                }
            }
            n if FEATURE_NAMES.contains(&n) => finite(features.get(n)),
            n if crate::history::is_history_feature(n) => {
                return Err(ModelError::NeedsHistory(n.to_string()))
            }
            other => return Err(ModelError::UnknownFeature(other.to_string())),
        };
        match value {
            Some(v) => row.push(v),
            None => missing.push(name.clone()),
        }
    }
    if replicas_missing {
        missing.push("replicas".to_string());
    }
    if missing.is_empty() {
        Ok(row)
    } else {
        Err(ModelError::MissingFeatures(missing))
    }
}

/// The same load at `replicas - 1`: the per-replica features are computed with `replicas - 1`
/// (the totals are unchanged, so each remaining replica takes a larger share); every other
/// feature is unchanged. Used to ask "would the service be safe with one replica fewer?".
///
/// Fails with [`ModelError::NoFewerReplicas`] when `replicas` is unknown or ≤ 1, and otherwise
/// like [`input_row`].
pub fn input_row_one_fewer(
    features: &Features,
    replicas: Option<u32>,
    names: &[String],
) -> Result<Vec<f64>, ModelError> {
    match replicas {
        Some(r) if r > 1 => input_row(features, Some(r - 1), names),
        other => Err(ModelError::NoFewerReplicas { replicas: other }),
    }
}
