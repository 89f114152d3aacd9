//! # Scaling policies behind one interface
//!
//! A [`Policy`] sees, per service and per poll, what the real world would show it — the
//! [`Features`] Prometheus measured over the last minute, the desired and ready replica counts
//! Swarm reports, the bounds and the SLA ([`Observation`]) — plus its own state, and recommends a
//! replica count with a reason ([`Recommendation`]). It never sees a simulator's internals.
//!
//! The scaler's decision is: policies recommend → [`compose`] combines (the safest wins) → the
//! safety envelope bounds → the actuator acts. The same code runs in the lab (`crates/lab`,
//! `autoscaler backtest`), in `run`/`demo` and in the standalone scaler.
//!
//! Where to start:
//!
//! * [`PolicySpec`]: a policy by name and parameters (`hpa-70`, `threshold`, …), parsed from the
//!   command line ([`parse_policy_list`]) and built into a `Box<dyn Policy>` with
//!   [`PolicySpec::build`].
//! * The policies: [`hpa::Hpa`] (the Kubernetes algorithm), [`threshold::Threshold`],
//!   [`triggers::Triggers`] (TrafficShaprX), [`fixed::Fixed`] (`static`),
//!   [`ensemble::Ensemble`] (the three models' P(violation) per candidate count),
//!   [`capacity::Capacity`] (sizing from the service's own latency curve and a load forecast)
//!   and [`hybrid::Hybrid`] (the product's default composition).
//! * [`curve::LatencyCurve`]: the queueing curve fitted to a service's own history, which the
//!   ensemble uses to project latency to other replica counts and `capacity` to size.
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use autoscaler_contract::{Features, Strategy};
use autoscaler_models::Model;
use serde::Serialize;

pub mod capacity;
pub mod curve;
pub mod ensemble;
pub mod fixed;
pub mod hpa;
pub mod hybrid;
pub mod phase;
pub mod plan;
pub mod quantile;
pub mod threshold;
pub mod triggers;

/// Default SLA on p95 latency, ms (as the scaler's and the simulator's).
pub const DEFAULT_SLA_P95_MS: f64 = autoscaler_contract::DEFAULT_SLA_P95_MS;
/// Default poll period of the policies that follow the aggregator, seconds.
pub const DEFAULT_POLL_SECS: f64 = 30.0;

/// Replica bounds of one service (the envelope's min/max; baselines get only these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bounds {
    /// Fewest replicas.
    pub min: u32,
    /// Most replicas.
    pub max: u32,
}

impl Bounds {
    /// `n` clamped into the bounds.
    pub fn clamp(&self, n: u32) -> u32 {
        n.clamp(self.min, self.max)
    }

    /// Whether `n` lies within the bounds.
    pub fn contains(&self, n: u32) -> bool {
        (self.min..=self.max).contains(&n)
    }
}

/// What a policy sees at one poll of one service: only what Prometheus and Swarm would show.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// Time of the poll, seconds (any origin; only differences matter).
    pub t_secs: f64,
    /// The measured features over the last minute (missing values are `None`, never 0).
    pub features: &'a Features,
    /// Desired replicas (the service's spec).
    pub replicas: u32,
    /// Replicas running and ready (tasks in state running).
    pub ready_replicas: u32,
    /// The service's bounds.
    pub bounds: Bounds,
    /// The SLA on p95 latency, ms.
    pub sla_p95_ms: f64,
}

/// One candidate count the ensemble considered, with the models' probabilities and the tally.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// The replica count.
    pub replicas: u32,
    /// P(violation) per model at that count (model name → probability).
    pub probabilities: BTreeMap<String, f64>,
    /// Models voting "violation" at that count.
    pub violation_votes: u32,
    /// Whether the voting rule finds the count safe.
    pub safe: bool,
}

/// What a policy recommends.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The replica count, within the observation's bounds.
    pub replicas: u32,
    /// Why, in words.
    pub reason: String,
    /// The candidates and their tallies (ensemble and what composes it; empty otherwise).
    pub candidates: Vec<Candidate>,
}

impl Recommendation {
    /// A recommendation without candidates.
    pub fn new(replicas: u32, reason: impl Into<String>) -> Self {
        Recommendation {
            replicas,
            reason: reason.into(),
            candidates: Vec::new(),
        }
    }
}

