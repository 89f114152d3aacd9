//! # The demo service: something real to scale
//!
//! A small HTTP service that behaves like one Sock Shop microservice from the outside, so the
//! aggregator's Prometheus source can scrape it with the Sock Shop PromQL preset unchanged:
//!
//! | endpoint | what it does |
//! |---|---|
//! | `GET`/`POST` `/`, `/catalogue`, `/cart`, `/orders` | waits for a worker, burns `work_ms` of CPU time on it, sleeps `sleep_ms` (without a worker), answers 200 — or 500 for the `error_pct` share; counted in the histogram |
//! | `GET /health` | `ok`, no work, not counted |
//! | `GET /metrics` | OpenMetrics text, below; not counted |
//!
//! Per request, `?work_ms=N` and `?sleep_ms=N` override the configured amounts (at most
//! [`MAX_REQUEST_MS`]; a bad value is a 400, counted with `status_code="400"`).
//!
//! Metrics (exactly the names Sock Shop's services export):
//! * `request_duration_seconds` — histogram, labels `service`, `method`, `route`,
//!   `status_code`, buckets [`DURATION_BUCKETS_SECONDS`] (1 ms to 10 s). The observation is the
//!   wall time from the handler's start to its answer, *including the wait for a worker*, so the
//!   latency climbs when the service saturates, as a real one's does.
//! * `process_cpu_seconds_total` — counter, user + system CPU of the whole process, read from
//!   `/proc/self/stat` at scrape time (in clock ticks: `sysconf(_SC_CLK_TCK)`, 100 on Linux).
//! * `process_resident_memory_bytes` — gauge, `VmRSS` from `/proc/self/status` at scrape time.
//!
//! The two process metrics carry no labels, as client_golang's process collector does:
//! Prometheus attaches `job` and `instance` from the scrape target, and the preset sums over
//! instances. Where `/proc` cannot be read they are left out, never reported as 0.
//!
//! Capacity: [`DemoServiceConfig::workers`] requests burn CPU at once (a semaphore in front of
//! `spawn_blocking`); the rest queue. One worker by default, so capacity is set by the replica
//! count — which is what the autoscaler changes. The work is CPU time of the worker thread
//! ([`burn_cpu`]), so `process_cpu_seconds_total` grows by exactly the work done, and a
//! CPU-starved replica (busy host, container quota) gets slower, as a real one does.
//!
//! Errors: the `error_pct` share is exact and deterministic, by arrival order: with `p` in
//! hundredths of a percent (`bp`), the n-th work request (from 0) fails when
//! `⌊(n+1)·bp/10000⌋ > ⌊n·bp/10000⌋` — spread evenly, e.g. every 10th request at 10 %. A failing
//! request still does its work (a real error costs time too); only the status differs.
//!
//! Start with [`run`], or [`bind`] then [`BoundService::serve`] to learn the port first (tests
//! bind port 0). The CLI's `autoscaler demo-service` is a thin wrapper.
#![deny(missing_docs)]

mod metrics;
mod work;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use metrics::DURATION_BUCKETS_SECONDS;
pub use work::burn_cpu;

use metrics::Metrics;
use work::{ErrorInjector, Workers};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
/// Default `service` label.
pub const DEFAULT_SERVICE: &str = "front-end";
/// Default CPU work per request, in milliseconds.
pub const DEFAULT_WORK_MS: u64 = 5;
/// Default number of workers (requests burning CPU at once).
pub const DEFAULT_WORKERS: usize = 1;
/// Default share of requests answered 500, percent.
pub const DEFAULT_ERROR_PCT: f64 = 0.0;
/// Default extra fixed latency per request, milliseconds.
pub const DEFAULT_SLEEP_MS: u64 = 0;
/// Default grace period for in-flight requests after shutdown is requested, in milliseconds.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
/// Upper bound of `work_ms` and `sleep_ms`, configured or per request: beyond it the histogram
/// (top bucket 10 s) says nothing more.
pub const MAX_REQUEST_MS: u64 = 30_000;
/// Upper bound of the workers: each is a thread of tokio's blocking pool (512 by default).
pub const MAX_WORKERS: usize = 256;
/// The routes that do work, as they appear in the `route` label.
pub const WORK_ROUTES: [&str; 4] = ["/", "/catalogue", "/cart", "/orders"];

