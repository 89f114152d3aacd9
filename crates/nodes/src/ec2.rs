//! The EC2 actuator: launches instances whose user-data joins the Swarm, lists and terminates
//! them, and never touches an instance it did not launch.
//!
//! * Credentials come from the standard chain (`aws-config`: environment, profile files,
//!   `credential_process`, web identity, ECS and instance roles; SSO profiles are not built in,
//!   to keep the build small). `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_EC2` override the endpoint
//!   (the tests point it at moto), as does [`Ec2Settings::endpoint_url`].
//! * Ours means tagged [`TAG_MANAGED`]`=true` and [`TAG_CLUSTER`]`=<cluster>`: every launch sets
//!   both, [`Ec2Actuator::describe_ours`] filters on them, and [`Ec2Actuator::describe`] /
//!   [`Ec2Actuator::terminate`] check them on every instance first and refuse the whole call
//!   ([`Ec2Error::NotOurs`]) if one is not ours.
//! * The SDK's own retries are off; [`Ec2Actuator`] retries throttling
//!   (`RequestLimitExceeded`, `Throttling`), capacity (`InsufficientInstanceCapacity`) and
//!   transport errors with bounded exponential backoff ([`RetryPolicy`]); auth errors
//!   (`AuthFailure`, `UnauthorizedOperation`) and the rest are final at once.
//! * The Swarm join token is a secret: [`SwarmJoin`]'s `Debug` redacts it, nothing here logs
//!   it, and the SDK's request logging redacts the user-data (a sensitive field). At TRACE the
//!   SDK (`aws_smithy_runtime`) logs raw response bodies, which for `DescribeInstanceAttribute
//!   userData` (not called here) would include the token: keep the SDK below TRACE in production.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_ec2::config::{Credentials, Region};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    Filter, Instance, InstanceStateName, InstanceType, LaunchTemplateSpecification, ResourceType,
    Tag, TagSpecification,
};
use aws_sdk_ec2::Client;
use tracing::{info, warn};

/// The tag that marks an instance as launched by this autoscaler (value [`TAG_MANAGED_VALUE`]).
pub const TAG_MANAGED: &str = "autoscaler:managed";
/// The value of [`TAG_MANAGED`] on our instances.
pub const TAG_MANAGED_VALUE: &str = "true";
/// The tag naming the cluster (the Swarm) an instance of ours belongs to.
pub const TAG_CLUSTER: &str = "autoscaler:cluster";
/// Attempts per EC2 call, the first included, for retryable errors.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Backoff before the second attempt; it doubles for each further one.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(500);
/// The longest backoff between two attempts.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(20);
/// Timeout of one HTTP attempt of an EC2 call.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the user-data waits for the Docker daemon before giving up (seconds).
pub const DEFAULT_DOCKER_WAIT_SECS: u32 = 240;
/// The longest cluster name accepted (it goes into tags and the user-data).
pub const MAX_CLUSTER_NAME_LEN: usize = 64;

/// What went wrong with an EC2 call, by what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// `RequestLimitExceeded`, `Throttling`: retried with backoff.
    Throttling,
    /// `InsufficientInstanceCapacity`: retried with backoff.
    Capacity,
    /// No answer (connection refused, timeout, broken response): retried with backoff.
    Transport,
    /// `AuthFailure`, `UnauthorizedOperation`: final, fix the credentials or the IAM policy.
    Auth,
    /// Anything else (bad parameters, unknown instance …): final.
    Other,
}

impl ErrorClass {
    /// Classifies an EC2 error code.
    pub fn from_code(code: &str) -> Self {
        match code {
            "RequestLimitExceeded" | "Throttling" => Self::Throttling,
            "InsufficientInstanceCapacity" => Self::Capacity,
            "AuthFailure" | "UnauthorizedOperation" => Self::Auth,
            _ => Self::Other,
        }
    }

    /// Whether a call failing this way is tried again.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Throttling | Self::Capacity | Self::Transport)
    }
}

/// Bounded exponential backoff for the retryable [`ErrorClass`]es.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

