//! # The message bus
//!
//! One small interface — publish a keyed message to a topic, subscribe to a topic as a member of
//! a consumer group — so a service never knows whether it runs over Kafka or in one process.
//!
//! * [`Bus`] / [`Subscription`]: the interface. Every consumer group receives every message of a
//!   topic; within a group each message goes to one member, chosen by its key, so all messages of
//!   one service reach the same member (Kafka's partition-by-key, in miniature).
//! * [`MemoryBus`]: the in-process implementation on **bounded** channels. What happens when a
//!   member's queue is full is explicit ([`Overflow`]) and counted ([`MemoryBus::stats`]).
//!
//! * `kafka::KafkaBus` (feature `kafka`, on by default): the same interface over Kafka.
//!
//! Delivery is at least once: a consumer calls [`Subscription::ack`] after the output a message
//! caused has been published. In memory that is bookkeeping; over Kafka it stores the offset.
#![deny(missing_docs)]

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;

#[cfg(feature = "kafka")]
pub mod kafka;

/// Errors of the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus is shut down.
    #[error("the bus is closed")]
    Closed,
    /// A retryable failure of the transport (broker down, queue full with a fail-fast policy).
    #[error("transient bus failure: {0}")]
    Transient(String),
    /// A failure that retrying will not fix (bad configuration, authorisation).
    #[error("bus failure: {0}")]
    Fatal(String),
    /// The Kafka client failed. The cause is kept ([`std::error::Error::source`]) so a caller
    /// can match it, e.g. a broker's authentication failure (see [`BusError::kafka_code`]).
    /// Its text is part of this error's message, so log `%e`; a chain printer must skip a
    /// cause its message already contains (the CLI's does).
    #[cfg(feature = "kafka")]
    #[error("{} Kafka failure: {source}", if *.retryable { "transient" } else { "fatal" })]
    Kafka {
        /// Whether retrying may help (a broker down, a timeout) or not (authorisation, a
        /// message over the broker's size limit).
        retryable: bool,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

impl BusError {
    /// Whether retrying may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            BusError::Transient(_) => true,
            #[cfg(feature = "kafka")]
            BusError::Kafka { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// The librdkafka error code behind a Kafka failure, to match one (e.g.
    /// `RDKafkaErrorCode::SaslAuthenticationFailed`).
    #[cfg(feature = "kafka")]
    pub fn kafka_code(&self) -> Option<rdkafka::types::RDKafkaErrorCode> {
        match self {
            BusError::Kafka { source, .. } => source.rdkafka_error_code(),
            _ => None,
        }
    }
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Topic.
    pub topic: String,
    /// Key (the service), which picks the partition / group member.
    pub key: String,
    /// The bytes (JSON for every topic of this product).
    pub payload: Vec<u8>,
    /// Headers, e.g. the dead-letter reason.
    pub headers: Vec<(String, String)>,
}

impl Outgoing {
    /// A message without headers.
    pub fn new(topic: impl Into<String>, key: impl Into<String>, payload: Vec<u8>) -> Self {
        Outgoing {
            topic: topic.into(),
            key: key.into(),
            payload,
            headers: Vec::new(),
        }
    }

    /// Add a header.
    pub fn with_header(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// A received message.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Topic it came from.
    pub topic: String,
    /// Its key.
    pub key: String,
    /// Its bytes.
    pub payload: Vec<u8>,
    /// Its headers.
    pub headers: Vec<(String, String)>,
    /// Partition (0 in memory).
    pub partition: i32,
    /// Offset within the partition (a per-member sequence number in memory).
    pub offset: i64,
}

/// The publish/subscribe interface every service uses.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Publish one message; returns when the bus has accepted it (Kafka: acknowledged by the
    /// broker).
    async fn publish(&self, msg: Outgoing) -> Result<(), BusError>;

    /// Publish one message without waiting for its acknowledgement: returns once the message is
    /// queued (a full queue makes this wait: back-pressure, never a dropped message). Every
    /// [`Subscription::ack`] made afterwards in this process stores its offset only once this
    /// message — and every message queued before the ack — is acknowledged, so an input is
    /// still marked done only after every output it caused is on the broker (at least once).
    /// The default publishes and waits ([`Bus::publish`]).
    async fn publish_pipelined(&self, msg: Outgoing) -> Result<(), BusError> {
        self.publish(msg).await
    }

    /// Position of the pipeline: every message [`Bus::publish_pipelined`] queued before this
    /// call has a sequence number below it. With [`Bus::pipeline_delivered`] a caller learns
    /// when what it queued is on the broker (e.g. to clear an outbox). The default (a bus whose
    /// pipelined publish waits for the acknowledgement) is 0.
    fn pipeline_reached(&self) -> u64 {
        0
    }

    /// The delivered watermark: every pipelined message with a sequence number below it is
    /// acknowledged by the broker. A position `p` from [`Bus::pipeline_reached`] is delivered
    /// once this is at least `p`. The default (nothing is ever left in flight) is `u64::MAX`.
    fn pipeline_delivered(&self) -> u64 {
        u64::MAX
    }

    /// Join `group` on `topic`. Messages published after this call are delivered.
    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>, BusError>;

    /// Wait until everything published has been handed over (Kafka: flushed), at most `timeout`.
    async fn flush(&self, timeout: std::time::Duration) -> Result<(), BusError>;

    /// The last `n` messages of each partition of `topic`, oldest first per partition, read
    /// outside any group (e.g. a scaler taking over reads what its predecessor decided). Empty
    /// when the bus keeps no history (the in-process bus keeps it only for the topics named in
    /// [`MemoryBus::keep_history`]).
    async fn tail(&self, _topic: &str, _n: usize) -> Result<Vec<Delivery>, BusError> {
        Ok(Vec::new())
    }
}

/// One member of a consumer group on one topic.
#[async_trait]
pub trait Subscription: Send {
    /// The next message; `None` when the bus is closed.
    async fn recv(&mut self) -> Option<Result<Delivery, BusError>>;

    /// Mark `delivery` done: its output was published. Not acknowledged messages may be
    /// delivered again after a restart (at least once).
    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError>;

    /// Commit what was acknowledged and leave the group (call on shutdown).
    async fn close(&mut self) -> Result<(), BusError> {
        Ok(())
    }
}

/// The dead-letter topic of `topic`.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Header carrying the reason a message was dead-lettered.
pub const DLQ_REASON_HEADER: &str = "x-dlq-reason";

/// Longest dead-letter reason, bytes (reasons may quote the input; longer ones are cut).
pub const MAX_DLQ_REASON_LEN: usize = 512;
/// Largest payload copied to a dead-letter topic, bytes; a larger one is cut and the header
/// `x-dlq-truncated` gives its original size (the original stays in its topic, at the offset the
/// headers name). Well under a broker's default `message.max.bytes` of 1 MB.
pub const MAX_DLQ_PAYLOAD: usize = 256 * 1024;
/// Most headers of the original copied to the dead-letter message, and the longest value kept.
pub const MAX_DLQ_HEADERS: usize = 16;
/// Longest header value copied to the dead-letter message, bytes.
pub const MAX_DLQ_HEADER_LEN: usize = 1024;
/// Attempts of [`dead_letter_retrying`] before it gives up on a message.
pub const DLQ_ATTEMPTS: u32 = 5;

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The dead-letter copy of `d`: its payload (cut to [`MAX_DLQ_PAYLOAD`]), the reason (cut to
/// [`MAX_DLQ_REASON_LEN`]) and where it came from in headers, then at most [`MAX_DLQ_HEADERS`]
/// of its own headers.
pub fn dead_letter_message(d: &Delivery, reason: &str) -> Outgoing {
    let payload = &d.payload[..d.payload.len().min(MAX_DLQ_PAYLOAD)];
    let mut msg = Outgoing::new(dlq_topic(&d.topic), cut(&d.key, 256), payload.to_vec())
        .with_header(DLQ_REASON_HEADER, cut(reason, MAX_DLQ_REASON_LEN))
        .with_header("x-dlq-source-topic", d.topic.clone())
        .with_header("x-dlq-source-partition", d.partition.to_string())
        .with_header("x-dlq-source-offset", d.offset.to_string());
    if d.payload.len() > MAX_DLQ_PAYLOAD {
        msg = msg.with_header("x-dlq-truncated", d.payload.len().to_string());
    }
    msg.headers.extend(
        d.headers
            .iter()
            .take(MAX_DLQ_HEADERS)
            .map(|(k, v)| (cut(k, 256), cut(v, MAX_DLQ_HEADER_LEN))),
    );
    msg
}

/// Send a message that could not be processed to `<topic>.dlq` ([`dead_letter_message`]). The
/// caller then acknowledges the original: bad input never stops a consumer, and nothing is
/// silently lost.
pub async fn dead_letter(bus: &dyn Bus, d: &Delivery, reason: &str) -> Result<(), BusError> {
    let reason = cut(reason, MAX_DLQ_REASON_LEN);
    tracing::warn!(topic = %d.topic, partition = d.partition, offset = d.offset, reason,
        "message dead-lettered");
    autoscaler_telemetry::record_dead_letter(&d.topic);
    bus.publish_pipelined(dead_letter_message(d, &reason)).await
}

/// [`dead_letter`], retried with exponential backoff ([`Backoff`]) up to [`DLQ_ATTEMPTS`] times
/// on any error but [`BusError::Closed`]. Returns whether it was published; when it was not, the
/// failure is logged at ERROR with the original's topic, partition and offset (where it stays),
/// and the caller counts it and goes on — a dead-letter topic that cannot be written is never a
/// reason to stop consuming.
pub async fn dead_letter_retrying(bus: &dyn Bus, d: &Delivery, reason: &str) -> bool {
    let reason = cut(reason, MAX_DLQ_REASON_LEN);
    tracing::warn!(topic = %d.topic, partition = d.partition, offset = d.offset, reason,
        "message dead-lettered");
    autoscaler_telemetry::record_dead_letter(&d.topic);
    let msg = dead_letter_message(d, &reason);
    let mut backoff = Backoff::new(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(2),
    );
    for attempt in 1..=DLQ_ATTEMPTS {
        match bus.publish_pipelined(msg.clone()).await {
            Ok(()) => return true,
            Err(e) => {
                let last = attempt == DLQ_ATTEMPTS || matches!(e, BusError::Closed);
                if last {
                    tracing::error!(topic = %d.topic, partition = d.partition, offset = d.offset,
                        attempts = attempt, error = %e,
                        "dead-letter copy not published; the original stays at this offset");
                    return false;
                }
                tracing::warn!(attempt, error = %e, "dead-letter publish failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
    false
}

/// Exponential backoff: `initial`, doubling up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: std::time::Duration,
    max: std::time::Duration,
}

impl Backoff {
    /// Delays from `initial`, doubling, at most `max`.
    pub fn new(initial: std::time::Duration, max: std::time::Duration) -> Self {
        Backoff { next: initial, max }
    }

    /// The delay to wait now (and double the next one).
    pub fn next_delay(&mut self) -> std::time::Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

/// Initial delay of [`publish_retrying`].
pub const OUTAGE_BACKOFF_INITIAL: std::time::Duration = std::time::Duration::from_millis(200);
/// Longest delay between two attempts of [`publish_retrying`] (and of the services' receive
/// loops during an outage).
pub const OUTAGE_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Publish `msg`, waiting out a broker outage: a retryable error ([`BusError::is_retryable`]) is
/// retried with backoff (200 ms doubling to 5 s), logged at WARN on the first failure and every
/// tenth after, and at INFO when the broker is back. Returns `Ok(true)` once published,
/// `Ok(false)` if `shutdown` is cancelled first (the caller stops; its input is not
/// acknowledged, so a restart redoes it), and the error when it is not retryable.
pub async fn publish_retrying(
    bus: &dyn Bus,
    msg: Outgoing,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<bool, BusError> {
    retrying(bus, msg, shutdown, false).await
}

/// [`publish_retrying`] through [`Bus::publish_pipelined`]: returns once the message is queued
/// (its acknowledgement is collected as it comes; an input acknowledged after this call has its
/// offset stored only once the message is on the broker). An outage is waited out the same way:
/// a queue that cannot take the message, or a retryable error, is retried with backoff.
pub async fn publish_pipelined_retrying(
    bus: &dyn Bus,
    msg: Outgoing,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<bool, BusError> {
    retrying(bus, msg, shutdown, true).await
}

async fn retrying(
    bus: &dyn Bus,
    msg: Outgoing,
    shutdown: &tokio_util::sync::CancellationToken,
    pipelined: bool,
) -> Result<bool, BusError> {
    let mut backoff = Backoff::new(OUTAGE_BACKOFF_INITIAL, OUTAGE_BACKOFF_MAX);
    let mut failures = 0u64;
    loop {
        let attempt = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(false),
            r = async {
                if pipelined {
                    bus.publish_pipelined(msg.clone()).await
                } else {
                    bus.publish(msg.clone()).await
                }
            } => r,
        };
        match attempt {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(topic = %msg.topic, failures, "broker back: published");
                }
                return Ok(true);
            }
            Err(e) if e.is_retryable() => {
                if failures.is_multiple_of(10) {
                    tracing::warn!(topic = %msg.topic, failures, error = %e,
                        "publishing failed; waiting for the broker");
                }
                failures += 1;
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(false),
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Default capacity of each in-process queue, messages.
pub const DEFAULT_MEMORY_CAPACITY: usize = 1024;

/// What the in-process bus does when a member's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Wait for room (back-pressure on the publisher). Nothing is lost.
    #[default]
    Block,
    /// Drop the new message and count it.
    DropNewest,
}

impl std::str::FromStr for Overflow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(Overflow::Block),
            "drop-newest" => Ok(Overflow::DropNewest),
            _ => Err(format!(
                "unknown overflow policy `{s}` (valid: block, drop-newest)"
            )),
        }
    }
}

/// Counters of the in-process bus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Messages accepted per topic.
    pub published: HashMap<String, u64>,
    /// Copies dropped per topic because a member's queue was full ([`Overflow::DropNewest`]).
    pub dropped_full: HashMap<String, u64>,
    /// Messages published to a topic with no subscriber at all.
    pub unrouted: HashMap<String, u64>,
}

type Member = mpsc::Sender<Delivery>;

#[derive(Default)]
struct Inner {
    /// topic → group → members
    topics: HashMap<String, HashMap<String, Vec<Member>>>,
    stats: BusStats,
    offsets: HashMap<String, i64>,
    /// topic → (capacity, last messages)
    history: HashMap<String, (usize, std::collections::VecDeque<Delivery>)>,
    closed: bool,
}

/// The in-process bus: bounded channels, one per group member.
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
    overflow: Overflow,
}

impl MemoryBus {
    /// A bus whose member queues hold `capacity` messages each.
    pub fn new(capacity: usize, overflow: Overflow) -> Self {
        MemoryBus {
            inner: Arc::new(Mutex::new(Inner::default())),
            capacity: capacity.max(1),
            overflow,
        }
    }

    /// Keep the last `n` messages of `topic`, for [`Bus::tail`].
    pub fn keep_history(&self, topic: &str, n: usize) {
        self.lock()
            .history
            .insert(topic.into(), (n, std::collections::VecDeque::new()));
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> BusStats {
        self.lock().stats.clone()
    }

    /// Number of consumer groups with at least one live member on `topic` (lets an embedded
    /// pipeline wait until every consumer has subscribed before it starts publishing).
    pub fn groups(&self, topic: &str) -> usize {
        self.lock().topics.get(topic).map_or(0, |groups| {
            groups
                .values()
                .filter(|members| members.iter().any(|m| !m.is_closed()))
                .count()
        })
    }

    /// Close the bus: subscriptions end once drained, publishing fails with [`BusError::Closed`].
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.topics.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked while counting; the maps are
        // still consistent (every update is a single insert or increment).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn member_for(key: &str, n: usize) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % n as u64) as usize
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, msg: Outgoing) -> Result<(), BusError> {
        // Pick the receivers under the lock, send outside it.
        let targets: Vec<(Member, Delivery)> = {
            let mut inner = self.lock();
            if inner.closed {
                return Err(BusError::Closed);
            }
            let offset = {
                let o = inner.offsets.entry(msg.topic.clone()).or_insert(0);
                *o += 1;
                *o - 1
            };
            *inner.stats.published.entry(msg.topic.clone()).or_default() += 1;
            let delivery = Delivery {
                topic: msg.topic.clone(),
                key: msg.key.clone(),
                payload: msg.payload,
                headers: msg.headers,
                partition: 0,
                offset,
            };
            if let Some((cap, h)) = inner.history.get_mut(&msg.topic) {
                h.push_back(delivery.clone());
                while h.len() > *cap {
                    h.pop_front();
                }
            }
            let mut targets = Vec::new();
            if let Some(groups) = inner.topics.get_mut(&msg.topic) {
                for members in groups.values_mut() {
                    members.retain(|m| !m.is_closed());
                    if !members.is_empty() {
                        let m = &members[member_for(&msg.key, members.len())];
                        targets.push((m.clone(), delivery.clone()));
                    }
                }
            }
            if targets.is_empty() {
                *inner.stats.unrouted.entry(msg.topic.clone()).or_default() += 1;
            }
            targets
        };
        for (member, delivery) in targets {
            let topic = delivery.topic.clone();
            match self.overflow {
                Overflow::Block => {
                    // A member that went away mid-send is not an error of the publisher.
                    let _ = member.send(delivery).await;
                }
                Overflow::DropNewest => {
                    if let Err(mpsc::error::TrySendError::Full(_)) = member.try_send(delivery) {
                        *self
                            .lock()
                            .stats
                            .dropped_full
                            .entry(topic.clone())
                            .or_default() += 1;
                        tracing::warn!(topic = %topic, "member queue full: message dropped");
                    }
                }
            }
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>, BusError> {
        let (tx, rx) = mpsc::channel(self.capacity);
        let mut inner = self.lock();
        if inner.closed {
            return Err(BusError::Closed);
        }
        inner
            .topics
            .entry(topic.to_string())
            .or_default()
            .entry(group.to_string())
            .or_default()
            .push(tx);
        Ok(Box::new(MemorySubscription { rx }))
    }

    async fn flush(&self, _timeout: std::time::Duration) -> Result<(), BusError> {
        // Publishing in memory completes when the message is queued: nothing is buffered.
        Ok(())
    }

    async fn tail(&self, topic: &str, n: usize) -> Result<Vec<Delivery>, BusError> {
        let inner = self.lock();
        Ok(inner.history.get(topic).map_or_else(Vec::new, |(_, h)| {
            h.iter().skip(h.len().saturating_sub(n)).cloned().collect()
        }))
    }
}

struct MemorySubscription {
    rx: mpsc::Receiver<Delivery>,
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn recv(&mut self) -> Option<Result<Delivery, BusError>> {
        self.rx.recv().await.map(Ok)
    }

    async fn ack(&mut self, _delivery: &Delivery) -> Result<(), BusError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn recv(s: &mut Box<dyn Subscription>) -> Delivery {
        tokio::time::timeout(Duration::from_secs(1), s.recv())
            .await
            .expect("a message")
            .expect("open")
            .expect("ok")
    }

    #[tokio::test]
    async fn every_group_gets_every_message_and_keys_stick_to_members() {
        let bus = MemoryBus::new(16, Overflow::Block);
        let mut a = bus.subscribe("metrics", "inference-xgboost").await.unwrap();
        let mut b1 = bus.subscribe("metrics", "scaler").await.unwrap();
        let mut b2 = bus.subscribe("metrics", "scaler").await.unwrap();
        for i in 0..10 {
            let key = if i % 2 == 0 { "orders" } else { "carts" };
            bus.publish(Outgoing::new("metrics", key, vec![i]))
                .await
                .unwrap();
        }
        for i in 0..10 {
            assert_eq!(recv(&mut a).await.payload, vec![i], "in order");
        }
        // The two scaler members split the messages, each key to exactly one member.
        let mut got: Vec<(String, usize)> = Vec::new();
        for (n, s) in [&mut b1, &mut b2].into_iter().enumerate() {
            while let Ok(Some(Ok(d))) =
                tokio::time::timeout(Duration::from_millis(20), s.recv()).await
            {
                got.push((d.key, n));
            }
        }
        assert_eq!(got.len(), 10);
        for key in ["orders", "carts"] {
            let members: std::collections::HashSet<usize> = got
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, m)| *m)
                .collect();
            assert_eq!(members.len(), 1, "{key} went to one member");
        }
    }

    #[tokio::test]
    async fn full_queue_blocks_or_drops_and_counts() {
        let bus = MemoryBus::new(2, Overflow::DropNewest);
        let mut s = bus.subscribe("t", "g").await.unwrap();
        for i in 0..5 {
            bus.publish(Outgoing::new("t", "k", vec![i])).await.unwrap();
        }
        assert_eq!(bus.stats().dropped_full.get("t"), Some(&3));
        assert_eq!(recv(&mut s).await.payload, vec![0]);

        let bus = MemoryBus::new(1, Overflow::Block);
        let mut s = bus.subscribe("t", "g").await.unwrap();
        bus.publish(Outgoing::new("t", "k", vec![0])).await.unwrap();
        let b2 = bus.clone();
        let blocked = tokio::spawn(async move {
            b2.publish(Outgoing::new("t", "k", vec![1])).await.unwrap();
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!blocked.is_finished(), "publisher waits for room");
        assert_eq!(recv(&mut s).await.payload, vec![0]);
        blocked.await.unwrap();
        assert_eq!(recv(&mut s).await.payload, vec![1]);
        assert!(bus.stats().dropped_full.is_empty(), "nothing lost");
    }

    #[tokio::test]
    async fn unrouted_and_closed_are_explicit() {
        let bus = MemoryBus::new(4, Overflow::Block);
        bus.publish(Outgoing::new("nobody", "k", vec![]))
            .await
            .unwrap();
        assert_eq!(bus.stats().unrouted.get("nobody"), Some(&1));
        let mut s = bus.subscribe("t", "g").await.unwrap();
        bus.close();
        assert!(matches!(
            bus.publish(Outgoing::new("t", "k", vec![])).await,
            Err(BusError::Closed)
        ));
        assert!(s.recv().await.is_none(), "subscription ends when closed");
    }

    /// A bus whose first `fail` publishes fail with a transient error.
    struct Flaky {
        inner: MemoryBus,
        fail: Mutex<u32>,
        attempts: Mutex<u32>,
    }

    #[async_trait]
    impl Bus for Flaky {
        async fn publish(&self, msg: Outgoing) -> Result<(), BusError> {
            *self.attempts.lock().unwrap() += 1;
            let failing = {
                let mut f = self.fail.lock().unwrap();
                let failing = *f > 0;
                *f = f.saturating_sub(1);
                failing
            };
            if failing {
                return Err(BusError::Transient("broker down".into()));
            }
            self.inner.publish(msg).await
        }
        async fn subscribe(&self, t: &str, g: &str) -> Result<Box<dyn Subscription>, BusError> {
            self.inner.subscribe(t, g).await
        }
        async fn flush(&self, t: Duration) -> Result<(), BusError> {
            self.inner.flush(t).await
        }
    }

    fn flaky(fail: u32) -> Flaky {
        Flaky {
            inner: MemoryBus::new(16, Overflow::Block),
            fail: Mutex::new(fail),
            attempts: Mutex::new(0),
        }
    }

    fn delivery(payload: Vec<u8>) -> Delivery {
        Delivery {
            topic: "t".into(),
            key: "k".into(),
            payload,
            headers: (0..100)
                .map(|i| (format!("h{i}"), "v".repeat(5000)))
                .collect(),
            partition: 0,
            offset: 7,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_dead_letter_publish_is_retried_then_given_up_never_fatal() {
        let bus = flaky(2);
        let mut dlq = bus.subscribe("t.dlq", "g").await.unwrap();
        assert!(dead_letter_retrying(&bus, &delivery(vec![1]), "bad").await);
        assert_eq!(*bus.attempts.lock().unwrap(), 3);
        assert_eq!(recv(&mut dlq).await.payload, vec![1]);
        let bus = flaky(u32::MAX);
        assert!(!dead_letter_retrying(&bus, &delivery(vec![1]), "bad").await);
        assert_eq!(*bus.attempts.lock().unwrap(), DLQ_ATTEMPTS);
    }

    #[test]
    fn the_dead_letter_copy_is_bounded() {
        let reason = "é".repeat(10_000);
        let m = dead_letter_message(&delivery(vec![b'x'; MAX_DLQ_PAYLOAD + 10]), &reason);
        assert_eq!(m.payload.len(), MAX_DLQ_PAYLOAD);
        let r = &m
            .headers
            .iter()
            .find(|(k, _)| k == DLQ_REASON_HEADER)
            .unwrap()
            .1;
        assert!(r.len() <= MAX_DLQ_REASON_LEN, "{}", r.len());
        assert!(m
            .headers
            .iter()
            .any(|(k, v)| k == "x-dlq-truncated" && v == &(MAX_DLQ_PAYLOAD + 10).to_string()));
        assert!(m.headers.len() <= 5 + MAX_DLQ_HEADERS);
        let total: usize = m.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(total < 32 * 1024, "{total}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_is_waited_out_and_shutdown_ends_the_wait() {
        let bus = flaky(20);
        let mut s = bus.subscribe("t", "g").await.unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let started = tokio::time::Instant::now();
        assert!(
            publish_retrying(&bus, Outgoing::new("t", "k", vec![9]), &stop)
                .await
                .unwrap()
        );
        assert_eq!(recv(&mut s).await.payload, vec![9]);
        // 20 failures: 0.2 + 0.4 + … capped at 5 s, about a minute and a half of outage.
        assert!(
            started.elapsed() > Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
        let bus = flaky(u32::MAX);
        let stop2 = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            stop2.cancel();
        });
        assert!(
            !publish_retrying(&bus, Outgoing::new("t", "k", vec![]), &stop)
                .await
                .unwrap()
        );
        let fatal = MemoryBus::new(1, Overflow::Block);
        fatal.close();
        let fresh = tokio_util::sync::CancellationToken::new();
        assert!(
            publish_retrying(&fatal, Outgoing::new("t", "k", vec![]), &fresh)
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pipelined_publish_waits_out_an_outage_too() {
        let bus = flaky(3);
        let mut s = bus.subscribe("t", "g").await.unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        assert!(
            publish_pipelined_retrying(&bus, Outgoing::new("t", "k", vec![4]), &stop)
                .await
                .unwrap()
        );
        assert_eq!(*bus.attempts.lock().unwrap(), 4);
        assert_eq!(recv(&mut s).await.payload, vec![4]);
    }

    #[test]
    fn overflow_parses() {
        assert_eq!("block".parse::<Overflow>().unwrap(), Overflow::Block);
        assert!("spill"
            .parse::<Overflow>()
            .unwrap_err()
            .contains("drop-newest"));
    }
}
