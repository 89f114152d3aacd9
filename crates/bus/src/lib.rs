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
}

impl BusError {
    /// Whether retrying may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, BusError::Transient(_))
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

    /// Join `group` on `topic`. Messages published after this call are delivered.
    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>, BusError>;

    /// Wait until everything published has been handed over (Kafka: flushed), at most `timeout`.
    async fn flush(&self, timeout: std::time::Duration) -> Result<(), BusError>;
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

/// Send a message that could not be processed to `<topic>.dlq`, unchanged, with the reason and
/// where it came from in headers. The caller then acknowledges the original: bad input never
/// stops a consumer, and nothing is silently lost.
pub async fn dead_letter(bus: &dyn Bus, d: &Delivery, reason: &str) -> Result<(), BusError> {
    tracing::warn!(topic = %d.topic, partition = d.partition, offset = d.offset, reason,
        "message dead-lettered");
    let mut msg = Outgoing::new(dlq_topic(&d.topic), d.key.clone(), d.payload.clone())
        .with_header(DLQ_REASON_HEADER, reason)
        .with_header("x-dlq-source-topic", d.topic.clone())
        .with_header("x-dlq-source-partition", d.partition.to_string())
        .with_header("x-dlq-source-offset", d.offset.to_string());
    msg.headers.extend(d.headers.iter().cloned());
    bus.publish(msg).await
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

    #[test]
    fn overflow_parses() {
        assert_eq!("block".parse::<Overflow>().unwrap(), Overflow::Block);
        assert!("spill"
            .parse::<Overflow>()
            .unwrap_err()
            .contains("drop-newest"));
    }
}
