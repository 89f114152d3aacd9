//! The Docker Swarm actuator: replica counts of Swarm services, through the Docker Engine API
//! (`bollard`, the local socket or `DOCKER_HOST`).
//!
//! * **Which services**: those labelled `autoscaler.enable=true`, and those listed in the policy
//!   file; any other service is [`ActuatorError::UnknownService`] and never touched. Policy per
//!   service comes from its labels and the file ([`crate::policy`]); a policy that does not parse
//!   or contradicts itself is [`ActuatorError::BadPolicy`] for that service only.
//! * **Every change reads fresh**: `set_replicas` inspects the service, checks it is still managed
//!   and the target is inside its bounds, and updates the replica count *with the version it
//!   read*. Swarm refuses an update whose version is out of date ("update out of sequence", HTTP
//!   500): somebody else changed the service in between; the update is retried on a fresh read, a
//!   bounded number of times. Nothing else is ever retried blindly.
//! * **Errors are classified**: 5xx, timeouts and an unreachable daemon are retryable
//!   ([`ActuatorError::Unavailable`]); 404 is [`ActuatorError::UnknownService`]; other 4xx and a
//!   spec it cannot scale (global mode, no replica count) are final ([`ActuatorError::Refused`]).
//!   When the replica count cannot be read the scaler holds: no number is ever assumed.
//! * The client connects lazily and negotiates the API version with the daemon on first use
//!   (Debian's dockerd 20.10 speaks API 1.41), so a scaler started before the daemon holds with a
//!   clear error until the daemon answers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as DockerError;
use bollard::models::{Service, ServiceSpec};
use bollard::query_parameters::{InspectServiceOptions, ListServicesOptions, UpdateServiceOptions};
use bollard::Docker;

use crate::actuator::{Actuator, ActuatorError};
use crate::policy::{self, LabelPolicy, PolicyFile, ServicePolicy};

/// The local Docker socket.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
/// Per-request timeout of the Docker API.
pub const DEFAULT_DOCKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Fresh read-and-update attempts after a version conflict.
pub const DEFAULT_CONFLICT_RETRIES: u32 = 5;
/// The label an update writes with the lease epoch it was made under (the fencing token):
/// an update under a lower epoch than the label's is refused.
pub const LABEL_LEASE_EPOCH: &str = "autoscaler.lease_epoch";
/// Fresh reads after an update whose answer was lost (a timeout: it may have happened).
pub const AMBIGUOUS_REREADS: u32 = 3;

/// Configuration of the Swarm actuator.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// `unix:///path`, a bare socket path, or `tcp://host:port`.
    pub docker_host: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Policies of services from a file (labels win where both set a field).
    pub policy_file: PolicyFile,
    /// Fresh read-and-update attempts after a version conflict.
    pub conflict_retries: u32,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            docker_host: DEFAULT_DOCKER_HOST.into(),
            timeout: DEFAULT_DOCKER_TIMEOUT,
            policy_file: PolicyFile::default(),
            conflict_retries: DEFAULT_CONFLICT_RETRIES,
        }
    }
}

/// Called between the fresh read and the update (tests use it to make a concurrent change).
pub type BeforeUpdateHook =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Scales Docker Swarm services.
pub struct SwarmActuator {
    cfg: SwarmConfig,
    client: tokio::sync::Mutex<Option<Docker>>,
    before_update: Option<BeforeUpdateHook>,
    conflicts: AtomicU64,
}

impl std::fmt::Debug for SwarmActuator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmActuator")
            .field("docker_host", &self.cfg.docker_host)
            .finish()
    }
}

/// A managed service as read from the daemon.
struct Managed {
    id: String,
    version: u64,
    spec: ServiceSpec,
    replicas: Result<u32, ActuatorError>,
    policy: ServicePolicy,
}

