//! Per-service policy: bounds, SLA, voting strategy and dry-run for one managed service.
//!
//! A Swarm service opts in with the label `autoscaler.enable=true` and may set, each optional:
//!
//! | label | meaning |
//! |---|---|
//! | `autoscaler.min` | fewest replicas (whole number ≥ 0) |
//! | `autoscaler.max` | most replicas (whole number ≥ 1, ≥ min) |
//! | `autoscaler.sla_p95_ms` | the SLA on p95 latency, ms (> 0) |
//! | `autoscaler.strategy` | `majority`, `unanimous` or `weighted` |
//! | `autoscaler.dry_run` | `true`: decide and publish "would scale", change nothing |
//! | `autoscaler.policy` | the scaling policy (`ensemble`, `hybrid`, `hpa-70`, `threshold`, …; see [`crate::policies`]) in place of the scaler's `--policy` |
//!
//! The same fields can be given in a policy file ([`PolicyFile`], JSON, unknown fields refused)
//! for those who prefer one; a service listed there is managed even without the `enable` label.
//! Where both give a field, the label wins (it sits on the service itself). A field given by
//! neither falls back to the scaler's global configuration.
//!
//! Bad input — a value that does not parse, a negative number, `min > max` — is reported for
//! that service only: the scaler leaves it alone and keeps managing the others.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use autoscaler_contract::Strategy;
use serde::{Deserialize, Serialize};

/// The label that opts a service in.
pub const LABEL_ENABLE: &str = "autoscaler.enable";
/// Fewest replicas.
pub const LABEL_MIN: &str = "autoscaler.min";
/// Most replicas.
pub const LABEL_MAX: &str = "autoscaler.max";
/// SLA on p95 latency, ms.
pub const LABEL_SLA_P95_MS: &str = "autoscaler.sla_p95_ms";
/// Voting strategy.
pub const LABEL_STRATEGY: &str = "autoscaler.strategy";
/// Dry-run for this service.
pub const LABEL_DRY_RUN: &str = "autoscaler.dry_run";
/// The scaling policy for this service.
pub const LABEL_POLICY: &str = "autoscaler.policy";

/// One service's policy; `None` fields fall back to the global configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePolicy {
    /// Fewest replicas.
    #[serde(default, rename = "min")]
    pub min_replicas: Option<u32>,
    /// Most replicas.
    #[serde(default, rename = "max")]
    pub max_replicas: Option<u32>,
    /// The SLA on p95 latency, ms.
    #[serde(default)]
    pub sla_p95_ms: Option<f64>,
    /// Voting strategy for this service.
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// Decide and publish, change nothing.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// The scaling policy for this service (a [`crate::policies::parse_policy`] spec such as
    /// `hpa-70`), in place of the scaler's global one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

impl ServicePolicy {
    /// `self` with every field that `over` sets replaced by `over`'s.
    pub fn overridden_by(&self, over: &ServicePolicy) -> ServicePolicy {
        ServicePolicy {
            min_replicas: over.min_replicas.or(self.min_replicas),
            max_replicas: over.max_replicas.or(self.max_replicas),
            sla_p95_ms: over.sla_p95_ms.or(self.sla_p95_ms),
            strategy: over.strategy.or(self.strategy),
            dry_run: over.dry_run.or(self.dry_run),
            policy: over.policy.clone().or_else(|| self.policy.clone()),
        }
    }

    /// Problems of the fields this policy sets, on their own (the cross-check against the global
    /// bounds is [`crate::EnvelopeConfig::with_policy`]'s).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let (Some(min), Some(max)) = (self.min_replicas, self.max_replicas) {
            if min > max {
                p.push(format!("min ({min}) is greater than max ({max})"));
            }
        }
        if self.max_replicas == Some(0) {
            p.push("max must be at least 1".into());
        }
        if let Some(s) = self.sla_p95_ms {
            if !(s.is_finite() && s > 0.0) {
                p.push(format!("sla_p95_ms must be a number > 0, got {s}"));
            }
        }
        if let Some(spec) = &self.policy {
            if let Err(e) = crate::policies::parse_policy(spec) {
                p.push(format!("policy: {e}"));
            }
        }
        p
    }
}

