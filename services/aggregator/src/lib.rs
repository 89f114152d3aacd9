//! # The metrics aggregator
//!
//! For each managed service and each poll, [`run`] builds one [`FeatureVector`] — the ten
//! features of the contract, stamped with the metric time and an id unique per (service, poll) —
//! and, in production mode, publishes it on `metrics` keyed by service; in development mode it
//! appends it to the Sock Shop metrics CSV for retraining ([`csv_sink`]).
//!
//! Sources:
//! * [`Source::Replay`]: a request trace replayed through the simulated service of
//!   `autoscaler-simulator`. It learns the replica count from the decisions it receives on
//!   `scaling-decisions`, and applies them to its simulated cluster (with the start-up delay of
//!   new replicas). With `speed: None` it runs in lock-step — each poll waits for the decisions
//!   of the previous one — as fast as the pipeline goes, and the same seed gives the same run.
//! * [`Source::Prometheus`]: PromQL against a real Prometheus, one evaluation time per poll,
//!   missing metrics marked missing and an unreachable Prometheus turned into stale vectors
//!   ([`prometheus`]).
#![deny(missing_docs)]

pub mod csv_sink;
pub mod prometheus;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autoscaler_bus::{Bus, BusError, Outgoing, Subscription};
use autoscaler_contract::{
    decode, encode, violates_sla, Decision, FeatureVector, VectorId, DECISIONS_TOPIC,
    METRICS_TOPIC, SCHEMA_VERSION,
};
use autoscaler_simulator::{ReplayFeed, ServiceParams, SimulatedCluster, Trace};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

/// Default poll interval, seconds (as in the Sock Shop seed).
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 30;
/// Default metrics CSV of development mode (what `autoscaler train` reads back).
pub const DEFAULT_CSV_PATH: &str = "output/sockshop_metrics.csv";
/// Default hours of trace a replay runs.
pub const DEFAULT_REPLAY_HOURS: f64 = 48.0;
/// Default replicas each simulated service of a replay starts with.
pub const DEFAULT_INITIAL_REPLICAS: u32 = 2;
/// Default lock-step wait for a poll's decisions, seconds (longer than the decision window).
pub const DEFAULT_DECISION_WAIT_SECS: u64 = 60;
/// The services a replay simulates when none are named.
pub const DEFAULT_REPLAY_SERVICES: [&str; 2] = ["front-end", "orders"];

/// Where vectors go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Publish on the bus.
    #[default]
    Production,
    /// Append to the metrics CSV (for retraining); nothing is published.
    Development,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "production" => Ok(Mode::Production),
            "development" => Ok(Mode::Development),
            _ => Err(format!(
                "unknown mode `{s}` (valid: production, development)"
            )),
        }
    }
}

/// One simulated service of a replay.
#[derive(Debug, Clone)]
pub struct ReplayService {
    /// Its name.
    pub name: String,
    /// Its capacity, latency, start-up delay, ….
    pub params: ServiceParams,
    /// Where in the trace it starts, seconds.
    pub trace_offset_secs: f64,
}

/// A trace replay through simulated services.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// The request trace.
    pub trace: Trace,
    /// The services, each fed by the trace.
    pub services: Vec<ReplayService>,
    /// Metric time of trace offset 0.
    pub start_time: DateTime<Utc>,
    /// Simulated seconds to replay.
    pub duration_secs: f64,
    /// Simulated seconds per wall second; `None` = lock-step, as fast as decisions come back.
    pub speed: Option<f64>,
    /// Replicas every service starts with.
    pub initial_replicas: u32,
    /// Seed of the simulation noise.
    pub seed: u64,
    /// In lock-step, how long to wait for a poll's decisions before going on without them.
    pub decision_wait: Duration,
    /// The SLA on p95 latency, ms, for the report's violation count.
    pub sla_p95_ms: f64,
}

/// Where metrics come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Replay a trace through simulated services.
    Replay(Box<ReplayConfig>),
    /// Poll a Prometheus server.
    Prometheus(Box<prometheus::PrometheusSource>),
}

/// Configuration of the aggregator.
#[derive(Debug, Clone)]
pub struct AggregatorConfig {
    /// Where metrics come from.
    pub source: Source,
    /// Publish or write CSV.
    pub mode: Mode,
    /// Seconds between polls (metric time).
    pub poll_interval_secs: u64,
    /// Topic of vectors.
    pub metrics_topic: String,
    /// Topic of decisions (the replay learns replicas from it).
    pub decisions_topic: String,
    /// The metrics CSV (development mode).
    pub csv_path: PathBuf,
    /// Also write the CSV in production mode.
    pub csv_in_production: bool,
}

