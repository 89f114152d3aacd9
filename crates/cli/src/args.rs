//! Command-line arguments. Every option is also read from an environment variable: the Sock Shop
//! seed's name where it has one (`POLL_INTERVAL_SEC`, `VOTING_STRATEGY`, …), `AUTOSCALER_…`
//! otherwise.

use std::path::PathBuf;

use autoscaler_contract::{ModelKind, Strategy};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// An ML autoscaler for Docker Swarm: three models vote on every service's metrics, an
/// authoritative scaler acts on the tally inside a safety envelope.
#[derive(Debug, Parser)]
#[command(name = "autoscaler", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (tracing's EnvFilter syntax), e.g. `info`, `autoscaler=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "warn", global = true)]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll metrics (Prometheus, or a trace replay) and publish one feature vector per service
    /// and poll.
    Aggregator(AggregatorArgs),
    /// Run one model: one vote per feature vector.
    Inference(InferenceArgs),
    /// The authoritative scaler: gather votes, tally, apply the safety envelope, actuate.
    Scaler(ScalerArgs),
    /// Every service in one process, on the in-process bus.
    Run(RunArgs),
    /// The embedded pipeline on a replay of a real trace (NASA-HTTP, July 1995), with decision
    /// blocks and a summary.
    Demo(DemoArgs),
    /// Print a topic's messages, one JSON object per line (Kafka).
    Tail(TailArgs),
    /// Measure a running Kafka pipeline: throughput and vector-to-decision latency.
    BenchKafka(crate::bench_cmd::BenchKafkaArgs),
    /// Train the models from metrics CSVs (development mode's or the simulator's).
    Train(crate::train_cmd::TrainArgs),
    /// Evaluate saved models and the voting rules on metrics CSVs: table, JSON and plot.
    Evaluate(crate::train_cmd::EvaluateArgs),
    /// Write simulated, labelled training runs as a metrics CSV (what the default models
    /// train on).
    TrainingData(crate::train_cmd::TrainingDataArgs),
    /// A small HTTP service to scale: Sock Shop-like routes that burn real CPU on a fixed pool
    /// of workers, and Sock Shop's Prometheus metrics on /metrics.
    DemoService(DemoServiceOpts),
}

/// `autoscaler tail`.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// The topic, e.g. `scaling-decisions`, `metrics`, `model-votes.dlq`.
    pub topic: String,
    /// Start at the beginning of the topic instead of its end.
    #[arg(long)]
    pub from_beginning: bool,
    /// Stop after this many messages.
    #[arg(long)]
    pub max: Option<u64>,
    /// Stop when no message arrives for this many seconds (0: wait forever).
    #[arg(long = "idle-exit-sec", default_value_t = 0)]
    pub idle_exit_sec: u64,
    /// Wrap each message with its partition, offset, key and headers.
    #[arg(long)]
    pub with_meta: bool,
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Which bus carries the topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BusKind {
    /// In-process bounded channels (only connects services within one process).
    Memory,
    /// Apache Kafka (or a Kafka-protocol broker).
    Kafka,
}

/// Bus options.
#[derive(Debug, Clone, Args)]
pub struct BusArgs {
    /// The bus.
    #[arg(long, env = "BUS", value_enum, default_value = "memory")]
    pub bus: BusKind,
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_bootstrap_servers: String,
    /// Capacity of each in-process queue (messages).
    #[arg(long, env = "AUTOSCALER_BUS_CAPACITY", default_value_t = 1024)]
    pub bus_capacity: usize,
    /// What the in-process bus does when a queue is full: `block` (back-pressure, nothing lost)
    /// or `drop-newest` (counted).
    #[arg(long, env = "AUTOSCALER_BUS_OVERFLOW", default_value = "block")]
    pub bus_overflow: autoscaler_bus::Overflow,
    /// Topic of feature vectors.
    #[arg(long, env = "METRICS_TOPIC", default_value = "metrics")]
    pub metrics_topic: String,
    /// Topic of model votes.
    #[arg(long, env = "VOTES_TOPIC", default_value = "model-votes")]
    pub votes_topic: String,
    /// Topic of scaling decisions.
    #[arg(long, env = "DECISIONS_TOPIC", default_value = "scaling-decisions")]
    pub decisions_topic: String,
    /// Partitions of the topics created at start-up (Kafka).
    #[arg(long, env = "KAFKA_PARTITIONS", default_value_t = 3)]
    pub kafka_partitions: i32,
    /// Replication factor of the topics created at start-up (Kafka).
    #[arg(long, env = "KAFKA_REPLICATION", default_value_t = 1)]
    pub kafka_replication: i32,
    /// Prefix of every consumer group id (several pipelines on one cluster).
    #[arg(long, env = "KAFKA_GROUP_PREFIX", default_value = "")]
    pub kafka_group_prefix: String,
}

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
    #[arg(
        long = "docker-host",
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
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
    #[arg(long, env = "AUTOSCALER_SPEED", default_value_t = 0.0)]
    pub speed: f64,
    /// Hours of trace to replay.
    #[arg(long, env = "AUTOSCALER_DURATION_HOURS", default_value_t = 48.0)]
    pub duration_hours: f64,
    /// Requests per trace request (the NASA trace peaks at 6.75 req/s).
    #[arg(long, env = "AUTOSCALER_TRACE_SCALE", default_value_t = 10.0)]
    pub trace_scale: f64,
    /// Replicas each simulated service starts with.
    #[arg(long, env = "AUTOSCALER_INITIAL_REPLICAS", default_value_t = 2)]
    pub initial_replicas: u32,
    /// Seed of the simulation.
    #[arg(long, env = "AUTOSCALER_SEED", default_value_t = 42)]
    pub seed: u64,
    /// The SLA on p95 latency, ms (reported violations; training labels).
    #[arg(
        long = "sla-p95-ms",
        env = "AUTOSCALER_SLA_P95_MS",
        default_value_t = 250.0
    )]
    pub sla_p95_ms: f64,
    /// Lock-step replay: how long to wait for a poll's decisions before going on without them
    /// (longer than the scaler's decision window).
    #[arg(
        long = "decision-wait-sec",
        env = "AUTOSCALER_DECISION_WAIT_SEC",
        default_value_t = 60
    )]
    pub decision_wait_sec: u64,
    /// Metrics CSV (development mode).
    #[arg(
        long,
        env = "METRICS_CSV",
        default_value = "output/sockshop_metrics.csv"
    )]
    pub csv_path: PathBuf,
}

