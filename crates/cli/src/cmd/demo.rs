//! `autoscaler demo`: the embedded pipeline on a replay of the NASA-HTTP trace, with decision
//! blocks and a summary. Every setting it does not expose is the libraries' default.

use std::time::Instant;

use autoscaler_aggregator::DEFAULT_REPLAY_HOURS;
use autoscaler_contract::Strategy;
use autoscaler_simulator::DEFAULT_SEED;
use autoscaler_voting::rules::DEFAULT_STRATEGY;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::exit::ConfigError;
use crate::opts::aggregator::AggregatorOpts;
use crate::opts::models::ModelsOpts;
use crate::opts::parse::parse_strategy;
use crate::opts::scaler::ScalerOpts;
use crate::pipeline::{self, Pipeline};

/// Hours of the shipped trace (1995-07-12 to 07-14): the longest demo.
pub const MAX_HOURS: f64 = 72.0;
/// Where the demo writes the lab's timeline of the same hours.
pub const TIMELINE_PLOT: &str = "output/demo-timeline.svg";

/// `autoscaler demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Voting strategy.
    #[arg(long, env = "VOTING_STRATEGY", default_value_t = DEFAULT_STRATEGY, value_parser = parse_strategy)]
    pub strategy: Strategy,
    /// Seed of the simulation.
    #[arg(long, env = "AUTOSCALER_SEED", default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Hours of the NASA trace to replay (at most 72).
    #[arg(long, default_value_t = DEFAULT_REPLAY_HOURS)]
    pub hours: f64,
    /// Where the models are.
    #[command(flatten)]
    pub models: ModelsOpts,
    /// Print only the summary, no decision blocks.
    #[arg(long)]
    pub quiet: bool,
}

/// The pipeline the demo runs: the defaults, with the demo's strategy, seed and hours.
pub fn pipeline_of(a: &DemoArgs) -> Result<Pipeline, ConfigError> {
    if !(a.hours > 0.0 && a.hours <= MAX_HOURS) {
        return Err(ConfigError::one(format!(
            "--hours must be in (0, 72] (the shipped trace is 3 days), got {}",
            a.hours
        )));
    }
    let aggregator = AggregatorOpts {
        seed: a.seed,
        duration_hours: a.hours,
        ..AggregatorOpts::default()
    };
    let scaler = ScalerOpts {
        strategy: a.strategy,
        ..ScalerOpts::default()
    };
    let mut p = Pipeline::from_opts(&aggregator, &a.models, &scaler)?;
    p.print_decisions = !a.quiet;
    Ok(p)
}

/// Run the demo.
pub async fn run(a: DemoArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let p = pipeline_of(&a)?;
    let started = Instant::now();
    println!(
        "Demo: {} h of the NASA-HTTP trace (1995-07-12 onward, STS-70 launch flash crowd on \
         07-13) through two simulated services, three models voting ({}), seed {}.",
        a.hours, a.strategy, a.seed
    );
    pipeline::run(p, shutdown).await?;
    // The same hours in the lab: the default policy beside its baselines (deterministic lines;
    // the plot's path goes to stderr, not the summary).
    let (hours, seed) = (a.hours, a.seed);
    let bt = tokio::task::spawn_blocking(move || autoscaler_lab::demo::demo_backtest(hours, seed))
        .await??;
    for line in autoscaler_lab::demo::demo_lines(&bt) {
        println!("{line}");
    }
    let plot = std::path::Path::new(TIMELINE_PLOT);
    if let Some(dir) = plot.parent() {
        std::fs::create_dir_all(dir)?;
    }
    autoscaler_lab::plot::write_plot(&bt, plot)?;
    eprintln!("wrote the timeline of the same hours to {}", plot.display());
    eprintln!(
        "demo finished in {:.1} s wall time",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
