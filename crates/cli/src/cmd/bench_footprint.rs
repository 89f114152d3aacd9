//! `autoscaler bench-footprint`: resident memory and start-up time of each service, and the
//! binary's size.
//!
//! Publishes `--vectors` feature vectors on a fresh metrics topic, then starts each service as
//! its own process of this binary, one after the other, on the same topics: the three inference
//! services (each votes on every vector), the scaler (decides every vector from those votes,
//! with a SQLite state database as in production) and the aggregator (a replay onto a topic of
//! its own). For each it reports the time from `spawn` to its first output on the bus (the
//! first message handled: this includes joining the consumer group), the time until it has
//! handled every vector, and its peak resident memory (`VmHWM` from `/proc/<pid>/status`, what
//! `/usr/bin/time -v` calls the maximum resident set size) and current `VmRSS` once the work is
//! done. Beside them, the floors: a plain consumer's time to its first message on this broker,
//! and each model's load time in this process.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use autoscaler_bus::kafka::KafkaBus;
use autoscaler_bus::{Bus, Outgoing, Subscription};
use autoscaler_contract::{decode, encode, Decision, FeatureVector, ModelKind, Vote};
use autoscaler_models::DEFAULT_MODELS_DIR;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::bench::{ms, vector};
use crate::bus::{kafka_bus, BusArgs};

