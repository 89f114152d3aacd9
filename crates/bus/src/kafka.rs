//! The bus over Kafka (`rdkafka`), at least once.
//!
//! * **Producing**: [`Bus::publish`] returns when the broker has acknowledged the message
//!   (`acks=all`, idempotent producer, no linger: a caller waits on it).
//!   [`Bus::publish_pipelined`] returns once the message is queued in a second, pipelined
//!   producer (bounded queue of [`PIPELINE_MAX_MESSAGES`], `linger.ms` [`PIPELINE_LINGER_MS`]);
//!   its acknowledgement is collected by the producer's delivery callback as it comes. A full
//!   queue makes the caller wait (back-pressure, counted in [`PipelineStats::queue_full_waits`]);
//!   a message the broker never acknowledged (after librdkafka's own retries, within
//!   `message.timeout.ms`) is sent again after [`PIPELINE_RETRY_DELAY`], counted, never
//!   dropped. [`Bus::flush`] waits for both producers — dropping an rdkafka producer would
//!   discard what it holds.
//! * **Pipelined acknowledgements and offsets**: every pipelined message gets a sequence number;
//!   the *delivered watermark* is the number below which every message is acknowledged. An
//!   [`Subscription::ack`] notes the sequence number reached at that moment and stores its
//!   offset only once the watermark passes it — so an input's offset is stored only after every
//!   output it caused (and anything queued before) is on the broker, in order, however the
//!   acknowledgements arrive. Deferred stores are applied as the watermark moves (also while
//!   the subscription waits for messages) and on close.
//! * **Consuming**: `enable.auto.offset.store=false`. A delivery's offset is stored only when the
//!   service calls [`Subscription::ack`] — after the output it caused was acknowledged — and
//!   offsets are stored as a *low watermark* per partition: acknowledging message 7 while 5 is
//!   still being worked on stores nothing past 5, so a crash redelivers 5 (and 7: redelivery is
//!   the price of losing nothing; consumers make it harmless). Stored offsets are committed
//!   periodically and synchronously on [`Subscription::close`].
//! * **Groups**: a subscription normally joins its consumer group through Kafka's group protocol
//!   (members of one group split the partitions; every assignment and revocation is logged at
//!   INFO as `kafka partitions assigned` / `kafka partitions revoked`). A group named in
//!   [`KafkaConfig::exclusive_groups`] is instead read by *explicit assignment*: its one consumer
//!   `assign()`s every partition of the topic, never joins, and still commits its offsets under
//!   the group id — see [`KafkaConfig::exclusive_groups`] for why the authoritative scaler does
//!   this.
//! * **Topics** are created at start-up through the admin API when absent
//!   ([`KafkaBus::ensure_topics`]), idempotently.
//! * **Configuration**: any librdkafka property passes through from the environment as
//!   `KAFKA_PROP_<property>` (e.g. `KAFKA_PROP_security.protocol=SASL_SSL`,
//!   `KAFKA_PROP_sasl.mechanisms=SCRAM-SHA-512`), or, for shells that cannot export dots, with
//!   `__` for `.` (`KAFKA_PROP_security__protocol`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Weak};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{
    BaseRecord, FutureProducer, FutureRecord, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::{Bus, BusError, Delivery, Outgoing, Subscription};

/// Prefix of environment variables passed through to librdkafka.
pub const PROP_ENV_PREFIX: &str = "KAFKA_PROP_";

/// Default bootstrap servers: a broker on this machine (`scripts/kafka-up.sh`).
pub const DEFAULT_BOOTSTRAP_SERVERS: &str = "127.0.0.1:9092";
/// Default partitions of the topics created at start-up.
pub const DEFAULT_PARTITIONS: i32 = 3;
/// Default replication factor of the topics created at start-up.
pub const DEFAULT_REPLICATION: i32 = 1;

/// How to reach the cluster. Its `Debug` shows property names, never their values (they may be
/// passwords: `sasl.password`, `ssl.key.password`, …).
#[derive(Clone, PartialEq)]
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
    /// Groups (without [`KafkaConfig::group_prefix`]) whose subscription reads *every* partition
    /// of its topic by explicit assignment (`assign()`) instead of joining the group through the
    /// group protocol. Offsets are still stored as a low watermark and committed under the group
    /// id (so lag tools see them, and a restart resumes from them); partitions added to the
    /// topic later are picked up within [`PARTITION_CHECK_INTERVAL`].
    ///
    /// For a consumer that must be the only one of its group — the authoritative scaler:
    /// * a restart, even after SIGKILL, resumes at once: there is no dead member whose session
    ///   must expire and no rebalance to wait for. (Measured on tansu 0.6: a group whose leader
    ///   was killed hands its successor an *empty* assignment for good. The successor joins as
    ///   a follower of the dead leader; when the dead leader's session expires tansu drops it
    ///   and its leadership, then takes the successor's SyncGroup — a follower's, with no
    ///   assignments — as the leader's and forms the group with nothing assigned, after which
    ///   heartbeats succeed and nothing triggers a rebalance: `tansu-broker`
    ///   `src/coordinator/group/administrator.rs` 898-900, 1336-1342, 1968-1997, 2022-2037.
    ///   Apache Kafka makes the successor wait out the dead member's session timeout instead.)
    /// * nothing in Kafka stops a second consumer of such a group: two would both read
    ///   everything. Run exactly one (the scaler's deployment has one replica); a second scaler
    ///   would be wrong with the group protocol too (each would decide part of the services with
    ///   its own cooldown state).
    /// * on Apache Kafka the commits of a consumer that never joins are accepted only while the
    ///   group has no joined members — never name a group here that other consumers join.
    pub exclusive_groups: BTreeSet<String>,
}