/// What a service's labels say.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelPolicy {
    /// No `autoscaler.enable=true`: not managed (unless the policy file lists it).
    NotEnabled,
    /// Managed, with these settings.
    Enabled(ServicePolicy),
}

/// Read a service's labels. Every problem is reported at once.
pub fn from_labels(labels: &HashMap<String, String>) -> Result<LabelPolicy, Vec<String>> {
    let mut problems = Vec::new();
    let enabled = match labels.get(LABEL_ENABLE).map(|v| v.trim()) {
        None => false,
        Some(v) => match parse_bool(v) {
            Some(b) => b,
            None => {
                problems.push(format!("{LABEL_ENABLE}=`{v}` is not true or false"));
                false
            }
        },
    };
    let whole = |key: &str, problems: &mut Vec<String>| -> Option<u32> {
        let v = labels.get(key)?.trim();
        match v.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                problems.push(format!("{key}=`{v}` is not a whole number ≥ 0"));
                None
            }
        }
    };
    let policy = ServicePolicy {
        min_replicas: whole(LABEL_MIN, &mut problems),
        max_replicas: whole(LABEL_MAX, &mut problems),
        sla_p95_ms: labels
            .get(LABEL_SLA_P95_MS)
            .map(|v| v.trim())
            .and_then(|v| match v.parse::<f64>() {
                Ok(x) => Some(x),
                Err(_) => {
                    problems.push(format!("{LABEL_SLA_P95_MS}=`{v}` is not a number"));
                    None
                }
            }),
        strategy: labels.get(LABEL_STRATEGY).map(|v| v.trim()).and_then(|v| {
            match v.parse::<Strategy>() {
                Ok(s) => Some(s),
                Err(e) => {
                    problems.push(format!("{LABEL_STRATEGY}: {e}"));
                    None
                }
            }
        }),
        dry_run: labels
            .get(LABEL_DRY_RUN)
            .map(|v| v.trim())
            .and_then(|v| match parse_bool(v) {
                Some(b) => Some(b),
                None => {
                    problems.push(format!("{LABEL_DRY_RUN}=`{v}` is not true or false"));
                    None
                }
            }),
        policy: labels
            .get(LABEL_POLICY)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty()),
    };
    problems.extend(policy.problems());
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(if enabled {
        LabelPolicy::Enabled(policy)
    } else {
        LabelPolicy::NotEnabled
    })
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// The policy file: `{"services": {"orders": {"min": 2, "max": 8, "sla_p95_ms": 300}}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Policy per service name.
    #[serde(default)]
    pub services: BTreeMap<String, ServicePolicy>,
}

/// Errors reading a policy file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    /// The file could not be read.
    #[error("reading policy file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid policy file.
    #[error("policy file {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Some service's policy contradicts itself.
    #[error("policy file {path}: {}", .problems.join("; "))]
    Invalid {
        /// The file.
        path: String,
        /// Every problem, prefixed with its service.
        problems: Vec<String>,
    },
}

