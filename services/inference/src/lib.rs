//! # An inference service
//!
//! One model per process (or per task, in the embedded mode). [`run`] consumes `metrics` in its
//! own consumer group (`inference-<model>`), and for every feature vector publishes exactly one
//! [`Vote`] on `model-votes`: P(SLA violation within the model's horizon), the prediction against
//! the model's threshold, and P(violation) at one replica fewer so the scaler can tell whether a
//! scale-down is safe.
//!
//! A stale vector, or one missing a feature the model needs, gets an explicit **abstention** with
//! the reason — never a guess, never a missing value read as 0. A message that does not decode or
//! breaks the contract goes to `metrics.dlq` with the reason, and the service goes on.
//!
//! A model taking history features (lags, rolling statistics, time of day, service identity:
//! [`autoscaler_models::history`]) gets them from the vectors this service has seen: a bounded
//! [`History`] per service (the last [`autoscaler_models::history::HISTORY_LEN`] polls), built
//! with the same rules and the same feature function as training and evaluation. Until a
//! service's window holds [`autoscaler_models::history::MIN_HISTORY_POINTS`] polls, such a model
//! abstains ("not enough history").
#![deny(missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autoscaler_bus::{
    dead_letter_retrying, publish_pipelined_retrying, Backoff, Bus, BusError, Outgoing,
};
use autoscaler_contract::{
    decode_vector, encode, ClockMode, FeatureVector, ModelKind, SkewCheck, Vote, METRICS_TOPIC,
    SCHEMA_VERSION, VOTES_TOPIC,
};
use autoscaler_models::history::{
    input_row_from_history, is_history_feature, History, HistoryPoint,
};
use autoscaler_models::{input_row, input_row_one_fewer, is_known_feature, Model};
use autoscaler_telemetry::predictions::{PredictionLog, DEFAULT_PREDICTIONS_MAX_BYTES};
use tokio_util::sync::CancellationToken;

/// Default allowed skew of a vector (|now − metric time|), seconds; as in the Sock Shop seed.
pub const DEFAULT_MAX_SKEW_SECS: u64 = autoscaler_contract::DEFAULT_MAX_SKEW_SECS;

/// Configuration of one inference service.
#[derive(Debug, Clone)]
pub struct InferenceConfig {
    /// Which model this service runs.
    pub model: ModelKind,
    /// Topic of feature vectors.
    pub metrics_topic: String,
    /// Topic of votes.
    pub votes_topic: String,
    /// Consumer group (`inference-<model>` by default).
    pub group: String,
    /// Dead-letter vectors older than this at arrival, or further ahead of the clock; `None`
    /// disables the check (in-process replays, whose metric time is simulated; over a bus use
    /// [`ClockMode::Replay`] instead).
    pub max_skew_secs: Option<u64>,
    /// Append every vote to `<dir>/predictions_<model>.csv` (see `autoscaler_telemetry::predictions`);
    /// `None`: no prediction log.
    pub predictions_dir: Option<PathBuf>,
    /// Rotate the prediction log past this size, bytes.
    pub predictions_max_bytes: u64,
    /// The clock vectors are checked against.
    pub clock: ClockMode,
}

impl InferenceConfig {
    /// Defaults for `model`.
    pub fn new(model: ModelKind) -> Self {
        InferenceConfig {
            model,
            metrics_topic: METRICS_TOPIC.into(),
            votes_topic: VOTES_TOPIC.into(),
            group: format!("inference-{model}"),
            max_skew_secs: Some(DEFAULT_MAX_SKEW_SECS),
            predictions_dir: None,
            predictions_max_bytes: DEFAULT_PREDICTIONS_MAX_BYTES,
            clock: ClockMode::Wall,
        }
    }
}

/// What the service needs from outside.
pub struct InferenceDeps {
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// The loaded model.
    pub model: Arc<dyn Model>,
}

