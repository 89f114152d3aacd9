//! Builders of [`FeatureVector`], [`Vote`] and [`Decision`] for tests (feature `test-support`):
//! one place that knows every field, so a test names only what it is about.
//!
//! `vector("orders", 1).replicas(3).with(|f| f.cpu_usage_pct = Some(120.0)).build()`,
//! `vote("v1", ModelKind::Xgboost).up().build()`, `decision("v1", "orders").build()`.

use chrono::{DateTime, Utc};

use crate::{
    Decision, FeatureVector, Features, ModelKind, Strategy, VectorId, Verdict, Vote, VoteSummary,
    SCHEMA_VERSION,
};

/// Metric time of every fixture unless set: 1 720 000 000 s after the epoch (2024-07-03).
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_720_000_000, 0).expect("valid constant")
}

/// The id of `service`'s poll `poll` at [`t0`] (what [`vector`] gives its vector).
pub fn vector_id(service: &str, poll: u64) -> String {
    VectorId::new(service, poll, t0()).0
}

/// [`t0`] plus `secs` seconds.
pub fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

/// Builds a [`FeatureVector`]: fresh, at [`t0`], every feature missing, replicas unknown.
#[derive(Debug, Clone)]
pub struct VectorBuilder(FeatureVector);

/// A vector of `service`'s poll `poll`.
pub fn vector(service: &str, poll: u64) -> VectorBuilder {
    let t = t0();
    VectorBuilder(FeatureVector {
        schema_version: SCHEMA_VERSION,
        vector_id: VectorId::new(service, poll, t),
        timestamp: t,
        metric_time: t,
        service: service.into(),
        poll,
        replicas: None,
        stale: false,
        stale_reason: None,
        features: Features::default(),
    })
}

impl VectorBuilder {
    /// Metric time and timestamp `t` (the id follows).
    pub fn at(mut self, t: DateTime<Utc>) -> Self {
        self.0.timestamp = t;
        self.0.metric_time = t;
        self.0.vector_id = VectorId::new(&self.0.service, self.0.poll, t);
        self
    }

    /// This id instead of the derived one.
    pub fn id(mut self, id: &str) -> Self {
        self.0.vector_id = VectorId(id.into());
        self
    }

    /// The replica count.
    pub fn replicas(mut self, replicas: impl Into<Option<u32>>) -> Self {
        self.0.replicas = replicas.into();
        self
    }

    /// These features.
    pub fn features(mut self, features: Features) -> Self {
        self.0.features = features;
        self
    }

    /// Change the features, e.g. `.with(|f| f.p95_latency_ms = Some(40.0))`.
    pub fn with(mut self, change: impl FnOnce(&mut Features)) -> Self {
        change(&mut self.0.features);
        self
    }

    /// Stale, for `reason`.
    pub fn stale(mut self, reason: &str) -> Self {
        self.0.stale = true;
        self.0.stale_reason = Some(reason.into());
        self
    }

    /// The vector.
    pub fn build(self) -> FeatureVector {
        self.0
    }
}

/// Builds a [`Vote`]: an abstention-free "no action" by default (prediction 0, P = 0.1,
/// confidence 0.9, threshold 0.5) on service `orders` at [`t0`], model version `test`.
#[derive(Debug, Clone)]
pub struct VoteBuilder(Vote);

/// `model`'s vote on the vector with id `id`, taken as given: a vote that must pass
/// [`Vote::validate`] needs an id naming its service ([`VectorId::new`], or [`vector_id`]).
pub fn vote(id: &str, model: ModelKind) -> VoteBuilder {
    let t = t0();
    VoteBuilder(Vote {
        schema_version: SCHEMA_VERSION,
        vector_id: VectorId(id.into()),
        timestamp: t,
        metric_time: t,
        service: "orders".into(),
        model,
        model_version: "test".into(),
        prediction: Some(0),
        probability: Some(0.1),
        confidence: Some(0.9),
        threshold: 0.5,
        abstain_reason: None,
        replicas: None,
        probability_one_fewer: None,
        p95_latency_ms: None,
    })
}

impl VoteBuilder {
    /// SCALE UP (prediction 1, P = 0.9) when `up`, else NO ACTION (prediction 0, P = 0.1).
    pub fn ballot(mut self, up: bool) -> Self {
        self.0.prediction = Some(up as u8);
        self.0.probability = Some(if up { 0.9 } else { 0.1 });
        self
    }

    /// SCALE UP.
    pub fn up(self) -> Self {
        self.ballot(true)
    }

    /// An abstention for `reason`.
    pub fn abstain(mut self, reason: &str) -> Self {
        self.0.prediction = None;
        self.0.probability = None;
        self.0.confidence = None;
        self.0.abstain_reason = Some(reason.into());
        self
    }

    /// The service.
    pub fn service(mut self, service: &str) -> Self {
        self.0.service = service.into();
        self
    }

