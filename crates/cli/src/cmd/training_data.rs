//! `autoscaler training-data`: simulated, labelled training runs as a metrics CSV (what the
//! default models train on).

use std::path::PathBuf;

use autoscaler_simulator::{
    TrainingDataConfig, DEFAULT_SEED, DEFAULT_TRAINING_DAYS, DEFAULT_TRAINING_RUNS,
};
use clap::Args;
use tokio_util::sync::CancellationToken;

/// Default CSV `training-data` writes.
pub const DEFAULT_OUT: &str = "output/simulated_training.csv";

/// `autoscaler training-data`.
#[derive(Debug, Clone, Args)]
pub struct TrainingDataArgs {
    /// The CSV to write.
    #[arg(long, env = "AUTOSCALER_TRAINING_CSV", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    /// Seed of the simulation.
    #[arg(long, env = "AUTOSCALER_SEED", default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Simulated runs (shapes diurnal, spiky, ramp, step in turn).
    #[arg(long, env = "AUTOSCALER_SIM_RUNS", default_value_t = DEFAULT_TRAINING_RUNS)]
    pub runs: usize,
    /// Days per run.
    #[arg(long, env = "AUTOSCALER_SIM_DAYS", default_value_t = DEFAULT_TRAINING_DAYS)]
    pub days: u32,
}

/// Write the CSV.
pub async fn run(a: TrainingDataArgs, _shutdown: CancellationToken) -> anyhow::Result<()> {
    let cfg = TrainingDataConfig {
        runs: a.runs,
        days_per_run: a.days,
        seed: a.seed,
        ..TrainingDataConfig::default()
    };
    let rows = autoscaler_training::simulated_csv(&cfg, &a.out)?;
    println!("wrote {rows} rows ({} runs) to {}", a.runs, a.out.display());
    Ok(())
}
