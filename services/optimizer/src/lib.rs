//! # The optimizer API
//!
//! `POST /optimize` takes the seed's payload
//!
//! ```json
//! {"token": "…", "check": {"metric_app_name": "web"}, "current_replicas": 3,
//!  "min_replicas": 1, "max_replicas": 10, "cache_size": 10}
//! ```
//!
//! and answers `{"desired": [cache_size integers in [min, max]], "model", "order", "aic",
//! "solver_status", "fallback", …}`: the app's request-rate forecast (SARIMAX, refitted in the
//! background every [`autoscaler_forecast::FORECAST_INTERVAL_MIN`]), turned into demand by the
//! demand policy, planned by the MILP of [`autoscaler_planner`], one value per second
//! (`desired[i]` is the plan step holding second `i`).
//!
//! * The token (from `OPTIMIZER_TOKEN_FILE`, trimmed, or `OPTIMIZER_TOKEN`) is checked first,
//!   as sha256 digests compared in constant time; a wrong or missing token is a 401 and is
//!   never logged. Then the payload is validated: a 400 lists every reason.
//! * `GET /health` answers as soon as the listener is up; models fit in the background, and an
//!   `/optimize` before an app's first fit gets the fallback plan (hold the current count),
//!   marked in `fallback`.
//! * `GET /metrics`: Prometheus text (requests by outcome, fits, solve time).
#![deny(missing_docs)]

pub mod source;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use autoscaler_forecast::sarimax::Sarimax;
use autoscaler_forecast::{Forecast, Forecaster, ModelInfo, FORECAST_INTERVAL_MIN};
use autoscaler_planner::{
    demand_from_forecast, fallback_only, solve, DemandPolicy, PlanParams, SolverStatus,
    PLAN_LEAD_SECS, PLAN_STEPS, PLAN_STEP_SECS, SOLVER_TIMEOUT_MS,
};

pub use source::{HistorySource, PrometheusSource, TraceSource, DEFAULT_RATE_QUERY};

/// The largest `cache_size` accepted (one hour of per-second values).
pub const MAX_CACHE_SIZE: u32 = 3600;
/// The request rate one replica serves when none has been learned (requests/s).
pub const DEFAULT_CAPACITY_RPS: f64 = 10.0;
/// Default address of `autoscaler optimizer`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8095";
/// Default replay speed of `--trace` (simulated seconds per wall second).
pub const DEFAULT_REPLAY_SPEED: f64 = 1.0;
/// The environment variable naming the token file.
pub const TOKEN_FILE_ENV: &str = "OPTIMIZER_TOKEN_FILE";
/// The environment variable holding the token.
pub const TOKEN_ENV: &str = "OPTIMIZER_TOKEN";
/// Forecast buckets asked of the model (one hour of 5-minute buckets, plus the lead).
const FORECAST_STEPS: usize = 14;

/// Why the optimizer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OptimizerError {
    /// No token configured.
    #[error("no token: set {TOKEN_FILE_ENV} (a file) or {TOKEN_ENV}")]
    NoToken,
    /// The token file cannot be read.
    #[error("cannot read {TOKEN_FILE_ENV} {path}: {source}")]
    TokenFile {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The token is empty.
    #[error("the token is empty")]
    EmptyToken,
    /// Cannot listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server failed.
    #[error("server: {0}")]
    Serve(#[source] std::io::Error),
}

/// The environment, read through a trait so tests pass a map.
pub trait Env {
    /// A variable's value.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// The token's sha256 digest (the token itself is not kept).
#[derive(Clone)]
pub struct Token([u8; 32]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from its text (surrounding whitespace trimmed; empty is an error).
    pub fn new(text: &str) -> Result<Self, OptimizerError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(OptimizerError::EmptyToken);
        }
        Ok(Token(Sha256::digest(t.as_bytes()).into()))
    }

    /// The token from `OPTIMIZER_TOKEN_FILE` (preferred) or `OPTIMIZER_TOKEN`.
    pub fn from_env(env: &dyn Env) -> Result<Self, OptimizerError> {
        if let Some(path) = env.var(TOKEN_FILE_ENV).filter(|p| !p.is_empty()) {
            let text = std::fs::read_to_string(&path)
                .map_err(|source| OptimizerError::TokenFile { path, source })?;
            return Token::new(&text);
        }
        match env.var(TOKEN_ENV) {
            Some(t) => Token::new(&t),
            None => Err(OptimizerError::NoToken),
        }
    }

    /// Whether `given` is the token (constant time in the token's content).
    pub fn matches(&self, given: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        bool::from(d.ct_eq(&self.0))
    }
}

