//! What the scaler must remember across restarts, in an embedded SQLite database.
//!
//! * `service_state`: per service, the metric times of the last scale-up and scale-down and the
//!   stabilization history (recent recommendations), so a scaler killed during a cooldown and
//!   restarted still honours it;
//! * `decisions`: the decision log — one row per decided vector (id, service, times, the
//!   published decision as JSON). Its ids are loaded into the ballot box on start, so a vote
//!   redelivered after a restart (Kafka, at least once) never decides a vector twice.
//!
//! The scaler writes a decision and the envelope state it leaves in **one transaction before
//! publishing** it — decisions that arrive together share that transaction
//! ([`Store::commit_batch`]) — and, when the decision changes a replica count, the state once
//! more *before* actuating: a crash between the two leaves a cooldown that started without a
//! change (safe), never a change without its cooldown.
//!
//! WAL journal with `synchronous=NORMAL`: a committed transaction survives the process being
//! killed (SIGKILL); only a power loss can drop the last few.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;

use autoscaler_contract::{encode, Decision, VectorId};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::envelope::ServiceState;

/// Decision-log rows kept (the oldest are pruned); matches the ballot box's memory of decided ids.
pub const DEFAULT_KEEP_DECISIONS: usize = 200_000;

/// Decisions recorded between two prunings of the decision log.
const PRUNE_EVERY: u64 = 1000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS service_state (
    service            TEXT PRIMARY KEY,
    last_scale_up_ms   INTEGER,
    last_scale_down_ms INTEGER,
    recent_json        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    vector_id      TEXT NOT NULL UNIQUE,
    service        TEXT NOT NULL,
    metric_time_ms INTEGER NOT NULL,
    decided_at_ms  INTEGER NOT NULL,
    acted          INTEGER NOT NULL,
    decision_json  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_by_service ON decisions (service, seq);
CREATE TABLE IF NOT EXISTS outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    vector_id     TEXT NOT NULL UNIQUE,
    decision_json TEXT NOT NULL
);
";

/// Migrations, in order: `MIGRATIONS[i]` takes a database from schema version `i + 1` to
/// `i + 2` (version 1 is [`SCHEMA`]; SQLite's `user_version` holds the version, 0 meaning a
/// database from before versions were kept, whose tables are those of version 1).
const MIGRATIONS: &[&str] = &[
    // 2: an outbox entry counts its failed publications; after the budget it is quarantined.
    "ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE IF NOT EXISTS quarantine (
         vector_id        TEXT PRIMARY KEY,
         decision_json    TEXT NOT NULL,
         attempts         INTEGER NOT NULL,
         quarantined_at_ms INTEGER NOT NULL
     );",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1 + MIGRATIONS.len() as i64;

/// One entry of the outbox: a decision recorded but not (known to be) published.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// The decided vector.
    pub vector_id: VectorId,
    /// Failed publications so far.
    pub attempts: u32,
    /// The decision, or why its row does not decode.
    pub decision: Result<Decision, String>,
}

/// One `service_state` row (cooldown starts in unix ms, the stabilization history as JSON)
/// decoded, or why it does not decode. Total: no input panics (fuzzed).
pub fn state_from_row(
    up_ms: Option<i64>,
    down_ms: Option<i64>,
    recent_json: &str,
) -> Result<ServiceState, String> {
    let pairs: Vec<(i64, u32)> = serde_json::from_str(recent_json).map_err(|e| {
        autoscaler_contract::truncate_text(&e.to_string(), autoscaler_contract::MAX_REASON_LEN)
    })?;
    let recent: VecDeque<(DateTime<Utc>, u32)> = pairs
        .into_iter()
        .filter_map(|(t, r)| from_ms(t).map(|t| (t, r)))
        .collect();
    Ok(ServiceState {
        last_scale_up: up_ms.and_then(from_ms),
        last_scale_down: down_ms.and_then(from_ms),
        recent,
    })
}

/// One `outbox` row decoded: its decision, or why that does not decode. Total (fuzzed).
pub fn outbox_entry_from_row(vector_id: String, attempts: i64, decision_json: &str) -> OutboxEntry {
    OutboxEntry {
        vector_id: VectorId(vector_id),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        decision: autoscaler_contract::decode::<Decision>(decision_json.as_bytes())
            .map_err(|e| e.to_string()),
    }
}

