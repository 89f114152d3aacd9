//! `autoscaler optimizer`: the optimizer API — `POST /optimize` answers the seed's payload with
//! a replica plan one value per second (forecast + MILP), `GET /health`, `GET /metrics`. The
//! history comes from Prometheus range queries (`--prometheus-url`), or, to try it out, from a
//! trace every `metric_app_name` replays (`--trace`). The token comes from
//! `OPTIMIZER_TOKEN_FILE` (a file, trimmed) or `OPTIMIZER_TOKEN`; it is never printed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use autoscaler_forecast::FORECAST_INTERVAL_MIN;
use autoscaler_optimizer::{
    HistorySource, Optimizer, ProcessEnv, PrometheusSource, Settings, Token, TraceSource,
    DEFAULT_CAPACITY_RPS, DEFAULT_LISTEN, DEFAULT_RATE_QUERY, DEFAULT_REPLAY_SPEED,
};
use autoscaler_planner::{DemandPolicy, DEFAULT_DEMAND_POLICY, SOLVER_TIMEOUT_MS};
use autoscaler_simulator::{Trace, DEFAULT_TRACE_SCALE};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::exit::ConfigError;
use crate::opts::parse::parse_listen;

/// `autoscaler optimizer`.
#[derive(Debug, Clone, Args)]
pub struct OptimizerArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "OPTIMIZER_LISTEN", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: std::net::SocketAddr,
    /// Prometheus base URL for the history (range queries, 5-minute steps over 7 days).
    #[arg(
        long = "prometheus-url",
        env = "PROMETHEUS_URL",
        conflicts_with = "trace"
    )]
    pub prometheus_url: Option<String>,
    /// The request-rate query; `{service}` is replaced by the payload's `metric_app_name`.
    #[arg(long = "rate-query", env = "OPTIMIZER_RATE_QUERY", default_value = DEFAULT_RATE_QUERY)]
    pub rate_query: String,
    /// Replay this trace as every app's history instead of asking Prometheus.
    #[arg(long, env = "OPTIMIZER_TRACE")]
    pub trace: Option<PathBuf>,
    /// Scale of the replayed trace's request counts.
    #[arg(long = "trace-scale", env = "AUTOSCALER_TRACE_SCALE", default_value_t = DEFAULT_TRACE_SCALE)]
    pub trace_scale: f64,
    /// Replay speed of the trace (simulated seconds per wall second).
    #[arg(long = "replay-speed", env = "OPTIMIZER_REPLAY_SPEED", default_value_t = DEFAULT_REPLAY_SPEED)]
    pub replay_speed: f64,
    /// How demand is read from the forecast: confidence-aware, buffered, ceiling.
    #[arg(long = "demand-policy", env = "OPTIMIZER_DEMAND_POLICY", default_value = DEFAULT_DEMAND_POLICY)]
    pub demand_policy: DemandPolicy,
    /// Requests/s one replica serves within the SLA.
    #[arg(long = "capacity-rps", env = "OPTIMIZER_CAPACITY_RPS", default_value_t = DEFAULT_CAPACITY_RPS)]
    pub capacity_rps: f64,
    /// Minutes between refits of an app's forecast.
    #[arg(long = "refit-min", env = "FORECAST_INTERVAL_MIN", default_value_t = FORECAST_INTERVAL_MIN)]
    pub refit_min: u32,
    /// Time limit of one solve, ms.
    #[arg(long = "solver-timeout-ms", env = "SOLVER_TIMEOUT_MS", default_value_t = SOLVER_TIMEOUT_MS)]
    pub solver_timeout_ms: u64,
}

impl OptimizerArgs {
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.trace.is_none() && self.prometheus_url.is_none() {
            p.push("give --prometheus-url (PROMETHEUS_URL) or --trace".into());
        }
        if !(self.trace_scale.is_finite() && self.trace_scale > 0.0) {
            p.push(format!("--trace-scale {} must be > 0", self.trace_scale));
        }
        if !(self.replay_speed.is_finite() && self.replay_speed > 0.0) {
            p.push(format!("--replay-speed {} must be > 0", self.replay_speed));
        }
        if !(self.capacity_rps.is_finite() && self.capacity_rps > 0.0) {
            p.push(format!("--capacity-rps {} must be > 0", self.capacity_rps));
        }
        if self.refit_min == 0 {
            p.push("--refit-min must be >= 1".into());
        }
        if self.solver_timeout_ms == 0 {
            p.push("--solver-timeout-ms must be >= 1".into());
        }
        if !self.rate_query.contains("{service}") {
            p.push("--rate-query must contain `{service}`".into());
        }
        p
    }
}

/// Serve until `shutdown`.
pub async fn run(a: OptimizerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut problems = a.problems();
    let token = match Token::from_env(&ProcessEnv) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    ConfigError::check(problems)?;
    let token = token.expect("checked above");
    let (source, from): (Arc<dyn HistorySource>, String) = match (&a.trace, &a.prometheus_url) {
        (Some(path), _) => {
            let trace = Trace::from_csv_path(path)
                .with_context(|| format!("reading the trace {}", path.display()))?;
            let s = TraceSource::new(&trace, a.trace_scale, a.replay_speed)
                .map_err(|e| ConfigError::one(format!("--trace {}: {e}", path.display())))?;
            (Arc::new(s), format!("trace {}", path.display()))
        }
        (None, Some(url)) => {
            let s = PrometheusSource::new(url, &a.rate_query).map_err(ConfigError::one)?;
            (Arc::new(s), format!("Prometheus {url}"))
        }
        (None, None) => unreachable!("checked above"),
    };
    let settings = Settings {
        demand_policy: a.demand_policy,
        capacity_rps_per_replica: a.capacity_rps,
        refit_interval: Duration::from_secs(u64::from(a.refit_min) * 60),
        solver_timeout_ms: a.solver_timeout_ms,
    };
    let state = Optimizer::new(token, source, settings);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(autoscaler_optimizer::run(
        a.listen,
        state.clone(),
        shutdown.clone(),
        Some(tx),
    ));
    if let Ok(bound) = rx.await {
        eprintln!("optimizer: listening on http://{bound} (history from {from})");
    }
    server.await.context("optimizer task")??;
    let (requests, fallbacks) = state.totals();
    eprintln!("optimizer: {requests} plans, {fallbacks} fallback plans");
    Ok(())
}