impl RetryPolicy {
    /// The backoff after failed attempt `attempt` (1-based): `base * 2^(attempt-1)`, capped at
    /// `max_delay`, with up to a quarter taken off at random so that callers spread out.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.max_delay);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        capped.saturating_sub(capped.mul_f64(f64::from(nanos % 1000) / 4000.0))
    }
}

/// An error of the EC2 actuator. API errors keep the SDK's error as their source.
#[derive(Debug, thiserror::Error)]
pub enum Ec2Error {
    /// EC2 answered with an error, or did not answer, after `attempts` attempts.
    #[error("EC2 {operation} failed after {attempts} attempt(s) ({class:?}, code {code}): {message}", code = code.as_deref().unwrap_or("none"))]
    Api {
        /// The EC2 action (`RunInstances` …).
        operation: &'static str,
        /// What kind of failure.
        class: ErrorClass,
        /// EC2's error code, if it sent one.
        code: Option<String>,
        /// EC2's message, or the transport error.
        message: String,
        /// Attempts made.
        attempts: u32,
        /// The SDK's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The instance is not tagged as ours: nothing was done.
    #[error("instance {id} is not managed by this autoscaler for cluster {cluster}: refusing to {action} it")]
    NotOurs {
        /// The instance id.
        id: String,
        /// Our cluster.
        cluster: String,
        /// What was refused.
        action: &'static str,
    },
    /// EC2 did not list an instance that was asked for.
    #[error("instance {id} was not found")]
    NotFound {
        /// The instance id.
        id: String,
    },
    /// A launch request or setting that cannot be right.
    #[error("invalid EC2 request: {0}")]
    InvalidInput(String),
    /// The AWS configuration is unusable (no region …).
    #[error("AWS configuration: {0}")]
    Config(String),
}

impl Ec2Error {
    /// The class of an API error (`None` for the other variants).
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            Self::Api { class, .. } => Some(*class),
            _ => None,
        }
    }
}

/// The secret a new node needs to join the Swarm, and where. Read them from the manager's
/// Docker API at launch time (`docker swarm join-token -q worker`); never store them.
#[derive(Clone, PartialEq, Eq)]
pub struct SwarmJoin {
    token: String,
    manager_addr: String,
}

impl std::fmt::Debug for SwarmJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmJoin")
            .field("token", &"<redacted>")
            .field("manager_addr", &self.manager_addr)
            .finish()
    }
}

impl SwarmJoin {
    /// Checks both before they go into a shell script: the token is `SWMTKN-…` of letters,
    /// digits and dashes; the address is `host:port` of letters, digits, `.`, `-`, `:`, `[`, `]`.
    /// Errors never quote the token.
    pub fn new(
        token: impl Into<String>,
        manager_addr: impl Into<String>,
    ) -> Result<Self, Ec2Error> {
        let token = token.into();
        let manager_addr = manager_addr.into();
        let token_ok = token.starts_with("SWMTKN-")
            && token.len() <= 256
            && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !token_ok {
            return Err(Ec2Error::InvalidInput(
                "the Swarm join token is not of the form SWMTKN-<letters, digits, dashes>".into(),
            ));
        }
        let addr_ok = !manager_addr.is_empty()
            && manager_addr.len() <= 255
            && manager_addr.contains(':')
            && manager_addr
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        if !addr_ok {
            return Err(Ec2Error::InvalidInput(format!(
                "the Swarm manager address {manager_addr:?} is not host:port"
            )));
        }
        Ok(Self {
            token,
            manager_addr,
        })
    }

    /// The manager's address (`host:port`).
    pub fn manager_addr(&self) -> &str {
        &self.manager_addr
    }

    /// The user-data script: waits for the Docker daemon, then joins the Swarm unless the node
    /// is in one already.
    pub fn user_data(&self, cluster: &str) -> String {
        format!(
            "#!/bin/sh\n\
             # Written by the Swarm autoscaler: join cluster {cluster} as a worker.\n\
             set -eu\n\
             i=0\n\
             until docker info >/dev/null 2>&1; do\n\
             \x20   i=$((i + 2))\n\
             \x20   if [ \"$i\" -gt {wait} ]; then echo 'autoscaler: docker did not start' >&2; exit 1; fi\n\
             \x20   sleep 2\n\
             done\n\
             if [ \"$(docker info --format '{{{{.Swarm.LocalNodeState}}}}')\" != active ]; then\n\
             \x20   docker swarm join --token '{token}' '{addr}'\n\
             fi\n",
            wait = DEFAULT_DOCKER_WAIT_SECS,
            token = self.token,
            addr = self.manager_addr,
        )
    }
}

