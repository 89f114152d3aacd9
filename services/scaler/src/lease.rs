//! The lease: exactly one scaler acts, across hosts, with nothing shared but the broker.
//!
//! Every candidate appends *claims* to one single-partition topic ([`LEASE_TOPIC`]) and reads
//! that topic from its beginning. The log orders the claims; every reader applies the same
//! claims in the same order with the same rule ([`LeaseState::apply`]), so all agree on who
//! holds the lease without talking to each other and without a consumer group:
//!
//! * `Acquire(epoch e + 1)` wins when the lease is free, or expired *at the claim's own time*
//!   (`at_ms ≥ expires_ms`), or already held by the same holder; any later claim on that epoch
//!   loses (the log decided the race);
//! * `Renew(e)` by the holder of epoch `e`, written before the lease expired, extends it to
//!   `at_ms + ttl_ms`; a renewal after expiry is void (a paused holder learns it lost);
//! * `Release(e)` by the holder frees it at once (a clean shutdown hands over without waiting);
//! * `Probe`: changes nothing; a candidate appends one and reads up to it to know it has seen
//!   everything before it.
//!
//! A holder renews every third of the lease period ([`LeaseConfig::ttl`]); a standby claims the
//! next epoch as soon as the lease has expired by its own clock, so after a SIGKILL of the holder
//! it takes over within one period plus one renewal interval (under two periods). Before every
//! actuation the scaler calls [`Lease::confirm`]: it appends a probe and reads the log up to it,
//! so any claim that came before is applied, and acts only if it still holds the lease with at
//! least half a period left. The epoch is a fencing token: it only grows.
//!
//! Clocks: expiry compares the claimer's `at_ms` (its wall clock) with the holder's; hosts are
//! assumed to agree within a fraction of the period (NTP). [`LogLease`] runs over any
//! [`LeaseLog`]: [`BusLeaseLog`] (a bus topic plus a reader from its beginning — Kafka) or
//! [`MemoryLeaseLog`] (in process, for tests and the embedded pipeline).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use autoscaler_bus::{Bus, BusError, Outgoing, Subscription};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

/// The topic of lease claims (one partition: the log's order is the lease's order).
pub const LEASE_TOPIC: &str = "scaler-lease";
/// Default lease period, seconds (a standby takes over within two of them).
pub const DEFAULT_LEASE_TTL_SECS: u64 = 10;
/// Default lease period.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(DEFAULT_LEASE_TTL_SECS);
/// Shortest and longest lease period accepted.
pub const LEASE_TTL_RANGE: (Duration, Duration) =
    (Duration::from_millis(500), Duration::from_secs(300));

/// Errors of the lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The log could not be written or read.
    #[error("lease log")]
    Bus(#[from] BusError),
    /// A claim did not come back from the log in time.
    #[error("the lease log did not answer within {0:?}")]
    Timeout(Duration),
    /// The lease task has stopped.
    #[error("the lease task has stopped")]
    Stopped,
}

/// What a claim does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimKind {
    /// Take epoch `epoch` (the current one + 1).
    Acquire,
    /// Extend the lease of epoch `epoch`.
    Renew,
    /// Give the lease of epoch `epoch` up.
    Release,
    /// Nothing: a marker to read up to.
    Probe,
}

/// One record of the lease log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// Who writes it (unique per process: host, pid, start time).
    pub holder: String,
    /// What it does.
    pub kind: ClaimKind,
    /// The epoch it is about.
    pub epoch: u64,
    /// The writer's wall clock, unix ms.
    pub at_ms: i64,
    /// The period it asks for, ms.
    pub ttl_ms: u64,
    /// Unique per writer: the writer waits for this record to come back.
    pub nonce: u64,
}

/// Who holds the lease, as the log says so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseState {
    /// The holder and its epoch, if any.
    pub holder: Option<String>,
    /// The highest epoch granted.
    pub epoch: u64,
    /// When the lease ends, unix ms (the holder's clock).
    pub expires_ms: i64,
}

