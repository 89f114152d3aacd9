//! # What operators watch
//!
//! * [`metrics()`]: the process's Prometheus metrics (one registry per process, prefix
//!   `autoscaler_`), recorded by the services through the `record_*` functions and served as
//!   OpenMetrics text on `GET /metrics` by [`start_metrics_server`] when a service is given
//!   `--metrics-listen ADDR` (off by default, so several services on one host never fight over
//!   a port; a failed bind is logged, not fatal);
//! * [`block`]: the Sock Shop seed's decision block, and a one-line summary of a decision that
//!   changes nothing;
//! * [`predictions`]: the prediction log writer (`predictions_<model>.csv`, rotated by size,
//!   safe with several replicas of one model).
//!
//! | metric | type | labels | recorded by |
//! |---|---|---|---|
//! | `autoscaler_vectors_total` | counter | `service`, `stale` | aggregator, per vector published |
//! | `autoscaler_votes_total` | counter | `model`, `service`, `vote` (`up`, `no_action`, `abstain`) | inference |
//! | `autoscaler_abstentions_total` | counter | `model` | inference |
//! | `autoscaler_vote_probability` | gauge | `model`, `service` | inference: the last P(violation) |
//! | `autoscaler_model_info` | gauge (1) | `model`, `version` | inference: the model voting now |
//! | `autoscaler_decisions_total` | counter | `service`, `verdict`, `acted` | scaler |
//! | `autoscaler_replicas` | gauge | `service` | scaler: replicas after the last decision |
//! | `autoscaler_decision_latency_seconds` | histogram | | scaler: vector published → decision made |
//! | `autoscaler_actuator_errors_total` | counter | `service` | scaler: failed actuations |
//! | `autoscaler_dead_letters_total` | counter | `topic` | every service (the bus's `dead_letter`) |
//! | `autoscaler_consumer_lag` | gauge | `group`, `topic`, `partition` | Kafka consumers, from librdkafka's statistics (`KAFKA_PROP_statistics.interval.ms`) |
#![deny(missing_docs)]

pub mod block;
pub mod predictions;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};

use autoscaler_contract::{Decision, FeatureVector, ModelKind, Verdict, Vote};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use tokio_util::sync::CancellationToken;

/// The metric name prefix.
pub const METRICS_PREFIX: &str = "autoscaler";

