//! Bus options (`--bus`, Kafka's bootstrap servers, topics, …) and the bus they build.

use std::sync::Arc;

use anyhow::Context;
use autoscaler_bus::kafka::{
    KafkaBus, KafkaConfig, DEFAULT_BOOTSTRAP_SERVERS, DEFAULT_PARTITIONS, DEFAULT_REPLICATION,
};
use autoscaler_bus::{Bus, MemoryBus, DEFAULT_MEMORY_CAPACITY};
use autoscaler_contract::{DECISIONS_TOPIC, METRICS_TOPIC, VOTES_TOPIC};
use clap::{Args, ValueEnum};

use crate::exit::ConfigError;

/// Which bus carries the topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BusKind {
    /// In-process bounded channels (only connects services within one process).
    Memory,
    /// Apache Kafka (or a Kafka-protocol broker).
    Kafka,
}

/// Bus options.
#[derive(Debug, Clone, Args)]
pub struct BusArgs {
    /// The bus.
    #[arg(long, env = "BUS", value_enum, default_value = "memory")]
    pub bus: BusKind,
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = DEFAULT_BOOTSTRAP_SERVERS)]
    pub kafka_bootstrap_servers: String,
    /// Capacity of each in-process queue (messages).
    #[arg(long, env = "AUTOSCALER_BUS_CAPACITY", default_value_t = DEFAULT_MEMORY_CAPACITY)]
    pub bus_capacity: usize,
    /// What the in-process bus does when a queue is full: `block` (back-pressure, nothing lost)
    /// or `drop-newest` (counted).
    #[arg(long, env = "AUTOSCALER_BUS_OVERFLOW", default_value = "block")]
    pub bus_overflow: autoscaler_bus::Overflow,
    /// Topic of feature vectors.
    #[arg(long, env = "METRICS_TOPIC", default_value = METRICS_TOPIC)]
    pub metrics_topic: String,
    /// Topic of model votes.
    #[arg(long, env = "VOTES_TOPIC", default_value = VOTES_TOPIC)]
    pub votes_topic: String,
    /// Topic of scaling decisions.
    #[arg(long, env = "DECISIONS_TOPIC", default_value = DECISIONS_TOPIC)]
    pub decisions_topic: String,
    /// Partitions of the topics created at start-up (Kafka).
    #[arg(long, env = "KAFKA_PARTITIONS", default_value_t = DEFAULT_PARTITIONS)]
    pub kafka_partitions: i32,
    /// Replication factor of the topics created at start-up (Kafka).
    #[arg(long, env = "KAFKA_REPLICATION", default_value_t = DEFAULT_REPLICATION)]
    pub kafka_replication: i32,
    /// Prefix of every consumer group id (several pipelines on one cluster).
    #[arg(long, env = "KAFKA_GROUP_PREFIX", default_value = "")]
    pub kafka_group_prefix: String,
}

/// The Kafka configuration from the bus options and `KAFKA_PROP_*` environment variables.
pub fn kafka_config(b: &BusArgs) -> KafkaConfig {
    let mut cfg =
        KafkaConfig::new(&b.kafka_bootstrap_servers).with_env_properties(std::env::vars());
    cfg.partitions = b.kafka_partitions;
    cfg.replication = b.kafka_replication;
    cfg.group_prefix = b.kafka_group_prefix.clone();
    // The authoritative scaler reads every partition of the votes topic itself instead of
    // joining its group: a restart after a crash resumes at once (see `exclusive_groups`).
    cfg.exclusive_groups
        .insert(autoscaler_scaler::SCALER_GROUP.into());
    cfg
}

/// Connect to Kafka and create the pipeline's topics (and their dead-letter topics) if absent.
pub async fn kafka_bus(b: &BusArgs) -> anyhow::Result<KafkaBus> {
    let bus = KafkaBus::new(kafka_config(b))
        .with_context(|| format!("Kafka client for {}", b.kafka_bootstrap_servers))?;
    let dlqs = [
        autoscaler_bus::dlq_topic(&b.metrics_topic),
        autoscaler_bus::dlq_topic(&b.votes_topic),
    ];
    let topics = [
        b.metrics_topic.as_str(),
        b.votes_topic.as_str(),
        b.decisions_topic.as_str(),
        dlqs[0].as_str(),
        dlqs[1].as_str(),
    ];
    bus.ensure_topics(&topics)
        .await
        .with_context(|| format!("creating topics on Kafka at {}", b.kafka_bootstrap_servers))?;
    Ok(bus)
}

/// The bus for a service running alone in its process. `needs_peers`: the service talks to
/// services in other processes, which the memory bus cannot reach.
pub async fn standalone_bus(b: &BusArgs, needs_peers: bool) -> anyhow::Result<Arc<dyn Bus>> {
    if b.kafka_partitions < 1 || b.kafka_replication < 1 {
        return Err(ConfigError::one(format!(
            "Kafka partitions and replication must be at least 1, got {} and {}",
            b.kafka_partitions, b.kafka_replication
        ))
        .into());
    }
    match b.bus {
        BusKind::Memory if needs_peers => Err(ConfigError::one(
            "the memory bus only connects services inside one process: use `autoscaler run` \
             for the whole pipeline in one process, or BUS=kafka",
        )
        .into()),
        BusKind::Memory => Ok(Arc::new(MemoryBus::new(b.bus_capacity, b.bus_overflow))),
        BusKind::Kafka => Ok(Arc::new(kafka_bus(b).await?)),
    }
}
