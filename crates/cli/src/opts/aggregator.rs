//! The aggregator's options (shared by `aggregator`, `run` and `demo`) and their mapping into
//! [`AggregatorConfig`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autoscaler_aggregator::prometheus::{
    ConfigFile, Discover, Preset, PrometheusSource, Secret, DEFAULT_PROMETHEUS_URL,
};
use autoscaler_aggregator::{
    AggregatorConfig, Mode, ReplayConfig, ReplayService, Source, DEFAULT_CSV_PATH,
    DEFAULT_DECISION_WAIT_SECS, DEFAULT_INITIAL_REPLICAS, DEFAULT_POLL_INTERVAL_SECS,
    DEFAULT_REPLAY_HOURS, DEFAULT_REPLAY_SERVICES,
};
use autoscaler_contract::DEFAULT_SLA_P95_MS;
use autoscaler_scaler::swarm::DEFAULT_DOCKER_HOST;
use autoscaler_simulator::{ServiceParams, Trace, DEFAULT_SEED, DEFAULT_TRACE_SCALE};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

use crate::exit::ConfigError;

/// Where metrics come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// PromQL against Prometheus.
    Prometheus,
    /// Replay a request trace through a simulated service.
    Replay,
}

/// Where managed services are discovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiscoverKind {
    /// Docker Swarm services labelled `autoscaler.enable=true`.
    Swarm,
}

/// Production publishes vectors; development writes the metrics CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Publish feature vectors on the bus.
    Production,
    /// Write `output/sockshop_metrics.csv` for retraining.
    Development,
}

/// Aggregator options.
#[derive(Debug, Clone, Args)]
pub struct AggregatorOpts {
    /// Metrics source.
    #[arg(long, env = "AUTOSCALER_SOURCE", value_enum, default_value = "replay")]
    pub source: SourceKind,
    /// Production (publish) or development (CSV).
    #[arg(long, env = "MODE", value_enum, default_value = "production")]
    pub mode: ModeArg,
    /// Seconds between polls [default: 30, or the config file's].
    #[arg(long = "poll-interval-sec", env = "POLL_INTERVAL_SEC")]
    pub poll_interval_sec: Option<u64>,
    /// Prometheus base URL [default: http://127.0.0.1:9090, or the config file's].
    #[arg(long, env = "PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Managed services, comma-separated [default: the config file's; a replay: front-end,orders].
    /// In a replay the first takes the trace at full scale, the i-th at 1/(1 + i/2) of it.
    #[arg(long, env = "SERVICES", value_delimiter = ',')]
    pub services: Option<Vec<String>>,
    /// Aggregator config file (TOML: prometheus_url, preset, poll_interval_sec,
    /// query_timeout_sec, services, [queries] overrides). Flags and environment win over it.
    #[arg(long, env = "AGGREGATOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// PromQL preset: sockshop or demo [default: sockshop, or the config file's].
    #[arg(long, env = "PROMQL_PRESET")]
    pub preset: Option<String>,
    /// Per-request timeout of a PromQL query, seconds; below the poll interval
    /// [default: a third of the interval, at most 10].
    #[arg(long = "query-timeout-sec", env = "PROMETHEUS_QUERY_TIMEOUT_SEC")]
    pub query_timeout_sec: Option<f64>,
    /// Discover the managed services before every poll instead of listing them: `swarm` = the
    /// Docker Swarm services labelled `autoscaler.enable=true` (as the scaler manages them).
    #[arg(long, env = "AGGREGATOR_DISCOVER", value_enum)]
    pub discover: Option<DiscoverKind>,
    /// Docker API for `--discover swarm`.
    #[arg(long = "docker-host", env = "DOCKER_HOST", default_value = DEFAULT_DOCKER_HOST)]
    pub docker_host: String,
    /// The scaler's policy file, for `--discover swarm`: its services are managed too.
    #[arg(long = "policy-file", env = "AUTOSCALER_POLICY_FILE")]
    pub discover_policy_file: Option<PathBuf>,
    /// A file holding a bearer token sent to Prometheus (`Authorization: Bearer …`).
    #[arg(
        long = "prometheus-bearer-token-file",
        env = "PROMETHEUS_BEARER_TOKEN_FILE"
    )]
    pub prometheus_bearer_token_file: Option<PathBuf>,
    /// Stop after this many polls (Prometheus source; for scripts and tests).
    #[arg(long)]
    pub polls: Option<u64>,
    /// Also write the metrics CSV in production mode.
    #[arg(long = "csv", env = "METRICS_CSV_IN_PRODUCTION")]
    pub csv_in_production: bool,
    /// Request trace (CSV `timestamp_s,requests`); default: the NASA-HTTP sample shipped in
    /// the project (1995-07-12 to 07-14).
    #[arg(long, env = "AUTOSCALER_TRACE")]
    pub trace: Option<PathBuf>,
    /// Replay speed: simulated seconds per wall second. 0 = lock-step, as fast as the decisions
    /// come back (deterministic).
    #[arg(long, env = "AUTOSCALER_SPEED", default_value_t = LOCK_STEP)]
    pub speed: f64,
    /// Hours of trace to replay.
    #[arg(long, env = "AUTOSCALER_DURATION_HOURS", default_value_t = DEFAULT_REPLAY_HOURS)]
    pub duration_hours: f64,
    /// Requests per trace request (the NASA trace peaks at 6.75 req/s).
    #[arg(long, env = "AUTOSCALER_TRACE_SCALE", default_value_t = DEFAULT_TRACE_SCALE)]
    pub trace_scale: f64,
    /// Replicas each simulated service starts with.
    #[arg(long, env = "AUTOSCALER_INITIAL_REPLICAS", default_value_t = DEFAULT_INITIAL_REPLICAS)]
    pub initial_replicas: u32,
    /// Seed of the simulation.
    #[arg(long, env = "AUTOSCALER_SEED", default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// The SLA on p95 latency, ms (reported violations; training labels).
    #[arg(long = "sla-p95-ms", env = "AUTOSCALER_SLA_P95_MS", default_value_t = DEFAULT_SLA_P95_MS)]
    pub sla_p95_ms: f64,
    /// Lock-step replay: how long to wait for a poll's decisions before going on without them
    /// (longer than the scaler's decision window).
    #[arg(
        long = "decision-wait-sec",
        env = "AUTOSCALER_DECISION_WAIT_SEC",
        default_value_t = DEFAULT_DECISION_WAIT_SECS
    )]
    pub decision_wait_sec: u64,
    /// Metrics CSV (development mode).
    #[arg(long, env = "METRICS_CSV", default_value = DEFAULT_CSV_PATH)]
    pub csv_path: PathBuf,
}

