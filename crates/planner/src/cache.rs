//! The per-second plan cache, as the seed's plugin does it.
//!
//! A plan is `cache_size` replica counts, one per second. The value served at time `now` is
//! the one at `seconds_elapsed % cache_size`, `seconds_elapsed` counted from when the plan was
//! installed. After [`CACHE_USES_BEFORE_REFRESH`] uses a fresh plan is due
//! ([`Served::Plan::refresh`]); until one arrives (or when the optimizer fails) the cache keeps
//! serving the plan it has. Metrics older than their allowed age give the conservative default:
//! hold the current count, never scale down.

use serde::Serialize;

use crate::PlanError;

/// Uses of one plan before a fresh one is requested.
pub const CACHE_USES_BEFORE_REFRESH: u32 = 2;
/// Metrics older than this (seconds) are stale: hold.
pub const MAX_METRICS_AGE_SECS: f64 = 120.0;

/// Why the cache holds the current count instead of serving a plan value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum HoldReason {
    /// The metrics the plan would act on are too old.
    StaleMetrics {
        /// Their age (seconds).
        age_secs: f64,
    },
    /// No plan has been installed yet.
    NoPlan,
}

/// What the cache serves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Served {
    /// A value of the cached plan.
    Plan {
        /// Replicas.
        replicas: u32,
        /// Index into the plan (`seconds_elapsed % cache_size`).
        index: usize,
        /// Whether a fresh plan is due (request one; keep serving this one meanwhile).
        refresh: bool,
        /// Whether the cached plan is a fallback plan.
        fallback: bool,
    },
    /// The conservative default: the current count.
    Hold {
        /// Replicas (the current count).
        replicas: u32,
        /// Why.
        reason: HoldReason,
    },
}

impl Served {
    /// The replica count served.
    pub fn replicas(&self) -> u32 {
        match self {
            Served::Plan { replicas, .. } | Served::Hold { replicas, .. } => *replicas,
        }
    }
}

/// The cache.
#[derive(Debug, Clone, Default)]
pub struct PlanCache {
    desired: Vec<u32>,
    installed_at_secs: f64,
    fallback: bool,
    uses: u32,
    max_metrics_age_secs: Option<f64>,
    failures: u64,
}

impl PlanCache {
    /// An empty cache with the default metrics age limit.
    pub fn new() -> Self {
        PlanCache::default()
    }

    /// An empty cache whose metrics may be at most `secs` old.
    pub fn with_max_metrics_age(secs: f64) -> Self {
        PlanCache {
            max_metrics_age_secs: Some(secs),
            ..PlanCache::default()
        }
    }

    /// Install a fresh plan at `now_secs` (uses start again from 0).
    pub fn install(
        &mut self,
        desired: Vec<u32>,
        fallback: bool,
        now_secs: f64,
    ) -> Result<(), PlanError> {
        if desired.is_empty() {
            return Err(PlanError::Invalid("an empty plan cannot be cached".into()));
        }
        self.desired = desired;
        self.installed_at_secs = now_secs;
        self.fallback = fallback;
        self.uses = 0;
        Ok(())
    }

    /// The optimizer failed: keep serving the cached plan (counted).
    pub fn refresh_failed(&mut self) {
        self.failures += 1;
    }

    /// Optimizer failures seen.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Whether a fresh plan is due.
    pub fn needs_refresh(&self) -> bool {
        self.desired.is_empty() || self.uses >= CACHE_USES_BEFORE_REFRESH
    }