/// Messages the pipelined producer holds (queued or in flight) before a publish waits
/// (`queue.buffering.max.messages`).
pub const PIPELINE_MAX_MESSAGES: usize = 20_000;
/// How long the pipelined producer waits to fill a batch (`linger.ms`).
pub const PIPELINE_LINGER_MS: u32 = 2;
/// How long a publish waits before trying a full queue again.
pub const PIPELINE_QUEUE_FULL_WAIT: Duration = Duration::from_millis(2);
/// How long a message the broker did not acknowledge waits before it is sent again.
pub const PIPELINE_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Counters of the pipelined producer ([`KafkaBus::pipeline_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Messages queued by [`Bus::publish_pipelined`].
    pub queued: u64,
    /// Of which acknowledged by the broker.
    pub delivered: u64,
    /// Times a publish found the queue full and waited (back-pressure).
    pub queue_full_waits: u64,
    /// Deliveries that failed and were sent again.
    pub redelivered: u64,
    /// Every message below this sequence number is acknowledged.
    pub watermark: u64,
}

/// The delivered watermark: every sequence number below `low` is acknowledged; `above` holds
/// the acknowledged ones past it.
#[derive(Default)]
struct Done {
    low: u64,
    above: BTreeSet<u64>,
}

/// State shared by the pipelined producer's delivery callback, the bus and its subscriptions.
struct Pipeline {
    next_seq: AtomicU64,
    done: Mutex<Done>,
    watermark: watch::Sender<u64>,
    queue_full_waits: AtomicU64,
    delivered: AtomicU64,
    redelivered: AtomicU64,
    retry: Mutex<Option<std::sync::mpsc::Sender<(u64, OwnedMessage)>>>,
}

impl Pipeline {
    fn new() -> Self {
        Pipeline {
            next_seq: AtomicU64::new(0),
            done: Mutex::new(Done::default()),
            watermark: watch::Sender::new(0),
            queue_full_waits: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            retry: Mutex::new(None),
        }
    }

    /// Sequence number of the next message queued: an ack made now waits for every one below.
    fn reached(&self) -> u64 {
        self.next_seq.load(Ordering::Acquire)
    }

    fn complete(&self, seq: u64) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if seq != done.low {
            done.above.insert(seq);
            return;
        }
        done.low += 1;
        while done.above.first() == Some(&done.low) {
            done.above.pop_first();
            done.low += 1;
        }
        let low = done.low;
        drop(done);
        self.watermark.send_replace(low);
    }

    fn stats(&self) -> PipelineStats {
        PipelineStats {
            queued: self.next_seq.load(Ordering::Acquire),
            delivered: self.delivered.load(Ordering::Relaxed),
            queue_full_waits: self.queue_full_waits.load(Ordering::Relaxed),
            redelivered: self.redelivered.load(Ordering::Relaxed),
            watermark: *self.watermark.borrow(),
        }
    }
}

/// The pipelined producer's context: acknowledgements move the watermark; failures go to the
/// retry thread with their sequence number.
struct PipelineContext {
    pipeline: Arc<Pipeline>,
}

impl ClientContext for PipelineContext {}

impl ProducerContext for PipelineContext {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        match result {
            Ok(_) => {
                self.pipeline.delivered.fetch_add(1, Ordering::Relaxed);
                self.pipeline.complete(*seq);
            }
            Err((e, msg)) => {
                self.pipeline.redelivered.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic = msg.topic(), error = %e,
                    "pipelined message not acknowledged; sending it again");
                let retry = self
                    .pipeline
                    .retry
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                // No retry thread: the producer is being dropped (its queue purged); the
                // watermark stays below this message, so no offset past its input is stored.
                if let Some(tx) = retry.as_ref() {
                    let _ = tx.send((*seq, msg.detach()));
                }
            }
        }
    }
}

type PipelinedProducer = ThreadedProducer<PipelineContext>;

/// Send `msg` with sequence number `seq` on `producer`; `Err` gives back the error and whether
/// the queue was full.
fn send_pipelined(
    producer: &PipelinedProducer,
    seq: u64,
    topic: &str,
    key: &[u8],
    payload: &[u8],
    headers: Option<OwnedHeaders>,
) -> Result<(), (KafkaError, Option<OwnedHeaders>)> {
    let mut record = BaseRecord::with_opaque_to(topic, Box::new(seq))
        .key(key)
        .payload(payload);
    if let Some(h) = headers {
        record = record.headers(h);
    }
    producer
        .send(record)
        .map_err(|(e, record)| (e, record.headers))
}

fn queue_full(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
    )
}

/// The retry thread: sends failed messages again, after [`PIPELINE_RETRY_DELAY`], with their
/// sequence number; ends when the producer is gone.
fn retry_loop(
    producer: Weak<PipelinedProducer>,
    rx: std::sync::mpsc::Receiver<(u64, OwnedMessage)>,
) {
    while let Ok((seq, msg)) = rx.recv() {
        std::thread::sleep(PIPELINE_RETRY_DELAY);
        let mut headers = msg.headers().map(|h| {
            let mut out = OwnedHeaders::new_with_capacity(h.count());
            for x in h.iter() {
                out = out.insert(Header {
                    key: x.key,
                    value: x.value,
                });
            }
            out
        });
        loop {
            let Some(p) = producer.upgrade() else { return };
            match send_pipelined(
                &p,
                seq,
                msg.topic(),
                msg.key().unwrap_or_default(),
                msg.payload().unwrap_or_default(),
                headers.take(),
            ) {
                Ok(()) => break,
                Err((e, h)) if queue_full(&e) => {
                    headers = h;
                    drop(p);
                    std::thread::sleep(PIPELINE_QUEUE_FULL_WAIT);
                }
                Err((e, h)) => {
                    tracing::warn!(topic = msg.topic(), error = %e,
                        "sending a pipelined message again failed; retrying");
                    headers = h;
                    drop(p);
                    std::thread::sleep(PIPELINE_RETRY_DELAY);
                }
            }
        }
    }
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let props: Vec<String> = self
            .properties
            .keys()
            .map(|k| format!("{k}=<redacted>"))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("properties", &props)
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("group_prefix", &self.group_prefix)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("exclusive_groups", &self.exclusive_groups)
            .finish()
    }
}

/// How often an exclusive subscription ([`KafkaConfig::exclusive_groups`]) looks for partitions
/// added to its topic.
pub const PARTITION_CHECK_INTERVAL: Duration = Duration::from_secs(30);

impl KafkaConfig {
    /// A configuration for `bootstrap_servers` with defaults: 3 partitions, replication 1.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap_servers: bootstrap_servers.into(),
            properties: BTreeMap::new(),
            partitions: DEFAULT_PARTITIONS,
            replication: DEFAULT_REPLICATION,
            group_prefix: String::new(),
            delivery_timeout: Duration::from_secs(30),
            exclusive_groups: BTreeSet::new(),
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
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// A consumer's configuration: the client's, in `group_id`.
    fn consumer(&self, group_id: &str) -> ClientConfig {
        let mut c = self.client();
        c.set("group.id", group_id);
        // Our messages are small and few: a fetch should not sit at the broker for librdkafka's
        // default 500 ms waiting for bytes that will not come (measured: ~0.5 s per hop).
        // Consumers only: producers and admin clients warn about consumer properties.
        if !self.properties.contains_key("fetch.wait.max.ms") {
            c.set("fetch.wait.max.ms", "20");
        }
        c
    }
}

fn classify(e: KafkaError) -> BusError {
    // librdkafka's configuration errors quote the value (`Client config error: … sasl.password
    // hunter2`): the value is left out, the property named.
    if let KafkaError::ClientConfig(_, desc, key, _value) = &e {
        return BusError::Fatal(format!(
            "Kafka client configuration: {desc} (property `{key}`, value not shown)"
        ));
    }
    if let KafkaError::ClientCreation(_) = &e {
        // Its text may quote a configured value: kept as text, for `scrub`.
        return BusError::Fatal(e.to_string());
    }
    let fatal = matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::InvalidConfig
                | RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::UnknownTopicOrPartition
        )
    );
    BusError::Kafka {
        retryable: !fatal,
        source: e,
    }
}