impl AggregatorConfig {
    /// Defaults around `source`.
    pub fn new(source: Source) -> Self {
        AggregatorConfig {
            source,
            mode: Mode::Production,
            poll_interval_secs: DEFAULT_POLL_INTERVAL_SECS,
            metrics_topic: METRICS_TOPIC.into(),
            decisions_topic: DECISIONS_TOPIC.into(),
            csv_path: PathBuf::from(DEFAULT_CSV_PATH),
            csv_in_production: false,
        }
    }

    /// Every problem with this configuration, all at once.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.poll_interval_secs == 0 {
            p.push("poll interval must be at least 1 s".to_string());
        }
        match &self.source {
            Source::Replay(r) => {
                if r.services.is_empty() {
                    p.push("no services to replay".into());
                }
                if !(r.duration_secs.is_finite() && r.duration_secs > 0.0) {
                    p.push("replay duration must be > 0".into());
                }
                if let Some(s) = r.speed {
                    if !(s.is_finite() && s > 0.0) {
                        p.push(format!("speed must be a positive number, got {s}"));
                    }
                }
                if r.initial_replicas == 0 {
                    p.push("initial replicas must be at least 1".into());
                }
                for s in &r.services {
                    if let Err(e) = s.params.validate() {
                        p.push(format!("service {}: {e}", s.name));
                    }
                }
            }
            Source::Prometheus(src) => p.extend(src.problems(self.poll_interval_secs)),
        }
        p
    }
}

/// What the aggregator needs from outside.
pub struct AggregatorDeps {
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// Called after each poll with (polls done, polls planned).
    pub progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
}

/// Errors that stop the aggregator.
#[derive(Debug, thiserror::Error)]
pub enum AggregatorError {
    /// The configuration is invalid.
    #[error("invalid aggregator configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The bus failed.
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    /// Writing the CSV failed.
    #[error("metrics CSV: {0}")]
    Csv(#[from] csv_sink::CsvSinkError),
    /// The simulation failed.
    #[error("simulation: {0}")]
    Sim(#[from] autoscaler_simulator::SimError),
}

/// Per-service totals of a replay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceTotals {
    /// Polls.
    pub polls: u64,
    /// Polls whose p95 was above the SLA, or that failed half their requests or more.
    pub violation_polls: u64,
    /// Σ desired replicas × poll interval, seconds.
    pub replica_seconds: f64,
    /// Replica changes applied from decisions.
    pub changes: u64,
    /// Highest desired replica count seen.
    pub max_replicas: u32,
}

/// What the aggregator did, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggregatorReport {
    /// Polls made (one per tick, all services).
    pub ticks: u64,
    /// Vectors published or written.
    pub vectors: u64,
    /// Simulated (metric) seconds covered.
    pub simulated_secs: f64,
    /// Lock-step waits that ended without every decision.
    pub decision_timeouts: u64,
    /// Decisions that could not be read.
    pub bad_decisions: u64,
    /// Vectors published stale (Prometheus unreachable for a whole poll).
    pub stale_vectors: u64,
    /// Measured features (deltas aside) published missing (query failed, returned nothing, or
    /// NaN/Inf).
    pub missing_features: u64,
    /// Polls retried because Prometheus could not be reached.
    pub retries: u64,
    /// Service lookups (`--discover`) that failed.
    pub discovery_failures: u64,
    /// CSV rows (or per-poll syncs) that could not be written (a full disk): logged and counted;
    /// the vectors are published all the same.
    pub csv_failures: u64,
    /// Per service (replay only).
    pub services: std::collections::BTreeMap<String, ServiceTotals>,
}

/// The CSV of development mode (or `csv_in_production`): a row that cannot be written is logged
/// (once per outage, and again when writes resume) and counted, never a reason to stop.
struct CsvOut {
    sink: Option<csv_sink::CsvSink>,
    failing: bool,
}

impl CsvOut {
    fn open(cfg: &AggregatorConfig) -> Result<Self, AggregatorError> {
        let sink = match (cfg.mode, cfg.csv_in_production) {
            (Mode::Development, _) | (_, true) => Some(csv_sink::CsvSink::open(&cfg.csv_path)?),
            _ => None,
        };
        Ok(CsvOut {
            sink,
            failing: false,
        })
    }

