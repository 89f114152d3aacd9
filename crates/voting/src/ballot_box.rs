//! The decision window: gather the votes of one vector, decide it exactly once.
//!
//! The box has no clock: every call passes `now`, a monotonic [`Duration`] since any fixed
//! origin, so the scaler can drive it from tokio's (pausable) clock and tests can drive it by hand.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use autoscaler_contract::{ModelKind, VectorId, Vote};

/// Default number of decided vector ids remembered (about ten days of 7 services at 30 s polls).
pub const DEFAULT_DECIDED_CAPACITY: usize = 200_000;
/// Default bound on the bytes of the decided ids remembered (ids are at most 301 bytes; typical
/// ones 30): whichever of the count and the bytes is reached first forgets the oldest.
pub const DEFAULT_DECIDED_BYTES: usize = 16 << 20;
/// Default bound on the vectors waiting for votes at once: a vote that would open one more
/// hands the oldest open ballot out at once, as if its window had run out (a flood of votes on
/// made-up vectors cycles through the box; complete ballots are decided as they complete).
pub const DEFAULT_MAX_OPEN: usize = 10_000;

/// What happened to an offered vote.
#[derive(Debug, Clone, PartialEq)]
pub enum Offer {
    /// Accepted; the vector still waits for other models.
    Pending,
    /// Accepted, and every expected model has now voted: decide at once.
    Ready(Ready),
    /// This model already voted on this (open) vector; the first vote stands.
    Duplicate,
    /// The vector was already decided; the vote changes nothing.
    Late,
    /// The vote comes from a model that is not expected; it changes nothing.
    UnknownModel,
}

/// The votes of one vector, ready to be tallied. Each vector id is handed out at most once.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    /// The vector.
    pub vector_id: VectorId,
    /// Its votes, one per model, in the order received.
    pub votes: Vec<Vote>,
    /// True when every expected model voted; false when the window ran out first.
    pub complete: bool,
}

/// Counts of what the box has seen, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoxCounters {
    /// Votes accepted into an open ballot.
    pub accepted: u64,
    /// Repeated votes of one model on one open vector.
    pub duplicate: u64,
    /// Votes on vectors already decided.
    pub late: u64,
    /// Votes of models that are not expected.
    pub unknown_model: u64,
    /// Vectors handed out with every vote.
    pub decided_complete: u64,
    /// Vectors handed out because the window ran out.
    pub decided_timeout: u64,
    /// Of those, handed out early because the box was full.
    pub evicted: u64,
}

#[derive(Debug)]
struct Pending {
    first_at: Duration,
    votes: Vec<Vote>,
}

/// Gathers votes per vector until all expected models have voted or the window has passed.
#[derive(Debug)]
pub struct BallotBox {
    expected: Vec<ModelKind>,
    window: Duration,
    open: HashMap<VectorId, Pending>,
    /// (deadline, id) of every open ballot: the next deadline and the due ones in O(log n).
    deadlines: BTreeSet<(Duration, VectorId)>,
    max_open: usize,
    /// Ballots handed out early (the box was full), waiting for the next `expire`.
    evicted: VecDeque<Ready>,
    decided: HashSet<VectorId>,
    decided_order: VecDeque<VectorId>,
    decided_capacity: usize,
    decided_bytes: usize,
    decided_max_bytes: usize,
    counters: BoxCounters,
}

impl BallotBox {
    /// A box expecting votes from `expected`, deciding `window` after a vector's first vote at
    /// the latest.
    pub fn new(expected: Vec<ModelKind>, window: Duration) -> Self {
        BallotBox {
            expected,
            window,
            open: HashMap::new(),
            deadlines: BTreeSet::new(),
            max_open: DEFAULT_MAX_OPEN,
            evicted: VecDeque::new(),
            decided: HashSet::new(),
            decided_order: VecDeque::new(),
            decided_capacity: DEFAULT_DECIDED_CAPACITY,
            decided_bytes: 0,
            decided_max_bytes: DEFAULT_DECIDED_BYTES,
            counters: BoxCounters::default(),
        }
    }

    /// Remember at most `capacity` decided ids (the oldest are forgotten first).
    pub fn with_decided_capacity(mut self, capacity: usize) -> Self {
        self.decided_capacity = capacity.max(1);
        self
    }

    /// Remember decided ids of at most `bytes` bytes in all.
    pub fn with_decided_bytes(mut self, bytes: usize) -> Self {
        self.decided_max_bytes = bytes.max(1);
        self
    }

    /// At most `n` ballots open at once.
    pub fn with_max_open(mut self, n: usize) -> Self {
        self.max_open = n.max(1);
        self
    }

