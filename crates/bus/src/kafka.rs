//! The bus over Kafka (`rdkafka`), at least once.
//!
//! * **Producing**: [`Bus::publish`] returns when the broker has acknowledged the message
//!   (`acks=all`, idempotent producer). [`Bus::flush`] waits for everything queued — dropping an
//!   rdkafka producer would discard it.
//! * **Consuming**: `enable.auto.offset.store=false`. A delivery's offset is stored only when the
//!   service calls [`Subscription::ack`] — after the output it caused was acknowledged — and
//!   offsets are stored as a *low watermark* per partition: acknowledging message 7 while 5 is
//!   still being worked on stores nothing past 5, so a crash redelivers 5 (and 7: redelivery is
//!   the price of losing nothing; consumers make it harmless). Stored offsets are committed
//!   periodically and synchronously on [`Subscription::close`].
//! * **Topics** are created at start-up through the admin API when absent
//!   ([`KafkaBus::ensure_topics`]), idempotently.
//! * **Configuration**: any librdkafka property passes through from the environment as
//!   `KAFKA_PROP_<property>` (e.g. `KAFKA_PROP_security.protocol=SASL_SSL`,
//!   `KAFKA_PROP_sasl.mechanisms=SCRAM-SHA-512`), or, for shells that cannot export dots, with
//!   `__` for `.` (`KAFKA_PROP_security__protocol`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::{Bus, BusError, Delivery, Outgoing, Subscription};

/// Prefix of environment variables passed through to librdkafka.
pub const PROP_ENV_PREFIX: &str = "KAFKA_PROP_";

/// How to reach the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// Extra librdkafka properties, applied to every client (they override our defaults).
    pub properties: BTreeMap<String, String>,
    /// Partitions of the topics this process creates.
    pub partitions: i32,
    /// Replication factor of the topics this process creates.
    pub replication: i32,
    /// Prefix of every consumer group id (lets several pipelines share a cluster).
    pub group_prefix: String,
    /// How long a publish may wait for the broker's acknowledgement.
    pub delivery_timeout: Duration,
}

impl KafkaConfig {
    /// A configuration for `bootstrap_servers` with defaults: 3 partitions, replication 1.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap_servers: bootstrap_servers.into(),
            properties: BTreeMap::new(),
            partitions: 3,
            replication: 1,
            group_prefix: String::new(),
            delivery_timeout: Duration::from_secs(30),
        }
    }

    /// Take `KAFKA_PROP_*` properties from `vars` (e.g. `std::env::vars()`).
    pub fn with_env_properties(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        for (k, v) in vars {
            if let Some(prop) = k.strip_prefix(PROP_ENV_PREFIX) {
                if !prop.is_empty() {
                    self.properties.insert(prop.replace("__", "."), v);
                }
            }
        }
        self
    }

    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        c.set("client.id", "autoscaler");
        // Our messages are small and few: a fetch should not sit at the broker for librdkafka's
        // default 500 ms waiting for bytes that will not come (measured: ~0.5 s per hop).
        c.set("fetch.wait.max.ms", "20");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

fn classify(e: KafkaError) -> BusError {
    let code = e.rdkafka_error_code();
    let fatal = matches!(
        code,
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::InvalidConfig
                | RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::UnknownTopicOrPartition
        )
    ) || matches!(
        e,
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_)
    );
    if fatal {
        BusError::Fatal(e.to_string())
    } else {
        BusError::Transient(e.to_string())
    }
}

/// The Kafka bus: one producer shared by every publish, one consumer per subscription.
pub struct KafkaBus {
    cfg: KafkaConfig,
    producer: FutureProducer,
}

impl KafkaBus {
    /// Create the producer (it connects lazily; [`KafkaBus::ensure_topics`] checks the broker).
    pub fn new(cfg: KafkaConfig) -> Result<Self, BusError> {
        let producer: FutureProducer = cfg
            .client()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set(
                "message.timeout.ms",
                cfg.delivery_timeout.as_millis().to_string(),
            )
            .create()
            .map_err(classify)?;
        Ok(KafkaBus { cfg, producer })
    }

    /// The configuration.
    pub fn config(&self) -> &KafkaConfig {
        &self.cfg
    }