    fn append(&mut self, v: &FeatureVector, report: &mut AggregatorReport) {
        if let Some(sink) = self.sink.as_mut() {
            let r = sink.append(v);
            self.note(r, report);
        }
    }

    fn sync(&mut self, report: &mut AggregatorReport) {
        if let Some(sink) = self.sink.as_mut() {
            let r = sink.sync();
            self.note(r, report);
        }
    }

    fn note(&mut self, r: Result<(), csv_sink::CsvSinkError>, report: &mut AggregatorReport) {
        match (r, self.failing) {
            (Ok(()), false) => {}
            (Ok(()), true) => {
                tracing::info!(failures = report.csv_failures, "CSV writes resumed");
                self.failing = false;
            }
            (Err(e), failing) => {
                report.csv_failures += 1;
                if !failing {
                    tracing::error!(error = %e, "cannot write the metrics CSV; \
                        vectors are still published, rows are lost until it can be written");
                }
                self.failing = true;
            }
        }
    }
}

/// Run the aggregator until its source ends, `shutdown` is cancelled, or the bus closes.
pub async fn run(
    cfg: AggregatorConfig,
    deps: AggregatorDeps,
    shutdown: CancellationToken,
) -> Result<AggregatorReport, AggregatorError> {
    let problems = cfg.problems();
    if !problems.is_empty() {
        return Err(AggregatorError::Config(problems));
    }
    match &cfg.source {
        Source::Replay(r) => {
            let r = (**r).clone();
            run_replay(&cfg, r, deps, shutdown).await
        }
        Source::Prometheus(src) => {
            let src = (**src).clone();
            run_prometheus(&cfg, src, deps, shutdown).await
        }
    }
}

async fn run_prometheus(
    cfg: &AggregatorConfig,
    src: prometheus::PrometheusSource,
    deps: AggregatorDeps,
    shutdown: CancellationToken,
) -> Result<AggregatorReport, AggregatorError> {
    let interval = Duration::from_secs(cfg.poll_interval_secs);
    // Retries must end in time for the vector to still describe its poll.
    let retry_budget = interval.mul_f64(0.6);
    let poller = prometheus::Poller::new(src).map_err(|e| AggregatorError::Config(vec![e]))?;
    let mut services = poller.source().services.clone();
    let discover = poller.source().discover.clone();
    let planned = poller.source().polls;
    let mut csv = CsvOut::open(cfg)?;
    let publish = cfg.mode == Mode::Production;
    let mut previous: HashMap<String, Option<prometheus::Previous>> = HashMap::new();
    let mut report = AggregatorReport::default();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tracing::info!(url = %prometheus::redact_url(&poller.source().url), services = ?services,
        interval_secs = cfg.poll_interval_secs, mode = ?cfg.mode, "polling Prometheus");
    let mut poll: u64 = 0;
    while planned.is_none_or(|n| poll < n) {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if let Some(d) = &discover {
            // Bounded and cancellable: a hung Docker socket must not eat the poll or SIGTERM.
            let lookup = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = tokio::time::timeout(interval / 4, (d.lookup)()) => r
                    .unwrap_or_else(|_| Err(format!("no answer within {:?}", interval / 4))),
            };
            match lookup {
                Ok(found) if found != services => {
                    tracing::info!(services = ?found, from = %d.what, "managed services changed");
                    services = found;
                }
                Ok(_) => {}
                Err(e) => {
                    report.discovery_failures += 1;
                    tracing::warn!(error = %e, from = %d.what,
                        "service discovery failed; polling the last known services");
                }
            }
            if services.is_empty() {
                tracing::warn!(from = %d.what, "no managed services found");
            }
        }
        let at = prometheus::poll_time();
        let answers = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = poller.poll(&services, at, retry_budget, &mut report.retries) => r,
        };
        let vector =
            |name: &String, replicas, stale_reason: Option<String>, features| FeatureVector {
                schema_version: SCHEMA_VERSION,
                vector_id: VectorId::new(name, poll, at),
                timestamp: Utc::now(),
                metric_time: at,
                service: name.clone(),
                poll,
                replicas,
                stale: stale_reason.is_some(),
                stale_reason,
                features,
            };
        let mut vectors = Vec::with_capacity(services.len());
        match answers {
            Ok(raw) => {
                for name in &services {
                    let empty = prometheus::Raw::new();
                    let r = raw.get(name).unwrap_or(&empty);
                    let prev = previous.entry(name.clone()).or_default();
                    let (features, replicas) = prometheus::features(r, prev);
                    // Counted and logged: the measured features (a missing delta after an outage
                    // or a missing input is a consequence, not news).
                    let reasons = prometheus::missing_reasons(r);
                    if !reasons.is_empty() {
                        tracing::debug!(service = %name, poll, missing = ?reasons, "features missing");
                    }
                    report.missing_features += features
                        .missing()
                        .iter()
                        .filter(|n| !n.starts_with("delta_"))
                        .count() as u64;
                    vectors.push(vector(name, replicas, None, features));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, poll, "Prometheus unreachable for the whole poll: \
                    publishing stale vectors");
                previous.clear();
                for name in &services {
                    report.stale_vectors += 1;
                    let reason = format!("Prometheus unreachable: {e}");
                    vectors.push(vector(name, None, Some(reason), Default::default()));
                }
            }
        }
        // A service that was not polled this time must not get a delta against an old poll later.
        previous.retain(|name, _| services.contains(name));
        for v in &vectors {
            // Published first: a full disk under the CSV never stops the vectors.
            if publish {
                deps.bus
                    .publish_pipelined(Outgoing::new(&cfg.metrics_topic, &v.service, encode(v)))
                    .await?;
                autoscaler_telemetry::record_vector(v);
            }
            csv.append(v, &mut report);
            report.vectors += 1;
        }
        csv.sync(&mut report);
        poll += 1;
        report.ticks += 1;
        if let Some(p) = &deps.progress {
            p(poll, planned.unwrap_or(0));
        }
    }
    deps.bus.flush(Duration::from_secs(10)).await?;
    tracing::info!(
        polls = report.ticks,
        vectors = report.vectors,
        stale = report.stale_vectors,
        missing_features = report.missing_features,
        csv_failures = report.csv_failures,
        "Prometheus polling stopped"
    );
    Ok(report)
}

