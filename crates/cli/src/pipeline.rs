//! Wiring: configurations from arguments, the bus, and the embedded one-process pipeline.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use autoscaler_aggregator::prometheus::{ConfigFile, Discover, Preset, PrometheusSource, Secret};
use autoscaler_aggregator::{
    AggregatorConfig, AggregatorDeps, AggregatorReport, Mode, ReplayConfig, ReplayService, Source,
    DEFAULT_POLL_INTERVAL_SECS,
};
use autoscaler_bus::{Bus, MemoryBus};
use autoscaler_contract::{
    decode, Decision, ModelKind, DECISIONS_TOPIC, METRICS_TOPIC, VOTES_TOPIC,
};
use autoscaler_inference::{InferenceConfig, InferenceDeps, InferenceReport};
use autoscaler_models::Model;
use autoscaler_scaler::{
    EnvelopeConfig, ScalerConfig, ScalerDeps, ScalerReport, SimulatedActuator,
};
use autoscaler_simulator::{ServiceParams, Trace};
use autoscaler_voting::VotingConfig;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::args::{
    AggregatorOpts, BusArgs, BusKind, DiscoverKind, ModeArg, ScalerOpts, SourceKind,
};

/// A configuration that cannot run: every problem, listed at once (exit code 64).
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Metric time at which the shipped NASA sample starts: 1995-07-12 00:00 EDT.
pub fn nasa_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("1995-07-12T00:00:00-04:00")
        .expect("valid constant")
        .with_timezone(&Utc)
}

/// The aggregator's configuration, or every problem with the options.
pub fn aggregator_config(o: &AggregatorOpts) -> Result<AggregatorConfig, ConfigError> {
    let mut problems = Vec::new();
    // Flags and environment win over the config file, which wins over built-in defaults.
    let file = match &o.config {
        Some(path) => ConfigFile::load(path).unwrap_or_else(|e| {
            problems.push(e);
            ConfigFile::default()
        }),
        None => ConfigFile::default(),
    };
    let poll_interval = o
        .poll_interval_sec
        .or(file.poll_interval_sec)
        .unwrap_or(DEFAULT_POLL_INTERVAL_SECS);
    let services: Vec<String> = match (&o.services, file.services.is_empty()) {
        (Some(s), _) => s.clone(),
        (None, false) => file.services.clone(),
        (None, true) if o.source == SourceKind::Replay => {
            vec!["front-end".to_string(), "orders".to_string()]
        }
        (None, true) => Vec::new(),
    };
    let source = match o.source {
        SourceKind::Replay => {
            let (trace, start) = match &o.trace {
                Some(path) => match Trace::from_csv_path(path) {
                    Ok(t) => (t, Utc::now()),
                    Err(e) => {
                        problems.push(format!("trace {}: {e}", path.display()));
                        (Trace::nasa_sample(), nasa_start())
                    }
                },
                None => (Trace::nasa_sample(), nasa_start()),
            };
            if !(o.trace_scale.is_finite() && o.trace_scale > 0.0) {
                problems.push(format!("trace scale must be > 0, got {}", o.trace_scale));
            }
            if !(o.speed.is_finite() && o.speed >= 0.0) {
                problems.push(format!("speed must be >= 0, got {}", o.speed));
            }
            if !(o.duration_hours.is_finite() && o.duration_hours > 0.0) {
                problems.push(format!(
                    "duration must be > 0 hours, got {}",
                    o.duration_hours
                ));
            }
            let services = services
                .iter()
                .enumerate()
                .map(|(i, name)| ReplayService {
                    name: name.clone(),
                    params: ServiceParams {
                        trace_scale: o.trace_scale / (1.0 + i as f64 / 2.0),
                        ..ServiceParams::default()
                    },
                    trace_offset_secs: 0.0,
                })
                .collect();
            Source::Replay(Box::new(ReplayConfig {
                trace,
                services,
                start_time: start,
                duration_secs: o.duration_hours * 3600.0,
                speed: (o.speed > 0.0).then_some(o.speed),
                initial_replicas: o.initial_replicas,
                seed: o.seed,
                decision_wait: Duration::from_secs(o.decision_wait_sec.max(1)),
                sla_p95_ms: o.sla_p95_ms,
            }))
        }
        SourceKind::Prometheus => Source::Prometheus(Box::new(prometheus_source(
            o,
            &file,
            poll_interval,
            &mut problems,
        ))),
    };
    if o.source == SourceKind::Replay && services.iter().any(|s| s.trim().is_empty()) {
        problems.push("SERVICES has an empty name".into());
    }
    if !(o.sla_p95_ms.is_finite() && o.sla_p95_ms > 0.0) {
        problems.push(format!("SLA p95 must be > 0 ms, got {}", o.sla_p95_ms));
    }
    let mut cfg = AggregatorConfig::new(source);
    cfg.mode = match o.mode {
        ModeArg::Production => Mode::Production,
        ModeArg::Development => Mode::Development,
    };
    cfg.poll_interval_secs = poll_interval;
    cfg.csv_path = o.csv_path.clone();
    cfg.csv_in_production = o.csv_in_production;
    problems.extend(cfg.problems());
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigError(problems))
    }
}

