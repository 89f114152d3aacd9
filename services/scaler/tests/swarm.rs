//! The scaler against a real single-node Docker Swarm (`scripts/swarm-up.sh` starts one).
//!
//! Each test creates services with unique names (removed by a guard, also when the test fails),
//! drives the scaler with votes on the in-process bus, and checks the replica counts through the
//! Docker API. With no reachable daemon the tests say why they skip — or fail, when `CI`,
//! `REQUIRE_INTEGRATION` or `AUTOSCALER_REQUIRE_SWARM` (set by `scripts/test.sh` once
//! `swarm-up.sh` succeeded) is set. Only the daemon-unreachable test runs everywhere.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use autoscaler_scaler::{Actuator, ActuatorError, SwarmActuator, SwarmConfig};
use bollard::models::{
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
};
use bollard::query_parameters::InspectServiceOptions;
use bollard::Docker;

mod common;
use common::start;

/// Every test finishes within this.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

fn image() -> String {
    std::env::var("AUTOSCALER_TEST_IMAGE")
        .unwrap_or_else(|_| "autoscaler-test/busybox:local".into())
}

/// A client of the test daemon, or `None` (with the reason printed) when there is none.
async fn daemon(test: &str) -> Option<Docker> {
    let reason = match connect().await {
        Ok(d) => return Some(d),
        Err(e) => e,
    };
    let required = ["CI", "REQUIRE_INTEGRATION", "AUTOSCALER_REQUIRE_SWARM"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0" && s != "false"));
    if required {
        panic!(
            "{test}: a Docker Swarm is required \
             (CI/REQUIRE_INTEGRATION/AUTOSCALER_REQUIRE_SWARM is set): {reason}"
        );
    }
    // Straight to stderr, not `eprintln!`: the test harness captures that, and a skip must show.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {reason}. Run scripts/swarm-up.sh (or set REQUIRE_INTEGRATION=1 to fail)"
    );
    None
}

async fn connect() -> Result<Docker, String> {
    let host = docker_host();
    let d = Docker::connect_with_host(&host)
        .map_err(|e| format!("no Docker daemon at {host}: {e}"))?
        .with_timeout(Duration::from_secs(10));
    let d = tokio::time::timeout(Duration::from_secs(10), d.negotiate_version())
        .await
        .map_err(|_| format!("the Docker daemon at {host} did not answer"))?
        .map_err(|e| format!("no Docker daemon at {host}: {e}"))?;
    d.inspect_swarm()
        .await
        .map_err(|e| format!("the Docker daemon at {host} is not a swarm manager: {e}"))?;
    Ok(d)
}

/// Removes its service when dropped, also when the test panics.
struct ServiceGuard {
    name: String,
}

impl Drop for ServiceGuard {
    fn drop(&mut self) {
        let out = std::process::Command::new("docker")
            .args(["service", "rm", &self.name])
            .output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("could not remove test service {}: {out:?}", self.name);
        }
    }
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("as-test-{tag}-{}-{nanos:x}", std::process::id())
}