impl LeaseState {
    /// Apply one claim (in log order). Returns whether it changed who holds the lease.
    pub fn apply(&mut self, c: &Claim) -> bool {
        let ttl = i64::try_from(c.ttl_ms).unwrap_or(i64::MAX);
        let end = c.at_ms.saturating_add(ttl);
        match c.kind {
            ClaimKind::Acquire => {
                let free = self.holder.is_none() || c.at_ms >= self.expires_ms;
                let same = self.holder.as_deref() == Some(c.holder.as_str());
                if c.epoch == self.epoch.saturating_add(1) && (free || same) {
                    let changed = !same;
                    self.holder = Some(c.holder.clone());
                    self.epoch = c.epoch;
                    self.expires_ms = end;
                    return changed;
                }
                false
            }
            ClaimKind::Renew => {
                if self.holder.as_deref() == Some(c.holder.as_str())
                    && c.epoch == self.epoch
                    && c.at_ms < self.expires_ms
                {
                    self.expires_ms = self.expires_ms.max(end);
                }
                false
            }
            ClaimKind::Release => {
                if self.holder.as_deref() == Some(c.holder.as_str()) && c.epoch == self.epoch {
                    self.holder = None;
                    self.expires_ms = c.at_ms;
                    return true;
                }
                false
            }
            ClaimKind::Probe => false,
        }
    }

    /// Whether `who` holds it at `now_ms` with at least `margin_ms` left.
    pub fn held_by(&self, who: &str, now_ms: i64, margin_ms: i64) -> bool {
        self.holder.as_deref() == Some(who) && now_ms.saturating_add(margin_ms) < self.expires_ms
    }
}

/// Where claims are written and read, in one total order.
#[async_trait]
pub trait LeaseLog: Send {
    /// Append a claim.
    async fn append(&mut self, c: &Claim) -> Result<(), LeaseError>;
    /// The next claim of the log (from its beginning); `None` when the log is closed.
    async fn next(&mut self) -> Option<Result<Claim, LeaseError>>;
}

/// A lease log over a bus topic: claims are published to it, and read back by a reader of the
/// topic from its beginning (over Kafka: `KafkaBus::log_reader`, one partition, no group).
pub struct BusLeaseLog {
    bus: Arc<dyn Bus>,
    topic: String,
    reader: Box<dyn Subscription>,
}

impl BusLeaseLog {
    /// Claims go to `topic` on `bus` and are read by `reader`.
    pub fn new(bus: Arc<dyn Bus>, topic: &str, reader: Box<dyn Subscription>) -> Self {
        BusLeaseLog {
            bus,
            topic: topic.into(),
            reader,
        }
    }
}

#[async_trait]
impl LeaseLog for BusLeaseLog {
    async fn append(&mut self, c: &Claim) -> Result<(), LeaseError> {
        let payload = serde_json::to_vec(c).expect("claims serialise");
        Ok(self
            .bus
            .publish(Outgoing::new(&self.topic, "lease", payload))
            .await?)
    }

    async fn next(&mut self) -> Option<Result<Claim, LeaseError>> {
        loop {
            match self.reader.recv().await? {
                Err(e) => return Some(Err(e.into())),
                Ok(d) => match serde_json::from_slice::<Claim>(&d.payload) {
                    Ok(c) => return Some(Ok(c)),
                    // Not a claim (garbage written to the topic): every reader skips it alike.
                    Err(e) => {
                        tracing::warn!(offset = d.offset, error = %e, "not a lease claim; skipped")
                    }
                },
            }
        }
    }
}

/// An in-process lease log shared by the candidates of one process (tests, embedded runs).
#[derive(Clone, Default)]
pub struct MemoryLeaseLog {
    inner: Arc<(Mutex<Vec<Claim>>, Notify)>,
    cursor: usize,
}

impl MemoryLeaseLog {
    /// An empty log.
    pub fn new() -> Self {
        MemoryLeaseLog::default()
    }