/// A scaling policy for one service. One instance per service: its state is that service's.
pub trait Policy: Send {
    /// The name as it appears in tables and JSON (`hpa-70`, `hybrid`, …).
    fn name(&self) -> String;
    /// The parameters, as JSON (`{"target": 70}` for `hpa-70`).
    fn params(&self) -> serde_json::Value;
    /// How often the policy wants to be asked, seconds (HPA syncs every 15 s, the rest follow the
    /// 30 s poll).
    fn period_secs(&self) -> f64 {
        DEFAULT_POLL_SECS
    }
    /// Recommend a replica count within `obs.bounds`.
    fn recommend(&mut self, obs: &Observation<'_>) -> Recommendation;
}

impl fmt::Debug for dyn Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name())
            .finish()
    }
}

/// The composition rule, as in Nomad's autoscaler: the safest recommendation wins. Out beats in,
/// two outs → the larger, two ins → the one that removes fewer: the largest count. `None` for an
/// empty list.
pub fn compose(recs: &[Recommendation]) -> Option<&Recommendation> {
    // `max_by_key` returns the last maximum; the first listed (the predictive policy) should
    // win ties, so compare reversed positions.
    recs.iter()
        .enumerate()
        .max_by_key(|(i, r)| (r.replicas, std::cmp::Reverse(*i)))
        .map(|(_, r)| r)
}

/// Why a policy list or parameter could not be understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// A name that is not a policy.
    #[error("unknown policy `{0}` (valid: {valid})", valid = POLICY_NAMES.join(", "))]
    UnknownPolicy(String),
    /// A parameter the policy does not have, or a value it cannot take.
    #[error("policy `{policy}`: {problem}")]
    BadParameter {
        /// The policy.
        policy: String,
        /// What is wrong, naming the valid parameters.
        problem: String,
    },
    /// The ensemble (or a policy that consults it) needs the models.
    #[error("policy `{0}` needs the three models (none were loaded)")]
    NeedsModels(String),
}

/// Every policy name [`PolicySpec::parse`] accepts (`hpa` also as `hpa-<target>`).
pub const POLICY_NAMES: [&str; 10] = [
    "hybrid",
    "plan",
    "ensemble",
    "capacity",
    "hpa",
    "threshold",
    "triggers",
    "static",
    "oracle",
    "all",
];

/// The kinds of policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// The product's default composition.
    Hybrid,
    /// The models' vote per candidate count.
    Ensemble,
    /// Sizing from the service's own latency curve and a load forecast.
    Capacity,
    /// The Kubernetes HPA algorithm.
    Hpa,
    /// The CPU/RAM threshold script.
    Threshold,
    /// TrafficShaprX's triggers.
    Triggers,
    /// A fixed count.
    Static,
    /// The clairvoyant lower bound (backtests only; built by the lab, not here).
    Oracle,
    /// Forecast → MILP replica plan → per-second plan cache, with the emergency fallback.
    Plan,
}

impl PolicyKind {
    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Hybrid => "hybrid",
            PolicyKind::Ensemble => "ensemble",
            PolicyKind::Capacity => "capacity",
            PolicyKind::Hpa => "hpa",
            PolicyKind::Threshold => "threshold",
            PolicyKind::Triggers => "triggers",
            PolicyKind::Static => "static",
            PolicyKind::Oracle => "oracle",
            PolicyKind::Plan => "plan",
        }
    }

    /// The parameters this kind takes (for error messages and validation).
    pub fn parameters(self) -> &'static [&'static str] {
        match self {
            PolicyKind::Hpa => hpa::PARAMETERS,
            PolicyKind::Threshold => threshold::PARAMETERS,
            PolicyKind::Triggers => triggers::PARAMETERS,
            PolicyKind::Static => fixed::PARAMETERS,
            PolicyKind::Ensemble => ensemble::PARAMETERS,
            PolicyKind::Capacity => capacity::PARAMETERS,
            PolicyKind::Hybrid => hybrid::PARAMETERS,
            PolicyKind::Oracle => &[],
            PolicyKind::Plan => plan::PARAMETERS,
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy by kind and parameters; `name` is what tables show (`hpa-70`).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    /// The kind.
    pub kind: PolicyKind,
    /// Numeric parameters (name → value); missing ones take the policy's defaults.
    pub params: BTreeMap<String, f64>,
}

/// What building a policy may need besides its parameters.
#[derive(Clone, Default)]
pub struct PolicyContext {
    /// The three models, when loaded (the ensemble, triggers' gray-zone vote and hybrid use
    /// them).
    pub models: Option<Arc<Vec<Arc<dyn Model>>>>,
    /// CPU request of one replica, percent of one core (what HPA's and the threshold script's
    /// utilisation is relative to; an operator sets it in the deployment). `None` takes
    /// [`hpa::DEFAULT_CPU_REQUEST_PCT`].
    pub cpu_request_pct: Option<f64>,
    /// Memory limit of one replica, MiB (the threshold script's RAM rule). `None` takes
    /// [`threshold::DEFAULT_MEMORY_LIMIT_MB`].
    pub memory_limit_mb: Option<f64>,
    /// The voting rule of the ensemble.
    pub strategy: Option<Strategy>,
}

impl fmt::Debug for PolicyContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyContext")
            .field("models", &self.models.as_ref().map(|m| m.len()))
            .field("cpu_request_pct", &self.cpu_request_pct)
            .field("memory_limit_mb", &self.memory_limit_mb)
            .field("strategy", &self.strategy)
            .finish()
    }
}

