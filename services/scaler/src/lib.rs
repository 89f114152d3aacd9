//! # The authoritative scaler
//!
//! The only writer of replica counts. [`run`] consumes `model-votes`, gathers the votes of each
//! feature vector in a [`BallotBox`] until every expected model has voted or the decision window
//! has passed since the first vote, tallies them ([`autoscaler_voting::tally`]), passes the
//! result through the safety [`envelope`], actuates through an [`Actuator`], and publishes a
//! [`Decision`] with everything that explains it on `scaling-decisions`.
//!
//! Each vector is decided exactly once; late, duplicate and unknown-model votes are logged,
//! counted and change nothing. A vote that does not decode or breaks the contract goes to
//! `model-votes.dlq`.
//!
//! Per service, the actuator supplies a [`policy`] (Swarm labels or a policy file: bounds, SLA,
//! strategy, dry-run) that replaces the global settings; a broken policy holds that service
//! only. With a state database ([`ScalerConfig::state_db`], [`store`]) cooldowns, the
//! stabilization history and the decided vector ids survive a restart, even a SIGKILL.
//! The Docker Swarm actuator is [`swarm::SwarmActuator`].
//!
//! Which policy decides is [`ScalerConfig::policy`] (`--policy`), or a service's own
//! (`autoscaler.policy`): `ensemble` (the default) is the votes as above; `hybrid` composes the
//! votes' count with `crates/policy`'s `hybrid` fed from the `metrics` topic, then the full
//! envelope; a baseline (`hpa-70`, `threshold`, …) decides each vector of the metrics topic at
//! once, within min/max only. See [`policies`].
#![deny(missing_docs)]

pub mod actuator;
pub mod envelope;
pub mod lease;
pub mod policies;
pub mod policy;
pub mod store;
pub mod swarm;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autoscaler_bus::{
    dead_letter_retrying, publish_pipelined_retrying, publish_retrying, Bus, BusError, Outgoing,
};
use autoscaler_contract::{
    decode, encode, ClockMode, ContractError, Decision, FeatureVector, SkewCheck, VectorId,
    Verdict, Vote, VoteSummary, DECISIONS_TOPIC, DEFAULT_MAX_SKEW_SECS, METRICS_TOPIC,
    SCHEMA_VERSION, VOTES_TOPIC,
};
use autoscaler_policy::{Bounds, Observation, Policy, PolicyContext, PolicySpec, Recommendation};
use autoscaler_voting::{
    safe_one_fewer, tally, BallotBox, ModelBallot, Offer, Ready, VotingConfig,
};
use tokio_util::sync::CancellationToken;

pub use actuator::{Actuator, ActuatorError, DryRunActuator, SimulatedActuator};
pub use envelope::{EnvelopeConfig, ServiceState, Severity};
pub use lease::{Lease, LeaseError};
pub use policies::{Mode, DEFAULT_POLICY, METRICS_GROUP};
pub use policy::{PolicyFile, ServicePolicy};
pub use store::{Store, StoreError};
pub use swarm::{SwarmActuator, SwarmConfig};

/// Failed publications of one outbox entry before it is quarantined (moved to the store's
/// `quarantine` table and reported at ERROR): a decision that can never be published must not
/// fail every start.
pub const OUTBOX_RETRY_BUDGET: u32 = 3;

/// Most decisions recorded in one state-store transaction: decisions that arrive together are
/// recorded together (one commit), then published, each still on disk before it is published.
pub const DECISION_BATCH_MAX: usize = 512;
/// Longest a decided vector waits for others to share its commit before the batch is recorded
/// and published (the latency batching may add to a decision).
pub const DECISION_BATCH_LINGER: Duration = Duration::from_millis(2);
/// How often decisions published (pipelined) but not yet known to be on the broker are looked
/// at again to clear them from the outbox when no new batch comes to do it.
pub const OUTBOX_CLEAR_INTERVAL: Duration = Duration::from_millis(10);
/// Messages per partition of the decisions topic read back at start when the outbox is not
/// empty: entries already there (published, killed before they were cleared) are not published
/// again. Covers a batch and what the pipeline holds in flight many times over.
pub const OUTBOX_TAIL_CHECK: usize = 4 * DECISION_BATCH_MAX;

/// Default decision window, seconds.
pub const DEFAULT_DECISION_WINDOW_SECS: u64 = 5;
/// Longest decision window accepted, seconds.
pub const MAX_DECISION_WINDOW_SECS: u64 = 600;

/// The scaler's consumer group on the votes topic. Over Kafka it is read by explicit assignment
/// of every partition (`KafkaConfig::exclusive_groups`): the scaler is the only one of its kind.
pub const SCALER_GROUP: &str = "scaler";

/// Configuration of the scaler.
#[derive(Debug, Clone)]
pub struct ScalerConfig {
    /// Voting rule, expected models, weights.
    pub voting: VotingConfig,
    /// Decide at the latest this long after a vector's first vote.
    pub decision_window: Duration,
    /// Topic of votes.
    pub votes_topic: String,
    /// Topic of decisions.
    pub decisions_topic: String,
    /// Consumer group.
    pub group: String,
    /// The safety envelope.
    pub envelope: EnvelopeConfig,
    /// Decide and publish, but change nothing ("would scale").
    pub dry_run: bool,
    /// The state database (SQLite); `None`: state lives in memory and a restart forgets
    /// cooldowns and decided ids.
    pub state_db: Option<PathBuf>,
    /// Print every decision on stdout (the standalone scaler): the seed's block when it changes
    /// something, one line otherwise (`autoscaler_telemetry::block::print_decision`).
    pub print_decisions: bool,
    /// The clock votes are checked against: the wall clock in production, the log's own time in
    /// a replay ([`ClockMode`]).
    pub clock: ClockMode,
    /// A vote whose metric time is more than this behind the clock is *stale*: its vector is
    /// decided as a hold ("stale vote"), never an action; more than this ahead, it is
    /// dead-lettered (a bad clock).
    pub max_skew_secs: u64,
    /// The scaling policy of a service that sets none ([`policies`]; default
    /// [`DEFAULT_POLICY`]).
    pub policy: PolicySpec,
    /// What building a policy needs besides its parameters (CPU request, memory limit).
    pub policy_context: PolicyContext,
    /// Topic of feature vectors (read when a policy needs the measurements).
    pub metrics_topic: String,
    /// Consumer group on the metrics topic.
    pub metrics_group: String,
}

impl ScalerConfig {
    /// Defaults: the given voting configuration, 5 s window, default topics and envelope.
    pub fn new(voting: VotingConfig) -> Self {
        ScalerConfig {
            voting,
            decision_window: Duration::from_secs(DEFAULT_DECISION_WINDOW_SECS),
            votes_topic: VOTES_TOPIC.into(),
            decisions_topic: DECISIONS_TOPIC.into(),
            group: SCALER_GROUP.into(),
            envelope: EnvelopeConfig::default(),
            dry_run: false,
            state_db: None,
            print_decisions: false,
            clock: ClockMode::Wall,
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
            policy: policies::default_policy(),
            policy_context: PolicyContext::default(),
            metrics_topic: METRICS_TOPIC.into(),
            metrics_group: METRICS_GROUP.into(),
        }
    }

    /// Whether the global policy needs the measurements of the metrics topic.
    pub fn policy_needs_metrics(&self) -> bool {
        policies::needs_metrics(&self.policy)
    }

