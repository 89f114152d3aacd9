//! `autoscaler tail <topic>`: print a topic's messages, one JSON object per line.
//!
//! An operator's reader that works wherever `kcat` and `kafka-console-consumer` cannot (Debian's
//! kcat is too old for some brokers). A JSON payload is printed as it is; anything else (what a
//! dead-letter topic may hold) as `{"raw": "<text>"}`. `--with-meta` wraps each message with
//! its partition, offset, key and headers.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use clap::Args;

use crate::bus::{kafka_config, BusArgs, BusKind};
use crate::exit::ConfigError;

/// `autoscaler tail`.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// The topic, e.g. `scaling-decisions`, `metrics`, `model-votes.dlq`.
    pub topic: String,
    /// Start at the beginning of the topic instead of its end.
    #[arg(long)]
    pub from_beginning: bool,
    /// Stop after this many messages.
    #[arg(long)]
    pub max: Option<u64>,
    /// Stop when no message arrives for this many seconds (0: wait forever).
    #[arg(long = "idle-exit-sec", default_value_t = WAIT_FOREVER)]
    pub idle_exit_sec: u64,
    /// Wrap each message with its partition, offset, key and headers.
    #[arg(long)]
    pub with_meta: bool,
    /// The bus (Kafka).
    #[command(flatten)]
    pub bus: BusArgs,
}

/// `--idle-exit-sec 0`: no idle limit.
pub const WAIT_FOREVER: u64 = 0;

/// One line of output for a delivery.
pub fn line(d: &autoscaler_bus::Delivery, with_meta: bool) -> String {
    let payload: serde_json::Value = serde_json::from_slice(&d.payload)
        .unwrap_or_else(|_| serde_json::json!({ "raw": String::from_utf8_lossy(&d.payload) }));
    let v = if with_meta {
        let headers: serde_json::Map<String, serde_json::Value> = d
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::json!({
            "topic": d.topic, "partition": d.partition, "offset": d.offset, "key": d.key,
            "headers": headers, "payload": payload,
        })
    } else {
        payload
    };
    v.to_string()
}

/// Run the reader until `--max` messages, `--idle-exit-sec` of silence, or a signal.
pub async fn run(a: TailArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    if a.bus.bus != BusKind::Kafka {
        return Err(ConfigError::one(
            "tail reads from Kafka: set --bus kafka (BUS=kafka) and KAFKA_BOOTSTRAP_SERVERS",
        )
        .into());
    }
    let bus = autoscaler_bus::kafka::KafkaBus::new(kafka_config(&a.bus)).context("Kafka client")?;
    let mut sub = bus.reader(&a.topic, a.from_beginning)?;
    let idle = (a.idle_exit_sec != WAIT_FOREVER).then(|| Duration::from_secs(a.idle_exit_sec));
    let mut n = 0u64;
    let stdout = std::io::stdout();
    while a.max.is_none_or(|m| n < m) {
        let next = async {
            match idle {
                Some(t) => tokio::time::timeout(t, sub.recv()).await.ok().flatten(),
                None => sub.recv().await,
            }
        };
        let got = tokio::select! {
            _ = shutdown.cancelled() => break,
            got = next => got,
        };
        let Some(got) = got else { break };
        let d = got.context("reading from Kafka")?;
        let mut out = stdout.lock();
        writeln!(out, "{}", line(&d, a.with_meta))?;
        out.flush()?;
        n += 1;
    }
    Ok(())
}