/// The Prometheus source from flags, environment and the config file.
fn prometheus_source(
    o: &AggregatorOpts,
    file: &ConfigFile,
    poll_interval: u64,
    problems: &mut Vec<String>,
) -> PrometheusSource {
    let preset = match o.preset.as_deref().map(str::parse::<Preset>) {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            problems.push(e);
            Preset::default()
        }
        None => file.preset.unwrap_or_default(),
    };
    let url = o
        .prometheus_url
        .clone()
        .or_else(|| file.prometheus_url.clone())
        .unwrap_or_else(|| "http://127.0.0.1:9090".to_string());
    let services = o.services.clone().unwrap_or_else(|| file.services.clone());
    let mut src = PrometheusSource::new(url, services, preset);
    if let Err(e) = src.queries.override_with(&file.queries) {
        problems.push(format!("config file: {e}"));
    }
    let timeout = o.query_timeout_sec.or(file.query_timeout_sec);
    src.query_timeout = match timeout {
        Some(t) if t.is_finite() && t > 0.0 => Duration::from_secs_f64(t),
        Some(t) => {
            problems.push(format!("query timeout must be > 0 s, got {t}"));
            Duration::from_secs(1)
        }
        None => Duration::from_secs_f64((poll_interval as f64 / 3.0).min(10.0)),
    };
    src.polls = o.polls;
    let token_file = o
        .prometheus_bearer_token_file
        .as_ref()
        .or(file.bearer_token_file.as_ref());
    if let Some(path) = token_file {
        match Secret::from_file(path) {
            Ok(t) => src.bearer_token = Some(t),
            Err(e) => problems.push(format!("bearer token: {e}")),
        }
    }
    if o.discover == Some(DiscoverKind::Swarm) {
        if o.services.is_some() || !file.services.is_empty() {
            problems.push("--discover swarm and a list of services exclude each other".into());
        }
        // The same services the scaler manages: labelled, or named in its policy file.
        let policy_file = match &o.discover_policy_file {
            Some(p) => autoscaler_scaler::PolicyFile::load(p).unwrap_or_else(|e| {
                problems.push(e.to_string());
                Default::default()
            }),
            None => Default::default(),
        };
        let swarm = Arc::new(autoscaler_scaler::SwarmActuator::new(
            autoscaler_scaler::SwarmConfig {
                docker_host: o.docker_host.clone(),
                policy_file,
                ..Default::default()
            },
        ));
        src.discover = Some(Discover {
            what: format!(
                "Swarm services labelled autoscaler.enable=true at {}",
                o.docker_host
            ),
            lookup: Arc::new(move || {
                let swarm = swarm.clone();
                Box::pin(async move { swarm.managed_services().await.map_err(|e| e.to_string()) })
            }),
        });
    }
    src
}

/// The scaler's configuration, or every problem with the options.
pub fn scaler_config(o: &ScalerOpts) -> Result<ScalerConfig, ConfigError> {
    let mut voting = VotingConfig::new(o.strategy);
    voting.weights = o.weights.iter().copied().collect();
    voting.weighted_threshold = o.weighted_threshold;
    voting.min_quorum = o.min_quorum;
    voting.scale_down_max_probability = o.scale_down_max_probability;
    let mut cfg = ScalerConfig::new(voting);
    let mut problems = Vec::new();
    if o.decision_window_sec.is_finite() && o.decision_window_sec > 0.0 {
        cfg.decision_window = Duration::from_secs_f64(o.decision_window_sec);
    } else {
        problems.push(format!(
            "decision window must be > 0 s, got {}",
            o.decision_window_sec
        ));
    }
    cfg.envelope = EnvelopeConfig {
        min_replicas: o.min_replicas,
        max_replicas: o.max_replicas,
        cooldown_up_secs: o.cooldown_up_sec,
        cooldown_down_secs: o.cooldown_down_sec,
        stabilization_secs: o.stabilization_sec,
        max_step: o.max_step,
    };
    cfg.dry_run = o.dry_run;
    problems.extend(cfg.problems());
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigError(problems))
    }
}