/// The demo service's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoServiceConfig {
    /// Address to listen on; port 0 picks a free one ([`BoundService::local_addr`]).
    pub listen: SocketAddr,
    /// The `service` label of the request histogram, e.g. `front-end`.
    pub service: String,
    /// CPU time burnt per request, in milliseconds (a busy loop on a worker, [`burn_cpu`]).
    pub work_ms: u64,
    /// Requests that may burn CPU at once; the others queue for a worker.
    pub workers: usize,
    /// Share of work requests answered 500, in percent (0–100, resolution 0.01).
    pub error_pct: f64,
    /// Extra fixed latency per request, in milliseconds, spent without a worker (like a wait on a
    /// downstream service).
    pub sleep_ms: u64,
    /// After shutdown is requested: how long in-flight requests may take before the server
    /// stops anyway, in milliseconds.
    pub shutdown_grace_ms: u64,
}

impl Default for DemoServiceConfig {
    fn default() -> Self {
        DemoServiceConfig {
            listen: DEFAULT_LISTEN.parse().expect("valid constant"),
            service: DEFAULT_SERVICE.to_owned(),
            work_ms: DEFAULT_WORK_MS,
            workers: DEFAULT_WORKERS,
            error_pct: DEFAULT_ERROR_PCT,
            sleep_ms: DEFAULT_SLEEP_MS,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
        }
    }
}

impl DemoServiceConfig {
    /// Every problem with this configuration (empty when it can run).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.service.trim().is_empty() {
            p.push("--service must not be empty".to_owned());
        }
        if self.workers == 0 || self.workers > MAX_WORKERS {
            p.push(format!(
                "--workers must be in 1..={MAX_WORKERS}, got {}",
                self.workers
            ));
        }
        if !(0.0..=100.0).contains(&self.error_pct) {
            p.push(format!(
                "--error-pct must be a percentage in [0, 100], got {}",
                self.error_pct
            ));
        }
        if self.work_ms > MAX_REQUEST_MS {
            p.push(format!(
                "--work-ms must be at most {MAX_REQUEST_MS}, got {}",
                self.work_ms
            ));
        }
        if self.sleep_ms > MAX_REQUEST_MS {
            p.push(format!(
                "--sleep-ms must be at most {MAX_REQUEST_MS}, got {}",
                self.sleep_ms
            ));
        }
        p
    }

    /// `Ok` when the configuration can run, else every problem in one error.
    pub fn validate(&self) -> Result<(), DemoServiceError> {
        let p = self.problems();
        if p.is_empty() {
            Ok(())
        } else {
            Err(DemoServiceError::Config(p))
        }
    }
}

/// What can stop the demo service.
#[derive(Debug, thiserror::Error)]
pub enum DemoServiceError {
    /// The configuration cannot run; every problem is listed.
    #[error("invalid demo-service configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The listen address could not be bound (in use, no permission, not local).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("serving HTTP")]
    Serve(#[source] std::io::Error),
}

/// Shared by every handler.
struct App {
    service: String,
    work: Duration,
    sleep: Duration,
    workers: Workers,
    errors: ErrorInjector,
    metrics: Metrics,
}

/// A bound, not yet serving, demo service.
pub struct BoundService {
    listener: TcpListener,
    local_addr: SocketAddr,
    app: Arc<App>,
    grace: Duration,
}

impl std::fmt::Debug for BoundService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundService")
            .field("local_addr", &self.local_addr)
            .field("service", &self.app.service)
            .finish_non_exhaustive()
    }
}

/// Validates the configuration and binds the listen address.
pub async fn bind(cfg: DemoServiceConfig) -> Result<BoundService, DemoServiceError> {
    cfg.validate()?;
    let listener =
        TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| DemoServiceError::Bind {
                addr: cfg.listen,
                source,
            })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| DemoServiceError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let app = App {
        work: Duration::from_millis(cfg.work_ms),
        sleep: Duration::from_millis(cfg.sleep_ms),
        workers: Workers::new(cfg.workers),
        errors: ErrorInjector::from_pct(cfg.error_pct),
        metrics: Metrics::new(),
        service: cfg.service,
    };
    Ok(BoundService {
        listener,
        local_addr,
        app: Arc::new(app),
        grace: Duration::from_millis(cfg.shutdown_grace_ms),
    })
}

/// Binds and serves until `shutdown` is cancelled (see [`BoundService::serve`]).
pub async fn run(
    cfg: DemoServiceConfig,
    shutdown: CancellationToken,
) -> Result<(), DemoServiceError> {
    let bound = bind(cfg).await?;
    tracing::info!(service = %bound.app.service, "listening on http://{}", bound.local_addr);
    bound.serve(shutdown).await
}