    /// Another reader/writer of the same log, from its beginning.
    pub fn handle(&self) -> Self {
        MemoryLeaseLog {
            inner: self.inner.clone(),
            cursor: 0,
        }
    }

    /// Every claim so far.
    pub fn claims(&self) -> Vec<Claim> {
        self.inner
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[async_trait]
impl LeaseLog for MemoryLeaseLog {
    async fn append(&mut self, c: &Claim) -> Result<(), LeaseError> {
        self.inner
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c.clone());
        self.inner.1.notify_waiters();
        Ok(())
    }

    async fn next(&mut self) -> Option<Result<Claim, LeaseError>> {
        loop {
            let notified = self.inner.1.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let log = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(c) = log.get(self.cursor) {
                    self.cursor += 1;
                    return Some(Ok(c.clone()));
                }
            }
            notified.await;
        }
    }
}

/// What a scaler asks of its lease.
#[async_trait]
pub trait Lease: Send + Sync {
    /// Whether this instance holds the lease, as far as it has read (cheap; no I/O).
    fn is_held(&self) -> bool;
    /// Read the log up to a fresh marker and answer whether this instance still holds the
    /// lease with at least half a period left: `Some(epoch)` (the fencing token) or `None`.
    async fn confirm(&self) -> Result<Option<u64>, LeaseError>;
    /// Who holds it, in words, for logs and decisions.
    fn describe(&self) -> String;
}

/// Settings of a [`LogLease`].
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// This candidate's name (unique per process).
    pub holder: String,
    /// The lease period.
    pub ttl: Duration,
    /// How long a claim may take to come back from the log before the attempt counts as failed.
    pub round_trip_timeout: Duration,
}

impl LeaseConfig {
    /// A candidate named `holder` with the default period.
    pub fn new(holder: impl Into<String>) -> Self {
        LeaseConfig {
            holder: holder.into(),
            ttl: DEFAULT_LEASE_TTL,
            round_trip_timeout: Duration::from_secs(5),
        }
    }

    /// The name of the scaler that keeps its state in `state_db` on this host:
    /// `<host>:<path>`. A restart of that scaler (same host, same file) takes its lease back at
    /// once instead of waiting for it to expire; two scalers on one host must not share a file
    /// anyway. Hosts (containers) differ in their host name.
    pub fn holder_for(state_db: &std::path::Path) -> String {
        format!("{}:{}", host_name(), state_db.display())
    }

    /// A name unique to this process: `<host>-<pid>-<start ms>`.
    pub fn unique_holder() -> String {
        format!(
            "{}-{}-{}",
            host_name(),
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        )
    }

    /// Every problem with the settings.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.ttl < LEASE_TTL_RANGE.0 || self.ttl > LEASE_TTL_RANGE.1 {
            p.push(format!(
                "lease period must be between {:?} and {:?}, got {:?}",
                LEASE_TTL_RANGE.0, LEASE_TTL_RANGE.1, self.ttl
            ));
        }
        if self.holder.is_empty() || self.holder.len() > 1024 {
            p.push("lease holder name must be 1 to 1024 bytes".into());
        }
        p
    }
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "scaler".into())
}

#[derive(Debug, Default)]
struct Shared {
    state: LeaseState,
}