    /// Offer one vote.
    pub fn offer(&mut self, vote: Vote, now: Duration) -> Offer {
        if !self.expected.contains(&vote.model) {
            self.counters.unknown_model += 1;
            return Offer::UnknownModel;
        }
        if self.decided.contains(&vote.vector_id) {
            self.counters.late += 1;
            return Offer::Late;
        }
        if !self.open.contains_key(&vote.vector_id) {
            if self.open.len() >= self.max_open {
                if let Some((_, oldest)) = self.deadlines.first().cloned() {
                    let r = self.close(&oldest, false);
                    self.counters.evicted += 1;
                    self.evicted.push_back(r);
                }
            }
            self.deadlines
                .insert((now + self.window, vote.vector_id.clone()));
        }
        let pending = self
            .open
            .entry(vote.vector_id.clone())
            .or_insert_with(|| Pending {
                first_at: now,
                votes: Vec::with_capacity(self.expected.len()),
            });
        if pending.votes.iter().any(|v| v.model == vote.model) {
            self.counters.duplicate += 1;
            return Offer::Duplicate;
        }
        self.counters.accepted += 1;
        pending.votes.push(vote);
        let complete = self
            .expected
            .iter()
            .all(|m| pending.votes.iter().any(|v| v.model == *m));
        if complete {
            let id = pending.votes[0].vector_id.clone();
            let ready = self.close(&id, true);
            Offer::Ready(ready)
        } else {
            Offer::Pending
        }
    }

    /// Hand out every vector whose window has passed at `now`, oldest first.
    pub fn expire(&mut self, now: Duration) -> Vec<Ready> {
        self.expire_at_most(now, usize::MAX)
    }

    /// Like [`BallotBox::expire`], at most `n` (the oldest): a caller that decides them one by
    /// one can read new votes in between.
    pub fn expire_at_most(&mut self, now: Duration, n: usize) -> Vec<Ready> {
        let mut out: Vec<Ready> = Vec::new();
        while out.len() < n {
            match self.evicted.pop_front() {
                Some(r) => out.push(r),
                None => break,
            }
        }
        let due: Vec<VectorId> = self
            .deadlines
            .iter()
            .take_while(|(d, _)| *d <= now)
            .take(n - out.len())
            .map(|(_, id)| id.clone())
            .collect();
        out.extend(due.into_iter().map(|id| self.close(&id, false)));
        out
    }

    /// When the next window runs out, if any vector is open (zero when ballots were handed out
    /// early and wait for [`BallotBox::expire`]).
    pub fn next_deadline(&self) -> Option<Duration> {
        if !self.evicted.is_empty() {
            return Some(Duration::ZERO);
        }
        self.deadlines.first().map(|(d, _)| *d)
    }

    /// Record that `id` was decided (e.g. restored from a store after a restart).
    pub fn mark_decided(&mut self, id: VectorId) {
        if let Some(p) = self.open.remove(&id) {
            self.deadlines
                .remove(&(p.first_at + self.window, id.clone()));
        }
        if self.decided.insert(id.clone()) {
            self.decided_bytes += id.0.len();
            self.decided_order.push_back(id);
            while self.decided_order.len() > self.decided_capacity
                || (self.decided_bytes > self.decided_max_bytes && self.decided_order.len() > 1)
            {
                if let Some(old) = self.decided_order.pop_front() {
                    self.decided_bytes -= old.0.len();
                    self.decided.remove(&old);
                }
            }
        }
    }

    /// Whether `id` has been decided.
    pub fn is_decided(&self, id: &VectorId) -> bool {
        self.decided.contains(id)
    }

    /// Vectors waiting for votes.
    pub fn open_len(&self) -> usize {
        self.open.len()
    }

    /// What the box has seen.
    pub fn counters(&self) -> BoxCounters {
        self.counters
    }

