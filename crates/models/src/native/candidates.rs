//! One feature vector at several replica counts: the rows the policy lab asks the models about.
//!
//! At a candidate count `r` the per-replica features are recomputed with `r`
//! (`rps_per_replica = request_rate_rps / r`, `cpu_per_replica_pct = cpu_usage_pct / r`, as
//! [`crate::input_row`] computes them), and every contract feature the caller projects for that
//! count (e.g. p95 latency from a queueing curve) replaces the measured one — also inside the
//! per-replica features, so a projected total CPU gives the projected CPU per replica.

use autoscaler_contract::{Features, FEATURE_NAMES};

use crate::ModelError;

/// A replica count to evaluate, and what the caller projects at it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Candidate {
    /// The replica count (≥ 1).
    pub replicas: u32,
    /// Contract features projected at this count; each `Some` replaces the base vector's value,
    /// each `None` keeps it. `Features::default()` projects nothing (only the per-replica
    /// features change).
    pub projected: Features,
}

impl Candidate {
    /// `replicas` with nothing projected.
    pub fn at(replicas: u32) -> Self {
        Candidate {
            replicas,
            projected: Features::default(),
        }
    }

    /// `replicas` with a projected p95 latency (ms) and, optionally, a projected total CPU (%).
    pub fn projected(replicas: u32, p95_latency_ms: f64, cpu_usage_pct: Option<f64>) -> Self {
        Candidate {
            replicas,
            projected: Features {
                p95_latency_ms: Some(p95_latency_ms),
                cpu_usage_pct,
                ..Features::default()
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Column {
    Contract(usize),
    RpsPerReplica,
    CpuPerReplica,
    /// A history feature (`RowPlan::history[i]`): computed from a service's recent polls, which
    /// one feature vector does not carry.
    History(usize),
}

/// Which value goes in each column of a model's row, worked out once from its feature names.
#[derive(Debug, Clone, PartialEq)]
pub struct RowPlan {
    columns: Vec<Column>,
    history: Vec<String>,
}

const RPS: usize = 0;
const CPU: usize = 5;

/// The `i`-th contract feature ([`FEATURE_NAMES`] order), without building a name table.
#[inline]
fn contract(f: &Features, i: usize) -> Option<f64> {
    match i {
        0 => f.request_rate_rps,
        1 => f.error_rate_pct,
        2 => f.p50_latency_ms,
        3 => f.p95_latency_ms,
        4 => f.p99_latency_ms,
        5 => f.cpu_usage_pct,
        6 => f.memory_usage_mb,
        7 => f.delta_rps,
        8 => f.delta_p95_latency_ms,
        _ => f.delta_cpu_usage_pct,
    }
}

impl RowPlan {
    /// The plan for a model taking `names` (in order); an unknown name is an error.
    pub fn new(names: &[String]) -> Result<Self, ModelError> {
        debug_assert_eq!(FEATURE_NAMES[RPS], "request_rate_rps");
        debug_assert_eq!(FEATURE_NAMES[CPU], "cpu_usage_pct");
        let mut history = Vec::new();
        let columns = names
            .iter()
            .map(|n| match n.as_str() {
                "rps_per_replica" => Ok(Column::RpsPerReplica),
                "cpu_per_replica_pct" => Ok(Column::CpuPerReplica),
                h if crate::history::is_history_feature(h) => {
                    history.push(h.to_string());
                    Ok(Column::History(history.len() - 1))
                }
                other => FEATURE_NAMES
                    .iter()
                    .position(|f| *f == other)
                    .map(Column::Contract)
                    .ok_or_else(|| ModelError::UnknownFeature(other.to_string())),
            })
            .collect::<Result<_, _>>()?;
        Ok(RowPlan { columns, history })
    }

    /// Columns of the row.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Write the row of `base` at `candidate` into `out` (exactly [`Self::len`] long). A value
    /// that is missing or not finite is an error naming every such feature (never a 0), like
    /// [`crate::input_row`]; so is a replica count of 0. Allocates only on error.
    pub fn fill(
        &self,
        base: &Features,
        candidate: &Candidate,
        out: &mut [f64],
    ) -> Result<(), ModelError> {
        debug_assert_eq!(out.len(), self.columns.len());
        if let Some(name) = self.history.first() {
            // One vector's features cannot give it: the caller builds such rows from the
            // service's history (`history::input_row_from_history`).
            return Err(ModelError::NeedsHistory(name.clone()));
        }
        let value = |i: usize| {
            contract(&candidate.projected, i)
                .or_else(|| contract(base, i))
                .filter(|v| v.is_finite())
        };
        let r = candidate.replicas;
        let mut ok = true;
        for (slot, col) in out.iter_mut().zip(&self.columns) {
            let v = match col {
                Column::Contract(i) => value(*i),
                Column::RpsPerReplica if r > 0 => value(RPS).map(|t| t / f64::from(r)),
                Column::CpuPerReplica if r > 0 => value(CPU).map(|t| t / f64::from(r)),
                _ => None,
            };
            match v {
                Some(v) => *slot = v,
                None => ok = false,
            }
        }
        if ok {
            return Ok(());
        }
        let mut missing: Vec<String> = self
            .columns
            .iter()
            .filter_map(|col| match col {
                Column::Contract(i) if value(*i).is_none() => Some(FEATURE_NAMES[*i].to_string()),
                Column::RpsPerReplica if r == 0 || value(RPS).is_none() => {
                    Some("rps_per_replica".into())
                }
                Column::CpuPerReplica if r == 0 || value(CPU).is_none() => {
                    Some("cpu_per_replica_pct".into())
                }
                _ => None,
            })
            .collect();
        if r == 0 {
            // As `input_row` reports a per-replica feature at 0 replicas.
            missing.push("replicas".into());
        }
        Err(ModelError::MissingFeatures(missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{default_feature_names, input_row};

    fn base() -> Features {
        Features {
            request_rate_rps: Some(120.0),
            error_rate_pct: Some(0.5),
            p50_latency_ms: Some(40.0),
            p95_latency_ms: Some(90.0),
            p99_latency_ms: Some(130.0),
            cpu_usage_pct: Some(150.0),
            memory_usage_mb: Some(700.0),
            delta_rps: Some(3.0),
            delta_p95_latency_ms: Some(-2.0),
            delta_cpu_usage_pct: Some(1.0),
        }
    }

    #[test]
    fn unprojected_rows_equal_input_row_at_each_count() {
        let names = default_feature_names();
        let plan = RowPlan::new(&names).unwrap();
        let mut out = vec![0.0; plan.len()];
        for r in 1..=6 {
            plan.fill(&base(), &Candidate::at(r), &mut out).unwrap();
            assert_eq!(out, input_row(&base(), Some(r), &names).unwrap(), "r = {r}");
        }
    }

    #[test]
    fn projections_replace_measured_values_and_feed_per_replica_features() {
        let names = default_feature_names();
        let plan = RowPlan::new(&names).unwrap();
        let mut out = vec![0.0; plan.len()];
        plan.fill(
            &base(),
            &Candidate::projected(4, 55.0, Some(200.0)),
            &mut out,
        )
        .unwrap();
        let want = input_row(
            &Features {
                p95_latency_ms: Some(55.0),
                cpu_usage_pct: Some(200.0),
                ..base()
            },
            Some(4),
            &names,
        )
        .unwrap();
        assert_eq!(out, want);
        assert_eq!(
            out[names
                .iter()
                .position(|n| n == "cpu_per_replica_pct")
                .unwrap()],
            50.0
        );
    }

    #[test]
    fn missing_values_and_zero_replicas_are_errors_never_zero() {
        let names = default_feature_names();
        let plan = RowPlan::new(&names).unwrap();
        let mut out = vec![0.0; plan.len()];
        let f = Features {
            request_rate_rps: None,
            p99_latency_ms: Some(f64::NAN),
            ..base()
        };
        let e = plan.fill(&f, &Candidate::at(2), &mut out).unwrap_err();
        let ModelError::MissingFeatures(m) = e else {
            panic!("{e}")
        };
        assert_eq!(m, ["request_rate_rps", "p99_latency_ms", "rps_per_replica"]);
        // A projection fills a missing measurement.
        let c = Candidate {
            replicas: 2,
            projected: Features {
                request_rate_rps: Some(10.0),
                p99_latency_ms: Some(100.0),
                ..Features::default()
            },
        };
        plan.fill(&f, &c, &mut out).unwrap();
        let e = plan.fill(&base(), &Candidate::at(0), &mut out).unwrap_err();
        let ModelError::MissingFeatures(m) = e else {
            panic!("{e}")
        };
        assert_eq!(m, ["rps_per_replica", "cpu_per_replica_pct", "replicas"]);
    }
}