/// Errors of the state store. All are final for the scaler: it stops rather than act on state it
/// cannot keep.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (open, schema, read, write).
    #[error("state store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored row does not decode.
    #[error("state store {path}: corrupt row: {what}")]
    Corrupt {
        /// The database file.
        path: String,
        /// What does not decode.
        what: String,
    },
}

/// The state store: one SQLite database file.
pub struct Store {
    conn: Mutex<Connection>,
    path: String,
    keep: usize,
    inserted: Mutex<u64>,
    commits: Mutex<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

impl Store {
    /// Open (creating if needed) the database at `path`; its directory is created too.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // An error here surfaces as SQLite's "unable to open", with the path.
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Sqlite {
            path: shown.clone(),
            source,
        })?;
        Store::init(conn, shown)
    }

    /// A store that lives only as long as this value (tests, `run` without a path).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Sqlite {
            path: ":memory:".into(),
            source,
        })?;
        Store::init(conn, ":memory:".into())
    }

    fn init(conn: Connection, path: String) -> Result<Store, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Corrupt {
                path: path.clone(),
                what: format!(
                    "schema version {version} is newer than this build's {SCHEMA_VERSION}: \
                     written by a newer scaler"
                ),
            });
        }
        for (i, m) in MIGRATIONS.iter().enumerate() {
            let to = i as i64 + 2;
            if version.max(1) < to {
                conn.execute_batch(&format!("BEGIN; {m} PRAGMA user_version = {to}; COMMIT;"))
                    .map_err(err)?;
                tracing::info!(path, version = to, "state store migrated");
            }
        }
        Ok(Store {
            conn: Mutex::new(conn),
            path,
            keep: DEFAULT_KEEP_DECISIONS,
            inserted: Mutex::new(0),
            commits: Mutex::new(0),
        })
    }

    /// Keep at most `keep` decision-log rows (at least 1).
    pub fn with_keep(mut self, keep: usize) -> Self {
        self.keep = keep.max(1);
        self
    }

    /// Where the database is.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sqlite(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Every service's envelope state.
    pub fn load_states(&self) -> Result<HashMap<String, ServiceState>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT service, last_scale_up_ms, last_scale_down_ms, recent_json \
                 FROM service_state",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(|e| self.sqlite(e))?;
        let mut out = HashMap::new();
        for row in rows {
            let (service, up, down, recent) = row.map_err(|e| self.sqlite(e))?;
            match state_from_row(up, down, &recent) {
                Ok(state) => {
                    out.insert(service, state);
                }
                Err(e) => {
                    // Repaired, not fatal: both cooldowns start now (the cautious reading of a
                    // history that is lost), the stabilization history is empty.
                    tracing::error!(path = %self.path, service, error = %e,
                        "corrupt stored state: cooldowns restart now");
                    let now = Some(Utc::now());
                    out.insert(
                        service,
                        ServiceState {
                            last_scale_up: now,
                            last_scale_down: now,
                            recent: VecDeque::new(),
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    /// The ids of the most recently decided vectors (at most `limit`), oldest first.
    pub fn recent_decided(&self, limit: usize) -> Result<Vec<VectorId>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT vector_id FROM decisions ORDER BY seq DESC LIMIT ?1")
            .map_err(|e| self.sqlite(e))?;
        let mut ids: Vec<VectorId> = stmt
            .query_map([limit as i64], |r| r.get::<_, String>(0))
            .map_err(|e| self.sqlite(e))?
            .map(|r| r.map(VectorId))
            .collect::<Result<_, _>>()
            .map_err(|e| self.sqlite(e))?;
        ids.reverse();
        Ok(ids)
    }

    /// Whether `id` was decided.
    pub fn is_decided(&self, id: &VectorId) -> Result<bool, StoreError> {
        self.lock()
            .query_row(
                "SELECT 1 FROM decisions WHERE vector_id = ?1",
                [&id.0],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.sqlite(e))
    }

    /// Save one service's envelope state (before actuating).
    pub fn save_state(&self, service: &str, state: &ServiceState) -> Result<(), StoreError> {
        let conn = self.lock();
        upsert_state(&conn, service, state).map_err(|e| self.sqlite(e))
    }

    /// Record a decision and the envelope state it leaves, in one transaction.
    pub fn record(&self, decision: &Decision, state: &ServiceState) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let json = String::from_utf8_lossy(&encode(decision)).into_owned();
        let tx = conn.transaction().map_err(|e| self.sqlite(e))?;
        upsert_state(&tx, &decision.service, state).map_err(|e| self.sqlite(e))?;
        tx.execute(
            "INSERT INTO decisions \
             (vector_id, service, metric_time_ms, decided_at_ms, acted, decision_json) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(vector_id) DO NOTHING",
            params![
                decision.vector_id.0,
                decision.service,
                ms(decision.metric_time),
                ms(decision.timestamp),
                decision.acted,
                json
            ],
        )
        .map_err(|e| self.sqlite(e))?;
        // The outbox: recorded with the decision, cleared once the broker has it. A crash in
        // between leaves it here, and the next start publishes it (`unpublished`).
        tx.execute(
            "INSERT INTO outbox (vector_id, decision_json) VALUES (?1, ?2) \
             ON CONFLICT(vector_id) DO NOTHING",
            params![decision.vector_id.0, json],
        )
        .map_err(|e| self.sqlite(e))?;
        let mut inserted = self.inserted.lock().unwrap_or_else(|e| e.into_inner());
        *inserted += 1;
        // Prune now and then, not on every write.
        if *inserted >= PRUNE_EVERY {
            *inserted = 0;
            tx.execute(
                "DELETE FROM decisions WHERE seq <= (SELECT MAX(seq) FROM decisions) - ?1",
                [self.keep as i64],
            )
            .map_err(|e| self.sqlite(e))?;
        }
        tx.commit().map_err(|e| self.sqlite(e))
    }

    /// Record a batch of decisions (in decision order) with the envelope `states` they leave
    /// (each service once), and clear the outbox entries of `published` (decisions since
    /// acknowledged by the broker), in **one** transaction: one commit for decisions that
    /// arrive together. Each decision enters the outbox with its log row, so it is on disk
    /// before it is published.
    pub fn commit_batch(
        &self,
        batch: &[Decision],
        states: &[(&str, &ServiceState)],
        published: &[VectorId],
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.sqlite(e))?;
        {
            let mut log = tx
                .prepare_cached(
                    "INSERT INTO decisions \
                     (vector_id, service, metric_time_ms, decided_at_ms, acted, decision_json) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(vector_id) DO NOTHING",
                )
                .map_err(|e| self.sqlite(e))?;
            let mut outbox = tx
                .prepare_cached(
                    "INSERT INTO outbox (vector_id, decision_json) VALUES (?1, ?2) \
                     ON CONFLICT(vector_id) DO NOTHING",
                )
                .map_err(|e| self.sqlite(e))?;
            for (service, state) in states {
                upsert_state(&tx, service, state).map_err(|e| self.sqlite(e))?;
            }
            for decision in batch {
                let json = String::from_utf8_lossy(&encode(decision)).into_owned();
                log.execute(params![
                    decision.vector_id.0,
                    decision.service,
                    ms(decision.metric_time),
                    ms(decision.timestamp),
                    decision.acted,
                    json
                ])
                .map_err(|e| self.sqlite(e))?;
                outbox
                    .execute(params![decision.vector_id.0, json])
                    .map_err(|e| self.sqlite(e))?;
            }
            let mut clear = tx
                .prepare_cached("DELETE FROM outbox WHERE vector_id = ?1")
                .map_err(|e| self.sqlite(e))?;
            for id in published {
                clear.execute([&id.0]).map_err(|e| self.sqlite(e))?;
            }
        }
        let mut inserted = self.inserted.lock().unwrap_or_else(|e| e.into_inner());
        *inserted += batch.len() as u64;
        // Prune now and then, not on every write.
        if *inserted >= PRUNE_EVERY {
            *inserted = 0;
            tx.execute(
                "DELETE FROM decisions WHERE seq <= (SELECT MAX(seq) FROM decisions) - ?1",
                [self.keep as i64],
            )
            .map_err(|e| self.sqlite(e))?;
        }
        tx.commit().map_err(|e| self.sqlite(e))?;
        if !batch.is_empty() {
            *self.commits.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        }
        Ok(())
    }

    /// Transactions [`Store::commit_batch`] committed since the store was opened that recorded
    /// decisions.
    pub fn batch_commits(&self) -> u64 {
        *self.commits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The decision of `id` has been published: clear it from the outbox.
    pub fn mark_published(&self, id: &VectorId) -> Result<(), StoreError> {
        self.lock()
            .execute("DELETE FROM outbox WHERE vector_id = ?1", [&id.0])
            .map(|_| ())
            .map_err(|e| self.sqlite(e))
    }

    /// Every outbox entry, oldest first, each with its failed publications and its decision
    /// (or why it does not decode: a row is never a reason to stop).
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT vector_id, attempts, decision_json FROM outbox ORDER BY seq")
            .map_err(|e| self.sqlite(e))?;
        let rows: Vec<(String, i64, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.sqlite(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.sqlite(e))?;
        Ok(rows
            .into_iter()
            .map(|(id, attempts, json)| outbox_entry_from_row(id, attempts, &json))
            .collect())
    }

    /// Count a failed publication of `id`'s decision; at `budget` failures the entry leaves the
    /// outbox for the `quarantine` table (logged at ERROR: an operator must look at it).
    /// Returns whether it was quarantined.
    pub fn note_publish_failure(&self, id: &VectorId, budget: u32) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.sqlite(e))?;
        tx.execute(
            "UPDATE outbox SET attempts = attempts + 1 WHERE vector_id = ?1",
            [&id.0],
        )
        .map_err(|e| self.sqlite(e))?;
        let moved = tx
            .execute(
                "INSERT OR REPLACE INTO quarantine \
                 (vector_id, decision_json, attempts, quarantined_at_ms) \
                 SELECT vector_id, decision_json, attempts, ?2 FROM outbox \
                 WHERE vector_id = ?1 AND attempts >= ?3",
                params![id.0, ms(Utc::now()), budget],
            )
            .map_err(|e| self.sqlite(e))?;
        if moved > 0 {
            tx.execute("DELETE FROM outbox WHERE vector_id = ?1", [&id.0])
                .map_err(|e| self.sqlite(e))?;
            tracing::error!(alert = "decision_quarantined", path = %self.path, vector = %id,
                attempts = budget, "decision quarantined: it could not be published");
        }
        tx.commit().map_err(|e| self.sqlite(e))?;
        Ok(moved > 0)
    }

    /// The ids of the quarantined decisions, oldest first.
    pub fn quarantined(&self) -> Result<Vec<VectorId>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT vector_id FROM quarantine ORDER BY quarantined_at_ms, vector_id")
            .map_err(|e| self.sqlite(e))?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.sqlite(e))?
            .map(|r| r.map(VectorId))
            .collect::<Result<_, _>>()
            .map_err(|e| self.sqlite(e));
        ids
    }

    /// Decisions recorded but not (known to be) published, oldest first: a crash came between
    /// the two. The scaler publishes them again on start (a consumer may then see one twice,
    /// never zero times).
    pub fn unpublished(&self) -> Result<Vec<Decision>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT decision_json FROM outbox ORDER BY seq")
            .map_err(|e| self.sqlite(e))?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .map_err(|e| self.sqlite(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.sqlite(e))?;
        rows.iter()
            .map(|j| {
                autoscaler_contract::decode::<Decision>(j.as_bytes()).map_err(|e| {
                    StoreError::Corrupt {
                        path: self.path.clone(),
                        what: format!("outbox: {e}"),
                    }
                })
            })
            .collect()
    }

    /// The decision log of `service` (every service when `None`), newest last, at most `limit`.
    pub fn decisions(
        &self,
        service: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Decision>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT decision_json FROM decisions WHERE ?1 IS NULL OR service = ?1 \
                 ORDER BY seq DESC LIMIT ?2",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows: Vec<String> = stmt
            .query_map(params![service, limit as i64], |r| r.get(0))
            .map_err(|e| self.sqlite(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.sqlite(e))?;
        let mut out = rows
            .iter()
            .map(|j| {
                autoscaler_contract::decode::<Decision>(j.as_bytes()).map_err(|e| {
                    StoreError::Corrupt {
                        path: self.path.clone(),
                        what: format!("decision: {e}"),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }
}

fn upsert_state(conn: &Connection, service: &str, s: &ServiceState) -> rusqlite::Result<()> {
    let recent: Vec<(i64, u32)> = s.recent.iter().map(|(t, r)| (ms(*t), *r)).collect();
    let recent = serde_json::to_string(&recent).expect("pairs of integers serialize");
    conn.execute(
        "INSERT INTO service_state (service, last_scale_up_ms, last_scale_down_ms, recent_json) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT(service) DO UPDATE SET \
         last_scale_up_ms = excluded.last_scale_up_ms, \
         last_scale_down_ms = excluded.last_scale_down_ms, recent_json = excluded.recent_json",
        params![
            service,
            s.last_scale_up.map(ms),
            s.last_scale_down.map(ms),
            recent
        ],
    )?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_720_000_000 + s, 0).unwrap()
    }

    pub(crate) fn decision(id: &str, service: &str) -> Decision {
        autoscaler_contract::fixtures::decision(id, service)
            .decided_at(t(1))
            .metric_time(t(0))
            .build()
    }

    #[test]
    fn state_and_decisions_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.db");
        let state = ServiceState {
            last_scale_up: Some(t(0)),
            last_scale_down: None,
            recent: [(t(0), 3), (t(30), 2)].into_iter().collect(),
        };
        {
            let s = Store::open(&path).unwrap();
            s.record(&decision("v1", "orders"), &state).unwrap();
            s.record(&decision("v2", "front-end"), &ServiceState::default())
                .unwrap();
            // Recording the same vector again changes nothing.
            s.record(&decision("v1", "orders"), &state).unwrap();
        }
        let s = Store::open(&path).unwrap();
        let states = s.load_states().unwrap();
        assert_eq!(states["orders"], state);
        assert_eq!(states["front-end"], ServiceState::default());
        assert_eq!(
            s.recent_decided(10).unwrap(),
            vec![VectorId("v1".into()), VectorId("v2".into())]
        );
        assert_eq!(
            s.recent_decided(1).unwrap(),
            vec![VectorId("v2".into())],
            "the most recent"
        );
        assert!(s.is_decided(&VectorId("v1".into())).unwrap());
        assert!(!s.is_decided(&VectorId("v3".into())).unwrap());
        let log = s.decisions(Some("orders"), 10).unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0], decision("v1", "orders"));
        assert_eq!(s.decisions(None, 10).unwrap().len(), 2);
    }

    #[test]
    fn a_recorded_decision_stays_in_the_outbox_until_published() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).unwrap();
        let st = ServiceState::default();
        store.record(&decision("a", "orders"), &st).unwrap();
        store.record(&decision("b", "orders"), &st).unwrap();
        store.mark_published(&VectorId("a".into())).unwrap();
        drop(store);
        // A crash before "b" was published: the reopened store still has it, and only it.
        let store = Store::open(&path).unwrap();
        let pending = store.unpublished().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].vector_id, VectorId("b".into()));
        assert_eq!(pending[0], decision("b", "orders"));
        store.mark_published(&VectorId("b".into())).unwrap();
        assert!(store.unpublished().unwrap().is_empty());
    }

    #[test]
    fn the_log_is_pruned_to_its_capacity() {
        let s = Store::open_in_memory().unwrap().with_keep(10);
        for i in 0..1000 {
            s.record(
                &decision(&format!("v{i}"), "orders"),
                &ServiceState::default(),
            )
            .unwrap();
        }
        let ids = s.recent_decided(usize::MAX >> 1).unwrap();
        assert_eq!(ids.len(), 10);
        assert_eq!(ids.last().unwrap().0, "v999");
    }

    /// A database from before schema versions (the outbox had no `attempts`) is migrated in
    /// place, its pending decision kept; one from a newer build is refused, not misread.
    #[test]
    fn an_old_database_is_migrated_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            let json = String::from_utf8(encode(&decision("orders@1@0", "orders"))).unwrap();
            conn.execute(
                "INSERT INTO outbox (vector_id, decision_json) VALUES ('orders@1@0', ?1)",
                [json],
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let out = s.outbox().unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].attempts, 0);
        assert!(!s.note_publish_failure(&out[0].vector_id, 2).unwrap());
        assert_eq!(s.outbox().unwrap()[0].attempts, 1);
        drop(s);
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, super::SCHEMA_VERSION);
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        let e = Store::open(&path).unwrap_err().to_string();
        assert!(e.contains("newer"), "{e}");
    }

    /// A stabilization history that does not decode no longer stops the scaler: the service's
    /// cooldowns restart now.
    #[test]
    fn a_corrupt_state_row_is_repaired_not_fatal() {
        let s = Store::open_in_memory().unwrap();
        s.save_state("orders", &ServiceState::default()).unwrap();
        s.lock()
            .execute("UPDATE service_state SET recent_json = 'garbage'", [])
            .unwrap();
        let before = Utc::now();
        let st = &s.load_states().unwrap()["orders"];
        assert!(st.recent.is_empty());
        assert!(st.last_scale_up.unwrap() >= before - chrono::Duration::seconds(1));
        assert!(st.last_scale_down.is_some());
    }
}