impl SwarmActuator {
    /// An actuator for the daemon at `cfg.docker_host`. Nothing is contacted yet.
    pub fn new(cfg: SwarmConfig) -> Self {
        SwarmActuator {
            cfg,
            client: tokio::sync::Mutex::new(None),
            before_update: None,
            conflicts: AtomicU64::new(0),
        }
    }

    /// Call `hook` between each fresh read and its update (for tests).
    pub fn with_before_update(mut self, hook: BeforeUpdateHook) -> Self {
        self.before_update = Some(hook);
        self
    }

    /// Version conflicts met (and retried) so far.
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    fn host_uri(&self) -> String {
        let h = self.cfg.docker_host.trim();
        if h.starts_with('/') {
            format!("unix://{h}")
        } else {
            h.to_string()
        }
    }

    async fn client(&self) -> Result<Docker, ActuatorError> {
        let mut cached = self.client.lock().await;
        if let Some(d) = cached.as_ref() {
            return Ok(d.clone());
        }
        let host = self.host_uri();
        let unreachable = |e: &dyn std::fmt::Display| {
            ActuatorError::Unavailable(format!("docker daemon unreachable at {host}: {e}"))
        };
        let docker = Docker::connect_with_host(&host)
            .map_err(|e| match e {
                DockerError::UnsupportedURISchemeError { .. } => ActuatorError::Refused(format!(
                    "docker host `{host}`: use unix:///path/to/docker.sock or tcp://host:port"
                )),
                e => unreachable(&e),
            })?
            .with_timeout(self.cfg.timeout);
        let docker = match tokio::time::timeout(self.cfg.timeout, docker.negotiate_version()).await
        {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Err(unreachable(&e)),
            Err(_) => {
                return Err(unreachable(&format!(
                    "no answer within {} s",
                    self.cfg.timeout.as_secs_f64()
                )))
            }
        };
        *cached = Some(docker.clone());
        Ok(docker)
    }

    /// Read a service fresh; `UnknownService` unless it is managed, `BadPolicy` when its policy
    /// is broken.
    async fn read(&self, service: &str) -> Result<Managed, ActuatorError> {
        let docker = self.client().await?;
        let s: Service = docker
            .inspect_service(service, None::<InspectServiceOptions>)
            .await
            .map_err(|e| classify(service, e, self.cfg.timeout))?;
        let spec = s.spec.ok_or_else(|| {
            ActuatorError::Unavailable(format!("service `{service}`: no spec in the answer"))
        })?;
        // Docker resolves a name it does not know as an ID prefix: `api` could be the service
        // `k3x…` of another team. Only the exact name or the full ID is the service asked for.
        let exact = spec.name.as_deref() == Some(service) || s.id.as_deref() == Some(service);
        if !exact {
            return Err(ActuatorError::UnknownService(format!(
                "{service} (no service of that name; Docker matched `{}` by ID prefix)",
                spec.name.as_deref().unwrap_or("?")
            )));
        }
        let labels = spec.labels.clone().unwrap_or_default();
        let from_file = self.cfg.policy_file.services.get(service);
        let bad = |problems| ActuatorError::BadPolicy {
            service: service.into(),
            problems,
        };
        let policy = match (policy::from_labels(&labels), from_file) {
            (Err(problems), _) => return Err(bad(problems)),
            (Ok(LabelPolicy::NotEnabled), None) => {
                return Err(ActuatorError::UnknownService(format!(
                    "{service} (not managed: no label {}=true and not in the policy file)",
                    policy::LABEL_ENABLE
                )))
            }
            (Ok(LabelPolicy::NotEnabled), Some(f)) => {
                // Labelled `enable=false` explicitly: the service itself opts out.
                if labels.contains_key(policy::LABEL_ENABLE) {
                    return Err(ActuatorError::UnknownService(format!(
                        "{service} (not managed: label {}=false)",
                        policy::LABEL_ENABLE
                    )));
                }
                f.clone()
            }
            (Ok(LabelPolicy::Enabled(l)), f) => f.cloned().unwrap_or_default().overridden_by(&l),
        };
        let problems = policy.problems();
        if !problems.is_empty() {
            return Err(bad(problems));
        }
        let replicas = match spec.mode.as_ref() {
            Some(m) if m.replicated.is_some() => {
                match m.replicated.as_ref().and_then(|r| r.replicas) {
                    Some(n) => u32::try_from(n).map_err(|_| {
                        ActuatorError::Refused(format!("service `{service}`: replicas {n}"))
                    }),
                    None => Err(ActuatorError::Refused(format!(
                        "service `{service}`: the spec has no replica count"
                    ))),
                }
            }
            _ => Err(ActuatorError::Refused(format!(
                "service `{service}` is not in replicated mode (global or job): it cannot be scaled"
            ))),
        };
        Ok(Managed {
            id: s.id.unwrap_or_else(|| service.to_string()),
            version: s.version.and_then(|v| v.index).ok_or_else(|| {
                ActuatorError::Unavailable(format!("service `{service}`: no version in the answer"))
            })?,
            spec,
            replicas,
            policy,
        })
    }