    /// Create the topics that do not exist, with the configured partitions and replication.
    /// An existing topic is fine; a broker that refuses gets a clear error naming the topic.
    pub async fn ensure_topics(&self, topics: &[&str]) -> Result<(), BusError> {
        let admin: AdminClient<DefaultClientContext> =
            self.cfg.client().create().map_err(classify)?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    self.cfg.partitions,
                    TopicReplication::Fixed(self.cfg.replication),
                )
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
        let results = admin.create_topics(&new, &opts).await.map_err(|e| {
            BusError::Transient(format!(
                "cannot reach Kafka at {} to create topics: {e}",
                self.cfg.bootstrap_servers
            ))
        })?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(BusError::Fatal(format!(
                        "the broker refused to create topic `{topic}`: {code}"
                    )))
                }
            }
        }
        Ok(())
    }
}

impl KafkaBus {
    /// A reader of `topic` outside any shared group (its own, unique group, never committing):
    /// for operators' tools such as `autoscaler tail`. It starts at the beginning of the topic
    /// or at its end.
    pub fn reader(
        &self,
        topic: &str,
        from_beginning: bool,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let group = format!(
            "{}autoscaler-tail-{}-{}",
            self.cfg.group_prefix,
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        let consumer: StreamConsumer = self
            .cfg
            .client()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set(
                "auto.offset.reset",
                if from_beginning { "earliest" } else { "latest" },
            )
            .create()
            .map_err(classify)?;
        KafkaSubscription::start(consumer, topic)
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish(&self, msg: Outgoing) -> Result<(), BusError> {
        let mut headers = OwnedHeaders::new_with_capacity(msg.headers.len());
        for (k, v) in &msg.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_str()),
            });
        }
        let record = FutureRecord::to(&msg.topic)
            .key(&msg.key)
            .payload(&msg.payload)
            .headers(headers);
        self.producer
            .send(record, Timeout::After(self.cfg.delivery_timeout))
            .await
            .map(|_| ())
            .map_err(|(e, _)| classify(e))
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>, BusError> {
        let consumer: StreamConsumer = self
            .cfg
            .client()
            .set("group.id", format!("{}{group}", self.cfg.group_prefix))
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            // A new group starts at the beginning: losing what was published before the first
            // start is worse than reading it (consumers dead-letter what is too old).
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .create()
            .map_err(classify)?;
        KafkaSubscription::start(consumer, topic)
    }

    async fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout)))
            .await
            .map_err(|e| BusError::Fatal(format!("flush task: {e}")))?
            .map_err(classify)
    }
}

struct KafkaSubscription {
    consumer: StreamConsumer,
    topic: String,
    /// Offsets delivered but not acknowledged, per partition.
    in_flight: HashMap<i32, BTreeSet<i64>>,
    /// Highest offset delivered, per partition.
    high: HashMap<i32, i64>,
    /// Offset last stored, per partition.
    stored: HashMap<i32, i64>,
}

impl KafkaSubscription {
    fn start(consumer: StreamConsumer, topic: &str) -> Result<Box<dyn Subscription>, BusError> {
        consumer.subscribe(&[topic]).map_err(classify)?;
        Ok(Box::new(KafkaSubscription {
            consumer,
            topic: topic.to_string(),
            in_flight: HashMap::new(),
            high: HashMap::new(),
            stored: HashMap::new(),
        }))
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn recv(&mut self) -> Option<Result<Delivery, BusError>> {
        let m = match self.consumer.recv().await {
            Ok(m) => m,
            Err(e) => return Some(Err(classify(e))),
        };
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let d = Delivery {
            topic: m.topic().to_string(),
            key: m
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default(),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers,
            partition: m.partition(),
            offset: m.offset(),
        };
        self.in_flight
            .entry(d.partition)
            .or_default()
            .insert(d.offset);
        let high = self.high.entry(d.partition).or_insert(d.offset);
        *high = (*high).max(d.offset);
        Some(Ok(d))
    }

    async fn ack(&mut self, d: &Delivery) -> Result<(), BusError> {
        let Some(set) = self.in_flight.get_mut(&d.partition) else {
            return Ok(());
        };
        set.remove(&d.offset);
        // Everything below the oldest unacknowledged offset is done.
        let next = match set.first() {
            Some(oldest) => *oldest,
            None => self.high.get(&d.partition).copied().unwrap_or(d.offset) + 1,
        };
        if self.stored.get(&d.partition).is_none_or(|s| next > *s) {
            match self.consumer.store_offset(&self.topic, d.partition, next) {
                Ok(()) => {
                    self.stored.insert(d.partition, next);
                }
                // After a rebalance the partition may no longer be ours: the new owner will
                // redeliver, which is what at-least-once allows.
                Err(e) => tracing::warn!(partition = d.partition, error = %e, "offset not stored"),
            }
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), BusError> {
        if self.stored.is_empty() {
            return Ok(());
        }
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => Ok(()),
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }
}