/// Settings of the optimizer (validated by the CLI).
#[derive(Debug, Clone)]
pub struct Settings {
    /// How demand is read from the forecast.
    pub demand_policy: DemandPolicy,
    /// Requests/s one replica serves (until learned).
    pub capacity_rps_per_replica: f64,
    /// Refit interval.
    pub refit_interval: Duration,
    /// Solver time limit (ms).
    pub solver_timeout_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            demand_policy: DemandPolicy::ConfidenceAware,
            capacity_rps_per_replica: DEFAULT_CAPACITY_RPS,
            refit_interval: Duration::from_secs(u64::from(FORECAST_INTERVAL_MIN) * 60),
            solver_timeout_ms: SOLVER_TIMEOUT_MS,
        }
    }
}

/// The seed's payload.
#[derive(Debug, Clone, Deserialize)]
pub struct OptimizeRequest {
    /// The token (checked before anything else).
    #[serde(default)]
    pub token: Option<String>,
    /// Which app.
    pub check: Check,
    /// Replicas now.
    pub current_replicas: u32,
    /// Fewest replicas.
    pub min_replicas: u32,
    /// Most replicas.
    pub max_replicas: u32,
    /// Values wanted, one per second.
    pub cache_size: u32,
}

/// The `check` object.
#[derive(Debug, Clone, Deserialize)]
pub struct Check {
    /// The app (service) name.
    pub metric_app_name: String,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OptimizeResponse {
    /// Replicas per second, `cache_size` of them, each in [min, max].
    pub desired: Vec<u32>,
    /// The forecasting model.
    pub model: String,
    /// Its order (SARIMAX), once fitted.
    pub order: Option<String>,
    /// Its AIC, once fitted.
    pub aic: Option<f64>,
    /// How the plan was made.
    pub solver_status: SolverStatus,
    /// Why the fallback plan was used; null when the solver's plan is used.
    pub fallback: Option<String>,
    /// The demand policy.
    pub demand_policy: DemandPolicy,
    /// Requests/s per replica the plan assumed.
    pub capacity_rps_per_replica: f64,
    /// Seconds since the forecast was fitted (null before the first fit).
    pub forecast_age_secs: Option<f64>,
}

impl OptimizeRequest {
    /// Every problem with the payload.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let name = &self.check.metric_app_name;
        if name.trim().is_empty() {
            p.push("check.metric_app_name is empty".to_string());
        }
        if name.len() > 256 || name.chars().any(char::is_control) {
            p.push("check.metric_app_name must be at most 256 printable characters".into());
        }
        if self.min_replicas > self.max_replicas {
            p.push(format!(
                "min_replicas {} > max_replicas {}",
                self.min_replicas, self.max_replicas
            ));
        }
        if self.cache_size == 0 || self.cache_size > MAX_CACHE_SIZE {
            p.push(format!(
                "cache_size must be 1..={MAX_CACHE_SIZE}, got {}",
                self.cache_size
            ));
        }
        p
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

struct Metrics {
    registry: Registry,
    requests: Family<OutcomeLabel, Counter>,
    fits: Family<OutcomeLabel, Counter>,
    solve_seconds: Histogram,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<OutcomeLabel, Counter>::default();
        let fits = Family::<OutcomeLabel, Counter>::default();
        let solve_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "optimizer_requests",
            "POST /optimize requests by outcome",
            requests.clone(),
        );
        registry.register("optimizer_fits", "Model fits by outcome", fits.clone());
        registry.register(
            "optimizer_solve_seconds",
            "Wall time of one plan solve",
            solve_seconds.clone(),
        );
        Metrics {
            registry,
            requests,
            fits,
            solve_seconds,
        }
    }

