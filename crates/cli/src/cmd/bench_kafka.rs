//! `autoscaler bench-kafka`: end-to-end throughput and latency of a running pipeline, beside
//! the broker's own ceiling.
//!
//! Publishes feature vectors on the metrics topic (pipelined: as the aggregator does), reads
//! the decisions, and prints a table: vectors per second through three models and the scaler,
//! and the latency from a vector's publish to its decision's arrival (both measured by this
//! process's clock). The inference services and the scaler must be running on the same topics
//! (scripts/bench-kafka.sh starts them).
//!
//! * `--rates 100,1000,10000,0` runs one stage per rate (0: unthrottled), each of
//!   `--seconds-per-rate` seconds (unthrottled: `--vectors` vectors), one line each.
//! * `--broker-ceiling` first measures the broker alone on a fresh topic: producer-only
//!   (pipelined, messages of the size of an encoded vector, `--ceiling-messages` of them) and
//!   consumer-only (reading them back) messages per second.
//! * `--json FILE` writes `{"broker_produce_per_s", "broker_consume_per_s",
//!   "pipeline_vectors_per_s", "pipeline_messages_per_s", "p99_ms_at_1000_per_s"}`; one vector
//!   costs [`MESSAGES_PER_VECTOR`] produced messages (the vector, three votes, the decision).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use autoscaler_bus::kafka::KafkaBus;
use autoscaler_bus::{Bus, Outgoing, Subscription};
use autoscaler_contract::{decode, encode, Decision, VectorId};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::bench::{ms, pct, vector};
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
    /// Run one stage per rate (vectors per second, 0 = unthrottled), e.g. `100,1000,10000,0`;
    /// overrides `--rate`.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// Seconds of each throttled stage of `--rates` (an unthrottled stage sends `--vectors`).
    #[arg(long, default_value_t = DEFAULT_SECONDS_PER_RATE)]
    pub seconds_per_rate: f64,
    /// Measure the broker alone first: producer-only and consumer-only messages per second.
    #[arg(long)]
    pub broker_ceiling: bool,
    /// Messages of the broker-ceiling measurement.
    #[arg(long, default_value_t = DEFAULT_CEILING_MESSAGES)]
    pub ceiling_messages: usize,
    /// Write the summary fields as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
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
/// Default seconds of each throttled stage of `--rates`.
pub const DEFAULT_SECONDS_PER_RATE: f64 = 10.0;
/// Default messages of the broker-ceiling measurement.
pub const DEFAULT_CEILING_MESSAGES: usize = 100_000;
/// Produced messages per vector through the pipeline: the vector, three votes, the decision.
pub const MESSAGES_PER_VECTOR: f64 = 5.0;