/// Where an instance's configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchSource {
    /// An EC2 launch template (by id `lt-…` or by name), at a version (`None`: its default).
    Template {
        /// Template id (`lt-…`) or name.
        id_or_name: String,
        /// `$Latest`, `$Default` or a number; `None` leaves it to EC2 (the default version).
        version: Option<String>,
    },
    /// Everything given here.
    Spec {
        /// The AMI (with Docker installed and enabled).
        image_id: String,
        /// Instance type, e.g. `t3.medium`.
        instance_type: String,
        /// Subnet; `None`: the default VPC's choice.
        subnet_id: Option<String>,
        /// Security groups (they must let the node reach the manager on 2377, 7946, 4789).
        security_group_ids: Vec<String>,
        /// EC2 key pair for SSH, if any.
        key_name: Option<String>,
    },
}

/// One launch: how many instances, from what, joining where.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    /// From a template or a full spec.
    pub source: LaunchSource,
    /// How many instances (1 or more); all or none are launched.
    pub count: i32,
    /// The Swarm join (token redacted in `Debug`).
    pub join: SwarmJoin,
    /// More tags to set (ours are always set and cannot be overridden).
    pub extra_tags: Vec<(String, String)>,
}

/// An instance of ours as EC2 lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedInstance {
    /// Instance id (`i-…`).
    pub id: String,
    /// `pending`, `running`, `shutting-down`, `terminated`, `stopping`, `stopped`.
    pub state: String,
    /// Private IPv4 address, once it has one.
    pub private_ip: Option<String>,
    /// Launch time, Unix seconds.
    pub launch_time: Option<i64>,
}

/// How to reach EC2 and which cluster is ours.
#[derive(Debug, Clone)]
pub struct Ec2Settings {
    /// The cluster name that goes into [`TAG_CLUSTER`] (letters, digits, `.`, `_`, `-`).
    pub cluster: String,
    /// Region; `None`: from the environment / profile (`AWS_REGION` …). Required either way.
    pub region: Option<String>,
    /// Endpoint override; `None`: `AWS_ENDPOINT_URL(_EC2)` if set, else EC2's own.
    pub endpoint_url: Option<String>,
    /// Fixed credentials instead of the standard chain (tests against moto).
    pub credentials: Option<Credentials>,
    /// Retries of throttling, capacity and transport errors.
    pub retry: RetryPolicy,
}

impl Ec2Settings {
    /// Settings for `cluster` with everything else from the environment and the defaults.
    pub fn new(cluster: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            region: None,
            endpoint_url: None,
            credentials: None,
            retry: RetryPolicy::default(),
        }
    }
}

/// The rustls + ring HTTPS client (the SDK's default would build aws-lc-rs from C).
fn https_client() -> aws_sdk_ec2::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The EC2 actuator for one cluster.
#[derive(Debug, Clone)]
pub struct Ec2Actuator {
    client: Client,
    cluster: String,
    retry: RetryPolicy,
}