    /// Names of the services labelled `autoscaler.enable=true` (whatever their other labels say),
    /// then those of the policy file that exist, sorted.
    pub async fn managed_services(&self) -> Result<Vec<String>, ActuatorError> {
        let docker = self.client().await?;
        let filters: HashMap<String, Vec<String>> = [(
            "label".to_string(),
            vec![format!("{}=true", policy::LABEL_ENABLE)],
        )]
        .into_iter()
        .collect();
        let labelled = docker
            .list_services(Some(ListServicesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| classify("(list)", e, self.cfg.timeout))?;
        let all = if self.cfg.policy_file.services.is_empty() {
            Vec::new()
        } else {
            docker
                .list_services(None::<ListServicesOptions>)
                .await
                .map_err(|e| classify("(list)", e, self.cfg.timeout))?
        };
        let mut names: Vec<String> = labelled
            .into_iter()
            .chain(all.into_iter().filter(|s| {
                s.spec
                    .as_ref()
                    .and_then(|sp| sp.name.as_ref())
                    .is_some_and(|n| self.cfg.policy_file.services.contains_key(n))
            }))
            .filter_map(|s| s.spec.and_then(|sp| sp.name))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}

fn is_conflict(e: &DockerError) -> bool {
    matches!(e, DockerError::DockerResponseServerError { message, .. }
        if message.contains("out of sequence"))
}

/// Retryable (5xx, timeouts, no daemon) or final (4xx, bad answers).
fn classify(service: &str, e: DockerError, timeout: Duration) -> ActuatorError {
    match e {
        DockerError::DockerResponseServerError {
            status_code: 404,
            message,
        } => ActuatorError::UnknownService(format!("{service} ({message})")),
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } if status_code >= 500 || status_code == 429 || status_code == 408 => {
            ActuatorError::Unavailable(format!("docker answered {status_code}: {message}"))
        }
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => ActuatorError::Refused(format!("docker answered {status_code}: {message}")),
        DockerError::RequestTimeoutError => ActuatorError::Unavailable(format!(
            "docker did not answer within {} s",
            timeout.as_secs_f64()
        )),
        e @ (DockerError::JsonDataError { .. } | DockerError::JsonSerdeError { .. }) => {
            ActuatorError::Refused(format!("unexpected answer from docker: {e}"))
        }
        e => ActuatorError::DockerUnreachable { source: e },
    }
}

#[async_trait]
impl Actuator for SwarmActuator {
    fn name(&self) -> &'static str {
        "swarm"
    }

    async fn current(&self, service: &str) -> Result<u32, ActuatorError> {
        self.read(service).await?.replicas
    }

    async fn policy(&self, service: &str) -> Result<ServicePolicy, ActuatorError> {
        Ok(self.read(service).await?.policy)
    }