    fn close(&mut self, id: &VectorId, complete: bool) -> Ready {
        let pending = self.open.remove(id).expect("closing an open ballot");
        self.deadlines
            .remove(&(pending.first_at + self.window, id.clone()));
        if complete {
            self.counters.decided_complete += 1;
        } else {
            self.counters.decided_timeout += 1;
        }
        self.mark_decided(id.clone());
        Ready {
            vector_id: id.clone(),
            votes: pending.votes,
            complete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoscaler_contract::fixtures;

    fn vote(id: &str, model: ModelKind, up: bool) -> Vote {
        fixtures::vote(id, model).ballot(up).replicas(2).build()
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn decides_at_once_when_every_model_voted() {
        let mut b = BallotBox::new(ModelKind::ALL.to_vec(), S(5));
        assert_eq!(
            b.offer(vote("a", ModelKind::Xgboost, true), S(0)),
            Offer::Pending
        );
        assert_eq!(
            b.offer(vote("a", ModelKind::RandomForest, true), S(1)),
            Offer::Pending
        );
        match b.offer(vote("a", ModelKind::LogisticRegression, false), S(2)) {
            Offer::Ready(r) => {
                assert!(r.complete);
                assert_eq!(r.votes.len(), 3);
            }
            other => panic!("{other:?}"),
        }
        assert!(b.is_decided(&VectorId("a".into())));
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn window_runs_from_the_first_vote() {
        let mut b = BallotBox::new(ModelKind::ALL.to_vec(), S(5));
        b.offer(vote("a", ModelKind::Xgboost, true), S(10));
        b.offer(vote("a", ModelKind::RandomForest, true), S(14));
        assert_eq!(b.next_deadline(), Some(S(15)));
        assert!(b.expire(S(14)).is_empty());
        let r = b.expire(S(15));
        assert_eq!(r.len(), 1);
        assert!(!r[0].complete);
        assert_eq!(r[0].votes.len(), 2);
        assert!(b.expire(S(100)).is_empty(), "handed out once");
    }

    #[test]
    fn late_duplicate_and_unknown_votes_change_nothing() {
        let mut b = BallotBox::new(vec![ModelKind::Xgboost, ModelKind::RandomForest], S(5));
        b.offer(vote("a", ModelKind::Xgboost, true), S(0));
        assert_eq!(
            b.offer(vote("a", ModelKind::Xgboost, false), S(1)),
            Offer::Duplicate
        );
        assert_eq!(
            b.offer(vote("a", ModelKind::LogisticRegression, true), S(1)),
            Offer::UnknownModel
        );
        let Offer::Ready(r) = b.offer(vote("a", ModelKind::RandomForest, true), S(2)) else {
            panic!("should be complete")
        };
        assert_eq!(r.votes[0].prediction, Some(1), "the first vote stands");
        assert_eq!(
            b.offer(vote("a", ModelKind::RandomForest, false), S(3)),
            Offer::Late
        );
        assert_eq!(
            b.offer(vote("a", ModelKind::Xgboost, false), S(3)),
            Offer::Late
        );
        let c = b.counters();
        assert_eq!(
            (
                c.accepted,
                c.duplicate,
                c.late,
                c.unknown_model,
                c.decided_complete
            ),
            (2, 1, 2, 1, 1)
        );
    }

    #[test]
    fn restored_ids_are_late_and_capacity_is_bounded() {
        let mut b = BallotBox::new(vec![ModelKind::Xgboost], S(5)).with_decided_capacity(2);
        b.mark_decided(VectorId("x".into()));
        assert_eq!(
            b.offer(vote("x", ModelKind::Xgboost, true), S(0)),
            Offer::Late
        );
        b.mark_decided(VectorId("y".into()));
        b.mark_decided(VectorId("z".into()));
        assert!(!b.is_decided(&VectorId("x".into())), "oldest forgotten");
        assert!(b.is_decided(&VectorId("z".into())));
    }

    /// Medium 11: open ballots are bounded (one more hands the oldest out at once), the
    /// decided ids are bounded by their bytes, and expiry can be taken in batches.
    #[test]
    fn open_ballots_and_decided_bytes_are_bounded() {
        let mut b = BallotBox::new(ModelKind::ALL.to_vec(), S(5)).with_max_open(3);
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            assert_eq!(
                b.offer(vote(id, ModelKind::Xgboost, true), S(i as u64)),
                Offer::Pending
            );
        }
        assert_eq!(
            b.offer(vote("d", ModelKind::Xgboost, true), S(3)),
            Offer::Pending
        );
        assert_eq!(b.open_len(), 3);
        assert_eq!(b.next_deadline(), Some(S(0)), "the evicted one is due now");
        assert_eq!(
            b.offer(vote("a", ModelKind::RandomForest, true), S(3)),
            Offer::Late
        );
        assert_eq!(
            b.offer(vote("b", ModelKind::RandomForest, true), S(3)),
            Offer::Pending
        );
        let first = b.expire_at_most(S(100), 2);
        assert_eq!(
            first
                .iter()
                .map(|r| r.vector_id.0.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"],
            "the evicted first, then the oldest, at most two"
        );
        assert_eq!(b.next_deadline(), Some(S(7)));
        assert_eq!(b.expire(S(100)).len(), 2);
        assert_eq!(b.next_deadline(), None);
        assert_eq!(b.counters().evicted, 1);

        let mut b = BallotBox::new(vec![ModelKind::Xgboost], S(5)).with_decided_bytes(100);
        for i in 0..50 {
            b.mark_decided(VectorId(format!("{i:0>20}")));
        }
        assert!(b.is_decided(&VectorId(format!("{:0>20}", 49))));
        assert!(
            !b.is_decided(&VectorId(format!("{:0>20}", 44))),
            "only ~100 bytes kept"
        );
        assert!(b.decided_bytes <= 100);
    }
}