impl Ec2Actuator {
    /// Loads the AWS configuration (standard chain, overridden by `settings`) and builds the
    /// client. Fails if the cluster name is unusable or no region is configured.
    pub async fn connect(settings: Ec2Settings) -> Result<Self, Ec2Error> {
        validate_cluster(&settings.cluster)?;
        if settings.retry.max_attempts == 0 {
            return Err(Ec2Error::InvalidInput(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            // Retries are ours (classified, logged, bounded), not the SDK's.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(DEFAULT_ATTEMPT_TIMEOUT)
                    .build(),
            );
        if let Some(region) = settings.region {
            loader = loader.region(Region::new(region));
        }
        if let Some(url) = settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(credentials) = settings.credentials {
            loader = loader.credentials_provider(credentials);
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(Ec2Error::Config(
                "no AWS region: set AWS_REGION (or a profile's region)".into(),
            ));
        }
        Ok(Self {
            client: Client::new(&config),
            cluster: settings.cluster,
            retry: settings.retry,
        })
    }

    /// The cluster whose instances are ours.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The SDK client (for calls this actuator does not wrap).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether EC2's tags mark an instance as ours.
    pub fn is_ours(&self, instance: &Instance) -> bool {
        let tag = |key: &str| {
            instance
                .tags()
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
        };
        tag(TAG_MANAGED) == Some(TAG_MANAGED_VALUE) && tag(TAG_CLUSTER) == Some(&self.cluster)
    }

    /// Launches `request.count` instances tagged as ours with the Swarm-join user-data.
    /// Retried calls reuse one client token, so a retry never launches twice.
    pub async fn launch(&self, request: &LaunchRequest) -> Result<Vec<ManagedInstance>, Ec2Error> {
        if request.count < 1 {
            return Err(Ec2Error::InvalidInput("count must be at least 1".into()));
        }
        for (key, _) in &request.extra_tags {
            if key == TAG_MANAGED || key == TAG_CLUSTER {
                return Err(Ec2Error::InvalidInput(format!(
                    "tag {key} is set by the autoscaler"
                )));
            }
        }
        info!(cluster = %self.cluster, ?request, "launching EC2 instances");
        let user_data = aws_smithy_types::base64::encode(request.join.user_data(&self.cluster));
        let mut tags = vec![
            Tag::builder()
                .key(TAG_MANAGED)
                .value(TAG_MANAGED_VALUE)
                .build(),
            Tag::builder().key(TAG_CLUSTER).value(&self.cluster).build(),
        ];
        tags.extend(
            request
                .extra_tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build()),
        );
        let tag_spec = |kind: ResourceType| {
            TagSpecification::builder()
                .resource_type(kind)
                .set_tags(Some(tags.clone()))
                .build()
        };
        let client_token = format!(
            "{}-{}",
            self.cluster,
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let output = self
            .call("RunInstances", || {
                let mut op = self
                    .client
                    .run_instances()
                    .min_count(request.count)
                    .max_count(request.count)
                    .user_data(user_data.clone())
                    .tag_specifications(tag_spec(ResourceType::Instance))
                    .tag_specifications(tag_spec(ResourceType::Volume))
                    .client_token(client_token.clone());
                match &request.source {
                    LaunchSource::Template {
                        id_or_name,
                        version,
                    } => {
                        let spec = LaunchTemplateSpecification::builder();
                        let spec = if id_or_name.starts_with("lt-") {
                            spec.launch_template_id(id_or_name)
                        } else {
                            spec.launch_template_name(id_or_name)
                        };
                        op = op.launch_template(spec.set_version(version.clone()).build());
                    }
                    LaunchSource::Spec {
                        image_id,
                        instance_type,
                        subnet_id,
                        security_group_ids,
                        key_name,
                    } => {
                        op = op
                            .image_id(image_id)
                            .instance_type(InstanceType::from(instance_type.as_str()))
                            .set_subnet_id(subnet_id.clone())
                            .set_security_group_ids(
                                (!security_group_ids.is_empty())
                                    .then(|| security_group_ids.clone()),
                            )
                            .set_key_name(key_name.clone());
                    }
                }
                op.send()
            })
            .await?;
        let launched: Vec<ManagedInstance> = output.instances().iter().map(managed).collect();
        info!(
            cluster = %self.cluster,
            instances = ?launched.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            "launched EC2 instances"
        );
        Ok(launched)
    }

    /// Every instance tagged as ours for this cluster, terminated ones included (EC2 lists
    /// them for about an hour).
    pub async fn describe_ours(&self) -> Result<Vec<ManagedInstance>, Ec2Error> {
        let filters = vec![
            Filter::builder()
                .name(format!("tag:{TAG_MANAGED}"))
                .values(TAG_MANAGED_VALUE)
                .build(),
            Filter::builder()
                .name(format!("tag:{TAG_CLUSTER}"))
                .values(&self.cluster)
                .build(),
        ];
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .call("DescribeInstances", || {
                    self.client
                        .describe_instances()
                        .set_filters(Some(filters.clone()))
                        .set_next_token(next.clone())
                        .send()
                })
                .await?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                // The filter already did it; the tags are checked again all the same.
                if self.is_ours(instance) {
                    out.push(managed(instance));
                }
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The given instances; [`Ec2Error::NotOurs`] if any of them is not ours,
    /// [`Ec2Error::NotFound`] if EC2 does not list one.
    pub async fn describe(&self, ids: &[String]) -> Result<Vec<ManagedInstance>, Ec2Error> {
        self.owned(ids, "describe").await
    }

    /// Terminates the given instances if every one is ours; otherwise terminates none and
    /// returns [`Ec2Error::NotOurs`]. Returns the instances with their state after the call.
    pub async fn terminate(&self, ids: &[String]) -> Result<Vec<ManagedInstance>, Ec2Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let checked = self.owned(ids, "terminate").await?;
        let ids: Vec<String> = checked.into_iter().map(|i| i.id).collect();
        info!(cluster = %self.cluster, instances = ?ids, "terminating EC2 instances");
        let output = self
            .call("TerminateInstances", || {
                self.client
                    .terminate_instances()
                    .set_instance_ids(Some(ids.clone()))
                    .send()
            })
            .await?;
        Ok(output
            .terminating_instances()
            .iter()
            .map(|c| ManagedInstance {
                id: c.instance_id().unwrap_or_default().to_string(),
                state: c
                    .current_state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
                private_ip: None,
                launch_time: None,
            })
            .collect())
    }

    /// Describes `ids` and checks each is ours, in the order asked.
    async fn owned(
        &self,
        ids: &[String],
        action: &'static str,
    ) -> Result<Vec<ManagedInstance>, Ec2Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let page = self
            .call("DescribeInstances", || {
                self.client
                    .describe_instances()
                    .set_instance_ids(Some(ids.to_vec()))
                    .send()
            })
            .await?;
        let found: Vec<&Instance> = page
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(instance) = found.iter().find(|i| i.instance_id() == Some(id)) else {
                return Err(Ec2Error::NotFound { id: id.clone() });
            };
            if !self.is_ours(instance) {
                warn!(cluster = %self.cluster, instance = %id, action, "refused: instance is not ours");
                return Err(Ec2Error::NotOurs {
                    id: id.clone(),
                    cluster: self.cluster.clone(),
                    action,
                });
            }
            out.push(managed(instance));
        }
        Ok(out)
    }