    /// The value for `now_secs`, given the current count and the age of the metrics.
    pub fn serve(&mut self, now_secs: f64, current: u32, metrics_age_secs: f64) -> Served {
        let max_age = self.max_metrics_age_secs.unwrap_or(MAX_METRICS_AGE_SECS);
        if !(metrics_age_secs.is_finite() && metrics_age_secs <= max_age) {
            return Served::Hold {
                replicas: current,
                reason: HoldReason::StaleMetrics {
                    age_secs: metrics_age_secs,
                },
            };
        }
        if self.desired.is_empty() {
            return Served::Hold {
                replicas: current,
                reason: HoldReason::NoPlan,
            };
        }
        let elapsed = (now_secs - self.installed_at_secs).max(0.0).floor() as usize;
        let index = elapsed % self.desired.len();
        self.uses = self.uses.saturating_add(1);
        Served::Plan {
            replicas: self.desired[index],
            index,
            refresh: self.uses >= CACHE_USES_BEFORE_REFRESH,
            fallback: self.fallback,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_value_at_seconds_elapsed_mod_cache_size() {
        let mut c = PlanCache::new();
        c.install(vec![3, 4, 5], false, 100.0).unwrap();
        assert_eq!(c.serve(100.2, 3, 1.0).replicas(), 3);
        c.install(vec![3, 4, 5], false, 100.0).unwrap();
        assert_eq!(c.serve(101.0, 3, 1.0).replicas(), 4);
        c.install(vec![3, 4, 5], false, 100.0).unwrap();
        match c.serve(105.5, 3, 1.0) {
            Served::Plan {
                index, replicas, ..
            } => assert_eq!((index, replicas), (2, 5)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_fresh_plan_is_due_after_two_uses() {
        let mut c = PlanCache::new();
        assert!(c.needs_refresh());
        c.install(vec![2; 10], false, 0.0).unwrap();
        assert!(!c.needs_refresh());
        assert!(matches!(
            c.serve(0.0, 2, 0.0),
            Served::Plan { refresh: false, .. }
        ));
        assert!(matches!(
            c.serve(1.0, 2, 0.0),
            Served::Plan { refresh: true, .. }
        ));
        assert!(c.needs_refresh());
        c.install(vec![5; 10], false, 2.0).unwrap();
        assert!(!c.needs_refresh());
        assert_eq!(c.serve(2.0, 2, 0.0).replicas(), 5);
    }

    #[test]
    fn keeps_serving_when_the_optimizer_fails() {
        let mut c = PlanCache::new();
        c.install(vec![6, 7], false, 0.0).unwrap();
        c.serve(0.0, 6, 0.0);
        c.serve(1.0, 6, 0.0);
        assert!(c.needs_refresh());
        c.refresh_failed();
        assert_eq!(c.failures(), 1);
        // Still the old plan, still asking for a fresh one.
        assert!(matches!(
            c.serve(2.0, 6, 0.0),
            Served::Plan {
                replicas: 6,
                refresh: true,
                ..
            }
        ));
        assert_eq!(c.serve(3.0, 6, 0.0).replicas(), 7);
    }

    #[test]
    fn stale_metrics_hold_and_never_scale_down() {
        let mut c = PlanCache::with_max_metrics_age(30.0);
        c.install(vec![1; 5], false, 0.0).unwrap();
        let s = c.serve(1.0, 8, 31.0);
        assert_eq!(
            s,
            Served::Hold {
                replicas: 8,
                reason: HoldReason::StaleMetrics { age_secs: 31.0 }
            }
        );
        assert!(matches!(
            c.serve(1.0, 8, f64::NAN),
            Served::Hold { replicas: 8, .. }
        ));
        // Fresh metrics: the plan (1) is served.
        assert_eq!(c.serve(1.0, 8, 5.0).replicas(), 1);
    }

    #[test]
    fn no_plan_holds_and_an_empty_plan_is_refused() {
        let mut c = PlanCache::new();
        assert_eq!(
            c.serve(0.0, 4, 0.0),
            Served::Hold {
                replicas: 4,
                reason: HoldReason::NoPlan
            }
        );
        assert!(c.install(vec![], false, 0.0).is_err());
    }

    #[test]
    fn fallback_plans_are_marked() {
        let mut c = PlanCache::new();
        c.install(vec![2], true, 0.0).unwrap();
        assert!(matches!(
            c.serve(0.0, 2, 0.0),
            Served::Plan { fallback: true, .. }
        ));
    }
}