/// The Kafka configuration from the bus options and `KAFKA_PROP_*` environment variables.
pub fn kafka_config(b: &BusArgs) -> autoscaler_bus::kafka::KafkaConfig {
    let mut cfg = autoscaler_bus::kafka::KafkaConfig::new(&b.kafka_bootstrap_servers)
        .with_env_properties(std::env::vars());
    cfg.partitions = b.kafka_partitions;
    cfg.replication = b.kafka_replication;
    cfg.group_prefix = b.kafka_group_prefix.clone();
    // The authoritative scaler reads every partition of the votes topic itself instead of
    // joining its group: a restart after a crash resumes at once (see `exclusive_groups`).
    cfg.exclusive_groups
        .insert(autoscaler_scaler::SCALER_GROUP.into());
    cfg
}

/// Connect to Kafka and create the pipeline's topics (and their dead-letter topics) if absent.
pub async fn kafka_bus(b: &BusArgs) -> anyhow::Result<autoscaler_bus::kafka::KafkaBus> {
    let bus = autoscaler_bus::kafka::KafkaBus::new(kafka_config(b))
        .with_context(|| format!("Kafka client for {}", b.kafka_bootstrap_servers))?;
    let dlqs = [
        autoscaler_bus::dlq_topic(&b.metrics_topic),
        autoscaler_bus::dlq_topic(&b.votes_topic),
    ];
    let topics = [
        b.metrics_topic.as_str(),
        b.votes_topic.as_str(),
        b.decisions_topic.as_str(),
        dlqs[0].as_str(),
        dlqs[1].as_str(),
    ];
    bus.ensure_topics(&topics)
        .await
        .with_context(|| format!("creating topics on Kafka at {}", b.kafka_bootstrap_servers))?;
    Ok(bus)
}

/// The bus for a service running alone in its process.
pub async fn standalone_bus(b: &BusArgs, needs_peers: bool) -> anyhow::Result<Arc<dyn Bus>> {
    if b.kafka_partitions < 1 || b.kafka_replication < 1 {
        return Err(ConfigError(vec![format!(
            "Kafka partitions and replication must be at least 1, got {} and {}",
            b.kafka_partitions, b.kafka_replication
        )])
        .into());
    }
    match b.bus {
        BusKind::Memory if needs_peers => Err(ConfigError(vec![
            "the memory bus only connects services inside one process: use `autoscaler run` \
             for the whole pipeline in one process, or BUS=kafka"
                .into(),
        ])
        .into()),
        BusKind::Memory => Ok(Arc::new(MemoryBus::new(b.bus_capacity, b.bus_overflow))),
        BusKind::Kafka => Ok(Arc::new(kafka_bus(b).await?)),
    }
}

/// Load the three models, training defaults first if `dir` has none.
pub fn load_models(dir: &Path, sla_p95_ms: f64, seed: u64) -> anyhow::Result<Vec<Arc<dyn Model>>> {
    crate::default_models::ensure(dir, sla_p95_ms, seed)?;
    ModelKind::ALL
        .into_iter()
        .map(|k| {
            autoscaler_models::load(k, dir)
                .map(Arc::from)
                .with_context(|| format!("loading the {k} model from {}", dir.display()))
        })
        .collect()
}

/// Everything the embedded pipeline did.
pub struct EmbeddedReport {
    /// The aggregator's report.
    pub aggregator: AggregatorReport,
    /// The scaler's report.
    pub scaler: ScalerReport,
    /// Each inference service's report.
    pub inference: Vec<(ModelKind, InferenceReport)>,
}

/// Called with each decision, in a deterministic order.
pub type DecisionObserver = Box<dyn FnMut(&Decision) + Send>;