/// `e` with every configured property value (3 bytes or more) cut out: librdkafka's messages
/// may quote a value (a password among them).
fn scrub(e: BusError, cfg: &KafkaConfig) -> BusError {
    let clean = |mut m: String| {
        for v in cfg.properties.values().filter(|v| v.len() >= 3) {
            m = m.replace(v.as_str(), "<redacted>");
        }
        m
    };
    match e {
        BusError::Fatal(m) => BusError::Fatal(clean(m)),
        BusError::Transient(m) => BusError::Transient(clean(m)),
        BusError::Kafka { retryable, source } => {
            let text = source.to_string();
            if clean(text.clone()) == text {
                BusError::Kafka { retryable, source }
            } else if retryable {
                BusError::Transient(clean(text))
            } else {
                BusError::Fatal(clean(text))
            }
        }
        e => e,
    }
}

/// The Kafka bus: one producer shared by every awaited publish, one pipelined producer, one
/// consumer per subscription.
pub struct KafkaBus {
    cfg: KafkaConfig,
    producer: FutureProducer,
    pipelined: Arc<PipelinedProducer>,
    pipeline: Arc<Pipeline>,
}

impl KafkaBus {
    /// Create the producer (it connects lazily; [`KafkaBus::ensure_topics`] checks the broker).
    pub fn new(cfg: KafkaConfig) -> Result<Self, BusError> {
        let producer_config = |linger_ms: u32| {
            let mut c = cfg.client();
            c.set("acks", "all").set("enable.idempotence", "true").set(
                "message.timeout.ms",
                cfg.delivery_timeout.as_millis().to_string(),
            );
            if !cfg.properties.contains_key("linger.ms") {
                c.set("linger.ms", linger_ms.to_string());
            }
            c
        };
        // Awaited publishes have nothing to batch with: no linger (librdkafka's default of 5 ms
        // was added to every awaited publish).
        let producer: FutureProducer = producer_config(0)
            .create()
            .map_err(|e| scrub(classify(e), &cfg))?;
        let pipeline = Arc::new(Pipeline::new());
        let mut pc = producer_config(PIPELINE_LINGER_MS);
        if !cfg.properties.contains_key("queue.buffering.max.messages") {
            pc.set(
                "queue.buffering.max.messages",
                PIPELINE_MAX_MESSAGES.to_string(),
            );
        }
        let pipelined: Arc<PipelinedProducer> = Arc::new(
            pc.create_with_context(PipelineContext {
                pipeline: pipeline.clone(),
            })
            .map_err(|e| scrub(classify(e), &cfg))?,
        );
        let (tx, rx) = std::sync::mpsc::channel();
        *pipeline.retry.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        let weak = Arc::downgrade(&pipelined);
        std::thread::Builder::new()
            .name("kafka-retry".into())
            .spawn(move || retry_loop(weak, rx))
            .map_err(|e| BusError::Fatal(format!("cannot start the retry thread: {e}")))?;
        Ok(KafkaBus {
            cfg,
            producer,
            pipelined,
            pipeline,
        })
    }

