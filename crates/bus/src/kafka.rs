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

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use crate::{Bus, BusError, Delivery, Outgoing, Subscription};

/// Prefix of environment variables passed through to librdkafka.
pub const PROP_ENV_PREFIX: &str = "KAFKA_PROP_";

/// Default bootstrap servers: a broker on this machine (`scripts/kafka-up.sh`).
pub const DEFAULT_BOOTSTRAP_SERVERS: &str = "127.0.0.1:9092";
/// Default partitions of the topics created at start-up.
pub const DEFAULT_PARTITIONS: i32 = 3;
/// Default replication factor of the topics created at start-up.
pub const DEFAULT_REPLICATION: i32 = 1;

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
            KafkaSubscription::start_exclusive(consumer, topic).await
        } else {
            KafkaSubscription::start(consumer, topic)
        }
    }

    async fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout)))
            .await
            .map_err(|e| BusError::Fatal(format!("flush task: {e}")))?
            .map_err(classify)
    }
}

type GroupConsumer = StreamConsumer<GroupContext>;

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

impl ClientContext for GroupContext {}

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
}

impl KafkaSubscription {
    fn new(consumer: GroupConsumer, topic: &str) -> Self {
        KafkaSubscription {
            consumer: Arc::new(consumer),
            topic: topic.to_string(),
            exclusive: None,
            in_flight: HashMap::new(),
            high: HashMap::new(),
            stored: HashMap::new(),
        }
    }

    /// Join the consumer's group on `topic` (the group protocol shares the partitions out).
    fn start(consumer: GroupConsumer, topic: &str) -> Result<Box<dyn Subscription>, BusError> {
        consumer.subscribe(&[topic]).map_err(classify)?;
        Ok(Box::new(KafkaSubscription::new(consumer, topic)))
    }

    /// Read every partition of `topic` by explicit assignment, each from the offset committed
    /// under the consumer's group (else from `auto.offset.reset`).
    async fn start_exclusive(
        consumer: GroupConsumer,
        topic: &str,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let mut sub = KafkaSubscription::new(consumer, topic);
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
            }
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
            let next_check = self.exclusive.as_ref().map(|ex| ex.next_check);
            let got = match next_check {
                None => Some(self.consumer.recv().await),
                Some(at) => tokio::select! {
                    // `recv` is cancellation safe: no message is lost when the timer wins.
                    m = self.consumer.recv() => Some(m),
                    _ = tokio::time::sleep_until(at) => None,
                },
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
        if self.stored.get(&d.partition).is_none_or(|s| next > *s) {
            // `next` is the offset to resume at, stored as it is: `offsets_store` takes that
            // offset, whereas `store_offset` (librdkafka's `rd_kafka_offset_store`) stores its
            // argument + 1 — which skipped one message whenever a partition changed hands.
            let mut tpl = TopicPartitionList::with_capacity(1);
            let stored = tpl
                .add_partition_offset(&self.topic, d.partition, Offset::Offset(next))
                .and_then(|()| self.consumer.store_offsets(&tpl));
            match stored {
                Ok(()) => {
                    tracing::trace!(
                        partition = d.partition,
                        offset = next,
                        "kafka offset stored"
                    );
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
