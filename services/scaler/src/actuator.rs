//! The actuator boundary: the only code that changes replica counts.
//!
//! [`Actuator`] is implemented here by [`SimulatedActuator`] (an in-memory cluster, for the
//! replay and the demo) and [`DryRunActuator`] (reads, logs what it would do, changes nothing).
//! Docker Swarm ([`crate::swarm::SwarmActuator`]) and EC2 implement the same trait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::policy::ServicePolicy;

/// Errors of an actuator, classified so the caller can choose to retry.
#[derive(Debug, thiserror::Error)]
pub enum ActuatorError {
    /// The backend did not answer or answered a transient error (timeout, 5xx, throttling).
    #[error("actuator unavailable: {0}")]
    Unavailable(String),
    /// The service is not managed by this actuator.
    #[error("unknown service `{0}`")]
    UnknownService(String),
    /// Retrying will not help (bad request, forbidden, invalid replica count).
    #[error("actuation refused: {0}")]
    Refused(String),
    /// The replica count is not the one the decision was made on (somebody scaled the service
    /// in between): nothing was changed; the next vector decides again on the fresh count.
    #[error("replicas of `{service}` are {found}, not the {expected} the decision was made on")]
    Conflict {
        /// The service.
        service: String,
        /// The count the decision was made on.
        expected: u32,
        /// The count found.
        found: u32,
    },
    /// The backend did not answer the change and could not be read back: it may or may not
    /// have happened. The scaler keeps the cooldown the change started (as if it happened).
    #[error("actuation outcome unknown: {0}")]
    Ambiguous(String),
    /// The change carries the lease epoch `epoch`, but the service was already changed under a
    /// later one (`seen`): this scaler was deposed and its write is refused (fencing).
    #[error(
        "`{service}` was changed under lease epoch {seen}; this scaler's epoch {epoch} is deposed"
    )]
    Fenced {
        /// The service.
        service: String,
        /// The epoch this change carries.
        epoch: u64,
        /// The highest epoch the service has seen.
        seen: u64,
    },
    /// The Docker daemon could not be reached or broke the connection (retryable). Docker's
    /// client error is kept as the cause, for a caller to match (an I/O error, a hyper error…).
    #[error("actuator unavailable: docker daemon unreachable: {source}")]
    DockerUnreachable {
        /// The Docker client's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The service's policy (labels, policy file) does not parse or contradicts itself; the
    /// service is left alone until it is fixed.
    #[error("bad policy for `{service}`: {}", .problems.join("; "))]
    BadPolicy {
        /// The service.
        service: String,
        /// Every problem.
        problems: Vec<String>,
    },
}

impl ActuatorError {
    /// Whether retrying later may help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ActuatorError::Unavailable(_) | ActuatorError::DockerUnreachable { .. }
        )
    }
}

/// Reads and sets replica counts. Setting is a compare-and-set of the *desired* count: it
/// changes `expected` to `target`, and refuses ([`ActuatorError::Conflict`]) when the count is no
/// longer `expected` — a concurrent `docker service scale` is never overwritten by a decision
/// made on the old count. Setting to a count already in place succeeds without a change.
#[async_trait]
pub trait Actuator: Send + Sync {
    /// A short name for logs (`simulated`, `dry-run`, `swarm`).
    fn name(&self) -> &'static str;
    /// The current (desired) replica count of `service`.
    async fn current(&self, service: &str) -> Result<u32, ActuatorError>;
    /// Set the desired replica count of `service` from `expected` to `target`.
    async fn set_replicas(
        &self,
        service: &str,
        expected: u32,
        target: u32,
    ) -> Result<(), ActuatorError>;
    /// [`Actuator::set_replicas`] fenced by the lease: `epoch` is the lease epoch the change is
    /// made under (the fencing token; it only grows). A backend that can keep it with the
    /// service records it with the change, atomically, and refuses
    /// ([`ActuatorError::Fenced`]) a change under an epoch lower than one it has recorded: a
    /// deposed scaler's late write (a pause past its lease) never lands after its successor's.
    /// The simulated and Swarm actuators fence; the default (dry-run, a backend that cannot)
    /// only sets.
    async fn set_replicas_fenced(
        &self,
        service: &str,
        expected: u32,
        target: u32,
        epoch: u64,
    ) -> Result<(), ActuatorError> {
        let _ = epoch;
        self.set_replicas(service, expected, target).await
    }
    /// Whether the backend answers.
    async fn healthcheck(&self) -> Result<(), ActuatorError>;
    /// The service's own policy (bounds, SLA, strategy, dry-run), read fresh; fields it leaves
    /// `None` fall back to the scaler's global configuration. Default: no policy of its own.
    async fn policy(&self, _service: &str) -> Result<ServicePolicy, ActuatorError> {
        Ok(ServicePolicy::default())
    }
    /// Whether `set_replicas` really changes anything (false for dry-run).
    fn changes_cluster(&self) -> bool {
        true
    }
    /// Whether services may carry a policy of their own (labels, a policy file), so one of them
    /// may choose a scaling policy that needs the metrics. Default: no.
    fn has_service_policies(&self) -> bool {
        false
    }
}