/// `--speed 0`: lock-step (a CLI encoding of [`ReplayConfig::speed`] = `None`).
pub const LOCK_STEP: f64 = 0.0;

impl Default for AggregatorOpts {
    /// What an empty command line gives, without the environment: the libraries' defaults.
    fn default() -> Self {
        AggregatorOpts {
            source: SourceKind::Replay,
            mode: ModeArg::Production,
            poll_interval_sec: None,
            prometheus_url: None,
            services: None,
            config: None,
            preset: None,
            query_timeout_sec: None,
            discover: None,
            docker_host: DEFAULT_DOCKER_HOST.into(),
            discover_policy_file: None,
            prometheus_bearer_token_file: None,
            polls: None,
            csv_in_production: false,
            trace: None,
            speed: LOCK_STEP,
            duration_hours: DEFAULT_REPLAY_HOURS,
            trace_scale: DEFAULT_TRACE_SCALE,
            initial_replicas: DEFAULT_INITIAL_REPLICAS,
            seed: DEFAULT_SEED,
            sla_p95_ms: DEFAULT_SLA_P95_MS,
            decision_wait_sec: DEFAULT_DECISION_WAIT_SECS,
            csv_path: DEFAULT_CSV_PATH.into(),
        }
    }
}

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
            DEFAULT_REPLAY_SERVICES.map(String::from).to_vec()
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
    ConfigError::check(problems)?;
    Ok(cfg)
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
        .unwrap_or_else(|| DEFAULT_PROMETHEUS_URL.to_string());
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
        // Re-read when it changes (a rotated secret).
        src.bearer_token_file = Some(path.clone());
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