impl PolicyFile {
    /// Read and check a policy file; every problem is reported at once.
    pub fn load(path: &Path) -> Result<PolicyFile, PolicyFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyFileError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: PolicyFile =
            serde_json::from_str(&text).map_err(|source| PolicyFileError::Parse {
                path: shown.clone(),
                source,
            })?;
        let problems: Vec<String> = file
            .services
            .iter()
            .flat_map(|(name, p)| {
                p.problems()
                    .into_iter()
                    .map(move |e| format!("{name}: {e}"))
            })
            .collect();
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(PolicyFileError::Invalid {
                path: shown,
                problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_parse_and_bad_ones_are_all_reported() {
        assert_eq!(from_labels(&labels(&[])), Ok(LabelPolicy::NotEnabled));
        assert_eq!(
            from_labels(&labels(&[(LABEL_ENABLE, "false"), (LABEL_MIN, "2")])),
            Ok(LabelPolicy::NotEnabled)
        );
        let ok = from_labels(&labels(&[
            (LABEL_ENABLE, "true"),
            (LABEL_MIN, "2"),
            (LABEL_MAX, " 6 "),
            (LABEL_SLA_P95_MS, "300"),
            (LABEL_STRATEGY, "weighted"),
            (LABEL_DRY_RUN, "true"),
        ]));
        assert_eq!(
            ok,
            Ok(LabelPolicy::Enabled(ServicePolicy {
                min_replicas: Some(2),
                max_replicas: Some(6),
                sla_p95_ms: Some(300.0),
                strategy: Some(Strategy::Weighted),
                dry_run: Some(true),
                policy: None,
            }))
        );
        let bad = from_labels(&labels(&[
            (LABEL_ENABLE, "true"),
            (LABEL_MIN, "-1"),
            (LABEL_MAX, "many"),
            (LABEL_SLA_P95_MS, "0"),
            (LABEL_STRATEGY, "loudest"),
            (LABEL_DRY_RUN, "maybe"),
        ]))
        .unwrap_err();
        assert_eq!(bad.len(), 5, "{bad:?}");
        assert!(bad[0].contains("autoscaler.min=`-1`"), "{bad:?}");
        let contradiction =
            from_labels(&labels(&[(LABEL_MIN, "5"), (LABEL_MAX, "2")])).unwrap_err();
        assert_eq!(contradiction, vec!["min (5) is greater than max (2)"]);
    }

    #[test]
    fn the_policy_label_and_field_are_checked() {
        let ok = from_labels(&labels(&[
            (LABEL_ENABLE, "true"),
            (LABEL_POLICY, " hpa-80 "),
        ]));
        assert!(
            matches!(&ok, Ok(LabelPolicy::Enabled(p)) if p.policy.as_deref() == Some("hpa-80")),
            "{ok:?}"
        );
        let bad = from_labels(&labels(&[
            (LABEL_ENABLE, "true"),
            (LABEL_POLICY, "loudest"),
        ]))
        .unwrap_err();
        assert!(
            bad[0].contains("unknown policy `loudest` (valid: ensemble"),
            "{bad:?}"
        );
        let file: PolicyFile =
            serde_json::from_str(r#"{"services":{"orders":{"policy":"static:replicas=3"}}}"#)
                .unwrap();
        assert!(file.services["orders"].problems().is_empty());
        let label = ServicePolicy {
            policy: Some("threshold".into()),
            ..ServicePolicy::default()
        };
        assert_eq!(
            file.services["orders"]
                .overridden_by(&label)
                .policy
                .as_deref(),
            Some("threshold")
        );
    }

    #[test]
    fn policy_file_parses_refuses_unknown_fields_and_labels_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(
            &path,
            r#"{"services":{"orders":{"min":2,"max":8,"sla_p95_ms":300,"strategy":"unanimous"}}}"#,
        )
        .unwrap();
        let f = PolicyFile::load(&path).unwrap();
        let from_file = &f.services["orders"];
        let merged = from_file.overridden_by(&ServicePolicy {
            max_replicas: Some(4),
            ..ServicePolicy::default()
        });
        assert_eq!(
            (merged.min_replicas, merged.max_replicas),
            (Some(2), Some(4))
        );
        assert_eq!(merged.strategy, Some(Strategy::Unanimous));

        std::fs::write(&path, r#"{"services":{"orders":{"minimum":2}}}"#).unwrap();
        assert!(matches!(
            PolicyFile::load(&path),
            Err(PolicyFileError::Parse { .. })
        ));
        std::fs::write(&path, r#"{"services":{"orders":{"min":-2}}}"#).unwrap();
        assert!(matches!(
            PolicyFile::load(&path),
            Err(PolicyFileError::Parse { .. })
        ));
        std::fs::write(&path, r#"{"services":{"orders":{"min":9,"max":3}}}"#).unwrap();
        let e = PolicyFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("orders: min (9) is greater than max (3)"), "{e}");
    }
}