    /// Counters of the pipelined producer.
    pub fn pipeline_stats(&self) -> PipelineStats {
        self.pipeline.stats()
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
    /// Create `topic` with `partitions` partitions if it does not exist (e.g. the lease topic,
    /// which must have exactly one).
    pub async fn ensure_topic_with_partitions(
        &self,
        topic: &str,
        partitions: i32,
    ) -> Result<(), BusError> {
        let mut cfg = self.cfg.clone();
        cfg.partitions = partitions;
        KafkaBus {
            cfg,
            producer: self.producer.clone(),
            pipelined: self.pipelined.clone(),
            pipeline: self.pipeline.clone(),
        }
        .ensure_topics(&[topic])
        .await
    }

    fn unique_group(&self, what: &str) -> String {
        format!(
            "{}autoscaler-{what}-{}-{}",
            self.cfg.group_prefix,
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        )
    }

    /// A reader of every partition of `topic` from its beginning, by explicit assignment: no
    /// consumer group is joined and nothing is committed (a log every instance reads whole,
    /// such as the scaler's lease).
    pub async fn log_reader(&self, topic: &str) -> Result<Box<dyn Subscription>, BusError> {
        let group = self.unique_group("log");
        let consumer: GroupConsumer = self
            .cfg
            .consumer(&group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(GroupContext::new(group))
            .map_err(classify)?;
        let sub = KafkaSubscription::new(consumer, topic, self.pipeline.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let n = loop {
            match partition_count(&sub.consumer, topic).await {
                Ok(n) if n > 0 => break n,
                Ok(_) => {}
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => tracing::warn!(topic, error = %e, "reading the topic's partitions"),
            }
            if tokio::time::Instant::now() > deadline {
                return Err(BusError::Transient(format!(
                    "topic `{topic}` shows no partitions after 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..n {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(classify)?;
        }
        sub.consumer.assign(&tpl).map_err(classify)?;
        Ok(Box::new(sub))
    }

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
        let consumer: GroupConsumer = self
            .cfg
            .consumer(&group)
            .set("enable.auto.commit", "false")
            .set(
                "auto.offset.reset",
                if from_beginning { "earliest" } else { "latest" },
            )
            .create_with_context(GroupContext::new(group))
            .map_err(classify)?;
        KafkaSubscription::start(consumer, topic, self.pipeline.clone())
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

    async fn publish_pipelined(&self, msg: Outgoing) -> Result<(), BusError> {
        let mut headers = (!msg.headers.is_empty()).then(|| {
            let mut h = OwnedHeaders::new_with_capacity(msg.headers.len());
            for (k, v) in &msg.headers {
                h = h.insert(Header {
                    key: k,
                    value: Some(v.as_str()),
                });
            }
            h
        });
        let seq = self.pipeline.next_seq.fetch_add(1, Ordering::AcqRel);
        loop {
            match send_pipelined(
                &self.pipelined,
                seq,
                &msg.topic,
                msg.key.as_bytes(),
                &msg.payload,
                headers.take(),
            ) {
                Ok(()) => return Ok(()),
                Err((e, h)) if queue_full(&e) => {
                    // Back-pressure: wait for acknowledgements to make room.
                    self.pipeline
                        .queue_full_waits
                        .fetch_add(1, Ordering::Relaxed);
                    headers = h;
                    tokio::time::sleep(PIPELINE_QUEUE_FULL_WAIT).await;
                }
                Err((e, _)) => {
                    // Never queued: it counts as done for the watermark (nothing to wait for),
                    // and the caller sees the error, so it does not acknowledge its input.
                    self.pipeline.complete(seq);
                    return Err(classify(e));
                }
            }
        }
    }

    fn pipeline_reached(&self) -> u64 {
        self.pipeline.reached()
    }

    fn pipeline_delivered(&self) -> u64 {
        *self.pipeline.watermark.borrow()
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>, BusError> {
        let group_id = format!("{}{group}", self.cfg.group_prefix);
        let consumer: GroupConsumer = self
            .cfg
            .consumer(&group_id)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            // A new group starts at the beginning: losing what was published before the first
            // start is worse than reading it (consumers dead-letter what is too old).
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .create_with_context(GroupContext::new(group_id))
            .map_err(classify)?;
        if self.cfg.exclusive_groups.contains(group) {
            KafkaSubscription::start_exclusive(consumer, topic, self.pipeline.clone()).await
        } else {
            KafkaSubscription::start(consumer, topic, self.pipeline.clone())
        }
    }

    async fn tail(&self, topic: &str, n: usize) -> Result<Vec<Delivery>, BusError> {
        let group = self.unique_group("tail");
        let consumer: BaseConsumer = self
            .cfg
            .consumer(&group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()
            .map_err(classify)?;
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || read_tail(&consumer, &topic, n))
            .await
            .map_err(|e| BusError::Fatal(format!("tail task: {e}")))?
    }

    async fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        let producer = self.producer.clone();
        let pipelined = self.pipelined.clone();
        let pipeline = self.pipeline.clone();
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + timeout;
            pipelined.flush(Timeout::After(timeout))?;
            producer.flush(Timeout::After(
                deadline.saturating_duration_since(std::time::Instant::now()),
            ))?;
            // A message being sent again is outside librdkafka's queue: wait for the watermark.
            let target = pipeline.reached();
            while *pipeline.watermark.borrow() < target {
                if std::time::Instant::now() >= deadline {
                    return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        })
        .await
        .map_err(|e| BusError::Fatal(format!("flush task: {e}")))?
        .map_err(classify)
    }
}

type GroupConsumer = StreamConsumer<GroupContext>;

/// The last `n` messages of every partition of `topic`, read up to the high watermark each had
/// when the call began (blocking; at most 30 s).
fn read_tail(consumer: &BaseConsumer, topic: &str, n: usize) -> Result<Vec<Delivery>, BusError> {
    let t = Timeout::After(Duration::from_secs(10));
    let md = consumer.fetch_metadata(Some(topic), t).map_err(classify)?;
    let Some(meta) = md.topics().iter().find(|m| m.name() == topic) else {
        return Ok(Vec::new());
    };
    let mut tpl = TopicPartitionList::new();
    let mut until: HashMap<i32, i64> = HashMap::new();
    for p in meta.partitions() {
        let (lo, hi) = consumer
            .fetch_watermarks(topic, p.id(), t)
            .map_err(classify)?;
        let start = lo.max(hi - n as i64);
        if start < hi {
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(start))
                .map_err(classify)?;
            until.insert(p.id(), hi);
        }
    }
    if until.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&tpl).map_err(classify)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while !until.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(BusError::Transient(format!(
                "reading the tail of `{topic}` took more than 30 s"
            )));
        }
        let Some(m) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = m.map_err(classify)?;
        let (p, o) = (m.partition(), m.offset());
        out.push(Delivery {
            topic: m.topic().to_string(),
            key: m
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default(),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers: Vec::new(),
            partition: p,
            offset: o,
        });
        if until.get(&p).is_some_and(|hi| o + 1 >= *hi) {
            until.remove(&p);
        }
    }
    Ok(out)
}

/// A consumer's context: it logs every assignment and revocation at INFO (operators see which
/// member holds which partitions; tests wait for `kafka partitions assigned`) and failed
/// commits at WARN. librdkafka's own log lines reach `tracing` through rdkafka's `tracing`
/// feature, under the target `librdkafka` (`KAFKA_PROP_debug=cgrp` with
/// `RUST_LOG=info,librdkafka=debug` shows the group protocol step by step).
struct GroupContext {
    group: String,
    /// Partitions revoked since the subscription last looked: it forgets what it knew of them
    /// (a partition that comes back resumes from the group's committed offset).
    revoked: std::sync::Mutex<Vec<(String, i32)>>,
}

impl GroupContext {
    fn new(group: String) -> Self {
        GroupContext {
            group,
            revoked: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl ClientContext for GroupContext {
    /// librdkafka's statistics (every `statistics.interval.ms`, off unless set, e.g.
    /// `KAFKA_PROP_statistics.interval.ms=5000`): each assigned partition's lag becomes
    /// `autoscaler_consumer_lag`.
    fn stats(&self, stats: rdkafka::Statistics) {
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                // -1: the internal "unassigned" partition; a lag of -1: not known yet.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    autoscaler_telemetry::set_consumer_lag(
                        &self.group,
                        topic,
                        *partition,
                        p.consumer_lag,
                    );
                }
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if let Ok(mut revoked) = self.revoked.lock() {
                revoked.extend(
                    tpl.elements()
                        .iter()
                        .map(|e| (e.topic().to_string(), e.partition())),
                );
            }
            tracing::info!(group = %self.group, count = tpl.count(), partitions = %describe(tpl),
                "kafka partitions revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(group = %self.group, count = tpl.count(), partitions = %describe(tpl),
                    "kafka partitions assigned")
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.group, error = %e, "kafka rebalance failed")
            }
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(group = %self.group, error = %e,
                "offset commit failed (the next commit carries the offsets again)"),
        }
    }
}

/// `topic:0,2 other:1`.
fn describe(tpl: &TopicPartitionList) -> String {
    let mut by_topic: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in tpl.elements() {
        by_topic
            .entry(e.topic().to_string())
            .or_default()
            .push(e.partition().to_string());
    }
    by_topic
        .iter()
        .map(|(t, ps)| format!("{t}:{}", ps.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The partition count of `topic`, from the broker's metadata (a blocking call, off the async
/// threads).
async fn partition_count(consumer: &Arc<GroupConsumer>, topic: &str) -> Result<i32, BusError> {
    let (c, t) = (consumer.clone(), topic.to_string());
    let md = tokio::task::spawn_blocking(move || {
        c.fetch_metadata(Some(&t), Timeout::After(Duration::from_secs(10)))
    })
    .await
    .map_err(|e| BusError::Fatal(format!("metadata task: {e}")))?
    .map_err(classify)?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(0);
    };
    match t.error() {
        None => Ok(t.partitions().len() as i32),
        Some(e) => Err(classify(KafkaError::MetadataFetch(e.into()))),
    }
}

/// Partitions of an exclusive subscription.
struct Exclusive {
    /// Partitions `0..assigned` are assigned.
    assigned: i32,
    /// When to look for partitions added to the topic.
    next_check: tokio::time::Instant,
}

struct KafkaSubscription {
    consumer: Arc<GroupConsumer>,
    topic: String,
    /// `Some`: every partition by explicit assignment ([`KafkaConfig::exclusive_groups`]).
    exclusive: Option<Exclusive>,
    /// Offsets delivered but not acknowledged, per partition.
    in_flight: HashMap<i32, BTreeSet<i64>>,
    /// Highest offset delivered, per partition.
    high: HashMap<i32, i64>,
    /// Offset last stored, per partition.
    stored: HashMap<i32, i64>,
    /// The bus's pipelined producer state, and the watermark as this subscription saw it.
    pipeline: Arc<Pipeline>,
    watermark: watch::Receiver<u64>,
    /// Offsets acknowledged but not stored yet: (partition, offset, sequence number every
    /// pipelined message below which must be acknowledged first), in acknowledgement order.
    deferred: VecDeque<(i32, i64, u64)>,
}

impl KafkaSubscription {
    fn new(consumer: GroupConsumer, topic: &str, pipeline: Arc<Pipeline>) -> Self {
        KafkaSubscription {
            consumer: Arc::new(consumer),
            topic: topic.to_string(),
            exclusive: None,
            in_flight: HashMap::new(),
            high: HashMap::new(),
            stored: HashMap::new(),
            watermark: pipeline.watermark.subscribe(),
            pipeline,
            deferred: VecDeque::new(),
        }
    }

    /// Join the consumer's group on `topic` (the group protocol shares the partitions out).
    fn start(
        consumer: GroupConsumer,
        topic: &str,
        pipeline: Arc<Pipeline>,
    ) -> Result<Box<dyn Subscription>, BusError> {
        consumer.subscribe(&[topic]).map_err(classify)?;
        Ok(Box::new(KafkaSubscription::new(consumer, topic, pipeline)))
    }

    /// Read every partition of `topic` by explicit assignment, each from the offset committed
    /// under the consumer's group (else from `auto.offset.reset`).
    async fn start_exclusive(
        consumer: GroupConsumer,
        topic: &str,
        pipeline: Arc<Pipeline>,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let mut sub = KafkaSubscription::new(consumer, topic, pipeline);
        sub.exclusive = Some(Exclusive {
            assigned: 0,
            next_check: tokio::time::Instant::now() + PARTITION_CHECK_INTERVAL,
        });
        // The topic exists (every service creates its topics before subscribing), but a fresh
        // topic's metadata may take a moment to show its partitions.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match partition_count(&sub.consumer, topic).await {
                Ok(n) if n > 0 => {
                    sub.assign_up_to(n)?;
                    return Ok(Box::new(sub));
                }
                Ok(_) => {}
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => tracing::warn!(topic, error = %e, "reading the topic's partitions"),
            }
            if tokio::time::Instant::now() > deadline {
                return Err(BusError::Transient(format!(
                    "topic `{topic}` shows no partitions after 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Add partitions up to `n` (exclusive) to an exclusive subscription's assignment.
    fn assign_up_to(&mut self, n: i32) -> Result<(), BusError> {
        let Some(ex) = self.exclusive.as_mut() else {
            return Ok(());
        };
        if n <= ex.assigned {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for p in ex.assigned..n {
            tpl.add_partition_offset(&self.topic, p, Offset::Stored)
                .map_err(classify)?;
        }
        // Incremental: the partitions already assigned keep their positions.
        self.consumer.incremental_assign(&tpl).map_err(classify)?;
        ex.assigned = n;
        let group = &self.consumer.context().group;
        tracing::info!(%group, count = tpl.count(), partitions = %describe(&tpl), of = n,
            mode = "exclusive", "kafka partitions assigned");
        Ok(())
    }

    /// Forget the bookkeeping of partitions revoked by a rebalance: acknowledging what was
    /// delivered from them stores nothing (the next owner redelivers it), and a partition that
    /// comes back starts afresh from the committed offset.
    fn forget_revoked(&mut self) {
        let revoked = match self.consumer.context().revoked.lock() {
            Ok(mut r) if !r.is_empty() => std::mem::take(&mut *r),
            _ => return,
        };
        for (topic, p) in revoked {
            if topic == self.topic {
                self.in_flight.remove(&p);
                self.high.remove(&p);
                self.stored.remove(&p);
                self.deferred.retain(|(dp, _, _)| *dp != p);
            }
        }
    }

    /// Store `next` as `partition`'s offset to resume at, when it moves forward.
    fn store(&mut self, partition: i32, next: i64) {
        if self.stored.get(&partition).is_some_and(|s| next <= *s) {
            return;
        }
        // `next` is the offset to resume at, stored as it is: `offsets_store` takes that
        // offset, whereas `store_offset` (librdkafka's `rd_kafka_offset_store`) stores its
        // argument + 1 — which skipped one message whenever a partition changed hands.
        let mut tpl = TopicPartitionList::with_capacity(1);
        let stored = tpl
            .add_partition_offset(&self.topic, partition, Offset::Offset(next))
            .and_then(|()| self.consumer.store_offsets(&tpl));
        match stored {
            Ok(()) => {
                tracing::trace!(partition, offset = next, "kafka offset stored");
                self.stored.insert(partition, next);
            }
            // After a rebalance the partition may no longer be ours: the new owner will
            // redeliver, which is what at-least-once allows.
            Err(e) => tracing::warn!(partition, error = %e, "offset not stored"),
        }
    }

    /// Store the deferred offsets whose pipelined outputs are all acknowledged now.
    fn store_deferred(&mut self) {
        let watermark = *self.watermark.borrow_and_update();
        while let Some((p, next, needs)) = self.deferred.front().copied() {
            if needs > watermark {
                break;
            }
            self.deferred.pop_front();
            self.store(p, next);
        }
    }

    /// Look for partitions added to the topic of an exclusive subscription.
    async fn check_partitions(&mut self) {
        match partition_count(&self.consumer, &self.topic).await {
            Ok(n) => {
                if let Err(e) = self.assign_up_to(n) {
                    tracing::warn!(topic = %self.topic, error = %e, "assigning new partitions");
                }
            }
            Err(e) => tracing::warn!(topic = %self.topic, error = %e,
                "reading the topic's partitions"),
        }
        if let Some(ex) = self.exclusive.as_mut() {
            ex.next_check = tokio::time::Instant::now() + PARTITION_CHECK_INTERVAL;
        }
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn recv(&mut self) -> Option<Result<Delivery, BusError>> {
        let d = loop {
            self.store_deferred();
            let next_check = self.exclusive.as_ref().map(|ex| ex.next_check);
            let waiting = !self.deferred.is_empty();
            let got = tokio::select! {
                // `recv` is cancellation safe: no message is lost when another branch wins.
                m = self.consumer.recv() => Some(m),
                _ = tokio::time::sleep_until(next_check.unwrap_or_else(tokio::time::Instant::now)),
                    if next_check.is_some() => None,
                // Outputs acknowledged: store what waited for them, then go on waiting.
                changed = self.watermark.changed(), if waiting => {
                    if changed.is_ok() {
                        continue;
                    }
                    None
                }
            };
            let m = match got {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Some(Err(classify(e))),
                None => {
                    self.check_partitions().await;
                    continue;
                }
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
            break Delivery {
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
        };
        tracing::trace!(topic = %d.topic, partition = d.partition, offset = d.offset, key = %d.key,
            "kafka message received");
        self.forget_revoked();
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
        // Stored once every pipelined message queued so far (the outputs this input caused
        // among them) is acknowledged.
        let needs = self.pipeline.reached();
        self.deferred.push_back((d.partition, next, needs));
        self.store_deferred();
        Ok(())
    }

    async fn close(&mut self) -> Result<(), BusError> {
        // The service flushed the bus before closing: store what the acknowledgements allow.
        self.store_deferred();
        if !self.deferred.is_empty() {
            tracing::warn!(
                offsets = self.deferred.len(),
                "closing with outputs not acknowledged: their inputs will be delivered again"
            );
        }
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

#[cfg(test)]
mod pipeline_tests {
    use super::*;

    #[test]
    fn the_watermark_moves_only_over_acknowledged_prefixes() {
        let p = Pipeline::new();
        for _ in 0..5 {
            p.next_seq.fetch_add(1, Ordering::AcqRel);
        }
        assert_eq!(p.reached(), 5);
        p.complete(2);
        p.complete(1);
        assert_eq!(*p.watermark.borrow(), 0, "0 is not acknowledged yet");
        p.complete(0);
        assert_eq!(*p.watermark.borrow(), 3, "0, 1, 2 are");
        p.complete(4);
        assert_eq!(*p.watermark.borrow(), 3);
        p.complete(3);
        assert_eq!(*p.watermark.borrow(), 5);
        assert!(p.done.lock().unwrap().above.is_empty());
    }
}

#[cfg(test)]
mod classify_tests {
    use super::*;

    /// Issue 17, item 4: a Kafka failure keeps its cause, so a caller can match a broker's
    /// authentication failure; its message names the cause once.
    #[test]
    fn a_kafka_failure_keeps_its_cause_and_code() {
        let auth = classify(KafkaError::MessageProduction(
            RDKafkaErrorCode::SaslAuthenticationFailed,
        ));
        assert!(!auth.is_retryable());
        assert_eq!(
            auth.kafka_code(),
            Some(RDKafkaErrorCode::SaslAuthenticationFailed)
        );
        let source = std::error::Error::source(&auth).expect("the cause is kept");
        assert!(source.downcast_ref::<KafkaError>().is_some());
        assert!(
            auth.to_string().starts_with("fatal Kafka failure: "),
            "{auth}"
        );

        let down = classify(KafkaError::MessageProduction(
            RDKafkaErrorCode::BrokerTransportFailure,
        ));
        assert!(down.is_retryable(), "{down}");
        assert_eq!(
            down.kafka_code(),
            Some(RDKafkaErrorCode::BrokerTransportFailure)
        );
        // A configuration error quotes values: kept as scrubbed text, without its cause.
        let cfg = classify(KafkaError::ClientCreation("bad".into()));
        assert!(matches!(cfg, BusError::Fatal(_)), "{cfg:?}");
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    /// Medium 10: a `KAFKA_PROP_*` value (a password) reaches neither a configuration error
    /// nor the configuration's `Debug`.
    #[test]
    fn property_values_never_reach_errors_or_debug() {
        let secret = "hunter2-s3cret";
        let cfg = KafkaConfig::new("127.0.0.1:1").with_env_properties([
            ("KAFKA_PROP_sasl__password".to_string(), secret.to_string()),
            (
                "KAFKA_PROP_no__such__property".to_string(),
                secret.to_string(),
            ),
        ]);
        assert!(!format!("{cfg:?}").contains(secret), "{cfg:?}");
        let err = KafkaBus::new(cfg.clone())
            .err()
            .expect("an unknown property is refused");
        assert!(!err.to_string().contains(secret), "{err}");
        assert!(!format!("{err:?}").contains(secret), "{err:?}");
        assert!(err.to_string().contains("no.such.property"), "{err}");
        let mut cfg = KafkaConfig::new("127.0.0.1:1");
        cfg.properties
            .insert("sasl.mechanism".into(), secret.into());
        cfg.properties
            .insert("security.protocol".into(), "sasl_plaintext".into());
        if let Err(e) = KafkaBus::new(cfg) {
            assert!(!format!("{e} {e:?}").contains(secret), "{e:?}");
        }
    }
}
