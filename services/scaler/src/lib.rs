//! # The authoritative scaler
//!
//! The only writer of replica counts. [`run`] consumes `model-votes`, gathers the votes of each
//! feature vector in a [`BallotBox`] until every expected model has voted or the decision window
//! has passed since the first vote, tallies them ([`autoscaler_voting::tally`]), passes the
//! result through the safety [`envelope`], actuates through an [`Actuator`], and publishes a
//! [`Decision`] with everything that explains it on `scaling-decisions`.
//!
//! Each vector is decided exactly once; late, duplicate and unknown-model votes are logged,
//! counted and change nothing. A vote that does not decode or breaks the contract goes to
//! `model-votes.dlq`.
#![deny(missing_docs)]

pub mod actuator;
pub mod envelope;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use autoscaler_bus::{dead_letter, Bus, BusError, Outgoing};
use autoscaler_contract::{
    decode, encode, Decision, Verdict, Vote, VoteSummary, DECISIONS_TOPIC, SCHEMA_VERSION,
    VOTES_TOPIC,
};
use autoscaler_voting::{
    safe_one_fewer, tally, BallotBox, ModelBallot, Offer, Ready, VotingConfig,
};
use tokio_util::sync::CancellationToken;

pub use actuator::{Actuator, ActuatorError, DryRunActuator, SimulatedActuator};
pub use envelope::{EnvelopeConfig, ServiceState};

/// Default decision window, seconds.
pub const DEFAULT_DECISION_WINDOW_SECS: u64 = 5;

/// Configuration of the scaler.
#[derive(Debug, Clone)]
pub struct ScalerConfig {
    /// Voting rule, expected models, weights.
    pub voting: VotingConfig,
    /// Decide at the latest this long after a vector's first vote.
    pub decision_window: Duration,
    /// Topic of votes.
    pub votes_topic: String,
    /// Topic of decisions.
    pub decisions_topic: String,
    /// Consumer group.
    pub group: String,
    /// The safety envelope.
    pub envelope: EnvelopeConfig,
    /// Decide and publish, but change nothing ("would scale").
    pub dry_run: bool,
}

impl ScalerConfig {
    /// Defaults: the given voting configuration, 5 s window, default topics and envelope.
    pub fn new(voting: VotingConfig) -> Self {
        ScalerConfig {
            voting,
            decision_window: Duration::from_secs(DEFAULT_DECISION_WINDOW_SECS),
            votes_topic: VOTES_TOPIC.into(),
            decisions_topic: DECISIONS_TOPIC.into(),
            group: "scaler".into(),
            envelope: EnvelopeConfig::default(),
            dry_run: false,
        }
    }

    /// Every problem with this configuration, all at once.
    pub fn problems(&self) -> Vec<String> {
        let mut p: Vec<String> = self
            .voting
            .problems()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        p.extend(self.envelope.problems());
        if self.decision_window.is_zero() {
            p.push("decision window must be greater than 0".into());
        }
        p
    }
}

/// What the scaler needs from outside.
pub struct ScalerDeps {
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// The actuator.
    pub actuator: Arc<dyn Actuator>,
}

/// Errors that stop the scaler.
#[derive(Debug, thiserror::Error)]
pub enum ScalerError {
    /// The configuration is invalid.
    #[error("invalid scaler configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The bus failed.
    #[error("bus: {0}")]
    Bus(#[from] BusError),
}

/// What the scaler did, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScalerReport {
    /// Decisions published.
    pub decisions: u64,
    /// Decisions that added replicas (or would have, in dry-run).
    pub scale_ups: u64,
    /// Decisions that removed replicas (or would have).
    pub scale_downs: u64,
    /// Decisions whose action the envelope changed or blocked.
    pub adjusted: u64,
    /// Failed actuations.
    pub actuation_failures: u64,
    /// Votes dead-lettered.
    pub dead_letters: u64,
    /// What the ballot box saw.
    pub ballot: autoscaler_voting::BoxCounters,
}

struct Scaler {
    cfg: ScalerConfig,
    deps: ScalerDeps,
    states: HashMap<String, ServiceState>,
    report: ScalerReport,
}

