//! `autoscaler inference`: one model, one vote per feature vector; reloads the model on SIGHUP
//! or when its files change.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use autoscaler_contract::{ClockMode, ModelKind, DEFAULT_CLOCK};
use autoscaler_inference::{InferenceConfig, InferenceDeps, DEFAULT_MAX_SKEW_SECS};
use autoscaler_telemetry::predictions::DEFAULT_PREDICTIONS_MAX_BYTES;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::bus::{standalone_bus, BusArgs};
use crate::opts::models::ModelsOpts;
use crate::opts::parse::parse_model;
use crate::opts::telemetry::MetricsOpts;
use crate::reload;

/// `autoscaler inference`.
#[derive(Debug, Clone, Args)]
pub struct InferenceArgs {
    /// The model this process runs.
    #[arg(long, env = "MODEL", value_parser = parse_model)]
    pub model: ModelKind,
    /// Where the model is.
    #[command(flatten)]
    pub models: ModelsOpts,
    /// Dead-letter vectors older than this (seconds); 0 disables the check.
    #[arg(long = "max-skew-sec", env = "MAX_SKEW_SEC", default_value_t = DEFAULT_MAX_SKEW_SECS)]
    pub max_skew_sec: u64,
    /// Append every vote to `DIR/predictions_<model>.csv` (columns:
    /// `autoscaler_contract::predictions`); off by default.
    #[arg(long = "predictions-dir", env = "PREDICTIONS_DIR", value_name = "DIR")]
    pub predictions_dir: Option<PathBuf>,
    /// Rotate the prediction log past this many bytes
    /// (to `predictions_<model>.<UTC time>.csv`).
    #[arg(long = "predictions-max-bytes", env = "PREDICTIONS_MAX_BYTES",
          default_value_t = DEFAULT_PREDICTIONS_MAX_BYTES)]
    pub predictions_max_bytes: u64,
    /// The clock vectors are checked against: `wall` in production, `replay` for a replayed log
    /// with simulated time.
    #[arg(long, env = "AUTOSCALER_CLOCK", default_value_t = DEFAULT_CLOCK)]
    pub clock: ClockMode,
    /// The bus.
    #[command(flatten)]
    pub bus: BusArgs,
    /// Prometheus `/metrics`.
    #[command(flatten)]
    pub metrics: MetricsOpts,
}

/// Run the inference service until `shutdown`.
pub async fn run(a: InferenceArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let model = autoscaler_models::load(a.model, &a.models.models_dir)
        .with_context(|| format!("loading {}", a.model))?;
    let bus = standalone_bus(&a.bus, true).await?;
    let mut cfg = InferenceConfig::new(a.model);
    cfg.metrics_topic = a.bus.metrics_topic.clone();
    cfg.votes_topic = a.bus.votes_topic.clone();
    cfg.max_skew_secs = (a.max_skew_sec > 0).then_some(a.max_skew_sec);
    cfg.predictions_dir = a.predictions_dir.clone();
    cfg.predictions_max_bytes = a.predictions_max_bytes;
    a.metrics.start(&shutdown).await;
    // "Dead letters" reads 0, not "no data", until the first vector is dead-lettered.
    autoscaler_telemetry::watch_dead_letters(&cfg.metrics_topic);
    cfg.clock = a.clock;
    let deps = InferenceDeps {
        bus,
        model: Arc::from(model),
    };
    // Reload on SIGHUP or when the artefact changes; no vector is lost in the swap.
    let models = reload::watch_models(a.model, a.models.models_dir.clone(), deps.model.clone())?;
    autoscaler_inference::run_with_reload(cfg, deps, models, shutdown).await?;
    Ok(())
}