impl PolicySpec {
    /// A spec without parameters.
    pub fn new(kind: PolicyKind) -> Self {
        PolicySpec {
            kind,
            params: BTreeMap::new(),
        }
    }

    /// Add a parameter.
    pub fn with(mut self, name: &str, value: f64) -> Self {
        self.params.insert(name.to_string(), value);
        self
    }

    /// The display name: `hpa-<target>` for HPA (target 70 unless set), the kind otherwise.
    pub fn name(&self) -> String {
        match self.kind {
            PolicyKind::Hpa => {
                let t = self
                    .params
                    .get("target")
                    .copied()
                    .unwrap_or(hpa::DEFAULT_TARGET_PCT);
                format!("hpa-{}", fmt_num(t))
            }
            k => k.as_str().to_string(),
        }
    }

    /// Parse one entry: a name (`hpa`, `hpa-70`, `static`), optionally with parameters
    /// `name:key=value:key=value` (`threshold:upper=80:lower=20`). `all` is not a single policy
    /// (see [`parse_policy_list`]).
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let mut parts = text.trim().split(':');
        let head = parts.next().unwrap_or_default();
        let (kind, mut params) = if let Some(target) = head.strip_prefix("hpa-") {
            let t: f64 = target.parse().map_err(|_| SpecError::BadParameter {
                policy: head.to_string(),
                problem: format!("`{target}` is not a CPU target in percent (e.g. hpa-70)"),
            })?;
            (PolicyKind::Hpa, BTreeMap::from([("target".to_string(), t)]))
        } else {
            let kind = [
                PolicyKind::Hybrid,
                PolicyKind::Ensemble,
                PolicyKind::Capacity,
                PolicyKind::Hpa,
                PolicyKind::Threshold,
                PolicyKind::Triggers,
                PolicyKind::Static,
                PolicyKind::Oracle,
                PolicyKind::Plan,
            ]
            .into_iter()
            .find(|k| k.as_str() == head)
            .ok_or_else(|| SpecError::UnknownPolicy(head.to_string()))?;
            (kind, BTreeMap::new())
        };
        for kv in parts {
            let (k, v) = kv.split_once('=').ok_or_else(|| SpecError::BadParameter {
                policy: head.to_string(),
                problem: format!("`{kv}` is not key=value"),
            })?;
            let value: f64 = v
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite())
                .ok_or_else(|| SpecError::BadParameter {
                    policy: head.to_string(),
                    problem: format!("`{k}` = `{v}` is not a finite number"),
                })?;
            params.insert(k.to_string(), value);
        }
        let spec = PolicySpec { kind, params };
        spec.check_parameters()?;
        Ok(spec)
    }

    /// Every parameter must be one the policy has.
    pub fn check_parameters(&self) -> Result<(), SpecError> {
        let valid = self.kind.parameters();
        for k in self.params.keys() {
            if !valid.contains(&k.as_str()) {
                return Err(SpecError::BadParameter {
                    policy: self.name(),
                    problem: format!(
                        "unknown parameter `{k}` (valid: {})",
                        if valid.is_empty() {
                            "none".to_string()
                        } else {
                            valid.join(", ")
                        }
                    ),
                });
            }
        }
        Ok(())
    }

    /// A parameter or its default.
    pub fn get(&self, name: &str, default: f64) -> f64 {
        self.params.get(name).copied().unwrap_or(default)
    }

    /// Build the policy for one service. The oracle is not built here (it needs the future: the
    /// lab builds it).
    pub fn build(&self, ctx: &PolicyContext) -> Result<Box<dyn Policy>, SpecError> {
        self.check_parameters()?;
        let bad = |problem: String| SpecError::BadParameter {
            policy: self.name(),
            problem,
        };
        Ok(match self.kind {
            PolicyKind::Hpa => Box::new(hpa::Hpa::from_spec(self, ctx).map_err(bad)?),
            PolicyKind::Threshold => {
                Box::new(threshold::Threshold::from_spec(self, ctx).map_err(bad)?)
            }
            PolicyKind::Triggers => {
                Box::new(triggers::Triggers::from_spec(self, ctx).map_err(bad)?)
            }
            PolicyKind::Static => Box::new(fixed::Fixed::from_spec(self).map_err(bad)?),
            PolicyKind::Capacity => Box::new(capacity::Capacity::from_spec(self).map_err(bad)?),
            PolicyKind::Ensemble => {
                let models = ctx
                    .models
                    .clone()
                    .ok_or_else(|| SpecError::NeedsModels(self.name()))?;
                Box::new(ensemble::Ensemble::from_spec(self, ctx, models).map_err(bad)?)
            }
            PolicyKind::Hybrid => Box::new(hybrid::Hybrid::from_spec(self, ctx).map_err(bad)?),
            PolicyKind::Plan => Box::new(plan::Plan::from_spec(self).map_err(bad)?),
            PolicyKind::Oracle => {
                return Err(bad(
                    "the oracle is built by the lab (it needs the future)".into()
                ))
            }
        })
    }
}