/// Errors that stop the service.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// The model given is not the one configured.
    #[error("configured for {configured} but the loaded model is {loaded}")]
    WrongModel {
        /// Configured.
        configured: ModelKind,
        /// Loaded.
        loaded: ModelKind,
    },
    /// The model takes inputs a feature vector cannot give.
    #[error("model {version} takes features a feature vector does not have: {} (known: the ten contract features, rps_per_replica, cpu_per_replica_pct)", .unknown.join(", "))]
    FeatureMismatch {
        /// The model's version.
        version: String,
        /// Its unknown features.
        unknown: Vec<String>,
    },
    /// The bus failed.
    #[error("bus")]
    Bus(#[from] BusError),
    /// The prediction log's directory cannot be created.
    #[error(transparent)]
    Predictions(#[from] autoscaler_telemetry::predictions::PredictionLogError),
    /// The configuration is invalid.
    #[error("invalid inference configuration: {}", .0.join("; "))]
    Config(Vec<String>),
}

/// What the service did, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InferenceReport {
    /// Votes published (abstentions included).
    pub votes: u64,
    /// Of which abstentions.
    pub abstentions: u64,
    /// Vectors dead-lettered.
    pub dead_letters: u64,
    /// Models swapped in while running.
    pub reloads: u64,
    /// Dead-letter copies that could not be published (after retries).
    pub dead_letter_failures: u64,
}

/// The vote of `model` on `vector`. Pure: no I/O.
pub fn vote_for(model: &dyn Model, vector: &FeatureVector) -> Vote {
    vote_with_history(model, &[HistoryPoint::of_vector(vector)], vector)
}

/// The vote of `model` on `vector`, whose service's recent polls are `window` (oldest first,
/// `vector`'s own point last, as [`History::push`] returns it). Pure: no I/O.
pub fn vote_with_history(
    model: &dyn Model,
    window: &[HistoryPoint],
    vector: &FeatureVector,
) -> Vote {
    let names = model.feature_names();
    let with_history = names.iter().any(|n| is_history_feature(n));
    let threshold = model.threshold();
    let mut vote = Vote {
        schema_version: SCHEMA_VERSION,
        vector_id: vector.vector_id.clone(),
        timestamp: vector.timestamp,
        metric_time: vector.metric_time,
        service: vector.service.clone(),
        model: model.kind(),
        model_version: model.version().to_string(),
        prediction: None,
        probability: None,
        confidence: None,
        threshold,
        abstain_reason: None,
        replicas: vector.replicas,
        probability_one_fewer: None,
        p95_latency_ms: vector.features.p95_latency_ms,
    };
    if vector.stale {
        vote.abstain_reason = Some(format!(
            "stale input: {}",
            vector.stale_reason.as_deref().unwrap_or("no reason given")
        ));
        return vote;
    }
    // The one feature function (the same as training's) when the model takes history.
    let row_at = |replicas: Option<u32>| {
        if with_history {
            input_row_from_history(window, &vector.service, replicas, names)
        } else {
            input_row(&vector.features, replicas, names)
        }
    };
    let p = row_at(vector.replicas).and_then(|row| model.predict_proba(&row));
    match p {
        Err(e) => {
            vote.abstain_reason = Some(autoscaler_contract::truncate_text(
                &e.to_string(),
                autoscaler_contract::MAX_REASON_LEN,
            ))
        }
        Ok(p) if !(0.0..=1.0).contains(&p) => {
            // NaN (e.g. a logistic regression overflowing on an extreme input) or out of range:
            // the model cannot say, so it abstains rather than cast a vote the scaler must
            // dead-letter.
            vote.abstain_reason = Some(format!("the model returned P = {p}, not a probability"));
        }
        Ok(p) => {
            let up = p > threshold;
            vote.prediction = Some(up as u8);
            vote.probability = Some(p);
            vote.confidence = Some(if up { p } else { 1.0 - p });
            // Not computable at one replica (or unknown): the scaler then never scales down.
            vote.probability_one_fewer = if with_history {
                // Every per-replica feature (current and rolling) at one replica fewer.
                vector
                    .replicas
                    .filter(|r| *r > 1)
                    .and_then(|r| row_at(Some(r - 1)).ok())
                    .and_then(|row| model.predict_proba(&row).ok())
            } else {
                input_row_one_fewer(&vector.features, vector.replicas, names)
                    .and_then(|row| model.predict_proba(&row))
                    .ok()
            }
            .filter(|p| (0.0..=1.0).contains(p));
        }
    }
    vote
}