/// `autoscaler aggregator`.
#[derive(Debug, Clone, Args)]
pub struct AggregatorArgs {
    #[command(flatten)]
    pub opts: AggregatorOpts,
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Model options.
#[derive(Debug, Clone, Args)]
pub struct ModelsOpts {
    /// Directory of model artefacts (`<dir>/<model>/model.json` + `metadata.json`). Missing
    /// artefacts are trained from simulated data on first use.
    #[arg(long, env = "MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
}

/// `autoscaler inference`.
#[derive(Debug, Clone, Args)]
pub struct InferenceArgs {
    /// The model this process runs.
    #[arg(long, env = "MODEL", value_parser = parse_model)]
    pub model: ModelKind,
    #[command(flatten)]
    pub models: ModelsOpts,
    /// Dead-letter vectors older than this (seconds); 0 disables the check.
    #[arg(long = "max-skew-sec", env = "MAX_SKEW_SEC", default_value_t = 60)]
    pub max_skew_sec: u64,
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Which actuator the scaler drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActuatorKind {
    /// An in-memory cluster (replays and the demo).
    Simulated,
    /// Log what would be done; change nothing.
    DryRun,
    /// Docker Swarm services.
    Swarm,
}

/// Scaler options.
#[derive(Debug, Clone, Args)]
pub struct ScalerOpts {
    /// Voting strategy.
    #[arg(long = "strategy", env = "VOTING_STRATEGY", default_value = "majority", value_parser = parse_strategy)]
    pub strategy: Strategy,
    /// Decide at the latest this many seconds after a vector's first vote.
    #[arg(
        long = "decision-window-sec",
        env = "DECISION_WINDOW_SEC",
        default_value_t = 5.0
    )]
    pub decision_window_sec: f64,
    /// Per-model weights for the weighted strategy, e.g. `xgboost=2,random_forest=1`.
    #[arg(long, env = "MODEL_WEIGHTS", value_delimiter = ',', value_parser = parse_weight)]
    pub weights: Vec<(ModelKind, f64)>,
    /// The weighted strategy scales up when Σw·p/Σw is above this.
    #[arg(long, env = "WEIGHTED_THRESHOLD", default_value_t = 0.5)]
    pub weighted_threshold: f64,
    /// Scale down only when every model's P(violation) at one replica fewer is at most this.
    #[arg(long, env = "SCALE_DOWN_MAX_PROBABILITY", default_value_t = 0.2)]
    pub scale_down_max_probability: f64,
    /// The weighted strategy needs at least this many votes.
    #[arg(long, env = "MIN_QUORUM", default_value_t = 2)]
    pub min_quorum: usize,
    /// Fewest replicas.
    #[arg(long, env = "MIN_REPLICAS", default_value_t = 1)]
    pub min_replicas: u32,
    /// Most replicas.
    #[arg(long, env = "MAX_REPLICAS", default_value_t = 10)]
    pub max_replicas: u32,
    /// No scaling up within this many seconds of the last scale-up.
    #[arg(
        long = "cooldown-up-sec",
        env = "COOLDOWN_UP_SEC",
        default_value_t = 300
    )]
    pub cooldown_up_sec: u64,
    /// No scaling down within this many seconds of the last scale-down.
    #[arg(
        long = "cooldown-down-sec",
        env = "COOLDOWN_DOWN_SEC",
        default_value_t = 240
    )]
    pub cooldown_down_sec: u64,
    /// No scaling down while an "up" was recommended within this many seconds.
    #[arg(
        long = "stabilization-sec",
        env = "STABILIZATION_SEC",
        default_value_t = 300
    )]
    pub stabilization_sec: u64,
    /// Most replicas added per decision.
    #[arg(long, env = "MAX_STEP", default_value_t = 1)]
    pub max_step: u32,
    /// Decide and publish, change nothing ("would scale").
    #[arg(long, env = "DRY_RUN")]
    pub dry_run: bool,
}

