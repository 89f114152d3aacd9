//! `autoscaler demo-service`: a small HTTP service to scale (Sock Shop-like routes burning real
//! CPU, Sock Shop's metrics on /metrics). Validates (exit 64 listing every problem), binds, says
//! where on stderr (scripts wait for `listening on http://`), serves until SIGTERM or ctrl-c.

use autoscaler_demo_service::{
    DemoServiceConfig, DEFAULT_ERROR_PCT, DEFAULT_LISTEN, DEFAULT_SERVICE, DEFAULT_SLEEP_MS,
    DEFAULT_WORKERS, DEFAULT_WORK_MS,
};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::exit::ConfigError;
use crate::opts::parse::parse_listen;

/// `autoscaler demo-service`.
#[derive(Debug, Clone, Args)]
pub struct DemoServiceArgs {
    /// Address to listen on (`0.0.0.0:8081` in a container; port 0 picks a free one).
    #[arg(long, env = "AUTOSCALER_DEMO_LISTEN", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: std::net::SocketAddr,
    /// The `service` label of `request_duration_seconds`, e.g. `front-end`, `orders`.
    #[arg(long, env = "AUTOSCALER_DEMO_SERVICE", default_value = DEFAULT_SERVICE)]
    pub service: String,
    /// CPU burnt per request on a worker, milliseconds (`?work_ms=N` overrides per request).
    #[arg(long = "work-ms", env = "AUTOSCALER_DEMO_WORK_MS", default_value_t = DEFAULT_WORK_MS)]
    pub work_ms: u64,
    /// Requests that burn CPU at once; the others queue (capacity = workers × replicas).
    #[arg(long, env = "AUTOSCALER_DEMO_WORKERS", default_value_t = DEFAULT_WORKERS)]
    pub workers: usize,
    /// Percentage of requests answered 500, spread evenly by arrival order (0–100).
    #[arg(
        long = "error-pct",
        env = "AUTOSCALER_DEMO_ERROR_PCT",
        default_value_t = DEFAULT_ERROR_PCT,
        allow_negative_numbers = true
    )]
    pub error_pct: f64,
    /// Extra fixed latency per request, milliseconds, spent without a worker
    /// (`?sleep_ms=N` overrides per request).
    #[arg(long = "sleep-ms", env = "AUTOSCALER_DEMO_SLEEP_MS", default_value_t = DEFAULT_SLEEP_MS)]
    pub sleep_ms: u64,
}

/// Serve until `shutdown`.
pub async fn run(a: DemoServiceArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let cfg = DemoServiceConfig {
        listen: a.listen,
        service: a.service,
        work_ms: a.work_ms,
        workers: a.workers,
        error_pct: a.error_pct,
        sleep_ms: a.sleep_ms,
        ..Default::default()
    };
    ConfigError::check(cfg.problems())?;
    let bound = autoscaler_demo_service::bind(cfg.clone()).await?;
    eprintln!(
        "demo-service {}: listening on http://{} ({} ms of work per request, {} worker{}, \
         {}% errors, {} ms sleep)",
        cfg.service,
        bound.local_addr(),
        cfg.work_ms,
        cfg.workers,
        if cfg.workers == 1 { "" } else { "s" },
        cfg.error_pct,
        cfg.sleep_ms
    );
    bound.serve(shutdown).await?;
    eprintln!("demo-service {}: stopped", cfg.service);
    Ok(())
}