    fn has_service_policies(&self) -> bool {
        // Any service may carry `autoscaler.policy`.
        true
    }

    async fn set_replicas(
        &self,
        service: &str,
        expected: u32,
        replicas: u32,
    ) -> Result<(), ActuatorError> {
        self.update(service, expected, replicas, None).await
    }

    async fn set_replicas_fenced(
        &self,
        service: &str,
        expected: u32,
        replicas: u32,
        epoch: u64,
    ) -> Result<(), ActuatorError> {
        self.update(service, expected, replicas, Some(epoch)).await
    }

    async fn healthcheck(&self) -> Result<(), ActuatorError> {
        let docker = self.client().await?;
        docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| classify("(ping)", e, self.cfg.timeout))
    }
}

impl SwarmActuator {
    /// After an update whose answer was lost: read until the service says what happened. The
    /// target in place: done. The old count: not done (`err`). Another count: a conflict.
    async fn resolve_ambiguous(
        &self,
        service: &str,
        expected: u32,
        replicas: u32,
        err: ActuatorError,
    ) -> Result<(), ActuatorError> {
        for attempt in 1..=AMBIGUOUS_REREADS {
            tokio::time::sleep(Duration::from_millis(200) * attempt).await;
            match self.read(service).await.and_then(|m| m.replicas) {
                Ok(n) if n == replicas => {
                    tracing::warn!(service, to = replicas, error = %err,
                        "the update's answer was lost, but it happened");
                    return Ok(());
                }
                Ok(n) if n == expected => return Err(err),
                Ok(found) => {
                    return Err(ActuatorError::Conflict {
                        service: service.into(),
                        expected,
                        found,
                    })
                }
                Err(e) => tracing::warn!(service, error = %e, attempt,
                    "re-reading after an update whose answer was lost"),
            }
        }
        Err(ActuatorError::Ambiguous(format!(
            "{err}; `{service}` could not be read back: the update may have happened"
        )))
    }