/// Upper bounds of `autoscaler_decision_latency_seconds`: 10 ms doubling to ~82 s (a decision
/// waits at most the decision window, 5 s by default, after the last vote).
pub fn decision_latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.01, 2.0, 14)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VectorLabels {
    service: String,
    stale: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VoteLabels {
    model: String,
    service: String,
    vote: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelServiceLabels {
    model: String,
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelVersionLabels {
    model: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    service: String,
    verdict: String,
    acted: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    group: String,
    topic: String,
    partition: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(decision_latency_buckets())
}

/// The process's metrics (see the crate docs for the list).
pub struct Metrics {
    registry: Registry,
    vectors: Family<VectorLabels, Counter>,
    votes: Family<VoteLabels, Counter>,
    abstentions: Family<ModelLabels, Counter>,
    probability: Family<ModelServiceLabels, Gauge<f64, AtomicU64>>,
    model_info: Family<ModelVersionLabels, Gauge>,
    model_versions: Mutex<HashMap<String, String>>,
    decisions: Family<DecisionLabels, Counter>,
    replicas: Family<ServiceLabels, Gauge>,
    decision_latency: Histogram,
    actuator_errors: Family<ServiceLabels, Counter>,
    dead_letters: Family<TopicLabels, Counter>,
    consumer_lag: Family<LagLabels, Gauge>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut root = Registry::with_prefix(METRICS_PREFIX);
        let m = Metrics {
            registry: Registry::default(),
            vectors: Family::default(),
            votes: Family::default(),
            abstentions: Family::default(),
            probability: Family::default(),
            model_info: Family::default(),
            model_versions: Mutex::new(HashMap::new()),
            decisions: Family::default(),
            replicas: Family::default(),
            decision_latency: latency_histogram(),
            actuator_errors: Family::default(),
            dead_letters: Family::default(),
            consumer_lag: Family::default(),
        };
        let r = &mut root;
        // No final periods in the help texts: the registry adds one.
        r.register("vectors", "Feature vectors published", m.vectors.clone());
        r.register("votes", "Votes published", m.votes.clone());
        r.register("abstentions", "Votes that abstained", m.abstentions.clone());
        r.register(
            "vote_probability",
            "The last P(SLA violation) a model computed for a service",
            m.probability.clone(),
        );
        r.register(
            "model_info",
            "The model version voting now (value 1)",
            m.model_info.clone(),
        );
        r.register(
            "decisions",
            "Scaling decisions published",
            m.decisions.clone(),
        );
        r.register(
            "replicas",
            "Replicas of a service after the last decision",
            m.replicas.clone(),
        );
        r.register_with_unit(
            "decision_latency",
            "Time from a vector's publication to its decision",
            Unit::Seconds,
            m.decision_latency.clone(),
        );
        r.register(
            "actuator_errors",
            "Failed actuations",
            m.actuator_errors.clone(),
        );
        r.register(
            "dead_letters",
            "Messages sent to a dead-letter topic, by source topic",
            m.dead_letters.clone(),
        );
        r.register(
            "consumer_lag",
            "Messages behind the partition's end, per consumer group (librdkafka statistics)",
            m.consumer_lag.clone(),
        );
        Metrics {
            registry: root,
            ..m
        }
    }

    /// The registry in OpenMetrics text (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process's metrics, created on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Count a feature vector published by the aggregator.
pub fn record_vector(v: &FeatureVector) {
    let m = metrics();
    // Both series exist from a service's first vector on, so "stale vectors" reads 0, not
    // "no data", while none are stale.
    let other = VectorLabels {
        service: v.service.clone(),
        stale: (!v.stale).to_string(),
    };
    let _ = m.vectors.get_or_create(&other);
    m.vectors
        .get_or_create(&VectorLabels {
            service: v.service.clone(),
            stale: v.stale.to_string(),
        })
        .inc();
}

/// Count a vote published by an inference service, and keep its probability.
pub fn record_vote(vote: &Vote) {
    let m = metrics();
    let kind = match vote.prediction {
        Some(1) => "up",
        Some(_) => "no_action",
        None => "abstain",
    };
    m.votes
        .get_or_create(&VoteLabels {
            model: vote.model.as_str().into(),
            service: vote.service.clone(),
            vote: kind.into(),
        })
        .inc();
    if vote.prediction.is_none() {
        m.abstentions
            .get_or_create(&ModelLabels {
                model: vote.model.as_str().into(),
            })
            .inc();
    }
    if let Some(p) = vote.probability {
        m.probability
            .get_or_create(&ModelServiceLabels {
                model: vote.model.as_str().into(),
                service: vote.service.clone(),
            })
            .set(p);
    }
}

/// Set the model version voting now (on start and on every reload).
pub fn set_model_version(model: ModelKind, version: &str) {
    let m = metrics();
    let mut versions = m.model_versions.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(old) = versions.insert(model.as_str().into(), version.into()) {
        if old != version {
            m.model_info.remove(&ModelVersionLabels {
                model: model.as_str().into(),
                version: old,
            });
        }
    }
    // Abstentions read 0, not "no data", until the first one.
    let _ = m.abstentions.get_or_create(&ModelLabels {
        model: model.as_str().into(),
    });
    m.model_info
        .get_or_create(&ModelVersionLabels {
            model: model.as_str().into(),
            version: version.into(),
        })
        .set(1);
}

fn verdict_label(v: Verdict) -> &'static str {
    match v {
        Verdict::ScaleUp => "SCALE_UP",
        Verdict::ScaleDown => "SCALE_DOWN",
        Verdict::NoAction => "NO_ACTION",
    }
}

/// Count a decision published by the scaler, with its latency (now − the vector's
/// publication time, when not negative) and the replicas it leaves.
pub fn record_decision(d: &Decision, vector_published: chrono::DateTime<chrono::Utc>) {
    let m = metrics();
    m.decisions
        .get_or_create(&DecisionLabels {
            service: d.service.clone(),
            verdict: verdict_label(d.decision).into(),
            acted: d.acted.to_string(),
        })
        .inc();
    // Actuator errors read 0, not "no data", for every service decided on.
    let _ = m.actuator_errors.get_or_create(&ServiceLabels {
        service: d.service.clone(),
    });
    if let Some(r) = d.to_replicas {
        m.replicas
            .get_or_create(&ServiceLabels {
                service: d.service.clone(),
            })
            .set(i64::from(r));
    }
    let latency = (d.timestamp - vector_published).num_microseconds();
    if let Some(us) = latency.filter(|us| *us >= 0) {
        m.decision_latency.observe(us as f64 / 1e6);
    }
}

/// Count a failed actuation.
pub fn record_actuator_error(service: &str) {
    metrics()
        .actuator_errors
        .get_or_create(&ServiceLabels {
            service: service.into(),
        })
        .inc();
}

/// Make `autoscaler_dead_letters_total{topic}` exist (at 0) for a topic this process reads, so
/// "dead letters" reads 0, not "no data", until the first one.
pub fn watch_dead_letters(topic: &str) {
    let _ = metrics().dead_letters.get_or_create(&TopicLabels {
        topic: topic.into(),
    });
}

/// Count a message dead-lettered from `topic`.
pub fn record_dead_letter(topic: &str) {
    metrics()
        .dead_letters
        .get_or_create(&TopicLabels {
            topic: topic.into(),
        })
        .inc();
}

/// Set a consumer group's lag on one partition.
pub fn set_consumer_lag(group: &str, topic: &str, partition: i32, lag: i64) {
    metrics()
        .consumer_lag
        .get_or_create(&LagLabels {
            group: group.into(),
            topic: topic.into(),
            partition: partition.to_string(),
        })
        .set(lag);
}

async fn metrics_handler() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics().encode(),
    )
        .into_response()
}

/// Serve [`metrics()`] on `GET /metrics` (and `GET /health`) at `addr` until `shutdown` is
/// cancelled. Returns the address bound (port 0 picks one), or `None` when it cannot bind: that
/// is logged (ERROR) and the service goes on without its metrics endpoint.
pub async fn start_metrics_server(
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> Option<SocketAddr> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e,
                "cannot serve /metrics; going on without it");
            return None;
        }
    };
    let bound = listener.local_addr().ok()?;
    let router = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/health", get(|| async { "ok\n" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "try /metrics\n") });
    tracing::info!(addr = %bound, "metrics on http://{bound}/metrics");
    tokio::spawn(async move {
        let server = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "the /metrics server stopped");
        }
    });
    Some(bound)
}

#[cfg(test)]
mod tests;