    /// Runs one EC2 call, retrying the retryable error classes with backoff.
    async fn call<T, E, F, Fut>(&self, operation: &'static str, mut send: F) -> Result<T, Ec2Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt = 1;
        loop {
            let err = match send().await {
                Ok(v) => return Ok(v),
                Err(err) => err,
            };
            let class = classify(&err);
            let code = err.code().map(str::to_string);
            if class.is_retryable() && attempt < self.retry.max_attempts {
                let delay = self.retry.delay(attempt);
                warn!(
                    operation,
                    ?class,
                    code = code.as_deref().unwrap_or("none"),
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    "EC2 call failed; retrying"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
                continue;
            }
            let message = err
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| DisplayErrorContext(&err).to_string());
            return Err(Ec2Error::Api {
                operation,
                class,
                code,
                message,
                attempts: attempt,
                source: Box::new(err),
            });
        }
    }
}

/// The class of an SDK error: by EC2's code when it sent one, else by the kind of failure.
fn classify<E: ProvideErrorMetadata>(err: &SdkError<E>) -> ErrorClass {
    if let Some(code) = err.code() {
        return ErrorClass::from_code(code);
    }
    match err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            ErrorClass::Transport
        }
        _ => ErrorClass::Other,
    }
}

fn managed(instance: &Instance) -> ManagedInstance {
    ManagedInstance {
        id: instance.instance_id().unwrap_or_default().to_string(),
        state: instance
            .state()
            .and_then(|s| s.name())
            .map(InstanceStateName::as_str)
            .unwrap_or_default()
            .to_string(),
        private_ip: instance.private_ip_address().map(str::to_string),
        launch_time: instance.launch_time().map(|t| t.secs()),
    }
}