struct Sim {
    feed: ReplayFeed,
    poll: u64,
}

async fn run_replay(
    cfg: &AggregatorConfig,
    r: ReplayConfig,
    deps: AggregatorDeps,
    shutdown: CancellationToken,
) -> Result<AggregatorReport, AggregatorError> {
    let interval = cfg.poll_interval_secs as f64;
    let startup = r
        .services
        .iter()
        .map(|s| s.params.startup_delay_secs)
        .fold(0.0, f64::max);
    let cluster = SimulatedCluster::new(startup);
    let mut sims = Vec::new();
    for (i, s) in r.services.iter().enumerate() {
        cluster.register(&s.name, r.initial_replicas, 0.0);
        let feed = ReplayFeed::new(
            &s.name,
            r.trace.clone(),
            s.params.clone(),
            s.trace_offset_secs,
            r.seed.wrapping_add(i as u64 * 7919),
        )?;
        sims.push(Sim { feed, poll: 0 });
    }
    // Decisions are read in our own group so every aggregator sees all of them.
    let mut decisions = deps
        .bus
        .subscribe(&cfg.decisions_topic, "aggregator-replay")
        .await?;
    let mut csv = CsvOut::open(cfg)?;
    let publish = cfg.mode == Mode::Production;
    let total_ticks = (r.duration_secs / interval).floor() as u64;
    let mut report = AggregatorReport::default();
    tracing::info!(services = r.services.len(), ticks = total_ticks, speed = ?r.speed,
        "replay started");

    // The first poll is one interval in, so the window holds a full minute of traffic.
    for tick in 1..=total_ticks {
        if shutdown.is_cancelled() {
            break;
        }
        let t = tick as f64 * interval;
        let metric_time = r.start_time + chrono::Duration::milliseconds((t * 1000.0) as i64);
        let mut waiting: HashMap<VectorId, String> = HashMap::new();
        for sim in sims.iter_mut() {
            let name = sim.feed.service().to_string();
            let polled = sim.feed.poll_cluster(t, interval, &cluster)?;
            let desired = cluster.desired(&name).unwrap_or(0);
            let totals = report.services.entry(name.clone()).or_default();
            totals.polls += 1;
            totals.replica_seconds += desired as f64 * interval;
            totals.max_replicas = totals.max_replicas.max(desired);
            let violated = violates_sla(polled.p95_ms, polled.error_pct, r.sla_p95_ms);
            if violated {
                totals.violation_polls += 1;
            }
            let vector = FeatureVector {
                schema_version: SCHEMA_VERSION,
                vector_id: VectorId::new(&name, sim.poll, metric_time),
                timestamp: metric_time,
                metric_time,
                service: name.clone(),
                poll: sim.poll,
                // Replicas that served during the poll: what Prometheus would see as targets.
                replicas: Some(polled.ready_replicas),
                stale: false,
                stale_reason: None,
                features: polled.features,
            };
            sim.poll += 1;
            // Published first: a full disk under the CSV never stops the vectors.
            if publish {
                deps.bus
                    .publish_pipelined(Outgoing::new(&cfg.metrics_topic, &name, encode(&vector)))
                    .await?;
                autoscaler_telemetry::record_vector(&vector);
                waiting.insert(vector.vector_id.clone(), name);
            }
            csv.append(&vector, &mut report);
            report.vectors += 1;
        }
        report.ticks += 1;
        report.simulated_secs = t;
        if let Some(p) = &deps.progress {
            p(tick, total_ticks);
        }
        if !publish {
            pace(r.speed, interval, &shutdown).await;
            continue;
        }
        match r.speed {
            None => {
                // Lock-step: wait for every decision of this tick.
                let deadline = tokio::time::Instant::now() + r.decision_wait;
                while !waiting.is_empty() {
                    let got = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep_until(deadline) => {
                            report.decision_timeouts += 1;
                            tracing::warn!(missing = waiting.len(), tick,
                                "no decision within the wait; going on without it");
                            break;
                        }
                        d = decisions.recv() => d,
                    };
                    let Some(got) = got else { break };
                    if let Ok(delivery) = &got {
                        // Applying a decision is idempotent (it sets a count): done on receipt.
                        decisions.ack(delivery).await?;
                    }
                    if let Some(d) = read_decision(got, &mut report) {
                        waiting.remove(&d.vector_id);
                        apply_decision(&cluster, &d, t, &mut report);
                    }
                }
            }
            Some(_) => {
                pace(r.speed, interval, &shutdown).await;
                drain_decisions(decisions.as_mut(), &cluster, t + interval, &mut report).await;
            }
        }
    }
    csv.sync(&mut report);
    deps.bus.flush(Duration::from_secs(10)).await?;
    decisions.close().await?;
    tracing::info!(
        ticks = report.ticks,
        vectors = report.vectors,
        csv_failures = report.csv_failures,
        "replay finished"
    );
    Ok(report)
}