/// One stage's results.
#[derive(Debug, Clone, Copy)]
struct Stage {
    rate: f64,
    sent: usize,
    decided: usize,
    three: usize,
    publish_per_s: f64,
    decisions_per_s: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// Publish `n` vectors at `rate` (0: unthrottled), polls numbered from `first_poll`, and
/// collect their decisions from `decisions`.
async fn stage(
    bus: &KafkaBus,
    a: &BenchKafkaArgs,
    decisions: &mut Box<dyn Subscription>,
    services: &[String],
    (n, rate, first_poll): (usize, f64, u64),
    shutdown: &CancellationToken,
) -> anyhow::Result<Stage> {
    let mut sent: HashMap<VectorId, Instant> = HashMap::with_capacity(n);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(VectorId, Instant)>();
    let start = Instant::now();
    let reader = async {
        let mut three = 0usize;
        let mut arrived: HashMap<VectorId, Instant> = HashMap::new();
        let mut ours: HashMap<VectorId, Instant> = HashMap::with_capacity(n);
        let mut writer_done = false;
        while arrived.len() < n {
            // Learn which vectors this stage sent (earlier stages' stragglers are ignored).
            while let Ok((id, at)) = rx.try_recv() {
                ours.insert(id, at);
            }
            tokio::select! {
                got = rx.recv(), if !writer_done => match got {
                    Some((id, at)) => { ours.insert(id, at); }
                    None => writer_done = true,
                },
                m = tokio::time::timeout(Duration::from_secs(a.idle_sec), decisions.recv()) => match m {
                    Ok(Some(Ok(d))) => {
                        let now = Instant::now();
                        while let Ok((id, at)) = rx.try_recv() {
                            ours.insert(id, at);
                        }
                        if let Ok(dec) = decode::<Decision>(&d.payload) {
                            if ours.contains_key(&dec.vector_id) && !arrived.contains_key(&dec.vector_id) {
                                if dec.total_votes == 3 {
                                    three += 1;
                                }
                                arrived.insert(dec.vector_id, now);
                            }
                        }
                    }
                    _ => break,
                },
            }
        }
        (arrived, ours, three)
    };
    let writer = async {
        for i in 0..n {
            if shutdown.is_cancelled() {
                break;
            }
            let service = &services[i % services.len()];
            let v = vector(service, first_poll + (i / services.len()) as u64, i);
            let now = Instant::now();
            sent.insert(v.vector_id.clone(), now);
            let _ = tx.send((v.vector_id.clone(), now));
            bus.publish_pipelined(Outgoing::new(&a.bus.metrics_topic, service, encode(&v)))
                .await
                .context("publishing a vector")?;
            if rate > AS_FAST_AS_ACKNOWLEDGED {
                let due = start + Duration::from_secs_f64((i + 1) as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
        }
        drop(tx);
        anyhow::Ok(Instant::now())
    };
    let ((arrived, ours, three), published_at) = tokio::join!(reader, writer);
    let published_at = published_at?;
    let mut lat: Vec<Duration> = arrived
        .iter()
        .filter_map(|(id, at)| ours.get(id).map(|s| at.saturating_duration_since(*s)))
        .collect();
    lat.sort();
    let last = arrived.values().max().copied().unwrap_or(published_at);
    let span = last.saturating_duration_since(start).as_secs_f64();
    Ok(Stage {
        rate,
        sent: sent.len(),
        decided: arrived.len(),
        three,
        publish_per_s: sent.len() as f64
            / published_at
                .saturating_duration_since(start)
                .as_secs_f64()
                .max(1e-9),
        decisions_per_s: arrived.len() as f64 / span.max(1e-9),
        p50: pct(&lat, 50.0),
        p99: pct(&lat, 99.0),
        max: pct(&lat, 100.0),
    })
}

/// The broker alone: `n` messages of `size` bytes produced (pipelined) to a fresh topic, then
/// consumed back; messages per second each way.
async fn broker_ceiling(
    bus: &KafkaBus,
    a: &BenchKafkaArgs,
    n: usize,
    size: usize,
) -> anyhow::Result<(f64, f64)> {
    let topic = format!(
        "{}-ceiling-{}",
        a.bus.metrics_topic,
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    bus.ensure_topics(&[&topic]).await?;
    let payload = vec![b'x'; size];
    let start = Instant::now();
    for i in 0..n {
        bus.publish_pipelined(Outgoing::new(
            &topic,
            format!("bench-{}", i % a.services.max(1)),
            payload.clone(),
        ))
        .await
        .context("producing")?;
    }
    bus.flush(Duration::from_secs(120))
        .await
        .context("flushing")?;
    let produce = n as f64 / start.elapsed().as_secs_f64().max(1e-9);
    let mut reader = bus.reader(&topic, true)?;
    let mut got = 0usize;
    let mut first: Option<Instant> = None;
    while got < n {
        match tokio::time::timeout(Duration::from_secs(a.idle_sec), reader.recv()).await {
            Ok(Some(Ok(_))) => {
                first.get_or_insert_with(Instant::now);
                got += 1;
            }
            _ => anyhow::bail!("consumed {got} of {n} messages back"),
        }
    }
    // From the first message on: the group join before it is not the broker's throughput.
    let consume = (n - 1) as f64
        / first
            .map(|f| f.elapsed().as_secs_f64())
            .unwrap_or_default()
            .max(1e-9);
    Ok((produce, consume))
}

/// Run the benchmark and print the table.
pub async fn run(a: BenchKafkaArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let bus = kafka_bus(&a.bus).await?;
    let services: Vec<String> = (0..a.services.max(1))
        .map(|i| format!("bench-{i}"))
        .collect();
    let size = encode(&vector(&services[0], 0, 0)).len();
    let ceiling = if a.broker_ceiling {
        let c = broker_ceiling(&bus, &a, a.ceiling_messages, size).await?;
        println!("| broker alone ({size}-byte messages) | messages/s |");
        println!("|---|---:|");
        println!(
            "| producer only ({} messages, pipelined) | {:.0} |",
            a.ceiling_messages, c.0
        );
        println!("| consumer only (the same messages) | {:.0} |", c.1);
        println!();
        Some(c)
    } else {
        None
    };
    // From the beginning: the script gives each run fresh topics, and a reader that joins its
    // group after the first decisions must still see them.
    let mut decisions = bus.reader(&a.bus.decisions_topic, true)?;
    let rates = if a.rates.is_empty() {
        vec![a.rate]
    } else {
        a.rates.clone()
    };
    println!("| rate (vectors/s) | vectors | decisions (3 votes) | published/s | decisions/s | messages/s | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut stages = Vec::new();
    let mut first_poll = 0u64;
    for rate in rates {
        let n = if rate > AS_FAST_AS_ACKNOWLEDGED && !a.rates.is_empty() {
            ((rate * a.seconds_per_rate).round() as usize).max(1)
        } else {
            a.vectors
        };
        let s = stage(
            &bus,
            &a,
            &mut decisions,
            &services,
            (n, rate, first_poll),
            &shutdown,
        )
        .await?;
        first_poll += (n / services.len() + 1) as u64;
        println!(
            "| {} | {} | {} ({}) | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} |",
            if rate > 0.0 {
                format!("{rate:.0}")
            } else {
                "unthrottled".into()
            },
            s.sent,
            s.decided,
            s.three,
            s.publish_per_s,
            s.decisions_per_s,
            s.decisions_per_s * MESSAGES_PER_VECTOR,
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        );
        stages.push(s);
    }
    let stats = bus.pipeline_stats();
    println!(
        "producer: {} queued, {} acknowledged, {} waits on a full queue, {} sent again",
        stats.queued, stats.delivered, stats.queue_full_waits, stats.redelivered
    );
    if let Some(path) = &a.json {
        let best = stages
            .iter()
            .filter(|s| s.rate <= AS_FAST_AS_ACKNOWLEDGED)
            .chain(stages.iter())
            .next()
            .copied();
        let at_1000 = stages.iter().find(|s| (s.rate - 1000.0).abs() < 0.5);
        let json = serde_json::json!({
            "broker_produce_per_s": ceiling.map(|c| c.0),
            "broker_consume_per_s": ceiling.map(|c| c.1),
            "pipeline_vectors_per_s": best.map(|s| s.decisions_per_s),
            "pipeline_messages_per_s": best.map(|s| s.decisions_per_s * MESSAGES_PER_VECTOR),
            "p99_ms_at_1000_per_s": at_1000.map(|s| ms(s.p99)),
            "message_bytes": size,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let missing: usize = stages.iter().map(|s| s.sent - s.decided).sum();
    if missing > 0 {
        anyhow::bail!(
            "{missing} vectors got no decision within {} s of silence",
            a.idle_sec
        );
    }
    Ok(())
}