async fn create(
    docker: &Docker,
    tag: &str,
    labels: &[(&str, &str)],
    replicas: i64,
) -> ServiceGuard {
    let name = unique(tag);
    let spec = ServiceSpec {
        name: Some(name.clone()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(replicas),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_service(spec, None)
        .await
        .unwrap_or_else(|e| panic!("creating test service {name}: {e}"));
    ServiceGuard { name }
}

/// The desired replica count and labels, as the Docker API reports them.
async fn inspect(docker: &Docker, name: &str) -> (i64, HashMap<String, String>) {
    let s = docker
        .inspect_service(name, None::<InspectServiceOptions>)
        .await
        .unwrap();
    let spec = s.spec.unwrap();
    let replicas = spec.mode.unwrap().replicated.unwrap().replicas.unwrap();
    (replicas, spec.labels.unwrap_or_default())
}

fn swarm() -> SwarmActuator {
    SwarmActuator::new(SwarmConfig {
        docker_host: docker_host(),
        ..SwarmConfig::default()
    })
}

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("the test took too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker Swarm (scripts/swarm-up.sh)"]
async fn scales_a_labelled_service_up_and_down_within_its_bounds() {
    let Some(docker) = daemon("scales_a_labelled_service_up_and_down_within_its_bounds").await
    else {
        return;
    };
    bounded(async {
        let svc = create(
            &docker,
            "updown",
            &[
                ("autoscaler.enable", "true"),
                ("autoscaler.min", "1"),
                ("autoscaler.max", "3"),
            ],
            1,
        )
        .await;
        let name = svc.name.as_str();
        let mut s = start(Arc::new(swarm()), None).await;
        // (metric time s, up?, replicas expected after, adjustment expected)
        let script: [(i64, bool, i64, Option<&str>); 6] = [
            (0, true, 2, None),
            (400, true, 3, None),
            (800, true, 3, Some("at max 3")),
            (1200, false, 2, None),
            (1500, false, 1, None),
            (1800, false, 1, Some("at min 1")),
        ];
        for (at, up, want, adj) in script {
            let d = s.decide(name, at, up).await;
            let (replicas, _) = inspect(&docker, name).await;
            assert!((1..=3).contains(&replicas), "outside [1, 3]: {replicas}");
            assert_eq!(replicas, want, "at {at}: {d:?}");
            assert_eq!(d.to_replicas, Some(want as u32));
            assert_eq!(d.acted, adj.is_none(), "at {at}: {d:?}");
            match adj {
                Some(a) => assert_eq!(d.adjustments, vec![a.to_string()]),
                None => assert!(d.adjustments.is_empty(), "{d:?}"),
            }
        }
        let r = s.stop().await;
        assert_eq!(
            (r.scale_ups, r.scale_downs, r.actuation_failures),
            (2, 2, 0)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker Swarm (scripts/swarm-up.sh)"]
async fn honours_a_cooldown_across_a_restart() {
    let Some(docker) = daemon("honours_a_cooldown_across_a_restart").await else {
        return;
    };
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let svc = create(
            &docker,
            "restart",
            &[("autoscaler.enable", "true"), ("autoscaler.max", "5")],
            1,
        )
        .await;
        let name = svc.name.as_str();
        let mut s = start(Arc::new(swarm()), Some(db.clone())).await;
        let d = s.decide(name, 0, true).await;
        assert!(d.acted);
        assert_eq!(inspect(&docker, name).await.0, 2);
        // Killed, not stopped: no shutdown path runs.
        s.handle.abort();
        let _ = s.handle.await;

        let mut s = start(Arc::new(swarm()), Some(db)).await;
        s.send(name, 0, true).await; // redelivered
        assert!(
            s.next(Duration::from_millis(2500)).await.is_none(),
            "a redelivered vector was decided again"
        );
        let d = s.decide(name, 120, true).await;
        assert_eq!(d.adjustments, vec!["cooldown: 180 s left after scale-up"]);
        assert!(!d.acted);
        assert_eq!(inspect(&docker, name).await.0, 2);
        let d = s.decide(name, 301, true).await;
        assert!(d.acted, "{d:?}");
        assert_eq!(inspect(&docker, name).await.0, 3);
        s.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker Swarm (scripts/swarm-up.sh)"]
async fn retries_a_concurrent_docker_service_update() {
    let Some(docker) = daemon("retries_a_concurrent_docker_service_update").await else {
        return;
    };
    bounded(async {
        let svc = create(&docker, "conflict", &[("autoscaler.enable", "true")], 1).await;
        let name = svc.name.clone();
        let fired = Arc::new(AtomicBool::new(false));
        let hook_fired = fired.clone();
        // Between the actuator's fresh read and its update, somebody runs
        // `docker service update`: the actuator's version is then out of date.
        let actuator = swarm().with_before_update(Arc::new(move |service: String| {
            let fired = hook_fired.clone();
            Box::pin(async move {
                if fired.swap(true, Ordering::SeqCst) {
                    return;
                }
                let out = tokio::task::spawn_blocking(move || {
                    std::process::Command::new("docker")
                        .args([
                            "service",
                            "update",
                            "--detach",
                            "--label-add",
                            "concurrent=yes",
                        ])
                        .arg(&service)
                        .output()
                })
                .await
                .unwrap()
                .expect("run docker service update");
                assert!(out.status.success(), "docker service update: {out:?}");
            })
        }));
        actuator
            .set_replicas(&name, 1, 3)
            .await
            .expect("scaled despite the conflict");
        assert!(fired.load(Ordering::SeqCst));
        assert_eq!(actuator.conflicts_retried(), 1);
        let (replicas, labels) = inspect(&docker, &name).await;
        assert_eq!(replicas, 3);
        assert_eq!(
            labels.get("concurrent").map(String::as_str),
            Some("yes"),
            "the concurrent change is kept: the retry started from a fresh spec"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker Swarm (scripts/swarm-up.sh)"]
async fn leaves_unlabelled_and_badly_labelled_services_alone_and_manages_the_rest() {
    let Some(docker) =
        daemon("leaves_unlabelled_and_badly_labelled_services_alone_and_manages_the_rest").await
    else {
        return;
    };
    bounded(async {
        let plain = create(&docker, "plain", &[], 1).await;
        let contradiction = create(
            &docker,
            "minmax",
            &[
                ("autoscaler.enable", "true"),
                ("autoscaler.min", "5"),
                ("autoscaler.max", "2"),
            ],
            1,
        )
        .await;
        let negative = create(
            &docker,
            "negative",
            &[("autoscaler.enable", "true"), ("autoscaler.min", "-1")],
            1,
        )
        .await;
        let dry = create(
            &docker,
            "dry",
            &[
                ("autoscaler.enable", "true"),
                ("autoscaler.dry_run", "true"),
            ],
            1,
        )
        .await;
        let good = create(
            &docker,
            "good",
            &[("autoscaler.enable", "true"), ("autoscaler.max", "4")],
            1,
        )
        .await;
        let actuator = Arc::new(swarm());
        let managed = actuator.managed_services().await.unwrap();
        assert!(managed.contains(&good.name) && managed.contains(&dry.name));
        assert!(!managed.contains(&plain.name));

        let mut s = start(actuator.clone(), None).await;
        let d = s.decide(&plain.name, 0, true).await;
        assert!(!d.acted);
        assert!(
            d.adjustments[0].starts_with("held: unknown service"),
            "{d:?}"
        );
        assert!(d.adjustments[0].contains("not managed"), "{d:?}");

        let d = s.decide(&contradiction.name, 0, true).await;
        assert!(!d.acted);
        assert!(
            d.adjustments[0].contains("min (5) is greater than max (2)"),
            "{d:?}"
        );

        let d = s.decide(&negative.name, 0, true).await;
        assert!(!d.acted);
        assert!(d.adjustments[0].contains("autoscaler.min=`-1`"), "{d:?}");

        let d = s.decide(&dry.name, 0, true).await;
        assert!(!d.acted && d.dry_run);
        assert_eq!(d.to_replicas, Some(2));
        assert_eq!(d.adjustments, vec!["dry-run: would scale to 2"]);

        let d = s.decide(&good.name, 0, true).await;
        assert!(d.acted, "{d:?}");

        for (svc, want) in [
            (&plain, 1),
            (&contradiction, 1),
            (&negative, 1),
            (&dry, 1),
            (&good, 2),
        ] {
            assert_eq!(inspect(&docker, &svc.name).await.0, want, "{}", svc.name);
        }
        // The actuator itself refuses to touch what it does not manage.
        assert!(matches!(
            actuator.set_replicas(&plain.name, 1, 3).await,
            Err(ActuatorError::UnknownService(_))
        ));
        let r = s.stop().await;
        assert_eq!(r.policy_holds, 3);
    })
    .await;
}

/// Runs everywhere: needs no daemon, only a socket path where there is none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_with_a_clear_error_while_the_daemon_is_unreachable() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let actuator = SwarmActuator::new(SwarmConfig {
            docker_host: dir.path().join("docker.sock").display().to_string(),
            timeout: Duration::from_secs(2),
            ..SwarmConfig::default()
        });
        let e = actuator.healthcheck().await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        let mut s = start(Arc::new(actuator), None).await;
        let d = s.decide("orders", 0, true).await;
        assert_eq!(
            (d.from_replicas, d.to_replicas, d.acted),
            (None, None, false)
        );
        assert_eq!(d.adjustments[0], "held: replicas unknown");
        assert!(
            d.adjustments[1].contains("docker daemon unreachable"),
            "{:?}",
            d.adjustments
        );
        s.stop().await;
    })
    .await;
}