/// Run the scaler until `shutdown` is cancelled or the bus closes.
pub async fn run(
    cfg: ScalerConfig,
    deps: ScalerDeps,
    shutdown: CancellationToken,
) -> Result<ScalerReport, ScalerError> {
    let problems = cfg.problems();
    if !problems.is_empty() {
        return Err(ScalerError::Config(problems));
    }
    let mut sub = deps.bus.subscribe(&cfg.votes_topic, &cfg.group).await?;
    let mut ballots = BallotBox::new(cfg.voting.expected.clone(), cfg.decision_window);
    let origin = tokio::time::Instant::now();
    let mut s = Scaler {
        cfg,
        deps,
        states: HashMap::new(),
        report: ScalerReport::default(),
    };
    tracing::info!(strategy = %s.cfg.voting.strategy, actuator = s.deps.actuator.name(),
        window_ms = s.cfg.decision_window.as_millis() as u64, dry_run = s.cfg.dry_run,
        "scaler started");
    loop {
        let deadline = ballots.next_deadline().map(|d| origin + d);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = sleep_until_opt(deadline) => {
                for ready in ballots.expire(origin.elapsed()) {
                    s.decide(ready).await?;
                }
            }
            msg = sub.recv() => {
                let Some(msg) = msg else { break };
                let delivery = match msg {
                    Ok(d) => d,
                    Err(e) if e.is_retryable() => {
                        tracing::warn!(error = %e, "receiving votes failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let vote = decode::<Vote>(&delivery.payload).and_then(|v| v.validate().map(|_| v));
                match vote {
                    Err(e) => {
                        dead_letter(s.deps.bus.as_ref(), &delivery, &e.to_string()).await?;
                        s.report.dead_letters += 1;
                    }
                    Ok(vote) => {
                        let (id, model) = (vote.vector_id.clone(), vote.model);
                        match ballots.offer(vote, origin.elapsed()) {
                            Offer::Ready(ready) => s.decide(ready).await?,
                            Offer::Pending => {}
                            Offer::Duplicate => tracing::warn!(vector = %id, %model, "duplicate vote ignored"),
                            Offer::Late => tracing::warn!(vector = %id, %model, "late vote: vector already decided"),
                            Offer::UnknownModel => tracing::warn!(vector = %id, %model, "vote from a model that is not expected"),
                        }
                    }
                }
                sub.ack(&delivery).await?;
            }
        }
    }
    // Decide what is still open rather than drop it: the window is a maximum, not a minimum.
    for ready in ballots.expire(origin.elapsed() + s.cfg.decision_window) {
        s.decide(ready).await?;
    }
    s.deps.bus.flush(Duration::from_secs(5)).await?;
    s.report.ballot = ballots.counters();
    tracing::info!(decisions = s.report.decisions, "scaler stopped");
    Ok(s.report)
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Scaler {
    async fn decide(&mut self, ready: Ready) -> Result<(), ScalerError> {
        let Ready {
            vector_id,
            mut votes,
            complete,
        } = ready;
        votes.sort_by_key(|v| v.model);
        let first = &votes[0];
        let (service, metric_time) = (first.service.clone(), first.metric_time);
        let ballots: Vec<ModelBallot> = votes.iter().map(ModelBallot::from).collect();
        let t = tally(&self.cfg.voting, &ballots);
        let verdict = if t.scale_up {
            Verdict::ScaleUp
        } else if safe_one_fewer(&self.cfg.voting, &ballots) {
            Verdict::ScaleDown
        } else {
            Verdict::NoAction
        };
        let stale = t.scale_up_votes + t.no_action_votes == 0;

        let actuator = self.deps.actuator.clone();
        let (current, read_error) = match actuator.current(&service).await {
            Ok(n) => (Some(n), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let state = self.states.entry(service.clone()).or_default();
        let before = state.clone();
        let outcome = envelope::apply(
            &self.cfg.envelope,
            state,
            &envelope::Proposal {
                verdict,
                current,
                stale,
                at: metric_time,
            },
        );
        let mut adjustments = outcome.adjustments.clone();
        if let Some(e) = read_error {
            adjustments.push(format!("replicas could not be read: {e}"));
        }
        let changes = outcome.changes(current);
        let dry_run = self.cfg.dry_run || !actuator.changes_cluster();
        let mut acted = false;
        if changes {
            let to = outcome.to.expect("a change has a target");
            if dry_run {
                adjustments.push(format!("dry-run: would scale to {to}"));
            } else {
                match actuator.set_replicas(&service, to).await {
                    Ok(()) => acted = true,
                    Err(e) => {
                        envelope::record_failure(&before, state);
                        self.report.actuation_failures += 1;
                        tracing::error!(service, to, error = %e, "actuation failed");
                        adjustments.push(format!("actuation failed: {e}"));
                    }
                }
            }
        }
        let effective = acted || (changes && dry_run);
        if effective {
            match (current, outcome.to) {
                (Some(c), Some(t)) if t > c => self.report.scale_ups += 1,
                (Some(c), Some(t)) if t < c => self.report.scale_downs += 1,
                _ => {}
            }
        }
        if !adjustments.is_empty() {
            self.report.adjusted += 1;
        }
        let mut reason = t.reason.clone();
        if !complete {
            reason.push_str(&format!(
                "; decided at the end of the window without {}",
                t.missing
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if verdict == Verdict::ScaleDown {
            reason.push_str("; the models find one replica fewer safe");
        }
        let decision = Decision {
            schema_version: SCHEMA_VERSION,
            vector_id: vector_id.clone(),
            service: service.clone(),
            decision: verdict,
            timestamp: chrono::Utc::now(),
            metric_time,
            scale_up_votes: t.scale_up_votes,
            no_action_votes: t.no_action_votes,
            abstentions: t.abstentions,
            missing_models: t.missing.clone(),
            total_votes: votes.len() as u32,
            confidence: t.confidence,
            strategy: self.cfg.voting.strategy,
            weighted_score: t.weighted_score,
            votes: votes.iter().map(VoteSummary::from).collect(),
            from_replicas: current,
            to_replicas: if acted || dry_run {
                outcome.to
            } else {
                current
            },
            reason,
            adjustments,
            acted,
            dry_run,
        };
        tracing::debug!(vector = %vector_id, service, decision = ?verdict, acted, "decided");
        self.deps
            .bus
            .publish(Outgoing::new(
                &self.cfg.decisions_topic,
                service,
                encode(&decision),
            ))
            .await?;
        self.report.decisions += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
