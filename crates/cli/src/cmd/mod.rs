//! The subcommands: one module per command, each owning its clap arguments, mapping them into
//! its service's configuration and running it.
//!
//! Rules (see `crates/cli/README.md`): a command module imports shared modules of this crate
//! (`bus`, `embedded`, `exit`, `opts`, `pipeline`, `report`, …) and library crates, never a
//! sibling command; every default is a named constant of the library that owns it, used as
//! `default_value_t = CONST` (or `default_value = CONST` for strings).
//!
//! To add a command `foo`: write `cmd/foo.rs` with `pub struct FooArgs` (derive `clap::Args`)
//! and `pub async fn run(a: FooArgs, shutdown: CancellationToken) -> anyhow::Result<()>`; add
//! `pub mod foo;` below, a variant `Foo(foo::FooArgs)` (its doc comment is the help line) to
//! [`Command`], and its arm `Command::Foo(a) => foo::run(a, shutdown).await,` to
//! [`Command::run`].

pub mod aggregator;
pub mod backtest;
pub mod bench_footprint;
pub mod bench_kafka;
pub mod bench_models;
pub mod demo;
pub mod demo_service;
pub mod drift;
pub mod evaluate;
pub mod forecast_eval;
pub mod inference;
pub mod optimizer;
pub mod outcomes;
pub mod promote;
pub mod retrain;
pub mod run;
pub mod scaler;
pub mod tail;
pub mod train;
pub mod training_data;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// An ML autoscaler for Docker Swarm: three models vote on every service's metrics, an
/// authoritative scaler acts on the tally inside a safety envelope.
#[derive(Debug, Parser)]
#[command(name = "autoscaler", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (tracing's EnvFilter syntax), e.g. `info`, `autoscaler=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "warn", global = true)]
    pub log: String,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll metrics (Prometheus, or a trace replay) and publish one feature vector per service
    /// and poll.
    Aggregator(aggregator::AggregatorArgs),
    /// Run one model: one vote per feature vector.
    Inference(inference::InferenceArgs),
    /// The authoritative scaler: gather votes, tally, apply the safety envelope, actuate.
    Scaler(scaler::ScalerArgs),
    /// Every service in one process, on the in-process bus.
    Run(run::RunArgs),
    /// The embedded pipeline on a replay of a real trace (NASA-HTTP, July 1995), with decision
    /// blocks and a summary.
    Demo(demo::DemoArgs),
    /// Print a topic's messages, one JSON object per line (Kafka).
    Tail(tail::TailArgs),
    /// Measure a running Kafka pipeline: throughput and vector-to-decision latency.
    BenchKafka(bench_kafka::BenchKafkaArgs),
    /// Measure each service's resident memory and start-up time on Kafka, and the binary size.
    BenchFootprint(bench_footprint::BenchFootprintArgs),
    /// Benchmark the models: native, the C API / smartcore and Python on the same files.
    BenchModels(bench_models::BenchModelsArgs),
    /// Train the models from metrics CSVs (development mode's or the simulator's).
    Train(train::TrainArgs),
    /// Evaluate saved models and the voting rules on metrics CSVs: table, JSON and plot.
    Evaluate(evaluate::EvaluateArgs),
    /// Write simulated, labelled training runs as a metrics CSV (what the default models
    /// train on).
    TrainingData(training_data::TrainingDataArgs),
    /// Learning loop: join the prediction logs with what followed into labelled rows.
    Outcomes(outcomes::OutcomesArgs),
    /// Learning loop: train a candidate on the recent window, compare it with the live models
    /// on the most recent slice, log its shadow votes, promote it if better (`--schedule`).
    Retrain(retrain::RetrainArgs),
    /// Learning loop: feature drift (PSI) and live recall on the recent rows against the live
    /// model card; exit 1 on an alarm.
    Drift(drift::DriftArgs),
    /// Learning loop: promote a candidate to the live models (atomic swap; hot reload).
    Promote(promote::PromoteArgs),
    /// Every chosen policy side by side on one trace through the simulated services (the HPA
    /// sweep, the baselines, the default `hybrid` and the clairvoyant oracle): tables, JSON, plots.
    Backtest(backtest::BacktestArgs),
    /// A small HTTP service to scale: Sock Shop-like routes that burn real CPU on a fixed pool
    /// of workers, and Sock Shop's Prometheus metrics on /metrics.
    DemoService(demo_service::DemoServiceArgs),
    /// Rolling-origin evaluation of the demand forecasters on a trace: MAE/RMSE/MAPE per model
    /// and horizon, SARIMAX's order and AIC, JSON and plot.
    ForecastEval(forecast_eval::ForecastEvalArgs),
    /// The optimizer API: POST /optimize answers a replica plan (forecast + MILP) one value per
    /// second; /health, /metrics; token auth.
    Optimizer(optimizer::OptimizerArgs),
}

impl Command {
    /// Run the command until it is done or `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        match self {
            Command::Aggregator(a) => aggregator::run(a, shutdown).await,
            Command::Inference(a) => inference::run(a, shutdown).await,
            Command::Scaler(a) => scaler::run(a, shutdown).await,
            Command::Run(a) => run::run(a, shutdown).await,
            Command::Demo(a) => demo::run(a, shutdown).await,
            Command::Tail(a) => tail::run(a, shutdown).await,
            Command::BenchKafka(a) => bench_kafka::run(a, shutdown).await,
            Command::BenchFootprint(a) => bench_footprint::run(a, shutdown).await,
            Command::BenchModels(a) => bench_models::run(a, shutdown).await,
            Command::Train(a) => train::run(a, shutdown).await,
            Command::Evaluate(a) => evaluate::run(a, shutdown).await,
            Command::TrainingData(a) => training_data::run(a, shutdown).await,
            Command::DemoService(a) => demo_service::run(a, shutdown).await,
            Command::Outcomes(a) => outcomes::run(a, shutdown).await,
            Command::Retrain(a) => retrain::run(a, shutdown).await,
            Command::Drift(a) => drift::run(a, shutdown).await,
            Command::Promote(a) => promote::run(a, shutdown).await,
            Command::Backtest(a) => backtest::run(a, shutdown).await,
            Command::ForecastEval(a) => forecast_eval::run(a, shutdown).await,
            Command::Optimizer(a) => optimizer::run(a, shutdown).await,
        }
    }
}
