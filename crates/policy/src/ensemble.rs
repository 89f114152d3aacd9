//! `ensemble`: the three models' vote, deciding a replica count.
//!
//! For each candidate count `n` from `max(min, current − 2)` to `min(max, ⌈4 × current⌉)` every
//! model gives P(violation) for the load *as it would be at `n` replicas*: the per-replica
//! features are recomputed at `n`, and the latency features are projected along the service's
//! own queueing curve ([`LatencyCurve`]; without one yet, inversely to the replica count). The
//! voting rule (majority / unanimous / weighted) is applied per candidate; a count below the
//! current one must also have every model's P(violation) at or below the scale-down bar (the
//! seed's stricter rule for removing capacity). The recommendation is the smallest count the rule
//! finds safe (Sinan: the acceptable action that uses the least resources), or the largest
//! candidate when none is. When fewer than the quorum of models can score (missing features),
//! it holds.

use std::sync::Arc;

use autoscaler_contract::{Ballot, Features, Strategy};
use autoscaler_models::{input_row, Model};
use autoscaler_voting::{tally, ModelBallot, VotingConfig};

use crate::curve::{Fit, LatencyCurve};
use crate::{
    params_json, Candidate, Observation, Policy, PolicyContext, PolicySpec, Recommendation,
};

/// Candidates below the current count: at most this many fewer.
pub const MAX_STEP_DOWN: u32 = 2;
/// Candidates above: up to this multiple of the current count.
pub const MAX_UP_FACTOR: f64 = 4.0;
/// Parameters of `ensemble` (`strategy`: 0 majority, 1 unanimous, 2 weighted).
pub const PARAMETERS: &[&str] = &["strategy", "scale_down_max_probability"];

/// The models and the voting rule, scoring a load at candidate replica counts.
pub struct Scorer {
    models: Arc<Vec<Arc<dyn Model>>>,
    voting: VotingConfig,
}

impl std::fmt::Debug for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scorer")
            .field("models", &self.models.len())
            .field("voting", &self.voting)
            .finish()
    }
}

/// The features of the load measured at `ready` replicas, projected to `n` replicas.
pub fn project(features: &Features, ready: u32, n: u32, fit: Option<Fit>) -> Features {
    if n == ready || ready == 0 || n == 0 {
        return features.clone();
    }
    let (c, nf) = (ready as f64, n as f64);
    let mut out = features.clone();
    let ratio = match (features.p95_latency_ms, features.request_rate_rps) {
        (Some(p95), Some(rps)) if p95 > 0.0 => {
            let projected = fit.map(|fit| {
                let now = fit.p95_at(rps / c);
                let then = fit.p95_at(rps / nf);
                match (now, then) {
                    // Keep the service's own residual (a queue, noise) relative to the curve.
                    (Some(a), Some(b)) => p95 * b / a,
                    // Overloaded now, not at n: the curve's value.
                    (None, Some(b)) => b.min(p95),
                    // Overloaded at n: at least as bad as now.
                    (_, None) => p95.max(p95 * c / nf),
                }
            });
            projected.unwrap_or(p95 * c / nf) / p95
        }
        _ => c / nf,
    };
    let scale = |v: Option<f64>| v.map(|x| x * ratio);
    out.p50_latency_ms = scale(features.p50_latency_ms);
    out.p95_latency_ms = scale(features.p95_latency_ms);
    out.p99_latency_ms = scale(features.p99_latency_ms);
    out.delta_p95_latency_ms = scale(features.delta_p95_latency_ms);
    out.memory_usage_mb = features.memory_usage_mb.map(|m| m * nf / c);
    if n > ready && ratio < 1.0 {
        // More replicas than needed to serve the load: the queue and its errors go.
        out.error_rate_pct = features.error_rate_pct.map(|_| 0.0);
    }
    out
}

impl Scorer {
    /// The models and a voting rule.
    pub fn new(models: Arc<Vec<Arc<dyn Model>>>, strategy: Strategy) -> Self {
        let mut voting = VotingConfig::new(strategy);
        voting.expected = models.iter().map(|m| m.kind()).collect();
        voting.min_quorum = voting.expected.len() / 2 + 1;
        Scorer { models, voting }
    }

    /// The voting configuration.
    pub fn voting(&self) -> &VotingConfig {
        &self.voting
    }

    /// P(violation) of each model (outer) at each candidate (inner), `None` where a model cannot
    /// score (missing features). One batch per model.
    pub fn probabilities(
        &self,
        features: &Features,
        ready: u32,
        candidates: &[u32],
        fit: Option<Fit>,
    ) -> Vec<Option<Vec<f64>>> {
        let projected: Vec<Features> = candidates
            .iter()
            .map(|&n| project(features, ready, n, fit))
            .collect();
        self.models
            .iter()
            .map(|m| {
                let rows: Result<Vec<Vec<f64>>, _> = candidates
                    .iter()
                    .zip(&projected)
                    .map(|(&n, f)| input_row(f, Some(n), m.feature_names()))
                    .collect();
                rows.ok().and_then(|rows| m.predict_proba_batch(&rows).ok())
            })
            .collect()
    }

    /// Tally the models' ballots at one candidate (index `i` of `probs`'s inner vectors).
    pub fn ballots(&self, probs: &[Option<Vec<f64>>], i: usize) -> Vec<ModelBallot> {
        self.models
            .iter()
            .zip(probs)
            .map(|(m, p)| {
                let p = p.as_ref().map(|v| v[i]);
                ModelBallot {
                    model: m.kind(),
                    ballot: match p {
                        Some(p) if p > m.threshold() => Ballot::Up,
                        Some(_) => Ballot::NoAction,
                        None => Ballot::Abstain,
                    },
                    probability: p,
                    confidence: p.map(|p| p.max(1.0 - p)),
                    probability_one_fewer: None,
                    threshold: m.threshold(),
                }
            })
            .collect()
    }