    /// Every problem with this configuration, all at once.
    pub fn problems(&self) -> Vec<String> {
        let mut p: Vec<String> = self
            .voting
            .problems()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        p.extend(self.envelope.problems());
        if self.decision_window.is_zero() {
            p.push("decision window must be greater than 0".into());
        }
        if self.decision_window > Duration::from_secs(MAX_DECISION_WINDOW_SECS) {
            p.push(format!(
                "decision window must be at most {MAX_DECISION_WINDOW_SECS} s"
            ));
        }
        p.extend(SkewCheck::new(self.clock, self.max_skew_secs).problems());
        if let Err(e) = policies::check(&self.policy, &self.policy_context) {
            p.push(e);
        }
        p
    }
}

/// Where a scaler over Kafka keeps its state when no path is given: `$XDG_STATE_HOME/autoscaler/
/// scaler-<group>.db`, else `$HOME/.local/state/autoscaler/scaler-<group>.db` (XDG's default),
/// else `None` (then a path must be given). Without it a restart would re-decide and re-act on
/// the votes it had not committed.
pub fn default_state_db(group: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })?;
    let name: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(base.join("autoscaler").join(format!("scaler-{name}.db")))
}

/// What the scaler needs from outside.
pub struct ScalerDeps {
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// The actuator.
    pub actuator: Arc<dyn Actuator>,
}