    /// Metric time and timestamp `t`.
    pub fn at(mut self, t: DateTime<Utc>) -> Self {
        self.0.timestamp = t;
        self.0.metric_time = t;
        self
    }

    /// Metric time `t` only.
    pub fn metric_time(mut self, t: DateTime<Utc>) -> Self {
        self.0.metric_time = t;
        self
    }

    /// The model version.
    pub fn version(mut self, version: &str) -> Self {
        self.0.model_version = version.into();
        self
    }

    /// The replica count the model saw.
    pub fn replicas(mut self, replicas: impl Into<Option<u32>>) -> Self {
        self.0.replicas = replicas.into();
        self
    }

    /// P(violation) at one replica fewer.
    pub fn one_fewer(mut self, p: impl Into<Option<f64>>) -> Self {
        self.0.probability_one_fewer = p.into();
        self
    }

    /// The vote.
    pub fn build(self) -> Vote {
        self.0
    }
}

/// The three models' votes on vector `id`, all alike (`change` sets them up).
pub fn votes(id: &str, change: impl Fn(VoteBuilder) -> VoteBuilder) -> Vec<Vote> {
    ModelKind::ALL
        .into_iter()
        .map(|m| change(vote(id, m)).build())
        .collect()
}

/// Builds a [`Decision`]: a majority SCALE UP of three votes, 2 → 3 replicas, acted on, decided
/// and measured at [`t0`].
#[derive(Debug, Clone)]
pub struct DecisionBuilder(Decision);

/// The decision on vector `id` of `service`.
pub fn decision(id: &str, service: &str) -> DecisionBuilder {
    let t = t0();
    DecisionBuilder(Decision {
        schema_version: SCHEMA_VERSION,
        vector_id: VectorId(id.into()),
        service: service.into(),
        decision: Verdict::ScaleUp,
        timestamp: t,
        metric_time: t,
        scale_up_votes: 3,
        no_action_votes: 0,
        abstentions: 0,
        missing_models: vec![],
        total_votes: 3,
        confidence: 0.9,
        strategy: Strategy::Majority,
        weighted_score: None,
        votes: vec![],
        from_replicas: Some(2),
        to_replicas: Some(3),
        reason: "test".into(),
        adjustments: vec![],
        acted: true,
        dry_run: false,
    })
}

impl DecisionBuilder {
    /// The decision on this vector (its id, service, metric time and replicas as "from").
    pub fn of(v: &FeatureVector) -> Self {
        decision(&v.vector_id.0, &v.service)
            .metric_time(v.metric_time)
            .decided_at(v.metric_time)
            .replicas(v.replicas, Some(3))
    }

    /// The vector's metric time.
    pub fn metric_time(mut self, t: DateTime<Utc>) -> Self {
        self.0.metric_time = t;
        self
    }

    /// When it was decided.
    pub fn decided_at(mut self, t: DateTime<Utc>) -> Self {
        self.0.timestamp = t;
        self
    }

    /// Replicas from → to.
    pub fn replicas(mut self, from: Option<u32>, to: Option<u32>) -> Self {
        self.0.from_replicas = from;
        self.0.to_replicas = to;
        self
    }

    /// The verdict.
    pub fn verdict(mut self, verdict: Verdict) -> Self {
        self.0.decision = verdict;
        self
    }

    /// The mean confidence.
    pub fn confidence(mut self, confidence: f64) -> Self {
        self.0.confidence = confidence;
        self
    }

    /// The votes it carries.
    pub fn votes(mut self, votes: &[Vote]) -> Self {
        self.0.votes = votes.iter().map(VoteSummary::from).collect();
        self
    }

    /// The decision.
    pub fn build(self) -> Decision {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_fill_valid_messages_and_set_what_they_name() {
        let v = vector("orders", 1)
            .replicas(3)
            .with(|f| f.cpu_usage_pct = Some(120.0))
            .build();
        assert_eq!(
            (v.replicas, v.features.cpu_usage_pct),
            (Some(3), Some(120.0))
        );
        assert!(v.validate(None, 60).is_ok());
        assert_eq!(v.vector_id, VectorId::new("orders", 1, t0()));
        let later = vector("orders", 2).at(at(30)).build();
        assert_eq!(later.vector_id, VectorId::new("orders", 2, at(30)));
        let id = vector_id("orders", 1);
        assert_eq!(id, v.vector_id.0);
        let up = vote(&id, ModelKind::Xgboost).up().build();
        assert_eq!((up.prediction, up.probability), (Some(1), Some(0.9)));
        assert!(up.validate().is_ok());
        let abstain = vote(&id, ModelKind::RandomForest).abstain("stale").build();
        assert!(abstain.validate().is_ok());
        assert_eq!(votes("v1", |b| b.up()).len(), 3);
        let d = DecisionBuilder::of(&later).build();
        assert_eq!((d.vector_id, d.metric_time), (later.vector_id, at(30)));
    }
}