/// `autoscaler scaler`.
#[derive(Debug, Clone, Args)]
pub struct ScalerArgs {
    /// The actuator.
    #[arg(long, env = "ACTUATOR", value_enum, default_value = "simulated")]
    pub actuator: ActuatorKind,
    /// Replicas a simulated service starts with (must match the replay's).
    #[arg(long, env = "AUTOSCALER_INITIAL_REPLICAS", default_value_t = 2)]
    pub initial_replicas: u32,
    /// Docker daemon of the swarm actuator: `unix:///path/docker.sock`, a socket path, or
    /// `tcp://host:port`.
    #[arg(
        long,
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,
    /// Per-service policies (JSON: `{"services": {"orders": {"min": 2, "max": 8}}}`) for the
    /// swarm actuator; a service's `autoscaler.*` labels win where both set a field.
    #[arg(long, env = "AUTOSCALER_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,
    /// State database (SQLite): cooldowns, stabilization history, decided vector ids and the
    /// decision log survive restarts. Without it, a restart forgets them.
    #[arg(long, env = "STATE_DB")]
    pub state_db: Option<PathBuf>,
    #[command(flatten)]
    pub opts: ScalerOpts,
    #[command(flatten)]
    pub bus: BusArgs,
}

/// `autoscaler run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub aggregator: AggregatorOpts,
    #[command(flatten)]
    pub models: ModelsOpts,
    #[command(flatten)]
    pub scaler: ScalerOpts,
    /// Print a decision block for every decision that changes something.
    #[arg(long, env = "AUTOSCALER_PRINT_DECISIONS")]
    pub print_decisions: bool,
    /// Write every decision as one JSON line to this file.
    #[arg(long, env = "AUTOSCALER_DECISIONS_JSONL")]
    pub decisions_jsonl: Option<PathBuf>,
}

/// `autoscaler demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Voting strategy.
    #[arg(long, env = "VOTING_STRATEGY", default_value = "majority", value_parser = parse_strategy)]
    pub strategy: Strategy,
    /// Seed of the simulation.
    #[arg(long, env = "AUTOSCALER_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Hours of the NASA trace to replay (at most 72).
    #[arg(long, default_value_t = 48.0)]
    pub hours: f64,
    #[command(flatten)]
    pub models: ModelsOpts,
    /// Print only the summary, no decision blocks.
    #[arg(long)]
    pub quiet: bool,
}

/// `autoscaler demo-service`.
#[derive(Debug, Clone, Args)]
pub struct DemoServiceOpts {
    /// Address to listen on (`0.0.0.0:8081` in a container; port 0 picks a free one).
    #[arg(long, env = "AUTOSCALER_DEMO_LISTEN", default_value = autoscaler_demo_service::DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: std::net::SocketAddr,
    /// The `service` label of `request_duration_seconds`, e.g. `front-end`, `orders`.
    #[arg(long, env = "AUTOSCALER_DEMO_SERVICE", default_value = autoscaler_demo_service::DEFAULT_SERVICE)]
    pub service: String,
    /// CPU burnt per request on a worker, milliseconds (`?work_ms=N` overrides per request).
    #[arg(long = "work-ms", env = "AUTOSCALER_DEMO_WORK_MS", default_value_t = autoscaler_demo_service::DEFAULT_WORK_MS)]
    pub work_ms: u64,
    /// Requests that burn CPU at once; the others queue (capacity = workers × replicas).
    #[arg(long, env = "AUTOSCALER_DEMO_WORKERS", default_value_t = autoscaler_demo_service::DEFAULT_WORKERS)]
    pub workers: usize,
    /// Percentage of requests answered 500, spread evenly by arrival order (0–100).
    #[arg(
        long = "error-pct",
        env = "AUTOSCALER_DEMO_ERROR_PCT",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub error_pct: f64,
    /// Extra fixed latency per request, milliseconds, spent without a worker
    /// (`?sleep_ms=N` overrides per request).
    #[arg(
        long = "sleep-ms",
        env = "AUTOSCALER_DEMO_SLEEP_MS",
        default_value_t = 0
    )]
    pub sleep_ms: u64,
}

fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("`{s}` is not an IP address and port, e.g. 127.0.0.1:8081 or 0.0.0.0:8081")
    })
}

fn parse_model(s: &str) -> Result<ModelKind, String> {
    s.parse()
}

fn parse_strategy(s: &str) -> Result<Strategy, String> {
    s.parse()
}

fn parse_weight(s: &str) -> Result<(ModelKind, f64), String> {
    let (m, w) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not MODEL=WEIGHT"))?;
    let w: f64 = w
        .parse()
        .map_err(|_| format!("weight `{w}` of {m} is not a number"))?;
    Ok((m.parse()?, w))
}
