//! A simulated cluster: desired and ready replicas per service.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::SimError;

/// Desired replicas of every service and when each becomes ready.
///
/// A cheap [`Clone`] handle: clones share the same state, so the scaler's actuator and the
/// replay feeds can hold one each. Times are seconds on the caller's clock (simulation time).
///
/// * [`register`](Self::register) starts a service with replicas that are ready at once;
/// * [`set_replicas`](Self::set_replicas) scales: new replicas become ready `startup_delay_secs`
///   later; a scale-down removes not-yet-ready replicas first (the newest first), then ready
///   ones, immediately.
///
/// Queries answer from the current state, so asking about a time before a scale-down already
/// made does not see the removed replicas.
#[derive(Debug, Clone)]
pub struct SimulatedCluster {
    startup_delay_secs: f64,
    services: Arc<Mutex<BTreeMap<String, Vec<f64>>>>,
}

impl SimulatedCluster {
    /// An empty cluster whose new replicas take `startup_delay_secs` to become ready
    /// (negative or non-finite values are read as 0).
    pub fn new(startup_delay_secs: f64) -> Self {
        let delay = if startup_delay_secs.is_finite() {
            startup_delay_secs.max(0.0)
        } else {
            0.0
        };
        SimulatedCluster {
            startup_delay_secs: delay,
            services: Arc::default(),
        }
    }

    /// The start-up delay of new replicas, seconds.
    pub fn startup_delay_secs(&self) -> f64 {
        self.startup_delay_secs
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Vec<f64>>> {
        // The state is a plain map that no operation leaves half-updated, so a panic elsewhere
        // while holding the lock cannot corrupt it: recover from poisoning.
        self.services.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add (or reset) `service` with `initial_replicas` that are ready at `at_secs`.
    pub fn register(&self, service: &str, initial_replicas: u32, at_secs: f64) {
        self.lock().insert(
            service.to_string(),
            vec![at_secs; initial_replicas as usize],
        );
    }

    /// Set the desired replicas of `service` at `at_secs`.
    pub fn set_replicas(&self, service: &str, replicas: u32, at_secs: f64) -> Result<(), SimError> {
        let mut services = self.lock();
        let ready_at = services
            .get_mut(service)
            .ok_or_else(|| SimError::UnknownService(service.to_string()))?;
        let target = replicas as usize;
        if target > ready_at.len() {
            let when = at_secs + self.startup_delay_secs;
            ready_at.resize(target, when);
        } else {
            // Latest-ready last, so truncating removes the not-yet-ready ones (newest first),
            // then ready ones.
            ready_at.sort_by(f64::total_cmp);
            ready_at.truncate(target);
        }
        Ok(())
    }

    /// Desired replicas of `service`; `None` if it is not registered.
    pub fn desired(&self, service: &str) -> Option<u32> {
        self.lock().get(service).map(|r| r.len() as u32)
    }

    /// Replicas of `service` ready (serving) at `at_secs`; `None` if it is not registered.
    pub fn ready(&self, service: &str, at_secs: f64) -> Option<u32> {
        self.lock()
            .get(service)
            .map(|r| r.iter().filter(|&&t| t <= at_secs).count() as u32)
    }

    /// Names of the registered services, sorted.
    pub fn services(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn is_a_shared_send_sync_handle() {
        assert_send_sync::<SimulatedCluster>();
        let a = SimulatedCluster::new(60.0);
        let b = a.clone();
        a.register("web", 2, 0.0);
        assert_eq!(b.desired("web"), Some(2));
        assert_eq!(b.services(), vec!["web".to_string()]);
    }

    #[test]
    fn startup_delay_is_honoured() {
        let c = SimulatedCluster::new(60.0);
        c.register("web", 2, 0.0);
        assert_eq!(c.ready("web", 0.0), Some(2));
        c.set_replicas("web", 3, 100.0).unwrap();
        assert_eq!(c.desired("web"), Some(3));
        assert_eq!(c.ready("web", 100.0), Some(2));
        assert_eq!(c.ready("web", 159.9), Some(2));
        assert_eq!(c.ready("web", 160.0), Some(3));
    }

    #[test]
    fn scale_down_is_immediate_and_removes_pending_replicas_first() {
        let c = SimulatedCluster::new(60.0);
        c.register("web", 3, 0.0);
        c.set_replicas("web", 5, 10.0).unwrap();
        // Dropping to 4 removes a pending replica: still 3 ready, one due at 70 s.
        c.set_replicas("web", 4, 20.0).unwrap();
        assert_eq!(c.ready("web", 20.0), Some(3));
        assert_eq!(c.ready("web", 70.0), Some(4));
        // Dropping to 2 removes the last pending one and one ready replica, at once.
        c.set_replicas("web", 2, 30.0).unwrap();
        assert_eq!(c.desired("web"), Some(2));
        assert_eq!(c.ready("web", 30.0), Some(2));
        assert_eq!(c.ready("web", 1000.0), Some(2));
        c.set_replicas("web", 0, 40.0).unwrap();
        assert_eq!(c.ready("web", 40.0), Some(0));
    }

    #[test]
    fn unknown_service_is_an_error_not_a_panic() {
        let c = SimulatedCluster::new(60.0);
        assert!(matches!(
            c.set_replicas("nope", 1, 0.0),
            Err(SimError::UnknownService(s)) if s == "nope"
        ));
        assert_eq!(c.desired("nope"), None);
        assert_eq!(c.ready("nope", 0.0), None);
    }
}
