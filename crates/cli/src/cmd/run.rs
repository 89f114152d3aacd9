//! `autoscaler run`: every service in one process, on the in-process bus.

use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::opts::aggregator::AggregatorOpts;
use crate::opts::models::ModelsOpts;
use crate::opts::scaler::ScalerOpts;
use crate::pipeline::{self, Pipeline};

/// `autoscaler run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The aggregator's options.
    #[command(flatten)]
    pub aggregator: AggregatorOpts,
    /// Where the models are.
    #[command(flatten)]
    pub models: ModelsOpts,
    /// The scaler's options.
    #[command(flatten)]
    pub scaler: ScalerOpts,
    /// Print a decision block for every decision that changes something.
    #[arg(long, env = "AUTOSCALER_PRINT_DECISIONS")]
    pub print_decisions: bool,
    /// Write every decision as one JSON line to this file.
    #[arg(long, env = "AUTOSCALER_DECISIONS_JSONL")]
    pub decisions_jsonl: Option<PathBuf>,
}

/// Run the whole pipeline and print its summary.
pub async fn run(a: RunArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut p = Pipeline::from_opts(&a.aggregator, &a.models, &a.scaler)?;
    p.print_decisions = a.print_decisions;
    p.decisions_jsonl = a.decisions_jsonl;
    pipeline::run(p, shutdown).await
}