impl BoundService {
    /// The address actually bound (the real port when the configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, closes idle connections and
    /// lets in-flight requests finish for at most the grace period.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), DemoServiceError> {
        let router = router(self.app);
        let server = axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let grace = self.grace;
        tokio::select! {
            r = server => r.map_err(DemoServiceError::Serve),
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(
                    grace_ms = grace.as_millis() as u64,
                    "in-flight requests still running after the grace period; stopping anyway"
                );
                Ok(())
            }
        }
    }
}

fn router(app: Arc<App>) -> Router {
    let mut r = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_handler));
    for route in WORK_ROUTES {
        r = r.route(route, work_route(route));
    }
    r.with_state(app)
}

/// GET and POST (Sock Shop posts to `/cart` and `/orders`) on one work route.
fn work_route(route: &'static str) -> MethodRouter<Arc<App>> {
    let h = move |State(app): State<Arc<App>>, method: Method, RawQuery(query): RawQuery| {
        handle_work(app, route, method, query)
    };
    get(h).post(h)
}

async fn metrics_handler(State(app): State<Arc<App>>) -> Response {
    match app.metrics.encode() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}

async fn handle_work(
    app: Arc<App>,
    route: &'static str,
    method: Method,
    query: Option<String>,
) -> Response {
    let started = Instant::now();
    let (status, body) = match Overrides::parse(query.as_deref()) {
        Err(msg) => (StatusCode::BAD_REQUEST, msg),
        Ok(o) => {
            let fail = app.errors.fail_next();
            let work = o.work.unwrap_or(app.work);
            let sleep = o.sleep.unwrap_or(app.sleep);
            match app.workers.run(work).await {
                Err(why) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{why}\n")),
                Ok(()) => {
                    if !sleep.is_zero() {
                        tokio::time::sleep(sleep).await;
                    }
                    if fail {
                        (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "injected error (--error-pct)\n".to_owned(),
                        )
                    } else {
                        (
                            StatusCode::OK,
                            format!("{} {route}: {} ms of work\n", app.service, work.as_millis()),
                        )
                    }
                }
            }
        }
    };
    app.metrics
        .observe(&app.service, &method, route, status, started.elapsed());
    (status, body).into_response()
}

/// Per-request `?work_ms=N&sleep_ms=N`.
#[derive(Debug, Default, PartialEq)]
struct Overrides {
    work: Option<Duration>,
    sleep: Option<Duration>,
}

impl Overrides {
    fn parse(query: Option<&str>) -> Result<Overrides, String> {
        let mut o = Overrides::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match k {
                "work_ms" => &mut o.work,
                "sleep_ms" => &mut o.sleep,
                _ => continue,
            };
            let ms: u64 = v
                .parse()
                .map_err(|_| format!("{k} must be a whole number of milliseconds, got `{v}`\n"))?;
            if ms > MAX_REQUEST_MS {
                return Err(format!("{k} must be at most {MAX_REQUEST_MS}, got {ms}\n"));
            }
            *slot = Some(Duration::from_millis(ms));
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert!(DemoServiceConfig::default().problems().is_empty());
    }

    #[test]
    fn every_problem_is_listed() {
        let cfg = DemoServiceConfig {
            service: " ".into(),
            workers: 0,
            error_pct: 101.0,
            work_ms: MAX_REQUEST_MS + 1,
            sleep_ms: MAX_REQUEST_MS + 1,
            ..Default::default()
        };
        let p = cfg.problems();
        assert_eq!(p.len(), 5, "{p:?}");
        assert!(p.iter().any(|s| s.contains("--workers")));
        assert!(p.iter().any(|s| s.contains("--error-pct")));
        for bad in [-0.5, f64::NAN, f64::INFINITY] {
            let cfg = DemoServiceConfig {
                error_pct: bad,
                ..Default::default()
            };
            assert_eq!(cfg.problems().len(), 1, "{bad}");
        }
    }

    #[test]
    fn overrides_parse() {
        assert_eq!(Overrides::parse(None), Ok(Overrides::default()));
        assert_eq!(
            Overrides::parse(Some("work_ms=20&x=y&sleep_ms=3&flag")),
            Ok(Overrides {
                work: Some(Duration::from_millis(20)),
                sleep: Some(Duration::from_millis(3)),
            })
        );
        assert!(Overrides::parse(Some("work_ms=abc")).is_err());
        assert!(Overrides::parse(Some("work_ms=-1")).is_err());
        assert!(Overrides::parse(Some("sleep_ms=999999")).is_err());
    }
}