fn validate_cluster(cluster: &str) -> Result<(), Ec2Error> {
    let ok = !cluster.is_empty()
        && cluster.len() <= MAX_CLUSTER_NAME_LEN
        && cluster
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Ec2Error::InvalidInput(format!(
            "cluster name {cluster:?}: 1-{MAX_CLUSTER_NAME_LEN} letters, digits, '.', '_', '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "SWMTKN-1-planted0secret0token-abc123";

    #[test]
    fn classifies_ec2_codes() {
        assert_eq!(
            ErrorClass::from_code("RequestLimitExceeded"),
            ErrorClass::Throttling
        );
        assert_eq!(ErrorClass::from_code("Throttling"), ErrorClass::Throttling);
        assert_eq!(
            ErrorClass::from_code("InsufficientInstanceCapacity"),
            ErrorClass::Capacity
        );
        assert_eq!(ErrorClass::from_code("AuthFailure"), ErrorClass::Auth);
        assert_eq!(
            ErrorClass::from_code("UnauthorizedOperation"),
            ErrorClass::Auth
        );
        assert_eq!(
            ErrorClass::from_code("InvalidParameterValue"),
            ErrorClass::Other
        );
        assert!(ErrorClass::Throttling.is_retryable());
        assert!(ErrorClass::Capacity.is_retryable());
        assert!(ErrorClass::Transport.is_retryable());
        assert!(!ErrorClass::Auth.is_retryable());
        assert!(!ErrorClass::Other.is_retryable());
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for (attempt, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            let d = p.delay(attempt).as_millis() as u64;
            assert!(d <= full && d >= full * 3 / 4, "attempt {attempt}: {d} ms");
        }
    }

    #[test]
    fn debug_redacts_the_join_token() {
        let join = SwarmJoin::new(TOKEN, "10.0.0.5:2377").unwrap();
        let request = LaunchRequest {
            source: LaunchSource::Spec {
                image_id: "ami-1".into(),
                instance_type: "t3.small".into(),
                subnet_id: None,
                security_group_ids: vec![],
                key_name: None,
            },
            count: 1,
            join: join.clone(),
            extra_tags: vec![],
        };
        for text in [
            format!("{join:?}"),
            format!("{request:?}"),
            format!("{request:#?}"),
        ] {
            assert!(!text.contains("planted0secret"), "{text}");
            assert!(
                text.contains("<redacted>") && text.contains("10.0.0.5:2377"),
                "{text}"
            );
        }
        // The token is in the user-data, where it belongs.
        assert!(join.user_data("prod").contains(TOKEN));
    }

    #[test]
    fn user_data_joins_the_swarm() {
        let join = SwarmJoin::new(TOKEN, "10.0.0.5:2377").unwrap();
        let script = join.user_data("prod");
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains(&format!(
            "docker swarm join --token '{TOKEN}' '10.0.0.5:2377'"
        )));
        assert!(script.contains("{{.Swarm.LocalNodeState}}"), "{script}");
        assert!(script.contains("cluster prod"));
    }

    #[test]
    fn join_inputs_are_checked_without_quoting_the_token() {
        let bad = "SWMTKN-1-x'; rm -rf / #";
        match SwarmJoin::new(bad, "10.0.0.5:2377") {
            Err(e) => assert!(!e.to_string().contains("rm -rf"), "{e}"),
            Ok(_) => panic!("a token with shell characters was accepted"),
        }
        assert!(SwarmJoin::new("not-a-token", "10.0.0.5:2377").is_err());
        assert!(SwarmJoin::new(TOKEN, "10.0.0.5").is_err());
        assert!(SwarmJoin::new(TOKEN, "$(reboot):2377").is_err());
        assert!(SwarmJoin::new(TOKEN, "[fd00::1]:2377").is_ok());
    }

    #[test]
    fn cluster_names_are_checked() {
        assert!(validate_cluster("prod-eu_1.a").is_ok());
        assert!(validate_cluster("").is_err());
        assert!(validate_cluster("a b").is_err());
        assert!(validate_cluster(&"x".repeat(MAX_CLUSTER_NAME_LEN + 1)).is_err());
    }
}