/// A number without a trailing `.0` (`70`, `72.5`).
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Parse a comma-separated policy list; `all` expands to every policy, with one `hpa-<t>` per
/// target of `hpa_targets` (and a bare `hpa` expands to the sweep too). Duplicates are dropped.
pub fn parse_policy_list(text: &str, hpa_targets: &[f64]) -> Result<Vec<PolicySpec>, SpecError> {
    let mut out: Vec<PolicySpec> = Vec::new();
    let sweep = |out: &mut Vec<PolicySpec>| {
        for &t in hpa_targets {
            out.push(PolicySpec::new(PolicyKind::Hpa).with("target", t));
        }
    };
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "all" => {
                for k in [
                    PolicyKind::Hybrid,
                    PolicyKind::Ensemble,
                    PolicyKind::Capacity,
                    PolicyKind::Threshold,
                    PolicyKind::Triggers,
                    PolicyKind::Static,
                    PolicyKind::Oracle,
                ] {
                    out.push(PolicySpec::new(k));
                }
                sweep(&mut out);
            }
            "hpa" => sweep(&mut out),
            other => out.push(PolicySpec::parse(other)?),
        }
    }
    let mut seen = Vec::new();
    out.retain(|s| {
        let key = (s.name(), format!("{:?}", s.params));
        if seen.contains(&key) {
            false
        } else {
            seen.push(key);
            true
        }
    });
    Ok(out)
}

/// Parameters as JSON (the spec's, which include only what was set, merged over `defaults`).
pub fn params_json(spec: &PolicySpec, defaults: &[(&str, f64)]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (k, v) in defaults {
        m.insert((*k).to_string(), serde_json::json!(spec.get(k, *v)));
    }
    for (k, v) in &spec.params {
        m.insert(k.clone(), serde_json::json!(v));
    }
    serde_json::Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_sweeps_and_parameters() {
        let all = parse_policy_list("all", &[50.0, 70.0]).unwrap();
        let names: Vec<String> = all.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "hybrid",
                "ensemble",
                "capacity",
                "threshold",
                "triggers",
                "static",
                "oracle",
                "hpa-50",
                "hpa-70"
            ]
        );
        let l = parse_policy_list("hpa-80, threshold:upper=80:lower=20,hpa-80", &[]).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].params["target"], 80.0);
        assert_eq!(l[1].params["upper"], 80.0);
        assert!(matches!(
            parse_policy_list("hpa,bogus", &[70.0]),
            Err(SpecError::UnknownPolicy(n)) if n == "bogus"
        ));
        let e = PolicySpec::parse("static:bogus=1").unwrap_err();
        assert!(e.to_string().contains("valid: replicas"), "{e}");
        assert!(PolicySpec::parse("hpa-x").is_err());
        assert!(PolicySpec::parse("threshold:upper=abc").is_err());
        assert!(PolicySpec::parse("threshold:upper").is_err());
        let e = SpecError::UnknownPolicy("x".into()).to_string();
        assert!(e.contains("hybrid") && e.contains("hpa"), "{e}");
    }

    #[test]
    fn compose_takes_the_safest() {
        let r = |n: u32| Recommendation::new(n, format!("{n}"));
        assert_eq!(compose(&[]), None);
        assert_eq!(compose(&[r(3), r(5)]).unwrap().replicas, 5);
        assert_eq!(compose(&[r(5), r(3)]).unwrap().replicas, 5);
        // A tie goes to the first (the predictive policy).
        let a = Recommendation::new(4, "first");
        let b = Recommendation::new(4, "second");
        assert_eq!(compose(&[a, b]).unwrap().reason, "first");
    }
}
