//! Labels re-derived from the metrics: will the service break its SLA in the next polls?

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::Record;
use crate::TrainingError;

/// The SLA on p95 latency: one value for every service, or one per service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaSpec {
    /// Every service, ms.
    Global(f64),
    /// Per service, ms; a service not listed takes `default` (an error when `None`).
    PerService {
        /// service → ms.
        services: BTreeMap<String, f64>,
        /// For services not listed.
        default: Option<f64>,
    },
}

impl SlaSpec {
    /// The SLA of `service`.
    pub fn for_service(&self, service: &str) -> Result<f64, TrainingError> {
        match self {
            SlaSpec::Global(ms) => Ok(*ms),
            SlaSpec::PerService { services, default } => services
                .get(service)
                .or(default.as_ref())
                .copied()
                .ok_or_else(|| {
                    TrainingError::Config(format!(
                        "no SLA for service `{service}` in the SLA file (add `{service}=<ms>` or `*=<ms>`)"
                    ))
                }),
        }
    }

    /// A single number for the metadata's `sla_p95_ms`: the global value, or the default, or
    /// the smallest per-service value.
    pub fn headline_ms(&self) -> f64 {
        match self {
            SlaSpec::Global(ms) => *ms,
            SlaSpec::PerService { services, default } => {
                default.unwrap_or_else(|| services.values().copied().fold(f64::INFINITY, f64::min))
            }
        }
    }

    /// Read `service=ms` lines (`#` comments, `*=ms` for the default) or a JSON object
    /// `{"service": ms, "*": ms}`.
    pub fn from_file(path: &Path) -> Result<SlaSpec, TrainingError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrainingError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |m: String| TrainingError::Config(format!("{}: {m}", path.display()));
        let mut pairs: BTreeMap<String, f64> = BTreeMap::new();
        if text.trim_start().starts_with('{') {
            pairs = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        } else {
            for (i, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if line.is_empty() {
                    continue;
                }
                let (s, ms) = line
                    .split_once('=')
                    .or_else(|| line.split_once(':'))
                    .ok_or_else(|| bad(format!("line {}: expected `service=ms`", i + 1)))?;
                let ms: f64 = ms
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("line {}: `{}` is not a number", i + 1, ms.trim())))?;
                pairs.insert(s.trim().to_string(), ms);
            }
        }
        if let Some((s, ms)) = pairs.iter().find(|(_, ms)| !(ms.is_finite() && **ms > 0.0)) {
            return Err(bad(format!("SLA of `{s}` must be > 0, got {ms}")));
        }
        let default = pairs.remove("*");
        if pairs.is_empty() && default.is_none() {
            return Err(bad("no SLA given".into()));
        }
        Ok(SlaSpec::PerService {
            services: pairs,
            default,
        })
    }
}

/// Indices of `records` grouped by (run, service), each group in time order (ties keep file
/// order).
pub fn groups(records: &[Record]) -> Vec<Vec<usize>> {
    let mut by: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        by.entry((r.run.as_str(), r.service.as_str()))
            .or_default()
            .push(i);
    }
    by.into_values()
        .map(|mut g| {
            g.sort_by_key(|i| (records[*i].timestamp, *i));
            g
        })
        .collect()
}

/// The label of every record: `Some(true)` when the service breaks its SLA (p95 above it, or
/// an error rate of at least [`autoscaler_simulator::ERROR_VIOLATION_PCT`] %) in any of the
/// next `horizon` polls of the same service and run; `Some(false)` when none does and at least
/// one of them has a p95; `None` when unknown (the end of a run, or no p95 in the window).
///
/// The current row is never part of its own label: this is
/// [`autoscaler_simulator::label_violations`] (future rows only) per (run, service) group.
pub fn derive_labels(
    records: &[Record],
    sla: &SlaSpec,
    horizon: usize,
) -> Result<Vec<Option<bool>>, TrainingError> {
    if horizon == 0 {
        return Err(TrainingError::Config("--horizon must be at least 1".into()));
    }
    let mut out = vec![None; records.len()];
    for g in groups(records) {
        let sla_ms = sla.for_service(&records[g[0]].service)?;
        let p95: Vec<Option<f64>> = g
            .iter()
            .map(|i| records[*i].features.p95_latency_ms)
            .collect();
        let err: Vec<Option<f64>> = g
            .iter()
            .map(|i| records[*i].features.error_rate_pct)
            .collect();
        for (i, l) in g.iter().zip(autoscaler_simulator::label_violations(
            &p95, &err, sla_ms, horizon,
        )) {
            out[*i] = l;
        }
    }
    Ok(out)
}

/// For each record, the timestamp of the last row its label looks at (the `horizon`-th next
/// row of its group), `None` past the end. A training row whose label window reaches into the
/// validation or test period is purged by the splits.
pub fn label_window_end(
    records: &[Record],
    horizon: usize,
) -> Vec<Option<chrono::DateTime<chrono::Utc>>> {
    let mut out = vec![None; records.len()];
    for g in groups(records) {
        for (k, i) in g.iter().enumerate() {
            out[*i] = g.get(k + horizon).map(|j| records[*j].timestamp);
        }
    }
    out
}