/// Errors that stop the scaler.
#[derive(Debug, thiserror::Error)]
pub enum ScalerError {
    /// The configuration is invalid.
    #[error("invalid scaler configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The bus failed.
    #[error("bus")]
    Bus(#[from] BusError),
    /// The state store failed: the scaler stops rather than act on state it cannot keep.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the scaler did, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScalerReport {
    /// Decisions published.
    pub decisions: u64,
    /// Decisions that added replicas (or would have, in dry-run).
    pub scale_ups: u64,
    /// Decisions that removed replicas (or would have).
    pub scale_downs: u64,
    /// Decisions whose action the envelope changed or blocked.
    pub adjusted: u64,
    /// Failed actuations.
    pub actuation_failures: u64,
    /// Decisions held because the service's policy is broken or it is not managed.
    pub policy_holds: u64,
    /// Votes dead-lettered.
    pub dead_letters: u64,
    /// Decisions of a previous run published at start (it had stopped before publishing them).
    pub republished: u64,
    /// Vectors decided as a hold because a vote was older than the allowed skew.
    pub stale_holds: u64,
    /// Dead-letter copies that could not be published (after retries; the originals stay in
    /// the votes topic at the logged offsets).
    pub dead_letter_failures: u64,
    /// Decisions whose publication failed for good (kept in the outbox, then quarantined).
    pub publish_failures: u64,
    /// Outbox entries quarantined after their retry budget (each one is logged at ERROR).
    pub quarantined: u64,
    /// Actuations refused because the replica count changed since it was read.
    pub conflicts: u64,
    /// Decisions held because this instance did not hold the lease (a standby).
    pub lease_holds: u64,
    /// State-store writes that failed (disk full, locked); a change it could not record is
    /// held.
    pub store_failures: u64,
    /// What the ballot box saw.
    pub ballot: autoscaler_voting::BoxCounters,
    /// Feature vectors read from the metrics topic (for policies that need the measurements).
    pub vectors: u64,
    /// Feature vectors dead-lettered (malformed, or older or newer than the allowed skew).
    pub vector_dead_letters: u64,
    /// Vectors whose votes were not decided on because a baseline policy decided the vector.
    pub votes_ignored: u64,
    /// State-store transactions that recorded decisions: decisions that arrive together share
    /// one ([`DECISION_BATCH_MAX`], [`DECISION_BATCH_LINGER`]).
    pub store_commits: u64,
}

struct Scaler {
    cfg: ScalerConfig,
    deps: ScalerDeps,
    states: HashMap<String, ServiceState>,
    report: ScalerReport,
    store: Option<Store>,
    /// The last policy problem reported per service (logged once, not at every decision).
    policy_problems: HashMap<String, String>,
    /// The clock votes are checked against.
    skew: SkewCheck,
    /// Exactly one scaler acts: the lease it must hold to actuate (`None`: it is alone).
    lease: Option<Arc<dyn Lease>>,
    shutdown: CancellationToken,
    /// One policy instance per service whose policy needs the measurements (bounded by
    /// [`MAX_TRACKED_SERVICES`]).
    policies: HashMap<String, PolicySlot>,
    /// Decisions concluded but not yet recorded nor published, in decision order
    /// ([`Scaler::flush_decisions`]; the envelope state recorded with them is `states` then,
    /// the state their services' last decisions left).
    batch: Vec<Decision>,
    /// When the oldest decision of `batch` was concluded.
    batch_since: Option<tokio::time::Instant>,
    /// The batch must be recorded and published now (a decision that changed, or tried to
    /// change, a replica count is not kept waiting).
    flush_now: bool,
    /// Decisions published pipelined, not yet known to be on the broker: the pipeline position
    /// ([`Bus::pipeline_reached`]) after each, oldest first. Cleared from the outbox once
    /// delivered, in the next batch's transaction.
    unconfirmed: VecDeque<(u64, VectorId)>,
    /// When `unconfirmed` was last looked at.
    last_clear: tokio::time::Instant,
}

/// A service's policy instance and what it last recommended.
struct PolicySlot {
    /// The spec it was built from (rebuilt when the service's policy changes).
    spec: PolicySpec,
    /// In a mutex only so the scaler is `Sync` (a policy is `Send`); always reached through
    /// `get_mut`.
    policy: std::sync::Mutex<Box<dyn Policy>>,
    /// Metric time of the last vector fed (older and repeated vectors are not fed again).
    last_fed: Option<chrono::DateTime<chrono::Utc>>,
    /// The recommendation on the last vector fed (hybrid composes it with that vector's votes).
    last: Option<(VectorId, Recommendation)>,
}

/// Run the scaler until `shutdown` is cancelled or the bus closes.
pub async fn run(
    cfg: ScalerConfig,
    deps: ScalerDeps,
    shutdown: CancellationToken,
) -> Result<ScalerReport, ScalerError> {
    run_with_lease(cfg, deps, None, shutdown).await
}

/// [`run`], deciding and acting only while holding `lease` ([`lease`]). Without it the scaler
/// stays up as a standby: it reads no votes (its group membership would take partitions from
/// the holder) and changes nothing. On taking the lease it reads back the decisions already
/// published ([`TAKEOVER_TAIL`]): those vectors are never decided again and the cooldowns their
/// actions started hold. The lease is confirmed against its log right before every actuation,
/// and its epoch goes with the change as a fencing token ([`Actuator::set_replicas_fenced`]).
pub async fn run_with_lease(
    cfg: ScalerConfig,
    deps: ScalerDeps,
    lease: Option<Arc<dyn Lease>>,
    shutdown: CancellationToken,
) -> Result<ScalerReport, ScalerError> {
    let problems = cfg.problems();
    if !problems.is_empty() {
        return Err(ScalerError::Config(problems));
    }
    let recv_backoff_new = || {
        autoscaler_bus::Backoff::new(
            Duration::from_millis(200),
            autoscaler_bus::OUTAGE_BACKOFF_MAX,
        )
    };
    let mut recv_backoff = recv_backoff_new();
    let mut recv_failures = 0u64;
    let mut ballots = BallotBox::new(cfg.voting.expected.clone(), cfg.decision_window);
    let (store, states) = restore(&cfg, &mut ballots)?;
    let origin = tokio::time::Instant::now();
    if cfg.clock == ClockMode::Replay {
        tracing::warn!(
            max_skew_secs = cfg.max_skew_secs,
            "replay clock: votes are checked against the log's own time, not this host's clock"
        );
    }
    let mut s = Scaler {
        skew: SkewCheck::new(cfg.clock, cfg.max_skew_secs),
        cfg,
        deps,
        states,
        report: ScalerReport::default(),
        store,
        policy_problems: HashMap::new(),
        lease,
        shutdown: shutdown.clone(),
        policies: HashMap::new(),
        batch: Vec::new(),
        batch_since: None,
        flush_now: false,
        unconfirmed: VecDeque::new(),
        last_clear: tokio::time::Instant::now(),
    };
    s.publish_outbox().await?;
    tracing::info!(strategy = %s.cfg.voting.strategy, actuator = s.deps.actuator.name(),
        window_ms = s.cfg.decision_window.as_millis() as u64, dry_run = s.cfg.dry_run,
        "scaler started");
    let mut counters = autoscaler_voting::BoxCounters::default();
    let mut first_term = true;
    // A term: from taking the lease (at once without one) to losing it or stopping.
    'terms: loop {
        if let Some(lease) = s.lease.clone() {
            if !lease.is_held() {
                tracing::info!(lease = %lease.describe(), "standby: waiting for the lease");
                loop {
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break 'terms,
                        _ = tokio::time::sleep(LEASE_CHECK_INTERVAL) => {
                            if lease.is_held() { break; }
                        }
                    }
                }
                tracing::info!(lease = %lease.describe(), "lease taken: deciding");
            }
            if !first_term {
                ballots = s.fresh_ballots()?;
            }
            s.catch_up(&mut ballots).await;
        }
        first_term = false;
        // The measurements, when a policy may need them: the global one, or one a service
        // chooses for itself (labels, the policy file).
        let mut msub = if s.cfg.policy_needs_metrics() || s.deps.actuator.has_service_policies() {
            Some(
                s.deps
                    .bus
                    .subscribe(&s.cfg.metrics_topic, &s.cfg.metrics_group)
                    .await?,
            )
        } else {
            None
        };
        let mut sub = s
            .deps
            .bus
            .subscribe(&s.cfg.votes_topic, &s.cfg.group)
            .await?;
        let mut pending_acks: HashMap<
            autoscaler_contract::VectorId,
            Vec<autoscaler_bus::Delivery>,
        > = HashMap::new();
        let mut lease_tick = tokio::time::interval(LEASE_CHECK_INTERVAL);
        let watching_lease = s.lease.is_some();
        // Expired ballots are decided a batch at a time; after a full batch the next vote is
        // read first, so a pile of expired (e.g. junk) ballots never holds a complete one back.
        let (mut expire_due, mut prefer_recv) = (false, false);
        // Votes whose decisions wait in the batch: acknowledged once it is published.
        let mut batch_acks: Vec<autoscaler_bus::Delivery> = Vec::new();
        let stop = loop {
            if expire_due {
                expire_due = false;
                let batch = ballots.expire_at_most(origin.elapsed(), EXPIRE_BATCH);
                prefer_recv = batch.len() == EXPIRE_BATCH;
                for ready in batch {
                    let id = ready.vector_id.clone();
                    let acks = pending_acks.remove(&id).unwrap_or_default();
                    if s.decide(ready).await? {
                        batch_acks.extend(acks);
                    }
                    if s.batch_due() && !s.flush_acking(&mut *sub, &mut batch_acks).await? {
                        break;
                    }
                }
            }
            if s.batch_due() {
                // `false`: stopping before the batch was published; the shutdown branch ends
                // the loop.
                s.flush_acking(&mut *sub, &mut batch_acks).await?;
            }
            let deadline = ballots.next_deadline().map(|d| origin + d);
            let batch_deadline = s.batch_deadline();
            let (early, late) = if prefer_recv {
                (None, deadline)
            } else {
                (deadline, None)
            };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break Stop::Shutdown,
                _ = lease_tick.tick(), if watching_lease => {
                    if s.lease.as_ref().is_some_and(|l| !l.is_held()) {
                        break Stop::LeaseLost;
                    }
                }
                _ = sleep_until_opt(early) => expire_due = true,
                _ = sleep_until_opt(batch_deadline) => {
                    s.flush_acking(&mut *sub, &mut batch_acks).await?;
                }
                m = recv_opt(&mut msub) => {
                    match m {
                        None => {
                            tracing::warn!("the metrics topic closed");
                            msub = None;
                        }
                        Some(Err(e)) if e.is_retryable() => {
                            tracing::warn!(error = %e, "receiving vectors failed");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Some(Err(e)) => return Err(e.into()),
                        Some(Ok(delivery)) => {
                            // A baseline's decision is published before its vector is
                            // acknowledged (with whatever else is batched).
                            if s.on_vector(&delivery).await?
                                && s.flush_acking(&mut *sub, &mut batch_acks).await?
                            {
                                if let Some(m) = msub.as_mut() {
                                    m.ack(&delivery).await?;
                                }
                            }
                        }
                    }
                }
                msg = sub.recv() => {
                    prefer_recv = false;
                    let Some(msg) = msg else { break Stop::Closed };
                    let delivery = match msg {
                        Ok(d) => d,
                        Err(e) if e.is_retryable() => {
                            recv_failures += 1;
                            if recv_failures % 10 == 1 {
                                tracing::warn!(error = %e, failures = recv_failures,
                                    "receiving votes failed; waiting for the broker");
                            }
                            tokio::time::sleep(recv_backoff.next_delay()).await;
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    };
                    if recv_failures > 0 {
                        tracing::info!(failures = recv_failures, "receiving votes again");
                        recv_failures = 0;
                        recv_backoff = recv_backoff_new();
                    }
                    let vote = decode::<Vote>(&delivery.payload)
                        .and_then(|v| v.validate().map(|_| v))
                        .and_then(|v| s.check_time(&v).map(|_| v));
                    match vote {
                        Err(e) => {
                            if !dead_letter_retrying(s.deps.bus.as_ref(), &delivery, &e.to_string()).await {
                                s.report.dead_letter_failures += 1;
                            }
                            s.report.dead_letters += 1;
                        }
                        Ok(vote) => {
                            let (id, model) = (vote.vector_id.clone(), vote.model);
                            match ballots.offer(vote, origin.elapsed()) {
                                Offer::Ready(ready) => {
                                    let acks = pending_acks.remove(&id).unwrap_or_default();
                                    if !s.decide(ready).await? {
                                        // Stopping before the decision was published: nothing is
                                        // acknowledged, a restart redelivers the votes.
                                        continue;
                                    }
                                    // Acknowledged once the batch holding the decision is
                                    // recorded and published.
                                    batch_acks.extend(acks);
                                    batch_acks.push(delivery);
                                    continue;
                                }
                                Offer::Pending => {
                                    // Acknowledged only once the decision it feeds is published:
                                    // a crash before that redelivers it (at least once).
                                    pending_acks.entry(id).or_default().push(delivery);
                                    continue;
                                }
                                Offer::Duplicate => tracing::warn!(vector = %id, %model, "duplicate vote ignored"),
                                Offer::Late => tracing::warn!(vector = %id, %model, "late vote: vector already decided"),
                                Offer::UnknownModel => tracing::warn!(vector = %id, %model, "vote from a model that is not expected"),
                            }
                        }
                    }
                    sub.ack(&delivery).await?;
                }
                _ = sleep_until_opt(late) => expire_due = true,
            }
        };
        // Vectors still open are not decided on a partial ballot: their votes are not
        // acknowledged, so after a restart (or by the next holder of the lease) they are
        // delivered again and decided then (the window is a maximum wait, not a licence to
        // decide on fewer votes than will come).
        // What is decided is recorded and published before leaving (its votes acknowledged); a
        // shutdown that cuts the publication short leaves the rest in the outbox.
        if !s.batch.is_empty() {
            s.flush_now = true;
            s.flush_acking(&mut *sub, &mut batch_acks).await?;
        }
        if ballots.open_len() > 0 {
            tracing::info!(
                open = ballots.open_len(),
                "ending with open ballots; their votes will be redelivered"
            );
        }
        sub.close().await?;
        if let Some(mut m) = msub {
            m.close().await?;
        }
        counters = add_counters(counters, ballots.counters());
        match stop {
            Stop::Shutdown | Stop::Closed => break 'terms,
            Stop::LeaseLost => {
                tracing::warn!("lease lost: standing by, deciding nothing");
                ballots = s.fresh_ballots()?;
            }
        }
    }
    s.deps.bus.flush(Duration::from_secs(5)).await?;
    // Flushed: what was published is on the broker, out of the outbox.
    s.clear_delivered();
    s.report.ballot = counters;
    s.report.store_commits = s.store.as_ref().map_or(0, Store::batch_commits);
    tracing::info!(decisions = s.report.decisions, "scaler stopped");
    Ok(s.report)
}