async fn pace(speed: Option<f64>, interval: f64, shutdown: &CancellationToken) {
    if let Some(s) = speed {
        let wait = Duration::from_secs_f64(interval / s);
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn read_decision(
    got: Result<autoscaler_bus::Delivery, BusError>,
    report: &mut AggregatorReport,
) -> Option<Decision> {
    match got.map(|d| decode::<Decision>(&d.payload)) {
        Ok(Ok(d)) => Some(d),
        Ok(Err(e)) => {
            report.bad_decisions += 1;
            tracing::warn!(error = %e, "unreadable decision ignored");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "receiving decisions failed");
            None
        }
    }
}

/// Apply the decisions that have already arrived, without waiting for more.
async fn drain_decisions(
    sub: &mut dyn Subscription,
    cluster: &SimulatedCluster,
    t: f64,
    report: &mut AggregatorReport,
) {
    // A zero timeout polls the receive once: it yields what is queued and nothing else.
    while let Ok(Some(got)) = tokio::time::timeout(Duration::ZERO, sub.recv()).await {
        if let Ok(delivery) = &got {
            if let Err(e) = sub.ack(delivery).await {
                tracing::warn!(error = %e, "decision not acknowledged");
            }
        }
        if let Some(d) = read_decision(got, report) {
            apply_decision(cluster, &d, t, report);
        }
    }
}

fn apply_decision(cluster: &SimulatedCluster, d: &Decision, t: f64, report: &mut AggregatorReport) {
    let (Some(to), false) = (d.to_replicas, d.dry_run) else {
        return;
    };
    if cluster.desired(&d.service) == Some(to) {
        return;
    }
    match cluster.set_replicas(&d.service, to, t) {
        Ok(()) => {
            report
                .services
                .entry(d.service.clone())
                .or_default()
                .changes += 1;
        }
        Err(e) => tracing::warn!(service = %d.service, error = %e, "decision not applied"),
    }
}

#[cfg(test)]
mod prom_tests;
#[cfg(test)]
mod tests;