    /// Does the rule predict a violation at `n` replicas for the load measured at `ready`?
    /// `None` when fewer than the quorum of models could score.
    pub fn violation_at(&self, features: &Features, ready: u32, n: u32) -> Option<bool> {
        let probs = self.probabilities(features, ready, &[n], None);
        if probs.iter().filter(|p| p.is_some()).count() < self.voting.min_quorum {
            return None;
        }
        Some(tally(&self.voting, &self.ballots(&probs, 0)).scale_up)
    }
}

/// The ensemble policy for one service.
pub struct Ensemble {
    scorer: Scorer,
    spec: PolicySpec,
    curve: LatencyCurve,
    last_ready: Option<u32>,
}

impl std::fmt::Debug for Ensemble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ensemble")
            .field("scorer", &self.scorer)
            .finish()
    }
}

impl Ensemble {
    /// From a spec and the models.
    pub fn from_spec(
        spec: &PolicySpec,
        ctx: &PolicyContext,
        models: Arc<Vec<Arc<dyn Model>>>,
    ) -> Result<Self, String> {
        let strategy = match spec.params.get("strategy") {
            None => ctx.strategy.unwrap_or(Strategy::Majority),
            Some(0.0) => Strategy::Majority,
            Some(1.0) => Strategy::Unanimous,
            Some(2.0) => Strategy::Weighted,
            Some(v) => {
                return Err(format!(
                    "strategy = {v}: 0 majority, 1 unanimous, 2 weighted"
                ))
            }
        };
        if models.is_empty() {
            return Err("no models".into());
        }
        let mut scorer = Scorer::new(models, strategy);
        if let Some(&bar) = spec.params.get("scale_down_max_probability") {
            if !(0.0..=1.0).contains(&bar) {
                return Err(format!(
                    "scale_down_max_probability = {bar} must be in [0, 1]"
                ));
            }
            scorer.voting.scale_down_max_probability = bar;
        }
        Ok(Ensemble {
            scorer,
            spec: spec.clone(),
            curve: LatencyCurve::default(),
            last_ready: None,
        })
    }

    /// The candidate counts for `current` within `bounds`.
    pub fn candidates(current: u32, bounds: crate::Bounds) -> Vec<u32> {
        let lo = bounds.clamp(current.saturating_sub(MAX_STEP_DOWN));
        let hi = bounds.clamp((MAX_UP_FACTOR * current.max(1) as f64).ceil() as u32);
        (lo..=hi.max(lo)).collect()
    }

    /// Learn the curve from a poll (as [`crate::capacity::Capacity`] does).
    fn learn(&mut self, obs: &Observation<'_>) {
        let f = obs.features;
        let ready = obs.ready_replicas;
        let steady = self.last_ready == Some(ready) && ready > 0 && ready == obs.replicas;
        if let (true, Some(rps), Some(p95)) = (steady, f.request_rate_rps, f.p95_latency_ms) {
            self.curve.observe(
                rps / ready as f64,
                p95,
                f.error_rate_pct.unwrap_or(0.0),
                obs.sla_p95_ms,
            );
        }
        self.last_ready = Some(ready);
    }

    /// Score every candidate: the recommendation with its candidates and tallies.
    pub fn decide(&mut self, obs: &Observation<'_>) -> Recommendation {
        self.learn(obs);
        let current = obs.replicas;
        let candidates = Ensemble::candidates(current, obs.bounds);
        let ready = obs.ready_replicas.min(current).max(1);
        let probs = self
            .scorer
            .probabilities(obs.features, ready, &candidates, self.curve.fit());
        let scoring = probs.iter().filter(|p| p.is_some()).count();
        if scoring < self.scorer.voting.min_quorum {
            return Recommendation::new(
                obs.bounds.clamp(current),
                format!("{scoring} models could score (missing features): hold"),
            );
        }
        let bar = self.scorer.voting.scale_down_max_probability;
        let mut out = Vec::with_capacity(candidates.len());
        for (i, &n) in candidates.iter().enumerate() {
            let ballots = self.scorer.ballots(&probs, i);
            let t = tally(&self.scorer.voting, &ballots);
            let below_bar = ballots
                .iter()
                .all(|b| b.probability.is_none_or(|p| p <= bar));
            let safe = !t.scale_up && (n >= current || below_bar);
            out.push(Candidate {
                replicas: n,
                probabilities: ballots
                    .iter()
                    .filter_map(|b| b.probability.map(|p| (b.model.as_str().to_string(), p)))
                    .collect(),
                violation_votes: t.scale_up_votes,
                safe,
            });
        }
        let (n, reason) = match out.iter().find(|c| c.safe) {
            Some(c) => (
                c.replicas,
                format!(
                    "smallest count the {} rule finds safe",
                    self.scorer.voting.strategy
                ),
            ),
            None => (
                *candidates.last().unwrap_or(&current),
                "no candidate is safe: the largest".to_string(),
            ),
        };
        Recommendation {
            replicas: obs.bounds.clamp(n),
            reason,
            candidates: out,
        }
    }
}

impl Policy for Ensemble {
    fn name(&self) -> String {
        "ensemble".into()
    }

    fn params(&self) -> serde_json::Value {
        let mut v = params_json(
            &self.spec,
            &[(
                "scale_down_max_probability",
                self.scorer.voting.scale_down_max_probability,
            )],
        );
        v["strategy"] = serde_json::json!(self.scorer.voting.strategy.to_string());
        v
    }

    fn recommend(&mut self, obs: &Observation<'_>) -> Recommendation {
        self.decide(obs)
    }
}
