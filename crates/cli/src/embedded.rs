//! The embedded pipeline: aggregator → three inference services → scaler in one process, on
//! the in-process bus, with a simulated actuator. What `autoscaler run` and `autoscaler demo`
//! drive, and what the tests call directly.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use autoscaler_aggregator::{AggregatorConfig, AggregatorDeps, AggregatorReport};
use autoscaler_bus::{Bus, MemoryBus};
use autoscaler_contract::{
    decode, ClockMode, Decision, ModelKind, DECISIONS_TOPIC, METRICS_TOPIC, VOTES_TOPIC,
};
use autoscaler_inference::{InferenceConfig, InferenceDeps, InferenceReport};
use autoscaler_models::Model;
use autoscaler_scaler::{ScalerConfig, ScalerDeps, ScalerReport, SimulatedActuator};
use tokio_util::sync::CancellationToken;

/// Progress of a run: called with (polls done, polls in all).
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Everything the embedded pipeline did.
pub struct EmbeddedReport {
    /// The aggregator's report.
    pub aggregator: AggregatorReport,
    /// The scaler's report.
    pub scaler: ScalerReport,
    /// Each inference service's report.
    pub inference: Vec<(ModelKind, InferenceReport)>,
}

/// Called with each decision, in a deterministic order.
pub type DecisionObserver = Box<dyn FnMut(&Decision) + Send>;

/// The parts of an embedded pipeline.
pub struct Embedded {
    /// The aggregator (a replay).
    pub aggregator: AggregatorConfig,
    /// The scaler.
    pub scaler: ScalerConfig,
    /// One inference service per model.
    pub models: Vec<Arc<dyn Model>>,
    /// Replicas the simulated actuator starts each service with.
    pub initial_replicas: u32,
    /// Capacity of each in-process queue.
    pub bus_capacity: usize,
}

/// Run aggregator → 3 inference services → scaler in this process on the in-process bus,
/// until the replay ends or `shutdown` is cancelled.
pub async fn run_embedded(
    parts: Embedded,
    mut observe: DecisionObserver,
    progress: Option<Progress>,
    shutdown: CancellationToken,
) -> anyhow::Result<EmbeddedReport> {
    let Embedded {
        aggregator: agg,
        mut scaler,
        models,
        initial_replicas,
        bus_capacity,
    } = parts;
    let bus = MemoryBus::new(bus_capacity, autoscaler_bus::Overflow::Block);
    let dyn_bus: Arc<dyn Bus> = Arc::new(bus.clone());
    let services = shutdown.child_token();
    // The replay's metric time is the clock (it runs far ahead of, or behind, this host's).
    scaler.clock = ClockMode::Replay;
    let decision_window = scaler.decision_window;
    let mut inference = Vec::new();
    for model in models {
        let mut cfg = InferenceConfig::new(model.kind());
        // Replayed metrics carry simulated time: their age against the wall clock means nothing.
        cfg.max_skew_secs = None;
        cfg.clock = ClockMode::Replay;
        let kind = model.kind();
        let deps = InferenceDeps {
            bus: dyn_bus.clone(),
            model,
        };
        inference.push((
            kind,
            tokio::spawn(autoscaler_inference::run(cfg, deps, services.clone())),
        ));
    }
    let scaler_task = tokio::spawn(autoscaler_scaler::run(
        scaler,
        ScalerDeps {
            bus: dyn_bus.clone(),
            actuator: Arc::new(SimulatedActuator::new(initial_replicas)),
        },
        services.clone(),
    ));
    let mut decisions = bus.subscribe(DECISIONS_TOPIC, "observer").await?;
    let decided = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let decided2 = decided.clone();
    let observer_stop = CancellationToken::new();
    let observer_stop2 = observer_stop.clone();
    let observer = tokio::spawn(async move {
        let mut orderer = crate::report::Orderer::default();
        let mut handle = |d: Decision, observe: &mut DecisionObserver| {
            for d in orderer.push(d) {
                observe(&d);
            }
        };
        loop {
            let got = tokio::select! {
                biased;
                got = decisions.recv() => got,
                _ = observer_stop2.cancelled() => {
                    // Take what is queued, then stop.
                    tokio::time::timeout(Duration::ZERO, decisions.recv())
                        .await
                        .unwrap_or_default()
                }
            };
            let Some(Ok(msg)) = got else { break };
            decided2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match decode::<Decision>(&msg.payload) {
                Ok(d) => handle(d, &mut observe),
                Err(e) => tracing::error!(error = %e, "unreadable decision"),
            }
        }
        for d in orderer.flush() {
            observe(&d);
        }
    });
    // Start publishing only once every consumer listens: the in-process bus, like a Kafka
    // consumer at the latest offset, delivers only what is published after subscribing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while bus.groups(METRICS_TOPIC) < inference.len() || bus.groups(VOTES_TOPIC) < 1 {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the services did not subscribe within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let aggregator = autoscaler_aggregator::run(
        agg,
        AggregatorDeps {
            bus: dyn_bus.clone(),
            progress,
        },
        services.clone(),
    )
    .await;
    // A live source (Prometheus) returns as soon as its last vectors are published: let the
    // models and the scaler finish them (at most one decision window) before stopping. A
    // lock-step replay has every decision already.
    if let Ok(report) = &aggregator {
        let drain_until = tokio::time::Instant::now() + decision_window + Duration::from_secs(5);
        while decided.load(std::sync::atomic::Ordering::SeqCst) < report.vectors
            && tokio::time::Instant::now() < drain_until
            && !services.is_cancelled()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    services.cancel();
    let scaler_report = scaler_task.await??;
    let mut inference_reports = Vec::new();
    for (kind, task) in inference {
        inference_reports.push((kind, task.await??));
    }
    observer_stop.cancel();
    observer.await?;
    let _ = std::io::stdout().flush();
    Ok(EmbeddedReport {
        aggregator: aggregator?,
        scaler: scaler_report,
        inference: inference_reports,
    })
}
