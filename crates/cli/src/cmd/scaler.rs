//! `autoscaler scaler`: the authoritative scaler — gather votes, tally, apply the safety
//! envelope, actuate.

use std::path::PathBuf;
use std::sync::Arc;

use autoscaler_aggregator::DEFAULT_INITIAL_REPLICAS;
use autoscaler_scaler::swarm::DEFAULT_DOCKER_HOST;
use autoscaler_scaler::{
    Actuator, DryRunActuator, PolicyFile, ScalerDeps, SimulatedActuator, SwarmActuator, SwarmConfig,
};
use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use std::time::Duration;

use autoscaler_scaler::lease::{start_on_kafka, LeaseConfig, DEFAULT_LEASE_TTL_SECS};
use autoscaler_scaler::{default_state_db, run_with_lease, Lease};

use crate::bus::{kafka_bus, standalone_bus, BusArgs, BusKind};
use crate::exit::ConfigError;
use crate::opts::scaler::{scaler_config, ScalerOpts};
use crate::opts::telemetry::MetricsOpts;

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

/// `autoscaler scaler`.
#[derive(Debug, Clone, Args)]
pub struct ScalerArgs {
    /// The actuator: `swarm`, `dry-run` or `simulated`. No default: a production scaler
    /// that silently simulated would report `acted: true` and change nothing (exit 64 without).
    #[arg(long, env = "ACTUATOR", value_enum)]
    pub actuator: Option<ActuatorKind>,
    /// Lease period, seconds: over Kafka exactly one scaler acts; a standby takes over within
    /// two periods after the holder dies.
    #[arg(long, env = "LEASE_TTL_SEC", default_value_t = DEFAULT_LEASE_TTL_SECS)]
    pub lease_ttl_sec: u64,
    /// Replicas a simulated service starts with (must match the replay's).
    #[arg(long, env = "AUTOSCALER_INITIAL_REPLICAS", default_value_t = DEFAULT_INITIAL_REPLICAS)]
    pub initial_replicas: u32,
    /// Docker daemon of the swarm actuator: `unix:///path/docker.sock`, a socket path, or
    /// `tcp://host:port`.
    #[arg(long, env = "DOCKER_HOST", default_value = DEFAULT_DOCKER_HOST)]
    pub docker_host: String,
    /// Per-service policies (JSON: `{"services": {"orders": {"min": 2, "max": 8}}}`) for the
    /// swarm actuator; a service's `autoscaler.*` labels win where both set a field.
    #[arg(long, env = "AUTOSCALER_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,
    /// State database (SQLite): cooldowns, stabilization history, decided vector ids and the
    /// decision log survive restarts. Over Kafka it defaults to
    /// `$XDG_STATE_HOME/autoscaler/scaler-<group>.db` (else under `~/.local/state`).
    #[arg(long, env = "STATE_DB")]
    pub state_db: Option<PathBuf>,
    /// The scaler's options.
    #[command(flatten)]
    pub opts: ScalerOpts,
    /// The bus.
    #[command(flatten)]
    pub bus: BusArgs,
    /// Prometheus `/metrics`.
    #[command(flatten)]
    pub metrics: MetricsOpts,
}

/// Run the scaler until `shutdown`.
pub async fn run(a: ScalerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut cfg = scaler_config(&a.opts)?;
    let Some(kind) = a.actuator else {
        return Err(ConfigError::one(
            "no actuator: give --actuator (or ACTUATOR) swarm, dry-run or simulated",
        )
        .into());
    };
    let actuator: Arc<dyn Actuator> = match kind {
        ActuatorKind::Simulated => Arc::new(SimulatedActuator::new(a.initial_replicas)),
        ActuatorKind::DryRun => Arc::new(DryRunActuator::standalone(a.initial_replicas)),
        ActuatorKind::Swarm => {
            let policy_file = match &a.policy_file {
                Some(p) => PolicyFile::load(p).map_err(|e| ConfigError::one(e.to_string()))?,
                None => PolicyFile::default(),
            };
            Arc::new(SwarmActuator::new(SwarmConfig {
                docker_host: a.docker_host.clone(),
                policy_file,
                ..Default::default()
            }))
        }
    };
    cfg.state_db = a.state_db.clone();
    // What `docker compose logs -f authoritative-scaler` shows: the seed's block for every
    // decision that changes something, one line for the rest.
    cfg.print_decisions = true;
    cfg.votes_topic = a.bus.votes_topic.clone();
    cfg.decisions_topic = a.bus.decisions_topic.clone();
    if a.bus.bus != BusKind::Kafka {
        // The memory bus reaches no other process: this is the clear error.
        standalone_bus(&a.bus, true).await?;
    }
    let ttl = Duration::from_secs(a.lease_ttl_sec);
    let group = format!("{}{}", a.bus.kafka_group_prefix, cfg.group);
    if cfg.state_db.is_none() {
        // Over Kafka a restart without its state would decide and act again on the votes it
        // had not committed.
        cfg.state_db = Some(default_state_db(&group).ok_or_else(|| {
            ConfigError::one("no --state-db and neither XDG_STATE_HOME nor HOME to default it")
        })?);
    }
    let db = cfg.state_db.clone().expect("set above");
    a.metrics.start(&shutdown).await;
    // "Dead letters" reads 0, not "no data", until the first vote is dead-lettered.
    autoscaler_telemetry::watch_dead_letters(&cfg.votes_topic);
    let lease_cfg = LeaseConfig {
        ttl,
        ..LeaseConfig::new(LeaseConfig::holder_for(&db))
    };
    ConfigError::check(lease_cfg.problems())?;
    let kafka = Arc::new(kafka_bus(&a.bus).await?);
    let (lease, lease_task) = start_on_kafka(&kafka, lease_cfg, shutdown.clone()).await?;
    tracing::info!(state_db = %db.display(), lease_ttl_sec = a.lease_ttl_sec, "campaigning for the lease");
    let lease: Arc<dyn Lease> = lease;
    let bus: Arc<dyn autoscaler_bus::Bus> = kafka;
    let r = run_with_lease(cfg, ScalerDeps { bus, actuator }, Some(lease), shutdown).await;
    // A held lease is released on the way out (the standby takes over at once).
    let _ = tokio::time::timeout(Duration::from_secs(5), lease_task).await;
    r?;
    Ok(())
}