/// Open the state store, if any, and restore decided ids into the ballot box and the envelope
/// state of every service.
#[allow(clippy::type_complexity)]
fn restore(
    cfg: &ScalerConfig,
    ballots: &mut BallotBox,
) -> Result<(Option<Store>, HashMap<String, ServiceState>), ScalerError> {
    let Some(path) = &cfg.state_db else {
        return Ok((None, HashMap::new()));
    };
    let store = Store::open(path)?;
    let decided = store.recent_decided(store::DEFAULT_KEEP_DECISIONS)?;
    let n = decided.len();
    for id in decided {
        ballots.mark_decided(id);
    }
    let mut states = store.load_states()?;
    if cfg.clock == ClockMode::Wall {
        // A time ahead of the clock (a far-future vote before the skew check was two-sided, a
        // clock set back) would hold a cooldown for ever: brought back to now, and saved.
        let now = chrono::Utc::now();
        for (service, state) in states.iter_mut() {
            if envelope::repair(state, now) {
                tracing::warn!(service, "stored state was ahead of the clock: repaired");
                store.save_state(service, state)?;
            }
        }
    }
    tracing::info!(
        path = store.path(),
        decided = n,
        services = states.len(),
        "state restored"
    );
    Ok((Some(store), states))
}

/// Why a term ended.
enum Stop {
    Shutdown,
    Closed,
    LeaseLost,
}

/// Most services whose policy problem is remembered (to log it once).
pub const MAX_TRACKED_SERVICES: usize = 10_000;

/// Expired ballots decided per turn of the loop (votes are read between turns).
pub const EXPIRE_BATCH: usize = 16;

/// How often a scaler with a lease looks at it between votes (and a standby waits for it).
pub const LEASE_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Decisions per partition a scaler taking the lease reads back from the decisions topic, so a
/// vector its predecessor decided is never decided again and its cooldowns carry over.
pub const TAKEOVER_TAIL: usize = 10_000;

fn add_counters(
    a: autoscaler_voting::BoxCounters,
    b: autoscaler_voting::BoxCounters,
) -> autoscaler_voting::BoxCounters {
    autoscaler_voting::BoxCounters {
        accepted: a.accepted + b.accepted,
        duplicate: a.duplicate + b.duplicate,
        late: a.late + b.late,
        unknown_model: a.unknown_model + b.unknown_model,
        decided_complete: a.decided_complete + b.decided_complete,
        decided_timeout: a.decided_timeout + b.decided_timeout,
        evicted: a.evicted + b.evicted,
    }
}