/// `autoscaler bench-footprint`.
#[derive(Debug, Clone, Args)]
pub struct BenchFootprintArgs {
    /// Vectors every service handles before its memory is read.
    #[arg(long, default_value_t = DEFAULT_FOOTPRINT_VECTORS)]
    pub vectors: usize,
    /// Services the vectors are spread over (keys, hence partitions).
    #[arg(long, default_value_t = DEFAULT_FOOTPRINT_SERVICES)]
    pub services: usize,
    /// Give up on a service after this many seconds without its next output.
    #[arg(long, default_value_t = DEFAULT_FOOTPRINT_IDLE_SECS)]
    pub idle_sec: u64,
    /// Directory of the models the inference services load.
    #[arg(long, env = "MODELS_DIR", default_value = DEFAULT_MODELS_DIR)]
    pub models_dir: PathBuf,
    /// Write the results as JSON: `{"binary_bytes", "services": [{"service", "start_ms",
    /// "all_ms", "peak_rss_kb", "rss_kb"}], …}`.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The bus (Kafka).
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Default vectors every service handles.
pub const DEFAULT_FOOTPRINT_VECTORS: usize = 2_000;
/// Default services (message keys) the vectors are spread over.
pub const DEFAULT_FOOTPRINT_SERVICES: usize = 6;
/// Default seconds without output after which a service is given up on.
pub const DEFAULT_FOOTPRINT_IDLE_SECS: u64 = 30;
/// Aggregator replay speed (simulated seconds per second): a 30 s poll every 10 ms.
pub const AGGREGATOR_SPEED: f64 = 3_000.0;
/// Hours the aggregator replays (more than it gets to: it is stopped after its vectors).
pub const AGGREGATOR_HOURS: f64 = 24.0;

/// One service's figures.
#[derive(Debug, Clone)]
struct Footprint {
    service: String,
    /// Spawn → first output on the bus.
    start_ms: f64,
    /// Spawn → last of its outputs.
    all_ms: f64,
    outputs: usize,
    peak_rss_kb: u64,
    rss_kb: u64,
}

/// `VmHWM` and `VmRSS` (kB) of a process.
fn memory_kb(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// A child process that is killed when dropped (an error on the way must not leave it running).
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `autoscaler <args>` on the benchmark's topics.
fn spawn(
    a: &BenchFootprintArgs,
    args: &[&str],
    envs: &[(&str, String)],
) -> anyhow::Result<Service> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let mut c = Command::new(exe);
    c.args(args)
        .env("BUS", "kafka")
        .env("KAFKA_BOOTSTRAP_SERVERS", &a.bus.kafka_bootstrap_servers)
        .env("METRICS_TOPIC", &a.bus.metrics_topic)
        .env("VOTES_TOPIC", &a.bus.votes_topic)
        .env("DECISIONS_TOPIC", &a.bus.decisions_topic)
        .env("KAFKA_GROUP_PREFIX", &a.bus.kafka_group_prefix)
        .env("MODELS_DIR", &a.models_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    Ok(Service(c.spawn().with_context(|| {
        format!("starting autoscaler {args:?}")
    })?))
}

/// Wait for `want` outputs of the service `svc` started at `t0`: `matches` says whether a
/// message on `sub` is one (and returns its key, so a redelivery counts once).
async fn measure(
    name: &str,
    svc: Service,
    t0: Instant,
    sub: &mut Box<dyn Subscription>,
    want: usize,
    idle: Duration,
    matches: &mut dyn FnMut(&[u8]) -> Option<String>,
) -> anyhow::Result<Footprint> {
    let mut seen = HashSet::new();
    let mut first = None;
    let mut last = t0;
    while seen.len() < want {
        match tokio::time::timeout(idle, sub.recv()).await {
            Ok(Some(Ok(d))) => {
                if let Some(key) = matches(&d.payload) {
                    let now = Instant::now();
                    first.get_or_insert(now);
                    if seen.insert(key) {
                        last = now;
                    }
                }
            }
            Ok(Some(Err(e))) => return Err(e).context("reading the outputs"),
            Ok(None) => anyhow::bail!("{name}: the output topic closed"),
            Err(_) => anyhow::bail!(
                "{name}: {} of {want} outputs, then {} s of silence",
                seen.len(),
                idle.as_secs()
            ),
        }
    }
    let (peak_rss_kb, rss_kb) = memory_kb(svc.0.id())?;
    drop(svc);
    Ok(Footprint {
        service: name.into(),
        start_ms: ms(first.unwrap_or(last).saturating_duration_since(t0)),
        all_ms: ms(last.saturating_duration_since(t0)),
        outputs: seen.len(),
        peak_rss_kb,
        rss_kb,
    })
}

/// A plain consumer's time from creation to its first message on `topic` (which has some).
async fn consumer_floor(bus: &KafkaBus, topic: &str, idle: Duration) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let mut r = bus.reader(topic, true)?;
    match tokio::time::timeout(idle, r.recv()).await {
        Ok(Some(Ok(_))) => Ok(ms(t0.elapsed())),
        _ => anyhow::bail!("a plain consumer read nothing from {topic}"),
    }
}

/// Each model's load time in this process (the floor of an inference service's start).
fn load_times(dir: &Path) -> anyhow::Result<Vec<(ModelKind, f64)>> {
    ModelKind::ALL
        .into_iter()
        .map(|k| {
            let t0 = Instant::now();
            autoscaler_models::load(k, dir)
                .with_context(|| format!("loading the {k} model from {}", dir.display()))?;
            Ok((k, ms(t0.elapsed())))
        })
        .collect()
}

/// Run the benchmark and print its table.
pub async fn run(a: BenchFootprintArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let idle = Duration::from_secs(a.idle_sec);
    let exe = std::env::current_exe().context("locating this binary")?;
    let binary_bytes = std::fs::metadata(&exe)?.len();
    let loads = load_times(&a.models_dir)?;
    let bus = kafka_bus(&a.bus).await?;
    let services: Vec<String> = (0..a.services.max(1))
        .map(|i| format!("footprint-{i}"))
        .collect();
    for i in 0..a.vectors {
        let s = &services[i % services.len()];
        let v = vector(s, (i / services.len()) as u64, i);
        bus.publish_pipelined(Outgoing::new(&a.bus.metrics_topic, s, encode(&v)))
            .await
            .context("publishing a vector")?;
    }
    bus.flush(idle).await.context("flushing the vectors")?;
    let floor = consumer_floor(&bus, &a.bus.metrics_topic, idle).await?;

    let mut results = Vec::new();
    let mut votes = bus.reader(&a.bus.votes_topic, true)?;
    for kind in ModelKind::ALL {
        if shutdown.is_cancelled() {
            anyhow::bail!("stopped");
        }
        let t0 = Instant::now();
        let svc = spawn(
            &a,
            &["inference", "--model", kind.as_str(), "--max-skew-sec", "0"],
            &[],
        )?;
        let name = format!("inference {kind}");
        let mut is_vote = |p: &[u8]| {
            decode::<Vote>(p)
                .ok()
                .filter(|v| v.model == kind)
                .map(|v| v.vector_id.0)
        };
        results.push(measure(&name, svc, t0, &mut votes, a.vectors, idle, &mut is_vote).await?);
    }

    let state_db = std::env::temp_dir().join(format!(
        "autoscaler-footprint-{}-{}.db",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    ));
    let mut decisions = bus.reader(&a.bus.decisions_topic, true)?;
    let t0 = Instant::now();
    let svc = spawn(
        &a,
        &["scaler", "--actuator", "dry-run"],
        &[("STATE_DB", state_db.display().to_string())],
    )?;
    let mut is_decision = |p: &[u8]| decode::<Decision>(p).ok().map(|d| d.vector_id.0);
    let scaler = measure(
        "scaler",
        svc,
        t0,
        &mut decisions,
        a.vectors,
        idle,
        &mut is_decision,
    )
    .await;
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", state_db.display()));
    }
    results.push(scaler?);