/// Run the service until `shutdown` is cancelled or the bus closes.
pub async fn run(
    cfg: InferenceConfig,
    deps: InferenceDeps,
    shutdown: CancellationToken,
) -> Result<InferenceReport, InferenceError> {
    let (_keep, models) = tokio::sync::watch::channel(deps.model.clone());
    run_with_reload(cfg, deps, models, shutdown).await
}

/// Check that `model` is the configured kind and that every one of its inputs can be built
/// from a feature vector (the ten contract features, and the per-replica ones).
pub fn check_model(cfg: &InferenceConfig, model: &dyn Model) -> Result<(), InferenceError> {
    if model.kind() != cfg.model {
        return Err(InferenceError::WrongModel {
            configured: cfg.model,
            loaded: model.kind(),
        });
    }
    let unknown: Vec<String> = model
        .feature_names()
        .iter()
        .filter(|n| !is_known_feature(n))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(InferenceError::FeatureMismatch {
            version: model.version().to_string(),
            unknown,
        });
    }
    Ok(())
}

/// [`run`], swapping in the model sent on `models` whenever it changes (e.g. reloaded on
/// SIGHUP). The swap happens between two vectors: each vector is voted on exactly once, by the
/// old model or the new one. A model that fails [`check_model`] is refused (logged) and the
/// current one kept.
pub async fn run_with_reload(
    cfg: InferenceConfig,
    deps: InferenceDeps,
    mut models: tokio::sync::watch::Receiver<Arc<dyn Model>>,
    shutdown: CancellationToken,
) -> Result<InferenceReport, InferenceError> {
    let mut deps = deps;
    check_model(&cfg, deps.model.as_ref())?;
    let predictions = match &cfg.predictions_dir {
        Some(dir) => Some(PredictionLog::new(
            dir,
            cfg.model,
            cfg.predictions_max_bytes,
        )?),
        None => None,
    };
    autoscaler_telemetry::set_model_version(cfg.model, deps.model.version());
    let mut sub = deps.bus.subscribe(&cfg.metrics_topic, &cfg.group).await?;
    let mut report = InferenceReport::default();
    let mut skew = cfg
        .max_skew_secs
        .map(|secs| SkewCheck::new(cfg.clock, secs));
    if let Some(p) = skew
        .as_ref()
        .map(SkewCheck::problems)
        .filter(|p| !p.is_empty())
    {
        return Err(InferenceError::Config(p));
    }
    let mut recv_backoff = Backoff::new(
        Duration::from_millis(200),
        autoscaler_bus::OUTAGE_BACKOFF_MAX,
    );
    let mut recv_failures = 0u64;
    // The recent polls of each service (bounded), for models taking history features.
    let mut history = History::default();
    tracing::info!(model = %cfg.model, version = deps.model.version(), group = %cfg.group,
        clock = %cfg.clock, "inference started");
    loop {
        let msg = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            msg = sub.recv() => msg,
        };
        let Some(msg) = msg else { break };
        let delivery = match msg {
            Ok(d) => d,
            Err(e) if e.is_retryable() => {
                recv_failures += 1;
                if recv_failures % 10 == 1 {
                    tracing::warn!(error = %e, failures = recv_failures,
                        "receiving vectors failed; waiting for the broker");
                }
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(recv_backoff.next_delay()) => {}
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if recv_failures > 0 {
            tracing::info!(failures = recv_failures, "receiving vectors again");
            recv_failures = 0;
            recv_backoff = Backoff::new(
                Duration::from_millis(200),
                autoscaler_bus::OUTAGE_BACKOFF_MAX,
            );
        }
        // Ours, or the Sock Shop seed's legacy form (autoscaler_contract::legacy).
        let vector = decode_vector(&delivery.payload)
            .and_then(|v| v.validate(None, 0).map(|_| v))
            .and_then(|v| match skew.as_mut() {
                Some(check) => check.check(chrono::Utc::now(), v.metric_time).map(|_| v),
                None => Ok(v),
            });
        match vector {
            Err(e) => {
                if !dead_letter_retrying(deps.bus.as_ref(), &delivery, &e.to_string()).await {
                    report.dead_letter_failures += 1;
                }
                report.dead_letters += 1;
            }
            Ok(vector) => {
                if models.has_changed().unwrap_or(false) {
                    let next = models.borrow_and_update().clone();
                    match check_model(&cfg, next.as_ref()) {
                        Ok(()) => {
                            tracing::info!(model = %cfg.model, from = deps.model.version(),
                                to = next.version(), "model reloaded");
                            deps.model = next;
                            report.reloads += 1;
                            autoscaler_telemetry::set_model_version(
                                cfg.model,
                                deps.model.version(),
                            );
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "refusing the reloaded model; keeping the current one")
                        }
                    }
                }
                // A stale vector's measurements are old: they never enter the history.
                let vote = if vector.stale {
                    vote_for(deps.model.as_ref(), &vector)
                } else {
                    let window = history.push(&vector.service, HistoryPoint::of_vector(&vector));
                    vote_with_history(deps.model.as_ref(), window, &vector)
                };
                if let Some(reason) = &vote.abstain_reason {
                    report.abstentions += 1;
                    tracing::info!(vector = %vote.vector_id, model = %cfg.model, reason, "abstained");
                }
                let msg = Outgoing::new(&cfg.votes_topic, &vote.service, encode(&vote));
                if !publish_pipelined_retrying(deps.bus.as_ref(), msg, &shutdown).await? {
                    // Stopping during an outage: the vector is not acknowledged, so a restart
                    // votes on it.
                    break;
                }
                report.votes += 1;
                autoscaler_telemetry::record_vote(&vote);
                if let Some(log) = &predictions {
                    if let Err(e) = log.append(&vector, &vote) {
                        tracing::error!(error = %e, "prediction not logged");
                    }
                }
            }
        }
        // The output is published: the input is done once the bus has it acknowledged (a
        // pipelined publish defers this ack's offset until then).
        sub.ack(&delivery).await?;
    }
    deps.bus.flush(Duration::from_secs(5)).await?;
    sub.close().await?;
    tracing::info!(model = %cfg.model, votes = report.votes, "inference stopped");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoscaler_bus::{MemoryBus, Overflow};
    use autoscaler_contract::decode;
    use autoscaler_contract::fixtures;
    use autoscaler_models::ModelError;

    /// A fake model: P(violation) = cpu_per_replica_pct / 100, clamped.
    struct CpuModel {
        names: Vec<String>,
    }

    impl Model for CpuModel {
        fn kind(&self) -> ModelKind {
            ModelKind::LogisticRegression
        }
        fn version(&self) -> &str {
            "fake-1"
        }
        fn threshold(&self) -> f64 {
            0.5
        }
        fn feature_names(&self) -> &[String] {
            &self.names
        }
        fn predict_proba_batch(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, ModelError> {
            Ok(rows
                .iter()
                .map(|r| (r[1] / 100.0).clamp(0.0, 1.0))
                .collect())
        }
    }

    fn model() -> CpuModel {
        CpuModel {
            names: vec!["p95_latency_ms".into(), "cpu_per_replica_pct".into()],
        }
    }

    fn vector(cpu: Option<f64>, replicas: Option<u32>) -> FeatureVector {
        fixtures::vector("orders", 1)
            .replicas(replicas)
            .with(|f| {
                f.p95_latency_ms = Some(40.0);
                f.cpu_usage_pct = cpu;
            })
            .build()
    }

    #[test]
    fn votes_with_probability_and_one_fewer() {
        let v = vote_for(&model(), &vector(Some(120.0), Some(3)));
        assert_eq!(v.prediction, Some(0));
        assert!((v.probability.unwrap() - 0.4).abs() < 1e-12);
        assert!((v.confidence.unwrap() - 0.6).abs() < 1e-12);
        assert!((v.probability_one_fewer.unwrap() - 0.6).abs() < 1e-12);
        assert_eq!(v.p95_latency_ms, Some(40.0), "the vector's p95 rides along");
        assert!(v.validate().is_ok());
        let one = vote_for(&model(), &vector(Some(40.0), Some(1)));
        assert_eq!(one.probability_one_fewer, None, "no fewer than one");
    }

    #[test]
    fn abstains_on_missing_or_stale_never_reads_zero() {
        let v = vote_for(&model(), &vector(None, Some(3)));
        assert_eq!(v.prediction, None);
        assert!(v
            .abstain_reason
            .as_deref()
            .unwrap()
            .contains("cpu_per_replica_pct"));
        let v = vote_for(&model(), &vector(Some(50.0), None));
        assert!(v.abstain_reason.as_deref().unwrap().contains("replicas"));
        let mut stale = vector(Some(50.0), Some(2));
        stale.stale = true;
        stale.stale_reason = Some("prometheus unreachable".into());
        let v = vote_for(&model(), &stale);
        assert!(v
            .abstain_reason
            .as_deref()
            .unwrap()
            .contains("prometheus unreachable"));
        assert!(v.validate().is_ok());
    }

    #[tokio::test]
    async fn one_vote_per_vector_and_bad_input_is_dead_lettered() {
        let bus = MemoryBus::new(16, Overflow::Block);
        let mut votes = bus.subscribe(VOTES_TOPIC, "t").await.unwrap();
        let mut dlq = bus.subscribe("metrics.dlq", "t").await.unwrap();
        let shutdown = CancellationToken::new();
        let mut cfg = InferenceConfig::new(ModelKind::LogisticRegression);
        cfg.max_skew_secs = Some(60);
        let task = tokio::spawn(run(
            cfg,
            InferenceDeps {
                bus: Arc::new(bus.clone()),
                model: Arc::new(model()),
            },
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut fresh = vector(Some(90.0), Some(1));
        fresh.metric_time = chrono::Utc::now();
        let old = vector(Some(90.0), Some(1)); // metric time in 2024: too old
        for payload in [
            encode(&fresh),
            b"garbage".to_vec(),
            encode(&old),
            br#"{"schema_version":2}"#.to_vec(),
        ] {
            bus.publish(Outgoing::new(METRICS_TOPIC, "orders", payload))
                .await
                .unwrap();
        }
        let v: Vote = decode(&votes.recv().await.unwrap().unwrap().payload).unwrap();
        assert_eq!(v.prediction, Some(1));
        let mut reasons = Vec::new();
        for _ in 0..3 {
            let d = dlq.recv().await.unwrap().unwrap();
            reasons.push(d.headers[0].1.clone());
        }
        assert!(reasons[0].contains("malformed"), "{reasons:?}");
        assert!(reasons[1].contains("old"), "{reasons:?}");
        assert!(reasons[2].contains("schema_version"), "{reasons:?}");
        shutdown.cancel();
        let r = task.await.unwrap().unwrap();
        assert_eq!((r.votes, r.dead_letters), (1, 3));
    }
}

#[cfg(test)]
mod hardening_tests {
    use super::*;
    use autoscaler_bus::{Delivery, MemoryBus, Overflow, Subscription};
    use autoscaler_contract::decode;
    use autoscaler_models::ModelError;

    /// A model answering a fixed probability (NaN included).
    struct Const(f64, Vec<String>);

    impl Model for Const {
        fn kind(&self) -> ModelKind {
            ModelKind::LogisticRegression
        }
        fn version(&self) -> &str {
            "const"
        }
        fn threshold(&self) -> f64 {
            0.5
        }
        fn feature_names(&self) -> &[String] {
            &self.1
        }
        fn predict_proba_batch(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, ModelError> {
            Ok(vec![self.0; rows.len()])
        }
    }

    fn vector_at(t: chrono::DateTime<chrono::Utc>) -> FeatureVector {
        autoscaler_contract::fixtures::vector("orders", 1)
            .at(t)
            .replicas(2)
            .with(|f| f.p95_latency_ms = Some(40.0))
            .build()
    }

    /// Low: a NaN from the model is an abstention with the reason, a valid vote.
    #[test]
    fn a_nan_probability_is_an_abstention() {
        let m = Const(f64::NAN, vec!["p95_latency_ms".into()]);
        let v = vote_for(&m, &vector_at(chrono::Utc::now()));
        assert_eq!((v.prediction, v.probability), (None, None));
        assert!(
            v.abstain_reason.as_deref().unwrap().contains("NaN"),
            "{v:?}"
        );
        assert!(v.validate().is_ok());
    }

    /// A bus whose dead-letter topics refuse everything.
    struct NoDlq(MemoryBus);

    #[async_trait::async_trait]
    impl Bus for NoDlq {
        async fn publish(&self, msg: Outgoing) -> Result<(), BusError> {
            if msg.topic.ends_with(".dlq") {
                return Err(BusError::Fatal("refused".into()));
            }
            self.0.publish(msg).await
        }
        async fn subscribe(&self, t: &str, g: &str) -> Result<Box<dyn Subscription>, BusError> {
            self.0.subscribe(t, g).await
        }
        async fn flush(&self, t: Duration) -> Result<(), BusError> {
            self.0.flush(t).await
        }
    }

    async fn recv(s: &mut Box<dyn Subscription>) -> Delivery {
        tokio::time::timeout(Duration::from_secs(30), s.recv())
            .await
            .expect("in time")
            .unwrap()
            .unwrap()
    }

    /// Critical 1 and 2: a vector from the far future is dead-lettered (its skew is checked
    /// both ways); when the dead-letter topic refuses it too, the service counts that and
    /// goes on voting.
    #[tokio::test(start_paused = true)]
    async fn far_future_vectors_are_refused_and_a_failed_dead_letter_is_not_fatal() {
        let mem = MemoryBus::new(16, Overflow::Block);
        let mut votes = mem.subscribe(VOTES_TOPIC, "t").await.unwrap();
        let shutdown = CancellationToken::new();
        let cfg = InferenceConfig::new(ModelKind::LogisticRegression);
        let task = tokio::spawn(run(
            cfg,
            InferenceDeps {
                bus: Arc::new(NoDlq(mem.clone())),
                model: Arc::new(Const(0.9, vec!["p95_latency_ms".into()])),
            },
            shutdown.clone(),
        ));
        while mem.groups(METRICS_TOPIC) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let future = vector_at(chrono::Utc::now() + chrono::Duration::days(365));
        let fresh = vector_at(chrono::Utc::now());
        for v in [&future, &fresh] {
            mem.publish(Outgoing::new(METRICS_TOPIC, "orders", encode(v)))
                .await
                .unwrap();
        }
        let v: Vote = decode(&recv(&mut votes).await.payload).unwrap();
        assert_eq!(v.metric_time, fresh.metric_time);
        shutdown.cancel();
        let r = task.await.unwrap().unwrap();
        assert_eq!((r.votes, r.dead_letters, r.dead_letter_failures), (1, 1, 1));
    }
}

#[cfg(test)]
mod history_tests {
    use super::*;
    use autoscaler_bus::{MemoryBus, Overflow};
    use autoscaler_contract::{decode, fixtures};
    use autoscaler_models::ModelError;
    use chrono::DateTime;

    /// P(violation) = previous poll's p95 / 100; the per-replica rolling CPU rides along.
    struct LagModel {
        names: Vec<String>,
    }

    impl Model for LagModel {
        fn kind(&self) -> ModelKind {
            ModelKind::RandomForest
        }
        fn version(&self) -> &str {
            "lag-1"
        }
        fn threshold(&self) -> f64 {
            0.5
        }
        fn feature_names(&self) -> &[String] {
            &self.names
        }
        fn predict_proba_batch(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, ModelError> {
            Ok(rows
                .iter()
                .map(|r| (r[0] / 100.0 + r[1] / 1000.0).clamp(0.0, 1.0))
                .collect())
        }
    }

    fn vector(poll: u64, p95: f64) -> FeatureVector {
        let t = DateTime::from_timestamp(1_720_000_000 + poll as i64 * 30, 0).unwrap();
        fixtures::vector("orders", poll)
            .at(t)
            .replicas(2)
            .with(|f| {
                f.p95_latency_ms = Some(p95);
                f.cpu_usage_pct = Some(100.0);
            })
            .build()
    }

    #[tokio::test]
    async fn history_features_come_from_the_vectors_seen_and_abstain_before_enough() {
        let bus = MemoryBus::new(16, Overflow::Block);
        let mut votes = bus.subscribe(VOTES_TOPIC, "t").await.unwrap();
        let mut cfg = InferenceConfig::new(ModelKind::RandomForest);
        cfg.max_skew_secs = None;
        let model = LagModel {
            names: vec![
                "p95_latency_ms_lag1".into(),
                "cpu_per_replica_roll_mean".into(),
            ],
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            cfg,
            InferenceDeps {
                bus: Arc::new(bus.clone()),
                model: Arc::new(model),
            },
            shutdown.clone(),
        ));
        // The service subscribes inside `run`: a vector published before its group exists is
        // not delivered to it.
        while bus.groups(METRICS_TOPIC) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for (poll, p95) in [(1, 10.0), (2, 20.0), (3, 30.0)] {
            bus.publish(Outgoing::new(
                METRICS_TOPIC,
                "orders",
                encode(&vector(poll, p95)),
            ))
            .await
            .unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..3 {
            let v: Vote = decode(&votes.recv().await.unwrap().unwrap().payload).unwrap();
            got.push(v);
        }
        assert!(
            got[0]
                .abstain_reason
                .as_deref()
                .unwrap()
                .contains("not enough history"),
            "{:?}",
            got[0]
        );
        // Lag 1 of the second poll is the first's p95 (10); CPU 100 over 2 replicas = 50.
        assert!((got[1].probability.unwrap() - (0.10 + 0.05)).abs() < 1e-12);
        assert!((got[2].probability.unwrap() - (0.20 + 0.05)).abs() < 1e-12);
        // One replica fewer: the rolling per-replica CPU doubles, the lag does not move.
        assert!((got[2].probability_one_fewer.unwrap() - (0.20 + 0.10)).abs() < 1e-12);
        shutdown.cancel();
        let r = task.await.unwrap().unwrap();
        assert_eq!((r.votes, r.abstentions), (3, 1));
    }
}

#[cfg(test)]
mod reload_tests {
    use super::*;
    use autoscaler_bus::{MemoryBus, Overflow};
    use autoscaler_contract::decode;
    use autoscaler_contract::fixtures;
    use autoscaler_models::ModelError;
    use std::collections::BTreeMap;

    /// A constant model with a version and feature list of our choosing.
    struct Fixed {
        version: String,
        names: Vec<String>,
        p: f64,
    }

    impl Model for Fixed {
        fn kind(&self) -> ModelKind {
            ModelKind::Xgboost
        }
        fn version(&self) -> &str {
            &self.version
        }
        fn threshold(&self) -> f64 {
            0.5
        }
        fn feature_names(&self) -> &[String] {
            &self.names
        }
        fn predict_proba_batch(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, ModelError> {
            Ok(vec![self.p; rows.len()])
        }
    }

    fn fixed(version: &str, names: &[&str], p: f64) -> Arc<dyn Model> {
        Arc::new(Fixed {
            version: version.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            p,
        })
    }

    fn vector(poll: u64) -> FeatureVector {
        fixtures::vector("orders", poll)
            .at(fixtures::at(poll as i64 * 30))
            .replicas(2)
            .with(|f| f.p95_latency_ms = Some(40.0))
            .build()
    }

    fn config() -> InferenceConfig {
        let mut cfg = InferenceConfig::new(ModelKind::Xgboost);
        cfg.max_skew_secs = None;
        cfg
    }

    #[tokio::test]
    async fn swapping_the_model_loses_no_vector_and_votes_each_once() {
        let bus = MemoryBus::new(8, Overflow::Block);
        let mut votes = bus.subscribe(VOTES_TOPIC, "t").await.unwrap();
        let (tx, rx) = tokio::sync::watch::channel(fixed("v1", &["p95_latency_ms"], 0.1));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_with_reload(
            config(),
            InferenceDeps {
                bus: Arc::new(bus.clone()),
                model: fixed("v1", &["p95_latency_ms"], 0.1),
            },
            rx,
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(10)).await;
        const N: u64 = 300;
        let publisher = {
            let bus = bus.clone();
            tokio::spawn(async move {
                for poll in 0..N {
                    bus.publish(Outgoing::new(
                        METRICS_TOPIC,
                        "orders",
                        encode(&vector(poll)),
                    ))
                    .await
                    .unwrap();
                    if poll.is_multiple_of(7) {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        // Swap models while vectors flow: a good one, a refused one (unknown feature), another
        // good one.
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut swaps = 0;
        while (seen.len() as u64) < N {
            let v: Vote = decode(&votes.recv().await.unwrap().unwrap().payload).unwrap();
            assert!(
                seen.insert(v.vector_id.to_string(), v.model_version.clone())
                    .is_none(),
                "vector {} voted twice",
                v.vector_id
            );
            match seen.len() {
                50 => {
                    tx.send(fixed("v2", &["p95_latency_ms"], 0.9)).unwrap();
                    swaps += 1;
                }
                120 => tx.send(fixed("bad", &["queue_depth"], 0.5)).unwrap(),
                200 => {
                    tx.send(fixed("v3", &["p95_latency_ms"], 0.3)).unwrap();
                    swaps += 1;
                }
                _ => {}
            }
        }
        publisher.await.unwrap();
        shutdown.cancel();
        let r = task.await.unwrap().unwrap();
        assert_eq!(r.votes, N, "exactly one vote per vector");
        assert_eq!(r.reloads, swaps);
        let versions: Vec<&str> = seen.values().map(String::as_str).collect();
        assert!(versions.contains(&"v1") && versions.contains(&"v2") && versions.contains(&"v3"));
        assert!(
            !versions.contains(&"bad"),
            "a model with unknown features is never used"
        );
    }

    #[tokio::test]
    async fn refuses_a_model_whose_features_vectors_do_not_have() {
        let bus = MemoryBus::new(8, Overflow::Block);
        let model = fixed("x", &["p95_latency_ms", "queue_depth"], 0.5);
        let err = run(
            config(),
            InferenceDeps {
                bus: Arc::new(bus),
                model,
            },
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, InferenceError::FeatureMismatch { .. }));
        assert!(err.to_string().contains("queue_depth"), "{err}");
    }
}