async fn recv_opt(
    sub: &mut Option<Box<dyn autoscaler_bus::Subscription>>,
) -> Option<Result<autoscaler_bus::Delivery, BusError>> {
    match sub {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Scaler {
    /// A ballot box with the decided ids of the store (a new term starts from it).
    fn fresh_ballots(&self) -> Result<BallotBox, ScalerError> {
        let mut b = BallotBox::new(self.cfg.voting.expected.clone(), self.cfg.decision_window);
        if let Some(store) = &self.store {
            for id in store.recent_decided(store::DEFAULT_KEEP_DECISIONS)? {
                b.mark_decided(id);
            }
        }
        Ok(b)
    }

    /// Read back what the previous holder of the lease decided: its vectors are marked decided
    /// and the cooldowns its actions started are kept (the later of its and ours).
    async fn catch_up(&mut self, ballots: &mut BallotBox) {
        let tail = match self
            .deps
            .bus
            .tail(&self.cfg.decisions_topic, TAKEOVER_TAIL)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e,
                    "could not read back recent decisions; a vector decided just before the takeover may be decided again");
                return;
            }
        };
        let mut n = 0;
        let now = self.clock_now();
        for d in tail {
            let Ok(dec) = decode::<Decision>(&d.payload) else {
                continue;
            };
            n += 1;
            ballots.mark_decided(dec.vector_id.clone());
            if !dec.acted {
                continue;
            }
            let state = self.states.entry(dec.service.clone()).or_default();
            let t = Some(dec.metric_time.min(now));
            match (dec.from_replicas, dec.to_replicas) {
                (Some(f), Some(to)) if to > f => {
                    state.last_scale_up = state.last_scale_up.max(t);
                }
                (Some(f), Some(to)) if to < f => {
                    state.last_scale_down = state.last_scale_down.max(t);
                }
                _ => {}
            }
        }
        tracing::info!(
            decisions = n,
            "caught up with the decisions already published"
        );
    }

    /// The clock's reading: the wall clock, or in a replay the latest metric time accepted.
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        let wall = chrono::Utc::now();
        self.skew.now(wall).unwrap_or(wall)
    }

    /// A vote ahead of the clock by more than the skew is refused (dead-lettered); one older
    /// than the skew is accepted and its vector decided as a hold ("stale vote").
    fn check_time(&mut self, v: &Vote) -> Result<(), ContractError> {
        match self.skew.check(chrono::Utc::now(), v.metric_time) {
            Ok(()) | Err(ContractError::TooOld { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Why the votes of one vector cannot be acted on, if they cannot: one is older than the
    /// allowed skew now, or they disagree on the replicas they were cast at.
    fn ballot_problem(&self, votes: &[Vote]) -> Option<String> {
        let now = self.clock_now();
        if let Some(oldest) = votes.iter().map(|v| v.metric_time).min() {
            let age = (now - oldest).num_milliseconds() as f64 / 1000.0;
            if age > self.cfg.max_skew_secs as f64 {
                return Some(format!(
                    "held: stale vote: {age:.0} s old, older than the allowed skew of {} s",
                    self.cfg.max_skew_secs
                ));
            }
        }
        let replicas: std::collections::BTreeSet<u32> =
            votes.iter().filter_map(|v| v.replicas).collect();
        if replicas.len() > 1 {
            return Some(format!(
                "held: the votes disagree on replicas ({})",
                replicas
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        None
    }

    /// How `policy` (a service's own, or the global one when it sets none or is broken) decides,
    /// and the spec.
    fn route(&self, policy: &ServicePolicy) -> (Mode, PolicySpec) {
        let spec = policy
            .policy
            .as_deref()
            .and_then(|t| policies::parse_policy(t).ok())
            .unwrap_or_else(|| self.cfg.policy.clone());
        (policies::mode_of(&spec), spec)
    }

    /// The service's own policy as the actuator reports it: (policy, read error, why held).
    async fn service_policy(
        &self,
        service: &str,
    ) -> (ServicePolicy, Option<String>, Option<String>) {
        match self.deps.actuator.policy(service).await {
            Ok(p) => match self.cfg.envelope.with_policy(&p) {
                Ok(_) => (p, None, None),
                Err(problems) => {
                    let e = ActuatorError::BadPolicy {
                        service: service.to_string(),
                        problems,
                    };
                    (ServicePolicy::default(), None, Some(format!("held: {e}")))
                }
            },
            Err(e) if e.is_retryable() => (ServicePolicy::default(), Some(e.to_string()), None),
            Err(e) => (ServicePolicy::default(), None, Some(format!("held: {e}"))),
        }
    }

    /// One feature vector from the metrics topic. A vector that does not decode, breaks the
    /// contract or is outside the allowed skew is dead-lettered (never read as zeros). For a
    /// service whose policy needs the measurements it is fed to that service's policy: `hybrid`
    /// keeps the recommendation for the vector's votes; a baseline decides the vector now, within
    /// min/max only. `Ok(false)` when stopping before its decision could be published.
    async fn on_vector(
        &mut self,
        delivery: &autoscaler_bus::Delivery,
    ) -> Result<bool, ScalerError> {
        self.report.vectors += 1;
        let v = decode::<FeatureVector>(&delivery.payload)
            .and_then(|v| v.validate(None, 0).map(|_| v))
            .and_then(|v| {
                self.skew
                    .check(chrono::Utc::now(), v.metric_time)
                    .map(|_| v)
            });
        let v = match v {
            Err(e) => {
                if !dead_letter_retrying(self.deps.bus.as_ref(), delivery, &e.to_string()).await {
                    self.report.dead_letter_failures += 1;
                }
                self.report.vector_dead_letters += 1;
                return Ok(true);
            }
            Ok(v) => v,
        };
        let service = v.service.clone();
        let (policy, mut read_error, held) = self.service_policy(&service).await;
        let (route, spec) = self.route(&policy);
        if route == Mode::Votes {
            return Ok(true);
        }
        // Not the ballot box's decided ids: the votes of a vector can complete before the vector
        // itself reaches the scaler (its metrics queue full), and a baseline ignores them.
        let seen = self
            .policies
            .get(&service)
            .and_then(|s| s.last_fed)
            .is_some_and(|t| v.metric_time <= t);
        if seen {
            tracing::debug!(vector = %v.vector_id, service, "vector seen already (or older than the last): not fed again");
            return Ok(true);
        }
        if route == Mode::Hybrid && (held.is_some() || v.stale) {
            // The votes' decision holds it.
            return Ok(true);
        }
        let envelope_cfg = self
            .cfg
            .envelope
            .with_policy(&policy)
            .unwrap_or_else(|_| self.cfg.envelope.clone());
        let standby = match &self.lease {
            Some(l) if !l.is_held() => Some(format!("held: standby ({})", l.describe())),
            _ => None,
        };
        let actuator = self.deps.actuator.clone();
        let current = if held.is_some() || read_error.is_some() || standby.is_some() {
            None
        } else {
            match actuator.current(&service).await {
                Ok(n) => Some(n),
                Err(e) => {
                    read_error = Some(e.to_string());
                    None
                }
            }
        };
        let mut problem = held.clone().or(standby).or_else(|| {
            v.stale.then(|| {
                format!(
                    "held: stale vector ({})",
                    v.stale_reason.as_deref().unwrap_or("no reason given")
                )
            })
        });
        let mut rec = None;
        if let (None, Some(c)) = (&problem, current) {
            match self.slot(&service, &spec) {
                Err(e) => problem = Some(format!("held: {e}")),
                Ok(slot) => {
                    let obs = Observation {
                        t_secs: v.metric_time.timestamp_millis() as f64 / 1000.0,
                        features: &v.features,
                        replicas: c,
                        ready_replicas: v.replicas.unwrap_or(c),
                        bounds: Bounds {
                            min: envelope_cfg.min_replicas,
                            max: envelope_cfg.max_replicas,
                        },
                        sla_p95_ms: policy
                            .sla_p95_ms
                            .unwrap_or(autoscaler_contract::DEFAULT_SLA_P95_MS),
                    };
                    let r = slot
                        .policy
                        .get_mut()
                        .unwrap_or_else(|e| e.into_inner())
                        .recommend(&obs);
                    slot.last_fed = Some(v.metric_time);
                    slot.last = Some((v.vector_id.clone(), r.clone()));
                    rec = Some(r);
                }
            }
        }
        if route == Mode::Hybrid {
            return Ok(true);
        }
        // A baseline decides the vector: its own rules, the product's bounds.
        self.note_policy(&service, held.as_deref());
        let name = spec.name();
        let now = self.clock_now();
        let at = v.metric_time.min(now);
        let state = self.states.entry(service.clone()).or_default();
        let before = state.clone();
        let (outcome, reason) = match (&problem, &rec) {
            (Some(why), _) => (
                envelope::Outcome {
                    to: current,
                    adjustments: vec![why.clone()],
                },
                format!("policy {name}: held"),
            ),
            (None, Some(r)) => (
                envelope::bound_only(&envelope_cfg, state, current, r.replicas, at),
                format!("policy {name}: {}", r.reason),
            ),
            (None, None) => (
                envelope::bound_only(&envelope_cfg, state, None, 0, at),
                format!("policy {name}: held"),
            ),
        };
        let mut adjustments = outcome.adjustments.clone();
        if let Some(e) = read_error {
            adjustments.push(format!("replicas could not be read: {e}"));
        }
        let verdict = match (current, outcome.to) {
            (Some(c), Some(t)) if t > c => Verdict::ScaleUp,
            (Some(c), Some(t)) if t < c => Verdict::ScaleDown,
            _ => Verdict::NoAction,
        };
        let dry_run =
            self.cfg.dry_run || policy.dry_run == Some(true) || !actuator.changes_cluster();
        let decision = Decision {
            schema_version: SCHEMA_VERSION,
            vector_id: v.vector_id.clone(),
            service: service.clone(),
            decision: verdict,
            timestamp: chrono::Utc::now(),
            metric_time: v.metric_time,
            scale_up_votes: 0,
            no_action_votes: 0,
            abstentions: 0,
            missing_models: Vec::new(),
            total_votes: 0,
            confidence: 0.0,
            strategy: policy.strategy.unwrap_or(self.cfg.voting.strategy),
            weighted_score: None,
            votes: Vec::new(),
            from_replicas: current,
            to_replicas: current,
            reason,
            adjustments,
            acted: false,
            dry_run,
        };
        self.conclude(decision, outcome, before, held.is_some(), v.timestamp)
            .await
    }

    /// The service's policy instance, built (or rebuilt, when the service's policy changed) from
    /// `spec`; bounded by [`MAX_TRACKED_SERVICES`].
    fn slot(&mut self, service: &str, spec: &PolicySpec) -> Result<&mut PolicySlot, String> {
        let fresh = self.policies.get(service).is_none_or(|s| s.spec != *spec);
        if fresh {
            if !self.policies.contains_key(service) && self.policies.len() >= MAX_TRACKED_SERVICES {
                return Err(format!(
                    "more than {MAX_TRACKED_SERVICES} services with a policy: not tracked"
                ));
            }
            let policy = spec
                .build(&self.cfg.policy_context)
                .map_err(|e| e.to_string())?;
            self.policies.insert(
                service.to_string(),
                PolicySlot {
                    spec: spec.clone(),
                    policy: std::sync::Mutex::new(policy),
                    last_fed: None,
                    last: None,
                },
            );
        }
        Ok(self.policies.get_mut(service).expect("inserted above"))
    }

    /// Decide one vector, act on it and publish the decision. `Ok(false)` when stopping before
    /// the decision could be published (its votes must not be acknowledged).
    async fn decide(&mut self, ready: Ready) -> Result<bool, ScalerError> {
        let Ready {
            vector_id,
            mut votes,
            complete,
        } = ready;
        votes.sort_by_key(|v| v.model);
        let first = &votes[0];
        let (service, metric_time) = (first.service.clone(), first.metric_time);
        let vector_published = first.timestamp;
        let voted_at = votes.iter().find_map(|v| v.replicas);
        let actuator = self.deps.actuator.clone();
        let ballot_problem = self.ballot_problem(&votes);
        let standby = match &self.lease {
            Some(l) if !l.is_held() => Some(format!("held: standby ({})", l.describe())),
            _ => None,
        };

        // The service's own policy, read fresh. A policy that is broken (or a service that is
        // not managed) holds this service only; an unreachable backend is "replicas unknown".
        let (policy, mut read_error, held) = self.service_policy(&service).await;
        let (route, _) = self.route(&policy);
        if route == Mode::Baseline {
            // A baseline decides on the vector itself, at once ([`Self::on_vector`]): the
            // models' votes are not a second decision on it.
            self.report.votes_ignored += 1;
            return Ok(true);
        }
        if ballot_problem
            .as_deref()
            .is_some_and(|p| p.starts_with("held: stale vote"))
        {
            self.report.stale_holds += 1;
        }
        self.note_policy(&service, held.as_deref());
        let policy_held = held.is_some();
        if held.is_none() && ballot_problem.is_none() && standby.is_some() {
            self.report.lease_holds += 1;
        }
        let held = held.or(ballot_problem).or(standby);
        let envelope_cfg = self
            .cfg
            .envelope
            .with_policy(&policy)
            .unwrap_or_else(|_| self.cfg.envelope.clone());
        let mut voting = self.cfg.voting.clone();
        if let Some(strategy) = policy.strategy {
            voting.strategy = strategy;
        }

        let ballots: Vec<ModelBallot> = votes.iter().map(ModelBallot::from).collect();
        let t = tally(&voting, &ballots);
        let mut verdict = if t.scale_up {
            Verdict::ScaleUp
        } else if safe_one_fewer(&voting, &ballots) {
            Verdict::ScaleDown
        } else {
            Verdict::NoAction
        };
        let stale = t.scale_up_votes + t.no_action_votes == 0;
        let severity = severity_of(&votes, t.weighted_score, policy.sla_p95_ms);

        let current = if held.is_some() || read_error.is_some() {
            None
        } else {
            match actuator.current(&service).await {
                Ok(n) => Some(n),
                Err(e) => {
                    read_error = Some(e.to_string());
                    None
                }
            }
        };
        let mut live_count_note = None;
        if let (Verdict::ScaleDown, Some(c), Some(r)) = (verdict, current, voted_at) {
            if c != r {
                // The models judged one replica fewer than the count they saw; the service runs
                // another count now: their judgement does not apply.
                verdict = Verdict::NoAction;
                live_count_note = Some(format!(
                    "no scale-down: the votes judged {r} replicas, the service runs {c}"
                ));
            }
        }
        let (mut target, mut policy_reason) = (None, None);
        if route == Mode::Hybrid {
            let rec = self
                .policies
                .get(&service)
                .and_then(|slot| slot.last.as_ref())
                .filter(|(id, _)| *id == vector_id)
                .map(|(_, r)| r.clone());
            policy_reason = Some(match (rec, current) {
                (Some(rec), Some(c)) if held.is_none() && !stale => {
                    let votes_count = match verdict {
                        Verdict::ScaleUp => c
                            .saturating_add(envelope::step_for(envelope_cfg.max_step, &severity))
                            .min(envelope_cfg.max_replicas.max(c)),
                        Verdict::NoAction => c,
                        Verdict::ScaleDown => c.saturating_sub(1),
                    };
                    // The votes first: a tie goes to them.
                    let recs = [Recommendation::new(votes_count, "the votes"), rec.clone()];
                    let best =
                        autoscaler_policy::compose(&recs).map_or(votes_count, |r| r.replicas);
                    if best > votes_count {
                        verdict = if best > c {
                            Verdict::ScaleUp
                        } else {
                            Verdict::NoAction
                        };
                        target = Some(best);
                        format!(
                            "policy hybrid: {best} replicas, the policy's, over the votes' {votes_count} ({})",
                            rec.reason
                        )
                    } else {
                        format!(
                            "policy hybrid: the votes' {votes_count} replicas (the policy asked for {}: {})",
                            rec.replicas, rec.reason
                        )
                    }
                }
                (None, _) => {
                    "policy hybrid: no recommendation on this vector; the votes decide".to_string()
                }
                _ => "policy hybrid: held; the votes decide".to_string(),
            });
        }
        let now = self.clock_now();
        let state = self.states.entry(service.clone()).or_default();
        let before = state.clone();
        let outcome = match &held {
            // Left alone: no recommendation recorded, nothing changed.
            Some(why) => envelope::Outcome {
                to: current,
                adjustments: vec![why.clone()],
            },
            None => envelope::apply_with_target(
                &envelope_cfg,
                state,
                &envelope::Proposal {
                    verdict,
                    current,
                    stale,
                    at: metric_time,
                    now,
                    severity,
                },
                target,
            ),
        };
        let mut adjustments = outcome.adjustments.clone();
        adjustments.extend(live_count_note);
        if let Some(e) = read_error {
            adjustments.push(format!("replicas could not be read: {e}"));
        }
        let dry_run =
            self.cfg.dry_run || policy.dry_run == Some(true) || !actuator.changes_cluster();
        let mut reason = t.reason.clone();
        if !complete {
            reason.push_str(&format!(
                "; decided at the end of the window without {}",
                t.missing
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if verdict == Verdict::ScaleDown {
            reason.push_str("; the models find one replica fewer safe");
        }
        if let Some(p) = policy_reason {
            reason = format!("{p}; votes: {reason}");
        }
        let decision = Decision {
            schema_version: SCHEMA_VERSION,
            vector_id: vector_id.clone(),
            service: service.clone(),
            decision: verdict,
            timestamp: chrono::Utc::now(),
            metric_time,
            scale_up_votes: t.scale_up_votes,
            no_action_votes: t.no_action_votes,
            abstentions: t.abstentions,
            missing_models: t.missing.clone(),
            total_votes: votes.len() as u32,
            confidence: t.confidence,
            strategy: voting.strategy,
            weighted_score: t.weighted_score,
            votes: votes.iter().map(VoteSummary::from).collect(),
            from_replicas: current,
            to_replicas: current,
            reason,
            adjustments,
            acted: false,
            dry_run,
        };
        self.conclude(decision, outcome, before, policy_held, vector_published)
            .await
    }

    /// Act on a decided vector through the actuator (unless dry-run or held), record the
    /// decision and publish it. `decision` carries everything but the outcome: `adjustments`
    /// already holds the envelope's, `to_replicas` the current count. `Ok(false)` when stopping
    /// before the decision could be published.
    async fn conclude(
        &mut self,
        mut decision: Decision,
        outcome: envelope::Outcome,
        before: ServiceState,
        policy_held: bool,
        vector_published: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, ScalerError> {
        let service = decision.service.clone();
        let vector_id = decision.vector_id.clone();
        let verdict = decision.decision;
        let current = decision.from_replicas;
        let dry_run = decision.dry_run;
        let mut adjustments = std::mem::take(&mut decision.adjustments);
        let actuator = self.deps.actuator.clone();
        let state = self.states.entry(service.clone()).or_default();
        let changes = outcome.changes(current);
        let mut acted = false;
        if changes {
            let to = outcome.to.expect("a change has a target");
            if dry_run {
                adjustments.push(format!("dry-run: would scale to {to}"));
            } else {
                // The cooldown this change starts is on disk before the change is made: a crash
                // in between leaves a cooldown without a change, never the reverse.
                // A store that cannot write (disk full, locked past its busy timeout) holds
                // the change: nothing is changed that a restart would not know about.
                let saved = match &self.store {
                    Some(store) => store.save_state(&service, state).map_err(|e| e.to_string()),
                    None => Ok(()),
                };
                let from = current.expect("a change has a current count");
                // Re-checked against the lease's log right before acting: a scaler that lost
                // it since the decision started (a partition, a pause) changes nothing.
                let confirmed = match (&saved, &self.lease) {
                    (Err(_), _) | (_, None) => Ok(None),
                    (Ok(()), Some(l)) => l.confirm().await.map(Some),
                };
                match confirmed {
                    _ if saved.is_err() => {
                        envelope::record_failure(&before, state);
                        self.report.store_failures += 1;
                        let why = format!(
                            "held: the state store failed: {}",
                            saved.as_ref().err().map(String::as_str).unwrap_or_default()
                        );
                        tracing::error!(service, to, reason = %why, "not acting");
                        adjustments.push(why);
                    }
                    Ok(Some(None)) | Err(_) => {
                        envelope::record_failure(&before, state);
                        self.report.lease_holds += 1;
                        let why = match &confirmed {
                            Err(e) => format!("held: the lease could not be confirmed: {e}"),
                            _ => "held: the lease was lost before acting".to_string(),
                        };
                        tracing::warn!(service, to, reason = %why, "not acting");
                        adjustments.push(why);
                    }
                    Ok(epoch) => match match epoch.flatten() {
                        // The lease epoch is the fencing token: a backend that saw a later one
                        // refuses this change.
                        Some(e) => actuator.set_replicas_fenced(&service, from, to, e).await,
                        None => actuator.set_replicas(&service, from, to).await,
                    } {
                        Ok(()) => acted = true,
                        Err(e @ ActuatorError::Fenced { .. }) => {
                            envelope::record_failure(&before, state);
                            self.report.lease_holds += 1;
                            tracing::warn!(service, to, error = %e, "deposed: not acting");
                            adjustments.push(format!("held: {e}"));
                        }
                        Err(e @ ActuatorError::Ambiguous(_)) => {
                            // It may have happened: the cooldown it started stays, so no second
                            // change follows at once; the next vector reads the real count.
                            self.report.actuation_failures += 1;
                            tracing::error!(service, to, error = %e, "actuation outcome unknown");
                            adjustments.push(format!("{e}; the cooldown is kept"));
                        }
                        Err(ActuatorError::Conflict { found, .. }) => {
                            envelope::record_failure(&before, state);
                            self.report.conflicts += 1;
                            tracing::warn!(
                                service,
                                expected = from,
                                found,
                                to,
                                "replicas changed since they were read; not acting"
                            );
                            adjustments.push(format!(
                                "refused: replicas changed from {from} to {found} since they were read; the next vector decides again"
                            ));
                        }
                        Err(e) => {
                            envelope::record_failure(&before, state);
                            self.report.actuation_failures += 1;
                            autoscaler_telemetry::record_actuator_error(&service);
                            tracing::error!(service, to, error = %e, "actuation failed");
                            adjustments.push(format!("actuation failed: {e}"));
                        }
                    },
                }
            }
        }
        let effective = acted || (changes && dry_run);
        if effective {
            match (current, outcome.to) {
                (Some(c), Some(t)) if t > c => self.report.scale_ups += 1,
                (Some(c), Some(t)) if t < c => self.report.scale_downs += 1,
                _ => {}
            }
        }
        if !adjustments.is_empty() {
            self.report.adjusted += 1;
        }
        decision.to_replicas = if acted || dry_run {
            outcome.to
        } else {
            current
        };
        decision.adjustments = adjustments;
        decision.acted = acted;
        let decision = decision.bounded();
        tracing::debug!(vector = %vector_id, service, decision = ?verdict, acted, "decided");
        if policy_held {
            self.report.policy_holds += 1;
        }
        // Nothing to remember (e.g. a service that is not managed, a made-up name): forgotten,
        // so junk never grows the per-service state.
        if *state == ServiceState::default() {
            self.states.remove(&service);
        }
        self.report.decisions += 1;
        autoscaler_telemetry::record_decision(&decision, vector_published);
        if self.cfg.print_decisions {
            autoscaler_telemetry::block::print_decision(self.report.decisions, &decision);
        }
        // Batched: recorded with the decisions concluded with it in one transaction, with the
        // state each service is left in, then published ([`Self::flush_decisions`]). On disk
        // before it is published: a restart never decides this vector again, and keeps the
        // cooldowns it started.
        self.batch.push(decision);
        if self.batch_since.is_none() {
            self.batch_since = Some(tokio::time::Instant::now());
        }
        if changes && !dry_run {
            self.flush_now = true;
        }
        Ok(true)
    }

    /// Whether the batch is to be recorded and published now: full, asked for, or its oldest
    /// decision has waited [`DECISION_BATCH_LINGER`].
    fn batch_due(&self) -> bool {
        self.flush_now
            || self.batch.len() >= DECISION_BATCH_MAX
            || self
                .batch_since
                .is_some_and(|t| t.elapsed() >= DECISION_BATCH_LINGER)
    }

    /// When the batch falls due (or, with none, when published decisions are looked at again
    /// to clear them from the outbox); `None` when there is nothing to do.
    fn batch_deadline(&self) -> Option<tokio::time::Instant> {
        match self.batch_since {
            Some(t) => Some(t + DECISION_BATCH_LINGER),
            None if !self.unconfirmed.is_empty() => Some(self.last_clear + OUTBOX_CLEAR_INTERVAL),
            None => None,
        }
    }

    /// [`Self::flush_decisions`], then acknowledge `acks` (the votes of the decisions it
    /// published: their offsets are stored once the decisions are on the broker). `Ok(false)`
    /// when stopping before the batch was published: nothing is acknowledged.
    async fn flush_acking(
        &mut self,
        sub: &mut dyn autoscaler_bus::Subscription,
        acks: &mut Vec<autoscaler_bus::Delivery>,
    ) -> Result<bool, ScalerError> {
        if !self.flush_decisions().await? {
            acks.clear();
            return Ok(false);
        }
        for d in acks.drain(..) {
            sub.ack(&d).await?;
        }
        Ok(true)
    }

    /// The published decisions now known to be on the broker, oldest first, taken from
    /// `unconfirmed`.
    fn take_delivered(&mut self) -> Vec<VectorId> {
        self.last_clear = tokio::time::Instant::now();
        let delivered = self.deps.bus.pipeline_delivered();
        let mut out = Vec::new();
        while self
            .unconfirmed
            .front()
            .is_some_and(|(reached, _)| *reached <= delivered)
        {
            out.extend(self.unconfirmed.pop_front().map(|(_, id)| id));
        }
        out
    }

    /// Clear the delivered decisions from the outbox (one transaction).
    fn clear_delivered(&mut self) {
        let delivered = self.take_delivered();
        if let (Some(store), false) = (&self.store, delivered.is_empty()) {
            if let Err(e) = store.commit_batch(&[], &[], &delivered) {
                // Published again at the next start (at least once).
                self.report.store_failures += 1;
                tracing::error!(decisions = delivered.len(), error = %e,
                    "published decisions not cleared from the outbox");
            }
        }
    }

    /// Record the batch in one transaction (with the outbox entries of decisions since
    /// delivered cleared in it), then publish its decisions in order, pipelined. `Ok(false)`
    /// when stopping before all were published (the rest stay in the outbox, published at the
    /// next start; their votes must not be acknowledged).
    async fn flush_decisions(&mut self) -> Result<bool, ScalerError> {
        self.flush_now = false;
        self.batch_since = None;
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            self.clear_delivered();
            return Ok(true);
        }
        let delivered = self.take_delivered();
        if let Some(store) = &self.store {
            // Each service of the batch once, in the state its last decision left it (a service
            // whose state is the default was forgotten: stored as the default).
            let mut services: Vec<&str> = batch.iter().map(|d| d.service.as_str()).collect();
            services.sort_unstable();
            services.dedup();
            let default = ServiceState::default();
            let states: Vec<(&str, &ServiceState)> = services
                .into_iter()
                .map(|s| (s, self.states.get(s).unwrap_or(&default)))
                .collect();
            if let Err(e) = store.commit_batch(&batch, &states, &delivered) {
                // Not kept (disk full, locked): the decisions are still published; a restart may
                // decide these vectors again (they acted on nothing the store could not record:
                // a change saves its state first). The delivered ones are published again at
                // the next start (at least once).
                self.report.store_failures += batch.len() as u64;
                tracing::error!(decisions = batch.len(), error = %e, "decisions not recorded");
            }
        }
        let mut queued = Vec::with_capacity(batch.len());
        for decision in batch {
            let msg = Outgoing::new(
                &self.cfg.decisions_topic,
                decision.service.as_str(),
                encode(&decision),
            );
            match publish_pipelined_retrying(self.deps.bus.as_ref(), msg, &self.shutdown).await {
                Ok(true) => queued.push(decision.vector_id),
                Ok(false) => return Ok(false),
                Err(e) => {
                    // Not retryable (e.g. refused by the broker): the decision stays in the
                    // outbox, retried at the next start within its budget; the scaler goes on.
                    self.report.publish_failures += 1;
                    tracing::error!(vector = %decision.vector_id, error = %e,
                        "decision not published; kept in the outbox");
                    if let Some(store) = &self.store {
                        match store.note_publish_failure(&decision.vector_id, OUTBOX_RETRY_BUDGET) {
                            Ok(true) => self.report.quarantined += 1,
                            Ok(false) => {}
                            Err(e) => {
                                self.report.store_failures += 1;
                                tracing::error!(error = %e, "state store");
                            }
                        }
                    }
                }
            }
        }
        if self.store.is_some() {
            let reached = self.deps.bus.pipeline_reached();
            self.unconfirmed
                .extend(queued.into_iter().map(|id| (reached, id)));
            if self.deps.bus.pipeline_delivered() >= reached {
                // Already on the broker (a bus whose publish waits): out of the outbox now, so
                // a restart does not announce them again.
                self.clear_delivered();
            }
        }
        Ok(true)
    }

    /// Publish the decisions a previous run recorded but did not get to publish (it stopped
    /// between the two), so no decided vector goes unannounced.
    async fn publish_outbox(&mut self) -> Result<(), ScalerError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let pending = store.outbox()?;
        if pending.is_empty() {
            return Ok(());
        }
        // Published (pipelined) but killed before the outbox was cleared: the decisions topic
        // already has them, so they are cleared, not announced twice. A bus that keeps no
        // history (or a tail that fails) publishes them all again: at least once.
        let on_topic: std::collections::HashSet<String> = match self
            .deps
            .bus
            .tail(&self.cfg.decisions_topic, OUTBOX_TAIL_CHECK)
            .await
        {
            Ok(tail) => tail
                .iter()
                .filter_map(|d| decode::<Decision>(&d.payload).ok())
                .map(|d| d.vector_id.0)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "decisions topic not read back: the outbox is published again");
                Default::default()
            }
        };
        let (already, pending): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|row| on_topic.contains(&row.vector_id.0));
        if !already.is_empty() {
            let ids: Vec<VectorId> = already.into_iter().map(|r| r.vector_id).collect();
            store.commit_batch(&[], &[], &ids)?;
            tracing::info!(
                decisions = ids.len(),
                "outbox entries already on the decisions topic: cleared"
            );
        }
        if !pending.is_empty() {
            tracing::warn!(
                decisions = pending.len(),
                "publishing decisions recorded before a crash"
            );
        }
        for row in pending {
            let published = match row.decision {
                Err(e) => Err(e),
                Ok(d) => {
                    let msg = Outgoing::new(&self.cfg.decisions_topic, &d.service, encode(&d));
                    match publish_retrying(self.deps.bus.as_ref(), msg, &self.shutdown).await {
                        Ok(true) => Ok(()),
                        Ok(false) => return Ok(()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            };
            match published {
                Ok(()) => {
                    store.mark_published(&row.vector_id)?;
                    self.report.republished += 1;
                }
                Err(e) => {
                    self.report.publish_failures += 1;
                    tracing::error!(vector = %row.vector_id, attempts = row.attempts + 1, error = %e,
                        "outbox entry not published");
                    if store.note_publish_failure(&row.vector_id, OUTBOX_RETRY_BUDGET)? {
                        self.report.quarantined += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Log a service's policy problem when it appears or changes (ERROR: an operator must fix the
    /// labels or the file), and when it is gone.
    fn note_policy(&mut self, service: &str, problem: Option<&str>) {
        match problem {
            Some(p) if self.policy_problems.get(service).map(String::as_str) != Some(p) => {
                tracing::error!(service, problem = p, "service left alone");
                // Bounded: past the bound a problem is logged at every decision instead.
                if self.policy_problems.len() < MAX_TRACKED_SERVICES
                    || self.policy_problems.contains_key(service)
                {
                    self.policy_problems.insert(service.into(), p.into());
                }
            }
            Some(_) => {}
            None => {
                if self.policy_problems.remove(service).is_some() {
                    tracing::info!(service, "service policy usable again");
                }
            }
        }
    }
}

/// How urgent a scale-up is: the weighted score when the strategy computes one, else the mean
/// P(violation) of the votes that have one; and the vector's p95 (carried by its votes) over the
/// service's SLA, when both are known.
fn severity_of(votes: &[Vote], weighted_score: Option<f64>, sla_p95_ms: Option<f64>) -> Severity {
    let ps: Vec<f64> = votes.iter().filter_map(|v| v.probability).collect();
    let mean = (!ps.is_empty()).then(|| ps.iter().sum::<f64>() / ps.len() as f64);
    let p95 = votes
        .iter()
        .filter_map(|v| v.p95_latency_ms)
        .reduce(f64::max);
    Severity {
        probability: weighted_score.or(mean),
        p95_over_sla: match (p95, sla_p95_ms) {
            (Some(p), Some(sla)) if sla > 0.0 => Some(p / sla),
            _ => None,
        },
    }
}

#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod tests;