    fn count(&self, outcome: &'static str) {
        self.requests.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}

#[derive(Default)]
struct App {
    model: Option<Arc<Mutex<Sarimax>>>,
    forecast: Option<(Forecast, ModelInfo, Instant)>,
    fitting: bool,
    last_error: Option<String>,
}

/// The optimizer's shared state.
pub struct Optimizer {
    token: Token,
    source: Arc<dyn HistorySource>,
    settings: Settings,
    apps: Mutex<HashMap<String, App>>,
    metrics: Metrics,
}

impl Optimizer {
    /// An optimizer reading history from `source`.
    pub fn new(token: Token, source: Arc<dyn HistorySource>, settings: Settings) -> Arc<Self> {
        Arc::new(Optimizer {
            token,
            source,
            settings,
            apps: Mutex::new(HashMap::new()),
            metrics: Metrics::new(),
        })
    }

    /// Start a background fit of `app` when none is running and its forecast is missing or
    /// older than the refit interval.
    fn maybe_refit(self: &Arc<Self>, app: &str) {
        let model = {
            let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
            let a = apps.entry(app.to_string()).or_default();
            let stale = a
                .forecast
                .as_ref()
                .is_none_or(|(_, _, at)| at.elapsed() >= self.settings.refit_interval);
            if a.fitting || !stale {
                return;
            }
            a.fitting = true;
            a.model
                .get_or_insert_with(|| Arc::new(Mutex::new(Sarimax::default())))
                .clone()
        };
        let me = self.clone();
        let app = app.to_string();
        tokio::spawn(async move {
            let history = me.source.history(&app).await;
            let result = match history {
                Ok(h) => tokio::task::spawn_blocking(move || {
                    let mut m = model.lock().unwrap_or_else(|p| p.into_inner());
                    m.fit_forecast(&h, FORECAST_STEPS).map(|f| (f, m.info()))
                })
                .await
                .map_err(|e| format!("fit task: {e}"))
                .and_then(|r| r.map_err(|e| e.to_string())),
                Err(e) => Err(e),
            };
            let mut apps = me.apps.lock().unwrap_or_else(|p| p.into_inner());
            let a = apps.entry(app.clone()).or_default();
            a.fitting = false;
            match result {
                Ok((f, info)) => {
                    me.metrics
                        .fits
                        .get_or_create(&OutcomeLabel { outcome: "ok" })
                        .inc();
                    a.forecast = Some((f, info, Instant::now()));
                    a.last_error = None;
                }
                Err(e) => {
                    me.metrics
                        .fits
                        .get_or_create(&OutcomeLabel { outcome: "error" })
                        .inc();
                    tracing::warn!(app = %app, error = %e, "forecast fit failed; the last forecast (if any) is kept");
                    a.last_error = Some(e);
                }
            }
        });
    }

    /// Plans answered so far, and how many of them were fallback plans (the closing line).
    pub fn totals(&self) -> (u64, u64) {
        let get = |o: &'static str| {
            self.metrics
                .requests
                .get_or_create(&OutcomeLabel { outcome: o })
                .get()
        };
        let fallback = get("fallback");
        (get("ok") + fallback, fallback)
    }

