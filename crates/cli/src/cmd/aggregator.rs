//! `autoscaler aggregator`: poll metrics and publish one feature vector per service and poll.

use autoscaler_aggregator::{AggregatorDeps, Mode, Source};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::bus::{standalone_bus, BusArgs, BusKind};
use crate::opts::aggregator::{aggregator_config, AggregatorOpts};
use crate::opts::telemetry::MetricsOpts;

/// `autoscaler aggregator`.
#[derive(Debug, Clone, Args)]
pub struct AggregatorArgs {
    /// The aggregator's options.
    #[command(flatten)]
    pub opts: AggregatorOpts,
    /// The bus.
    #[command(flatten)]
    pub bus: BusArgs,
    /// Prometheus `/metrics`.
    #[command(flatten)]
    pub metrics: MetricsOpts,
}

/// Run the aggregator; prints `aggregator: N polls, M vectors` on stderr at the end.
pub async fn run(a: AggregatorArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut cfg = aggregator_config(&a.opts)?;
    cfg.metrics_topic = a.bus.metrics_topic.clone();
    cfg.decisions_topic = a.bus.decisions_topic.clone();
    if let (Source::Replay(r), BusKind::Kafka) = (&mut cfg.source, a.bus.bus) {
        // Over Kafka the consumers check a vector's age against the wall clock: the replay
        // runs from now (its vector ids are then unique per run, too).
        r.start_time = chrono::Utc::now();
    }
    let needs_peers = cfg.mode == Mode::Production;
    a.metrics.start(&shutdown).await;
    let bus = standalone_bus(&a.bus, needs_peers).await?;
    let report = autoscaler_aggregator::run(
        cfg,
        AggregatorDeps {
            bus,
            progress: None,
        },
        shutdown,
    )
    .await?;
    eprintln!(
        "aggregator: {} polls, {} vectors",
        report.ticks, report.vectors
    );
    Ok(())
}
