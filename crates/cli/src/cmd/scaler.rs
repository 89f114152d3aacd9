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

use crate::bus::{standalone_bus, BusArgs};
use crate::exit::ConfigError;
use crate::opts::scaler::{scaler_config, ScalerOpts};

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
    /// The actuator.
    #[arg(long, env = "ACTUATOR", value_enum, default_value = "simulated")]
    pub actuator: ActuatorKind,
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
    /// decision log survive restarts. Without it, a restart forgets them.
    #[arg(long, env = "STATE_DB")]
    pub state_db: Option<PathBuf>,
    /// The scaler's options.
    #[command(flatten)]
    pub opts: ScalerOpts,
    /// The bus.
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Run the scaler until `shutdown`.
pub async fn run(a: ScalerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut cfg = scaler_config(&a.opts)?;
    let actuator: Arc<dyn Actuator> = match a.actuator {
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
    cfg.votes_topic = a.bus.votes_topic.clone();
    cfg.decisions_topic = a.bus.decisions_topic.clone();
    let bus = standalone_bus(&a.bus, true).await?;
    autoscaler_scaler::run(cfg, ScalerDeps { bus, actuator }, shutdown).await?;
    Ok(())
}