    /// Wait until `app` has a forecast or its fit failed (tests and `--trace` warm-up).
    pub async fn wait_fitted(self: &Arc<Self>, app: &str, timeout: Duration) -> bool {
        self.maybe_refit(app);
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            {
                let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(a) = apps.get(app) {
                    if a.forecast.is_some() {
                        return true;
                    }
                    if !a.fitting && a.last_error.is_some() {
                        return false;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Answer a validated request.
    pub fn plan(self: &Arc<Self>, req: &OptimizeRequest) -> OptimizeResponse {
        let app = req.check.metric_app_name.as_str();
        self.maybe_refit(app);
        let (forecast, error) = {
            let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
            let a = apps.get(app);
            (
                a.and_then(|a| a.forecast.clone()),
                a.and_then(|a| a.last_error.clone()),
            )
        };
        let current = req
            .current_replicas
            .clamp(req.min_replicas, req.max_replicas);
        let capacity = self.settings.capacity_rps_per_replica;
        let mut params = PlanParams::new(current, req.min_replicas, req.max_replicas, capacity);
        params.timeout_ms = self.settings.solver_timeout_ms;
        let seconds = req.cache_size as usize;
        let steps = PLAN_STEPS.max(seconds.div_ceil(PLAN_STEP_SECS as usize));
        let (plan, info, age) = match &forecast {
            Some((f, info, at)) => {
                // The forecast starts at its fit; skip what has elapsed since.
                let lead = PLAN_LEAD_SECS + at.elapsed().as_secs();
                let demand = demand_from_forecast(
                    f,
                    self.settings.demand_policy,
                    steps,
                    PLAN_STEP_SECS,
                    lead,
                );
                let t0 = Instant::now();
                let plan = solve(&params, &demand).unwrap_or_else(|e| {
                    fallback_only(
                        &params,
                        &vec![f64::from(current) * capacity; steps],
                        &e.to_string(),
                    )
                });
                self.metrics
                    .solve_seconds
                    .observe(t0.elapsed().as_secs_f64());
                (plan, info.clone(), Some(at.elapsed().as_secs_f64()))
            }
            None => {
                let why = match error {
                    Some(e) => format!("no forecast ({e}): holding the current count"),
                    None => "models not fitted yet: holding the current count".to_string(),
                };
                let hold = vec![f64::from(current) * capacity; steps];
                (
                    fallback_only(&params, &hold, &why),
                    ModelInfo {
                        model: "sarimax".into(),
                        ..ModelInfo::default()
                    },
                    None,
                )
            }
        };
        let desired: Vec<u32> = (0..seconds)
            .map(|i| plan.replicas[(i / PLAN_STEP_SECS as usize).min(plan.replicas.len() - 1)])
            .collect();
        self.metrics.count(if plan.fallback.is_some() {
            "fallback"
        } else {
            "ok"
        });
        OptimizeResponse {
            desired,
            model: info.model,
            order: info.order,
            aic: info.aic,
            solver_status: plan.status,
            fallback: plan.fallback,
            demand_policy: self.settings.demand_policy,
            capacity_rps_per_replica: capacity,
            forecast_age_secs: age,
        }
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn optimize(State(s): State<Arc<Optimizer>>, body: Bytes) -> Response {
    let value: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let authorised = value
        .as_ref()
        .and_then(|v| v.get("token"))
        .and_then(|t| t.as_str())
        .is_some_and(|t| s.token.matches(t));
    if !authorised {
        s.metrics.count("unauthorized");
        tracing::info!("POST /optimize: 401 (missing or wrong token)");
        return json_response(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"error": "unauthorized"}),
        );
    }
    let bad = |reasons: Vec<String>| {
        s.metrics.count("bad_request");
        json_response(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "bad payload", "reasons": reasons}),
        )
    };
    let req: OptimizeRequest = match serde_json::from_value(value.unwrap_or_default()) {
        Ok(r) => r,
        Err(e) => return bad(vec![e.to_string()]),
    };
    let problems = req.problems();
    if !problems.is_empty() {
        return bad(problems);
    }
    let me = s.clone();
    let resp = tokio::task::spawn_blocking(move || me.plan(&req)).await;
    match resp {
        Ok(r) => json_response(StatusCode::OK, &serde_json::to_value(r).unwrap_or_default()),
        Err(e) => {
            s.metrics.count("error");
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &serde_json::json!({"error": format!("plan task: {e}")}),
            )
        }
    }
}

async fn health() -> &'static str {
    "ok\n"
}

async fn metrics(State(s): State<Arc<Optimizer>>) -> Response {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &s.metrics.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            out,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}

/// The routes.
pub fn router(state: Arc<Optimizer>) -> Router {
    Router::new()
        .route("/optimize", post(optimize))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serve on `addr` until `shutdown`; `ready` gets the bound address.
pub async fn run(
    addr: SocketAddr,
    state: Arc<Optimizer>,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), OptimizerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| OptimizerError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| OptimizerError::Listen { addr, source })?;
    tracing::info!(%bound, "optimizer listening");
    if let Some(r) = ready {
        let _ = r.send(bound);
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(OptimizerError::Serve)
}

#[cfg(test)]
mod tests;