    async fn update(
        &self,
        service: &str,
        expected: u32,
        replicas: u32,
        epoch: Option<u64>,
    ) -> Result<(), ActuatorError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let m = self.read(service).await?;
            let current = m.replicas?;
            if current != expected && current != replicas {
                // Compare-and-set: somebody scaled it since the decision read it (also after a
                // version conflict: the fresh read decides). Their count stands.
                return Err(ActuatorError::Conflict {
                    service: service.into(),
                    expected,
                    found: current,
                });
            }
            let (min, max) = (m.policy.min_replicas, m.policy.max_replicas);
            if min.is_some_and(|min| replicas < min) || max.is_some_and(|max| replicas > max) {
                // The envelope should never ask this; if the labels changed since it decided,
                // the fresh bounds win.
                return Err(ActuatorError::Refused(format!(
                    "{replicas} replicas is outside the bounds of `{service}` \
                     (min {min:?}, max {max:?}) as just read"
                )));
            }
            if m.policy.dry_run == Some(true) {
                // Labelled dry-run since the decision read it: the fresh label wins.
                return Err(ActuatorError::Refused(format!(
                    "`{service}` is labelled {}=true as just read",
                    policy::LABEL_DRY_RUN
                )));
            }
            let labels = m.spec.labels.clone().unwrap_or_default();
            if let (Some(epoch), Some(seen)) = (epoch, labels.get(LABEL_LEASE_EPOCH)) {
                let seen = seen.trim().parse::<u64>().unwrap_or(u64::MAX);
                if epoch < seen {
                    return Err(ActuatorError::Fenced {
                        service: service.into(),
                        epoch,
                        seen,
                    });
                }
            }
            if current == replicas {
                return Ok(());
            }
            if let Some(hook) = &self.before_update {
                hook(service.to_string()).await;
            }
            let mut spec = m.spec;
            if let Some(r) = spec.mode.as_mut().and_then(|mode| mode.replicated.as_mut()) {
                r.replicas = Some(i64::from(replicas));
            }
            if let Some(epoch) = epoch {
                // Written in the same versioned update: a successor's write in between makes
                // this one a version conflict, and the fresh read then finds its epoch.
                spec.labels
                    .get_or_insert_with(HashMap::new)
                    .insert(LABEL_LEASE_EPOCH.into(), epoch.to_string());
            }
            let version = i32::try_from(m.version).map_err(|_| {
                ActuatorError::Refused(format!(
                    "service `{service}`: version {} does not fit the API's version parameter",
                    m.version
                ))
            })?;
            let docker = self.client().await?;
            let result = docker
                .update_service(
                    &m.id,
                    spec,
                    UpdateServiceOptions {
                        version,
                        ..Default::default()
                    },
                    None,
                )
                .await;
            match result {
                Ok(resp) => {
                    for w in resp.warnings.unwrap_or_default() {
                        tracing::warn!(service, warning = %w, "docker warning on update");
                    }
                    tracing::info!(
                        service,
                        from = current,
                        to = replicas,
                        version = m.version,
                        attempt,
                        "swarm service scaled"
                    );
                    return Ok(());
                }
                Err(e) if is_conflict(&e) && attempt <= self.cfg.conflict_retries => {
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(service, version = m.version, attempt,
                        "version conflict: the service changed since it was read; retrying on a fresh read");
                }
                Err(e) if is_conflict(&e) => {
                    return Err(ActuatorError::Unavailable(format!(
                        "service `{service}` kept changing: {attempt} version conflicts in a row"
                    )))
                }
                Err(e) => {
                    let e = classify(service, e, self.cfg.timeout);
                    if e.is_retryable() {
                        // A timeout or a lost connection: the update may have been applied.
                        return self.resolve_ambiguous(service, expected, replicas, e).await;
                    }
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let t = Duration::from_secs(1);
        let server = |status_code: u16, message: &str| DockerError::DockerResponseServerError {
            status_code,
            message: message.into(),
        };
        assert!(is_conflict(&server(
            500,
            "rpc error: code = Unknown desc = update out of sequence"
        )));
        assert!(!is_conflict(&server(500, "boom")));
        assert!(classify("s", server(503, "busy"), t).is_retryable());
        assert!(classify("s", DockerError::RequestTimeoutError, t).is_retryable());
        assert!(classify("s", DockerError::SocketNotFoundError("/x".into()), t).is_retryable());
        assert!(matches!(
            classify("s", server(404, "no such service"), t),
            ActuatorError::UnknownService(_)
        ));
        let bad = classify("s", server(400, "invalid spec"), t);
        assert!(matches!(bad, ActuatorError::Refused(_)) && !bad.is_retryable());
        // Issue 17, item 4: an unreachable daemon keeps Docker's error as the cause.
        let gone = classify("s", DockerError::SocketNotFoundError("/x".into()), t);
        let cause = std::error::Error::source(&gone).expect("the cause is kept");
        assert!(matches!(
            cause.downcast_ref::<DockerError>(),
            Some(DockerError::SocketNotFoundError(_))
        ));
        assert!(
            gone.to_string().contains("docker daemon unreachable"),
            "{gone}"
        );
    }

    #[tokio::test]
    async fn an_absent_daemon_is_a_clear_retryable_error() {
        let a = SwarmActuator::new(SwarmConfig {
            docker_host: "/nonexistent/autoscaler-test/docker.sock".into(),
            ..SwarmConfig::default()
        });
        let e = a.current("orders").await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains("docker daemon unreachable"), "{e}");
        let e = SwarmActuator::new(SwarmConfig {
            docker_host: "ftp://nowhere".into(),
            ..SwarmConfig::default()
        })
        .healthcheck()
        .await
        .unwrap_err();
        assert!(!e.is_retryable(), "{e}");
    }
}