/// The lease over a [`LeaseLog`], run by a background task (see the module docs).
pub struct LogLease {
    cfg: LeaseConfig,
    shared: Arc<Mutex<Shared>>,
    requests: mpsc::Sender<oneshot::Sender<Result<Option<u64>, LeaseError>>>,
    changed: Arc<Notify>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl LogLease {
    /// Start campaigning on `log` until `shutdown` (then a held lease is released).
    pub fn start(
        cfg: LeaseConfig,
        log: Box<dyn LeaseLog>,
        shutdown: CancellationToken,
    ) -> (Arc<LogLease>, tokio::task::JoinHandle<()>) {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (tx, rx) = mpsc::channel(16);
        let changed = Arc::new(Notify::new());
        let lease = Arc::new(LogLease {
            cfg: cfg.clone(),
            shared: shared.clone(),
            requests: tx,
            changed: changed.clone(),
        });
        let task = Campaign {
            cfg,
            log,
            shared,
            nonce: 0,
            changed,
        };
        let handle = tokio::spawn(task.run(rx, shutdown));
        (lease, handle)
    }

    /// The lease as this candidate has read it.
    pub fn state(&self) -> LeaseState {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .state
            .clone()
    }

    /// Wait until this candidate holds the lease (or `within` passes); returns whether it does.
    pub async fn wait_held(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.changed.notified();
            if self.is_held() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.is_held();
            }
        }
    }
}

#[async_trait]
impl Lease for LogLease {
    fn is_held(&self) -> bool {
        self.state().held_by(&self.cfg.holder, now_ms(), 0)
    }

    async fn confirm(&self) -> Result<Option<u64>, LeaseError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(tx)
            .await
            .map_err(|_| LeaseError::Stopped)?;
        rx.await.map_err(|_| LeaseError::Stopped)?
    }

    fn describe(&self) -> String {
        let s = self.state();
        match s.holder {
            Some(h) if h == self.cfg.holder => format!("lease held, epoch {}", s.epoch),
            Some(h) => format!("lease held by {h}, epoch {}", s.epoch),
            None => "lease free".into(),
        }
    }
}

struct Campaign {
    cfg: LeaseConfig,
    log: Box<dyn LeaseLog>,
    shared: Arc<Mutex<Shared>>,
    nonce: u64,
    changed: Arc<Notify>,
}

impl Campaign {
    fn state(&self) -> LeaseState {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .state
            .clone()
    }

    fn apply(&mut self, c: &Claim) {
        let (changed, state) = {
            let mut sh = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            let changed = sh.state.apply(c);
            (changed, sh.state.clone())
        };
        if changed {
            let me = state.holder.as_deref() == Some(self.cfg.holder.as_str());
            tracing::info!(holder = ?state.holder, epoch = state.epoch, me,
                "lease changed hands");
            self.changed.notify_waiters();
        }
    }