/// The parts of an embedded pipeline.
pub struct Embedded {
    /// The aggregator (a replay).
    pub aggregator: AggregatorConfig,
    /// The scaler.
    pub scaler: ScalerConfig,
    /// One inference service per model.
    pub models: Vec<Arc<dyn Model>>,
    /// Replicas the simulated actuator starts each service with.
    pub initial_replicas: u32,
    /// Capacity of each in-process queue.
    pub bus_capacity: usize,
}

/// Run aggregator → 3 inference services → scaler in this process on the in-process bus,
/// until the replay ends or `shutdown` is cancelled.
pub async fn run_embedded(
    parts: Embedded,
    mut observe: DecisionObserver,
    progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
    shutdown: CancellationToken,
) -> anyhow::Result<EmbeddedReport> {
    let Embedded {
        aggregator: agg,
        scaler,
        models,
        initial_replicas,
        bus_capacity,
    } = parts;
    let bus = MemoryBus::new(bus_capacity, autoscaler_bus::Overflow::Block);
    let dyn_bus: Arc<dyn Bus> = Arc::new(bus.clone());
    let services = shutdown.child_token();
    let decision_window = scaler.decision_window;
    let mut inference = Vec::new();
    for model in models {
        let mut cfg = InferenceConfig::new(model.kind());
        // Replayed metrics carry simulated time: their age against the wall clock means nothing.
        cfg.max_skew_secs = None;
        let kind = model.kind();
        let deps = InferenceDeps {
            bus: dyn_bus.clone(),
            model,
        };
        inference.push((
            kind,
            tokio::spawn(autoscaler_inference::run(cfg, deps, services.clone())),
        ));
    }
    let scaler_task = tokio::spawn(autoscaler_scaler::run(
        scaler,
        ScalerDeps {
            bus: dyn_bus.clone(),
            actuator: Arc::new(SimulatedActuator::new(initial_replicas)),
        },
        services.clone(),
    ));
    let mut decisions = bus.subscribe(DECISIONS_TOPIC, "observer").await?;
    let decided = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let decided2 = decided.clone();
    let observer_stop = CancellationToken::new();
    let observer_stop2 = observer_stop.clone();
    let observer = tokio::spawn(async move {
        let mut orderer = crate::report::Orderer::default();
        let mut handle = |d: Decision, observe: &mut DecisionObserver| {
            for d in orderer.push(d) {
                observe(&d);
            }
        };
        loop {
            let got = tokio::select! {
                biased;
                got = decisions.recv() => got,
                _ = observer_stop2.cancelled() => {
                    // Take what is queued, then stop.
                    tokio::time::timeout(Duration::ZERO, decisions.recv())
                        .await
                        .unwrap_or_default()
                }
            };
            let Some(Ok(msg)) = got else { break };
            decided2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match decode::<Decision>(&msg.payload) {
                Ok(d) => handle(d, &mut observe),
                Err(e) => tracing::error!(error = %e, "unreadable decision"),
            }
        }
        for d in orderer.flush() {
            observe(&d);
        }
    });
    // Start publishing only once every consumer listens: the in-process bus, like a Kafka
    // consumer at the latest offset, delivers only what is published after subscribing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while bus.groups(METRICS_TOPIC) < inference.len() || bus.groups(VOTES_TOPIC) < 1 {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the services did not subscribe within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let aggregator = autoscaler_aggregator::run(
        agg,
        AggregatorDeps {
            bus: dyn_bus.clone(),
            progress,
        },
        services.clone(),
    )
    .await;
    // A live source (Prometheus) returns as soon as its last vectors are published: let the
    // models and the scaler finish them (at most one decision window) before stopping. A
    // lock-step replay has every decision already.
    if let Ok(report) = &aggregator {
        let drain_until = tokio::time::Instant::now() + decision_window + Duration::from_secs(5);
        while decided.load(std::sync::atomic::Ordering::SeqCst) < report.vectors
            && tokio::time::Instant::now() < drain_until
            && !services.is_cancelled()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    services.cancel();
    let scaler_report = scaler_task.await??;
    let mut inference_reports = Vec::new();
    for (kind, task) in inference {
        inference_reports.push((kind, task.await??));
    }
    observer_stop.cancel();
    observer.await?;
    let _ = std::io::stdout().flush();
    Ok(EmbeddedReport {
        aggregator: aggregator?,
        scaler: scaler_report,
        inference: inference_reports,
    })
}