/// Policies (or their problems) per service.
type Policies = HashMap<String, Result<ServicePolicy, Vec<String>>>;

/// An in-memory cluster: a replica count per service.
///
/// A service it has not seen starts at `initial_replicas` (the replay source starts its
/// simulated services at the same count), unless `known_services` restricts it, in which case an
/// unknown service is an error — as it would be on a real cluster.
#[derive(Clone, Debug)]
pub struct SimulatedActuator {
    replicas: Arc<Mutex<HashMap<String, u32>>>,
    /// The highest lease epoch each service was changed under.
    fences: Arc<Mutex<HashMap<String, u64>>>,
    policies: Arc<Mutex<Policies>>,
    initial_replicas: u32,
    only_known: bool,
}

impl SimulatedActuator {
    /// Every service starts at `initial_replicas`.
    pub fn new(initial_replicas: u32) -> Self {
        SimulatedActuator {
            replicas: Arc::default(),
            fences: Arc::default(),
            policies: Arc::default(),
            initial_replicas,
            only_known: false,
        }
    }

    /// Only the listed services exist.
    pub fn with_services(services: &[(String, u32)]) -> Self {
        SimulatedActuator {
            replicas: Arc::new(Mutex::new(services.iter().cloned().collect())),
            fences: Arc::default(),
            policies: Arc::default(),
            initial_replicas: 0,
            only_known: true,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.replicas.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn compare_and_set(
        &self,
        service: &str,
        expected: u32,
        target: u32,
    ) -> Result<(), ActuatorError> {
        let mut map = self.lock();
        let found = match map.get(service) {
            Some(n) => *n,
            None if self.only_known => return Err(ActuatorError::UnknownService(service.into())),
            None => self.initial_replicas,
        };
        if found != expected && found != target {
            return Err(ActuatorError::Conflict {
                service: service.into(),
                expected,
                found,
            });
        }
        map.insert(service.into(), target);
        Ok(())
    }

    /// Give `service` a policy of its own, or (`Err`) a broken one, as labels would.
    pub fn set_policy(&self, service: &str, policy: Result<ServicePolicy, Vec<String>>) {
        self.policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(service.into(), policy);
    }
}

#[async_trait]
impl Actuator for SimulatedActuator {
    fn name(&self) -> &'static str {
        "simulated"
    }

    async fn current(&self, service: &str) -> Result<u32, ActuatorError> {
        let mut map = self.lock();
        match map.get(service) {
            Some(n) => Ok(*n),
            None if self.only_known => Err(ActuatorError::UnknownService(service.into())),
            None => {
                map.insert(service.into(), self.initial_replicas);
                Ok(self.initial_replicas)
            }
        }
    }

    async fn set_replicas(
        &self,
        service: &str,
        expected: u32,
        target: u32,
    ) -> Result<(), ActuatorError> {
        self.compare_and_set(service, expected, target)
    }

    async fn set_replicas_fenced(
        &self,
        service: &str,
        expected: u32,
        target: u32,
        epoch: u64,
    ) -> Result<(), ActuatorError> {
        let mut fences = self.fences.lock().unwrap_or_else(|e| e.into_inner());
        let seen = fences.get(service).copied().unwrap_or(0);
        if epoch < seen {
            return Err(ActuatorError::Fenced {
                service: service.into(),
                epoch,
                seen,
            });
        }
        self.compare_and_set(service, expected, target)?;
        fences.insert(service.into(), epoch);
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), ActuatorError> {
        Ok(())
    }

    async fn policy(&self, service: &str) -> Result<ServicePolicy, ActuatorError> {
        let policies = self.policies.lock().unwrap_or_else(|e| e.into_inner());
        match policies.get(service) {
            None => Ok(ServicePolicy::default()),
            Some(Ok(p)) => Ok(p.clone()),
            Some(Err(problems)) => Err(ActuatorError::BadPolicy {
                service: service.into(),
                problems: problems.clone(),
            }),
        }
    }

    fn has_service_policies(&self) -> bool {
        !self
            .policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// Reads from an inner actuator (or assumes `initial_replicas` for a service it has no reader
/// for) and logs what it would set, changing nothing.
pub struct DryRunActuator {
    inner: Option<Arc<dyn Actuator>>,
    initial_replicas: u32,
}

impl DryRunActuator {
    /// Dry-run on top of a real reader.
    pub fn wrapping(inner: Arc<dyn Actuator>) -> Self {
        DryRunActuator {
            inner: Some(inner),
            initial_replicas: 0,
        }
    }

    /// Dry-run with no cluster at all: every service is taken to run `initial_replicas`.
    pub fn standalone(initial_replicas: u32) -> Self {
        DryRunActuator {
            inner: None,
            initial_replicas,
        }
    }
}

#[async_trait]
impl Actuator for DryRunActuator {
    fn name(&self) -> &'static str {
        "dry-run"
    }

    async fn current(&self, service: &str) -> Result<u32, ActuatorError> {
        match &self.inner {
            Some(a) => a.current(service).await,
            None => Ok(self.initial_replicas),
        }
    }

    async fn set_replicas(
        &self,
        service: &str,
        expected: u32,
        target: u32,
    ) -> Result<(), ActuatorError> {
        tracing::info!(
            service,
            from = expected,
            to = target,
            "dry-run: would set replicas"
        );
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), ActuatorError> {
        match &self.inner {
            Some(a) => a.healthcheck().await,
            None => Ok(()),
        }
    }

    async fn policy(&self, service: &str) -> Result<ServicePolicy, ActuatorError> {
        match &self.inner {
            Some(a) => a.policy(service).await,
            None => Ok(ServicePolicy::default()),
        }
    }

    fn changes_cluster(&self) -> bool {
        false
    }

    fn has_service_policies(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|a| a.has_service_policies())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn simulated_registry_and_dry_run() {
        let sim = SimulatedActuator::new(2);
        assert_eq!(sim.current("a").await.unwrap(), 2);
        sim.set_replicas("a", 2, 5).await.unwrap();
        assert_eq!(sim.current("a").await.unwrap(), 5);
        // Somebody scaled it to 8 meanwhile: a decision made on 5 does not overwrite that.
        sim.set_replicas("a", 5, 8).await.unwrap();
        assert!(matches!(
            sim.set_replicas("a", 5, 6).await,
            Err(ActuatorError::Conflict {
                expected: 5,
                found: 8,
                ..
            })
        ));
        assert_eq!(sim.current("a").await.unwrap(), 8);
        sim.set_replicas("a", 5, 8).await.unwrap();
        sim.set_replicas("a", 8, 5).await.unwrap();

        let strict = SimulatedActuator::with_services(&[("a".into(), 1)]);
        assert!(matches!(
            strict.current("b").await,
            Err(ActuatorError::UnknownService(_))
        ));

        let dry = DryRunActuator::wrapping(Arc::new(sim.clone()));
        dry.set_replicas("a", 5, 9).await.unwrap();
        assert_eq!(
            dry.current("a").await.unwrap(),
            5,
            "dry-run changes nothing"
        );
        assert!(!dry.changes_cluster());
    }

    /// A deposed scaler (epoch 1) cannot write after its successor (epoch 2) did.
    #[tokio::test]
    async fn a_lower_lease_epoch_is_fenced_off() {
        let sim = SimulatedActuator::new(2);
        sim.set_replicas_fenced("a", 2, 3, 1).await.unwrap();
        sim.set_replicas_fenced("a", 3, 4, 2).await.unwrap();
        assert!(matches!(
            sim.set_replicas_fenced("a", 4, 5, 1).await,
            Err(ActuatorError::Fenced {
                epoch: 1,
                seen: 2,
                ..
            })
        ));
        assert_eq!(sim.current("a").await.unwrap(), 4);
        sim.set_replicas_fenced("a", 4, 5, 2).await.unwrap();
        sim.set_replicas_fenced("b", 2, 3, 1).await.unwrap();
    }
}
