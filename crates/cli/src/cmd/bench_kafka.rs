//! `autoscaler bench-kafka`: end-to-end throughput and latency of a running pipeline.
//!
//! Publishes `--vectors` feature vectors on the metrics topic as fast as the broker takes them
//! (or at `--rate` per second), reads the decisions, and prints a table: vectors per second
//! through three models and the scaler, and the latency from a vector's publish to its
//! decision's arrival (both measured by this process's clock). The inference services and the
//! scaler must be running on the same topics (scripts/bench-kafka.sh starts them).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use autoscaler_bus::{Bus, Outgoing};
use autoscaler_contract::{
    decode, encode, Decision, FeatureVector, Features, VectorId, SCHEMA_VERSION,
};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::bus::{kafka_bus, BusArgs};

/// `autoscaler bench-kafka`.
#[derive(Debug, Clone, Args)]
pub struct BenchKafkaArgs {
    /// Vectors to publish.
    #[arg(long, default_value_t = DEFAULT_VECTORS)]
    pub vectors: usize,
    /// Services the vectors are spread over (keys, hence partitions).
    #[arg(long, default_value_t = DEFAULT_SERVICES)]
    pub services: usize,
    /// Vectors per second (0: as fast as the broker acknowledges).
    #[arg(long, default_value_t = AS_FAST_AS_ACKNOWLEDGED)]
    pub rate: f64,
    /// Give up waiting for decisions after this many seconds of silence.
    #[arg(long, default_value_t = DEFAULT_IDLE_SECS)]
    pub idle_sec: u64,
    /// The bus (Kafka).
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Default vectors a benchmark publishes.
pub const DEFAULT_VECTORS: usize = 2000;
/// Default services (message keys) the vectors are spread over.
pub const DEFAULT_SERVICES: usize = 6;
/// `--rate 0`: publish as fast as the broker acknowledges.
pub const AS_FAST_AS_ACKNOWLEDGED: f64 = 0.0;
/// Default seconds of silence after which the benchmark stops waiting for decisions.
pub const DEFAULT_IDLE_SECS: u64 = 30;

fn vector(service: &str, poll: u64, i: usize) -> FeatureVector {
    let now = chrono::Utc::now();
    let load = 20.0 + (i % 40) as f64;
    FeatureVector {
        schema_version: SCHEMA_VERSION,
        vector_id: VectorId::new(service, poll, now),
        timestamp: now,
        metric_time: now,
        service: service.to_string(),
        poll,
        replicas: Some(3),
        stale: false,
        stale_reason: None,
        features: Features {
            request_rate_rps: Some(load),
            error_rate_pct: Some(0.0),
            p50_latency_ms: Some(15.0 + load / 4.0),
            p95_latency_ms: Some(60.0 + load * 2.0),
            p99_latency_ms: Some(90.0 + load * 3.0),
            cpu_usage_pct: Some(6.0 * load + 3.0),
            memory_usage_mb: Some(360.0),
            delta_rps: Some(1.0),
            delta_p95_latency_ms: Some(2.0),
            delta_cpu_usage_pct: Some(6.0),
        },
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Run the benchmark and print the table.
pub async fn run(a: BenchKafkaArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let bus = kafka_bus(&a.bus).await?;
    // From the beginning: the script gives each run fresh topics, and a reader that joins its
    // group after the first decisions must still see them.
    let mut decisions = bus.reader(&a.bus.decisions_topic, true)?;
    let services: Vec<String> = (0..a.services.max(1))
        .map(|i| format!("bench-{i}"))
        .collect();
    let mut sent: HashMap<VectorId, Instant> = HashMap::with_capacity(a.vectors);
    let start = Instant::now();
    let reader = async {
        let mut three = 0usize;
        let mut arrived: HashMap<VectorId, Instant> = HashMap::new();
        while arrived.len() < a.vectors {
            match tokio::time::timeout(Duration::from_secs(a.idle_sec), decisions.recv()).await {
                Ok(Some(Ok(d))) => {
                    if let Ok(dec) = decode::<Decision>(&d.payload) {
                        if dec.total_votes == 3 {
                            three += 1;
                        }
                        arrived.entry(dec.vector_id).or_insert_with(Instant::now);
                    }
                }
                _ => break,
            }
        }
        (arrived, three)
    };
    let writer = async {
        for i in 0..a.vectors {
            if shutdown.is_cancelled() {
                break;
            }
            let service = &services[i % services.len()];
            let v = vector(service, (i / services.len()) as u64, i);
            sent.insert(v.vector_id.clone(), Instant::now());
            bus.publish(Outgoing::new(&a.bus.metrics_topic, service, encode(&v)))
                .await
                .context("publishing a vector")?;
            if a.rate > AS_FAST_AS_ACKNOWLEDGED {
                let due = start + Duration::from_secs_f64((i + 1) as f64 / a.rate);
                tokio::time::sleep_until(due.into()).await;
            }
        }
        anyhow::Ok(Instant::now())
    };
    let ((arrived, three), published_at) = tokio::join!(reader, writer);
    let published_at = published_at?;
    let mut lat: Vec<Duration> = arrived
        .iter()
        .filter_map(|(id, at)| sent.get(id).map(|s| at.saturating_duration_since(*s)))
        .collect();
    lat.sort();
    let last = arrived.values().max().copied().unwrap_or(published_at);
    let span = last.saturating_duration_since(start).as_secs_f64();
    println!("| metric | value |");
    println!("|---|---|");
    println!("| vectors published | {} |", sent.len());
    println!(
        "| decisions received | {} ({} with 3 votes) |",
        arrived.len(),
        three
    );
    println!(
        "| publish rate (vectors/s) | {:.0} |",
        sent.len() as f64
            / published_at
                .saturating_duration_since(start)
                .as_secs_f64()
                .max(1e-9)
    );
    println!(
        "| end-to-end throughput (decisions/s) | {:.0} |",
        arrived.len() as f64 / span.max(1e-9)
    );
    for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)] {
        println!(
            "| latency {name}, vector published → decision received (ms) | {:.1} |",
            pct(&lat, p).as_secs_f64() * 1000.0
        );
    }
    if arrived.len() < sent.len() {
        anyhow::bail!(
            "{} of {} vectors got no decision within {} s of silence",
            sent.len() - arrived.len(),
            sent.len(),
            a.idle_sec
        );
    }
    Ok(())
}