    // The aggregator replays onto a topic of its own (its vectors must not reach the others).
    let agg_topic = format!("{}-aggregator", a.bus.metrics_topic);
    bus.ensure_topics(&[&agg_topic]).await?;
    let mut agg_out = bus.reader(&agg_topic, true)?;
    let t0 = Instant::now();
    let svc = spawn(
        &a,
        &[
            "aggregator",
            "--source",
            "replay",
            "--speed",
            &AGGREGATOR_SPEED.to_string(),
            "--duration-hours",
            &AGGREGATOR_HOURS.to_string(),
        ],
        &[("METRICS_TOPIC", agg_topic.clone())],
    )?;
    let mut is_vector = |p: &[u8]| decode::<FeatureVector>(p).ok().map(|v| v.vector_id.0);
    let agg_vectors = a.vectors.min(1_000);
    results.push(
        measure(
            "aggregator (replay)",
            svc,
            t0,
            &mut agg_out,
            agg_vectors,
            idle,
            &mut is_vector,
        )
        .await?,
    );

    println!(
        "binary: {} ({:.1} MB)",
        exe.display(),
        binary_bytes as f64 / 1e6
    );
    println!("| service | outputs | spawn → first output ms | spawn → all outputs ms | peak RSS MB | RSS after MB |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in &results {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.1} | {:.1} |",
            r.service,
            r.outputs,
            r.start_ms,
            r.all_ms,
            r.peak_rss_kb as f64 / 1024.0,
            r.rss_kb as f64 / 1024.0
        );
    }
    println!("floors: a plain consumer's first message after {floor:.0} ms on this broker; model load in-process:");
    for (k, t) in &loads {
        println!("  {k}: {t:.1} ms");
    }
    if let Some(path) = &a.json {
        let json = serde_json::json!({
            "binary_bytes": binary_bytes,
            "services": results.iter().map(|r| serde_json::json!({
                "service": r.service,
                "outputs": r.outputs,
                "start_ms": r.start_ms,
                "all_ms": r.all_ms,
                "peak_rss_kb": r.peak_rss_kb,
                "rss_kb": r.rss_kb,
            })).collect::<Vec<_>>(),
            "consumer_first_message_ms": floor,
            "model_load_ms": loads.iter().map(|(k, t)| (k.as_str(), *t)).collect::<std::collections::BTreeMap<_, _>>(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
