//! `autoscaler outcomes`: join the inference services' prediction logs with what followed into
//! labelled rows (future-only labels, as in training) — the learning loop's first step.
//!
//! Resumable: it re-reads every log (rotated files included) and rewrites `outcomes.csv` and
//! `outcome_votes.csv` atomically, so a second run on the same logs gives the same files.

use std::path::PathBuf;

use anyhow::Context;
use autoscaler_contract::DEFAULT_SLA_P95_MS;
use autoscaler_training::learning::{
    outcomes, prediction_files, read_predictions, write_outcomes, DEFAULT_LEARNING_DIR,
    DEFAULT_PREDICTIONS_DIR,
};
use autoscaler_training::{load_csvs, BadRows, DataInput, SlaSpec, DEFAULT_HORIZON};
use clap::Args;
use tokio_util::sync::CancellationToken;

/// `autoscaler outcomes`.
#[derive(Debug, Clone, Args)]
pub struct OutcomesArgs {
    /// Directory of the prediction logs (`predictions_<model>.csv` and rotated files).
    #[arg(long, env = "AUTOSCALER_PREDICTIONS_DIR", default_value = DEFAULT_PREDICTIONS_DIR)]
    pub predictions: PathBuf,
    /// Metrics CSVs of the same services (what followed the last logged vectors); optional.
    #[arg(long, env = "AUTOSCALER_OUTCOME_METRICS", value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Where `outcomes.csv` and `outcome_votes.csv` go.
    #[arg(long, env = "AUTOSCALER_LEARNING_DIR", default_value = DEFAULT_LEARNING_DIR)]
    pub out: PathBuf,
    /// Label horizon: a violation in any of the next H polls (never the current one).
    #[arg(long, env = "AUTOSCALER_HORIZON", default_value_t = DEFAULT_HORIZON)]
    pub horizon: usize,
    /// The SLA on p95 latency, ms.
    #[arg(long = "sla-p95-ms", env = "AUTOSCALER_SLA_P95_MS", default_value_t = DEFAULT_SLA_P95_MS)]
    pub sla_p95_ms: f64,
    /// Per-service SLAs (`service=ms` lines or a JSON object); wins over --sla-p95-ms.
    #[arg(long, env = "AUTOSCALER_SLA_FILE")]
    pub sla_file: Option<PathBuf>,
}

/// Read the logs, join, write, and print what was found.
pub async fn run(a: OutcomesArgs, _shutdown: CancellationToken) -> anyhow::Result<()> {
    let sla = match &a.sla_file {
        Some(f) => SlaSpec::from_file(f)?,
        None if a.sla_p95_ms.is_finite() && a.sla_p95_ms > 0.0 => SlaSpec::Global(a.sla_p95_ms),
        None => anyhow::bail!("--sla-p95-ms must be > 0, got {}", a.sla_p95_ms),
    };
    let files = prediction_files(&a.predictions)?;
    let log = read_predictions(&files)?;
    for bad in log.bad_rows.iter().take(20) {
        eprintln!("skipped bad prediction row {bad}");
    }
    let metrics = if a.metrics.is_empty() {
        None
    } else {
        let inputs: Vec<DataInput> = a.metrics.iter().map(|s| DataInput::parse(s)).collect();
        Some(load_csvs(&inputs, BadRows::Skip).context("reading --metrics")?)
    };
    let o = outcomes(&log, metrics.as_ref(), &sla, a.horizon)?;
    let (vectors, votes) = write_outcomes(&o, &a.out)?;
    let positives = o.vectors.iter().filter(|v| v.label).count();
    println!(
        "{} prediction rows read from {} files ({} bad rows skipped, {} duplicate votes)",
        log.rows.len(),
        log.files.len(),
        log.bad_rows.len(),
        o.duplicates
    );
    println!(
        "{} vectors labelled ({} violations), {} votes with their outcome",
        o.vectors.len(),
        positives,
        o.votes.len()
    );
    for (service, n) in &o.pending {
        println!("{service}: {n} logged vectors have no outcome yet (their future is not logged)");
    }
    println!("wrote {} and {}", vectors.display(), votes.display());
    Ok(())
}