    /// Append a claim and read the log up to it (applying everything before it).
    async fn sync(&mut self, kind: ClaimKind, epoch: u64) -> Result<LeaseState, LeaseError> {
        self.nonce += 1;
        let claim = Claim {
            holder: self.cfg.holder.clone(),
            kind,
            epoch,
            at_ms: now_ms(),
            ttl_ms: self.cfg.ttl.as_millis() as u64,
            nonce: self.nonce,
        };
        self.log.append(&claim).await?;
        let timeout = self.cfg.round_trip_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.log.next())
                .await
                .map_err(|_| LeaseError::Timeout(timeout))?;
            match next {
                None => return Err(LeaseError::Stopped),
                Some(Err(e)) => return Err(e),
                Some(Ok(c)) => {
                    self.apply(&c);
                    if c.holder == claim.holder && c.nonce == claim.nonce {
                        return Ok(self.state());
                    }
                }
            }
        }
    }

    /// One round: renew what is held, claim what is free or expired, else just read up.
    async fn round(&mut self) -> Result<(), LeaseError> {
        let s = self.state();
        let me = self.cfg.holder.clone();
        let now = now_ms();
        if s.held_by(&me, now, 0) {
            self.sync(ClaimKind::Renew, s.epoch).await?;
            let s = self.state();
            if !s.held_by(&me, now_ms(), 0) {
                tracing::warn!(epoch = s.epoch, "lease lost");
                self.changed.notify_waiters();
            }
        } else if s.holder.is_none() || now >= s.expires_ms {
            // First read up to now, then claim the next epoch if it is still free.
            let s = self.sync(ClaimKind::Probe, 0).await?;
            if s.holder.is_none() || now_ms() >= s.expires_ms {
                let s = self.sync(ClaimKind::Acquire, s.epoch + 1).await?;
                if s.held_by(&me, now_ms(), 0) {
                    tracing::info!(epoch = s.epoch, "lease acquired");
                }
            }
        }
        Ok(())
    }

    async fn run(
        mut self,
        mut requests: mpsc::Receiver<oneshot::Sender<Result<Option<u64>, LeaseError>>>,
        shutdown: CancellationToken,
    ) {
        let renew_every = self.cfg.ttl / 3;
        let mut next_round = tokio::time::Instant::now();
        let mut pending: VecDeque<oneshot::Sender<Result<Option<u64>, LeaseError>>> =
            VecDeque::new();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(reply) = requests.recv() => {
                    pending.push_back(reply);
                    while let Ok(r) = requests.try_recv() {
                        pending.push_back(r);
                    }
                    // One probe answers every confirmation waiting.
                    let answer = self.sync(ClaimKind::Probe, 0).await.map(|s| {
                        let margin = (self.cfg.ttl / 2).as_millis() as i64;
                        s.held_by(&self.cfg.holder, now_ms(), margin).then_some(s.epoch)
                    });
                    for r in pending.drain(..) {
                        let a = match &answer {
                            Ok(v) => Ok(*v),
                            Err(e) => Err(LeaseError::Timeout(match e {
                                LeaseError::Timeout(t) => *t,
                                _ => self.cfg.round_trip_timeout,
                            })),
                        };
                        let _ = r.send(a);
                    }
                }
                _ = tokio::time::sleep_until(next_round) => {
                    if let Err(e) = self.round().await {
                        tracing::warn!(error = %e, "lease round failed; retrying");
                    }
                    next_round = tokio::time::Instant::now() + renew_every;
                }
                // Claims written by others, read as they come.
                next = self.log.next() => match next {
                    Some(Ok(c)) => self.apply(&c),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "reading the lease log");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    None => break,
                },
            }
        }
        let s = self.state();
        if s.holder.as_deref() == Some(self.cfg.holder.as_str()) {
            match self.sync(ClaimKind::Release, s.epoch).await {
                Ok(_) => tracing::info!(epoch = s.epoch, "lease released"),
                Err(e) => tracing::warn!(error = %e, "lease not released; it expires"),
            }
        }
    }
}

/// The lease topic of the pipelines whose consumer groups carry `group_prefix` (several
/// pipelines on one cluster each have their own lease).
pub fn lease_topic(group_prefix: &str) -> String {
    format!("{group_prefix}{LEASE_TOPIC}")
}

/// Campaign for the lease on a Kafka cluster: [`lease_topic`] is created (one partition) if it
/// does not exist and read from its beginning by explicit assignment — no consumer group (on
/// tansu a killed member's successor is assigned nothing). Every claim has the same key, so
/// even on a topic made with more partitions the claims share one, in one order.
pub async fn start_on_kafka(
    bus: &Arc<autoscaler_bus::kafka::KafkaBus>,
    cfg: LeaseConfig,
    shutdown: CancellationToken,
) -> Result<(Arc<LogLease>, tokio::task::JoinHandle<()>), LeaseError> {
    let topic = lease_topic(&bus.config().group_prefix);
    bus.ensure_topic_with_partitions(&topic, 1).await?;
    let reader = bus.log_reader(&topic).await?;
    let dyn_bus: Arc<dyn Bus> = bus.clone();
    let log = BusLeaseLog::new(dyn_bus, &topic, reader);
    Ok(LogLease::start(cfg, Box::new(log), shutdown))
}

/// A lease that is always held (a scaler that is alone by construction: the embedded pipeline).
#[derive(Debug, Default)]
pub struct Solo;

#[async_trait]
impl Lease for Solo {
    fn is_held(&self) -> bool {
        true
    }
    async fn confirm(&self) -> Result<Option<u64>, LeaseError> {
        Ok(Some(1))
    }
    fn describe(&self) -> String {
        "alone".into()
    }
}
