//! The Prometheus source: PromQL per managed service and poll, turned into honest features.
//!
//! Each poll evaluates every query of every service at **one** evaluation time (the poll's wall
//! clock, whole seconds), so the ten features of a vector describe the same instant, and stamps
//! the vector with that time.
//!
//! Honesty rules, in the order they apply:
//! * a query that fails (a PromQL error, a bad answer) or returns nothing marks *that* feature
//!   missing (`null`), never 0;
//! * an answer that is NaN or ±Inf (e.g. `histogram_quantile` over zero traffic, 0/0 for the
//!   error rate of an idle service) is missing too;
//! * Prometheus unreachable (connection refused, timeout, an HTTP 5xx from a proxy): the poll is
//!   retried with exponential backoff inside a budget below the poll interval; if it still cannot
//!   be reached, every service's vector is published **stale** (all features `null`, the reason
//!   in `stale_reason`) so the models abstain, and it is counted and logged;
//! * deltas are taken against the previous poll of the same service only: after a stale poll the
//!   memory is dropped, so the first poll after recovery has `null` deltas, not a jump from 0.
//!
//! Queries are templates: `{service}` is replaced by the service name, escaped as a PromQL
//! string. Two presets ship ([`Preset`]); any query can be overridden in the config file
//! ([`ConfigFile`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use autoscaler_contract::Features;
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

/// Queries in flight at once, per aggregator.
pub const MAX_CONCURRENT_QUERIES: usize = 16;

/// The raw (non-delta) measurements a poll asks Prometheus for, in the order they are queried.
pub const QUERY_NAMES: [&str; 8] = [
    "request_rate_rps",
    "error_rate_pct",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "cpu_usage_pct",
    "memory_usage_mb",
    "replicas",
];

/// A set of PromQL presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Weaveworks Sock Shop: `request_duration_seconds` histograms labelled by `service`,
    /// errors from `status_code=~"5.."`, process CPU and memory of the scrape job named after
    /// the service, replicas = scrape targets up.
    #[default]
    Sockshop,
    /// The project's demo service (`autoscaler demo-service`): the same metric names as Sock
    /// Shop, with the health-check route left out of the request metrics.
    Demo,
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sockshop" => Ok(Preset::Sockshop),
            "demo" => Ok(Preset::Demo),
            _ => Err(format!(
                "unknown PromQL preset `{s}` (valid: sockshop, demo)"
            )),
        }
    }
}

/// The query templates of one aggregator, by [`QUERY_NAMES`] name.
#[derive(Debug, Clone, PartialEq)]
pub struct Queries(BTreeMap<&'static str, String>);

impl Queries {
    /// The templates of a preset.
    pub fn preset(p: Preset) -> Self {
        // Matchers on the request histogram.
        let req = match p {
            Preset::Sockshop => r#"service="{service}""#,
            Preset::Demo => r#"service="{service}",route!="/health""#,
        };
        let job = r#"job="{service}""#;
        let count = format!("request_duration_seconds_count{{{req}}}");
        let errors = format!("request_duration_seconds_count{{{req},status_code=~\"5..\"}}");
        let bucket = format!("request_duration_seconds_bucket{{{req}}}");
        let quantile =
            |q: &str| format!("1000 * histogram_quantile({q}, sum by (le) (rate({bucket}[1m])))");
        let mut m = BTreeMap::new();
        m.insert("request_rate_rps", format!("sum(rate({count}[1m]))"));
        // No 5xx series at all means no errors (the request series exist); 0/0 over an idle
        // minute is NaN, i.e. missing.
        m.insert(
            "error_rate_pct",
            format!("100 * (sum(rate({errors}[1m])) or vector(0)) / sum(rate({count}[1m]))"),
        );
        m.insert("p50_latency_ms", quantile("0.5"));
        m.insert("p95_latency_ms", quantile("0.95"));
        m.insert("p99_latency_ms", quantile("0.99"));
        m.insert(
            "cpu_usage_pct",
            format!("100 * sum(rate(process_cpu_seconds_total{{{job}}}[1m]))"),
        );
        m.insert(
            "memory_usage_mb",
            format!("sum(process_resident_memory_bytes{{{job}}}) / 1048576"),
        );
        // Targets up: 0 when every replica is down, missing when Prometheus knows no target.
        m.insert("replicas", format!("sum(up{{{job}}})"));
        Queries(m)
    }

    /// Replace templates by name; an unknown name is an error (a typo must not be ignored).
    pub fn override_with(&mut self, overrides: &HashMap<String, String>) -> Result<(), String> {
        for (name, q) in overrides {
            let Some(key) = QUERY_NAMES.iter().find(|n| **n == name.as_str()) else {
                return Err(format!(
                    "unknown query `{name}` (valid: {})",
                    QUERY_NAMES.join(", ")
                ));
            };
            if q.trim().is_empty() {
                return Err(format!("query `{name}` is empty"));
            }
            self.0.insert(key, q.clone());
        }
        Ok(())
    }

    /// The template of `name`.
    pub fn template(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The query of `name` for `service`.
    pub fn for_service(&self, name: &str, service: &str) -> Option<String> {
        self.template(name)
            .map(|t| t.replace("{service}", &promql_string_escape(service)))
    }
}

/// Escape a value for use inside a double-quoted PromQL string.
pub fn promql_string_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The aggregator's config file (TOML). Every key is optional; flags and environment fill in
/// what the file leaves out, and the file wins over their defaults.
///
/// ```toml
/// prometheus_url = "http://127.0.0.1:9090"
/// preset = "sockshop"            # or "demo"
/// poll_interval_sec = 30
/// query_timeout_sec = 10
/// bearer_token_file = "/run/secrets/prometheus-token"   # optional
/// services = ["front-end", "carts", "orders"]
///
/// [queries]                      # any of QUERY_NAMES; {service} is the service name
/// memory_usage_mb = 'sum(container_memory_rss{container_label_com_docker_swarm_service_name="{service}"}) / 1048576'
/// ```
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Prometheus base URL.
    pub prometheus_url: Option<String>,
    /// The PromQL preset.
    pub preset: Option<Preset>,
    /// Seconds between polls.
    pub poll_interval_sec: Option<u64>,
    /// Per-request timeout, seconds.
    pub query_timeout_sec: Option<f64>,
    /// A file holding a bearer token for Prometheus (`Authorization: Bearer …`).
    pub bearer_token_file: Option<std::path::PathBuf>,
    /// Managed services.
    #[serde(default)]
    pub services: Vec<String>,
    /// Query overrides by name.
    #[serde(default)]
    pub queries: HashMap<String, String>,
}

impl ConfigFile {
    /// Read and parse a config file; errors name the file and, for syntax, the line.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parse config text.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// A future of the discovered service names.
pub type DiscoverFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<String>, String>> + Send>>;

/// Where the managed services come from when they are not listed: called before every poll
/// (e.g. the Swarm services labelled `autoscaler.enable=true`).
#[derive(Clone)]
pub struct Discover {
    /// What it asks, for logs (e.g. `docker swarm services labelled autoscaler.enable=true`).
    pub what: String,
    /// The lookup.
    pub lookup: std::sync::Arc<dyn Fn() -> DiscoverFuture + Send + Sync>,
}

impl std::fmt::Debug for Discover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Discover({})", self.what)
    }
}

/// Default Prometheus base URL: a server on this machine.
pub const DEFAULT_PROMETHEUS_URL: &str = "http://127.0.0.1:9090";

/// How the Prometheus source runs. Its `Debug` shows the URL without credentials.
#[derive(Clone)]
pub struct PrometheusSource {
    /// Base URL (`http://host:9090`, or a path prefix behind a proxy).
    pub url: String,
    /// Managed services (when `discover` is set: the list until the first lookup answers).
    pub services: Vec<String>,
    /// Look the services up before every poll instead of using a fixed list. A failed lookup
    /// keeps the last list (logged); a service that disappears stops getting vectors.
    pub discover: Option<Discover>,
    /// The query templates.
    pub queries: Queries,
    /// Per-request timeout; must be below the poll interval.
    pub query_timeout: Duration,
    /// Stop after this many polls (`None`: until shut down).
    pub polls: Option<u64>,
    /// Sent as `Authorization: Bearer …` (Prometheus behind an authenticating proxy).
    pub bearer_token: Option<Secret>,
    /// Where `bearer_token` comes from: re-read before every poll (a small file, once per poll)
    /// and used from then on when its content changed (a rotated secret), so the aggregator
    /// never needs a restart. A file that cannot be read (or is empty) keeps the last token,
    /// with a warning.
    pub bearer_token_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PrometheusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusSource")
            .field("url", &redact_url(&self.url))
            .field("services", &self.services)
            .field("discover", &self.discover)
            .field("queries", &self.queries)
            .field("query_timeout", &self.query_timeout)
            .field("polls", &self.polls)
            .field("bearer_token", &self.bearer_token)
            .field("bearer_token_file", &self.bearer_token_file)
            .finish()
    }
}

/// A credential: never printed (its `Debug` is redacted).
#[derive(Clone, PartialEq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// Read a token file (trailing newline removed); an empty file is an error.
    pub fn from_file(path: &Path) -> Result<Secret, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(format!("{}: the token file is empty", path.display()));
        }
        Ok(Secret(token.to_string()))
    }
}

impl PrometheusSource {
    /// A source with the preset's queries and a 10 s query timeout (the CLI sets a third of the
    /// interval, at most 10 s).
    pub fn new(url: impl Into<String>, services: Vec<String>, preset: Preset) -> Self {
        PrometheusSource {
            url: url.into(),
            services,
            queries: Queries::preset(preset),
            query_timeout: Duration::from_secs(10),
            polls: None,
            discover: None,
            bearer_token: None,
            bearer_token_file: None,
        }
    }

    /// Problems with this source at this poll interval.
    pub fn problems(&self, poll_interval_secs: u64) -> Vec<String> {
        let mut p = Vec::new();
        if self.services.is_empty() && self.discover.is_none() {
            p.push(
                "no services to poll (set SERVICES, `services` in the config file, or \
                 --discover swarm)"
                    .into(),
            );
        }
        if self.services.iter().any(|s| s.trim().is_empty()) {
            p.push("a service name is empty".into());
        }
        if let Err(e) = reqwest::Url::parse(&self.url) {
            p.push(redact_in(
                &format!("PROMETHEUS_URL `{}`: {e}", redact_url(&self.url)),
                &self.url,
            ));
        }
        let interval = Duration::from_secs(poll_interval_secs);
        if self.query_timeout < Duration::from_millis(100) || self.query_timeout > interval / 2 {
            p.push(format!(
                "query timeout {:?} must be at least 100 ms and at most half the poll interval \
                 {interval:?} (a poll and its retries must end within the interval)",
                self.query_timeout
            ));
        }
        if self.polls == Some(0) {
            p.push("--polls must be at least 1".into());
        }
        p
    }
}

/// What one query gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A finite number.
    Value(f64),
    /// Missing, and why (empty result, NaN, a PromQL error, …).
    Missing(String),
    /// Prometheus could not be reached (or answered like a dead proxy): worth a retry.
    Unreachable(String),
    /// Prometheus (or the proxy before it) refused us (401/403/407): retrying cannot help.
    Refused(String),
}

/// The raw measurements of one service at one poll, by query name.
pub type Raw = BTreeMap<&'static str, Answer>;

/// The body of a Prometheus API answer.
#[derive(Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
enum Envelope {
    Success {
        data: prometheus_http_query::response::PromqlResult,
    },
    Error {
        #[serde(rename = "errorType", default)]
        error_type: String,
        #[serde(default)]
        error: String,
    },
}

/// Send a query and turn the reply into an [`Answer`]. The HTTP status is read first, so a
/// refusal (401/403 from an authenticating proxy) or a dead upstream (502/503) says so instead
/// of "failed to parse JSON".
pub async fn ask(query: prometheus_http_query::InstantQueryBuilder) -> Answer {
    let response = match query.get_raw().await {
        Ok(r) => r,
        Err(e) => {
            let detail = match &e {
                prometheus_http_query::Error::Client(c) => match c.inner() {
                    Some(re) => format!("{c}: {re}"),
                    None => c.to_string(),
                },
                e => e.to_string(),
            };
            return Answer::Unreachable(detail);
        }
    };
    let status = response.status();
    let mut response = response;
    // Read with a size limit: one number never needs more; a huge answer (a query that selects
    // every series, a hostile proxy) is refused, not buffered.
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > MAX_ANSWER_BYTES {
                    return Answer::Missing(format!(
                        "HTTP {status}: the answer is over {MAX_ANSWER_BYTES} bytes"
                    ));
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) => {
                return Answer::Unreachable(format!("HTTP {status}: reading the answer: {e}"))
            }
        }
    }
    read_answer(status, &body)
}

/// Largest Prometheus answer read, bytes (one instant value is a few hundred).
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Turn one HTTP answer of the Prometheus API (its status and body) into an [`Answer`]. Total:
/// no body panics (fuzzed).
pub fn read_answer(status: reqwest::StatusCode, body: &[u8]) -> Answer {
    let refused = matches!(status.as_u16(), 401 | 403 | 407);
    // A proxy or load balancer with no healthy Prometheus behind it.
    let upstream_down = matches!(status.as_u16(), 502..=504);
    // Texts from the answer (Prometheus's error, serde's message quoting the body) are cut:
    // they become a vector's bounded `stale_reason`.
    let cut = |t: &str| autoscaler_contract::truncate_text(t, autoscaler_contract::MAX_ERROR_LEN);
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope::Success { data }) => interpret(data),
        Ok(Envelope::Error { error, .. }) if refused => {
            Answer::Refused(format!("HTTP {status}: {}", cut(&error)))
        }
        // Prometheus's own query timeout comes back as 503 `timeout`: a slow query, not an
        // outage; like every PromQL error (bad query, 422 execution error …) the feature is
        // missing.
        Ok(Envelope::Error { error_type, error }) if !upstream_down || error_type == "timeout" => {
            Answer::Missing(format!(
                "query failed: {}: {}",
                cut(&error_type),
                cut(&error)
            ))
        }
        Ok(Envelope::Error { error, .. }) => {
            Answer::Unreachable(format!("HTTP {status}: {}", cut(&error)))
        }
        Err(_) if refused => Answer::Refused(format!(
            "HTTP {status} (check the bearer token / access to Prometheus)"
        )),
        Err(e) if status.is_success() => {
            // Prometheus answered, with something we do not read (e.g. a string result).
            Answer::Missing(format!("unreadable answer: {}", cut(&e.to_string())))
        }
        Err(e) => Answer::Unreachable(format!(
            "HTTP {status}: not a Prometheus API answer ({})",
            cut(&e.to_string())
        )),
    }
}

/// Turn a query's result into an [`Answer`].
pub fn interpret(result: prometheus_http_query::response::PromqlResult) -> Answer {
    use prometheus_http_query::response::Data;
    let value = match result.into_inner().0 {
        Data::Scalar(s) => s.value(),
        Data::Vector(v) => match v.as_slice() {
            [] => return Answer::Missing("no data".into()),
            [one] => one.sample().value(),
            many => {
                return Answer::Missing(format!(
                    "{} series where one was expected (aggregate the query)",
                    many.len()
                ))
            }
        },
        Data::Matrix(_) => {
            return Answer::Missing("a range vector where a number was expected".into())
        }
    };
    if value.is_finite() {
        Answer::Value(value)
    } else {
        Answer::Missing(format!("{value}"))
    }
}

/// Where the credentials of `url` are (`user:password` before the last `@`), if it has any;
/// also for a URL that does not parse.
fn userinfo(url: &str) -> Option<(usize, usize)> {
    let head = &url[..url.find(['?', '#']).unwrap_or(url.len())];
    let at = head.rfind('@')?;
    let start = head[..at].find("://").map_or(0, |i| i + 3);
    Some((start, at))
}

/// `url` with its credentials (`user:password@`) replaced by `***@`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match userinfo(url) {
        Some((start, at)) => format!("{}***{}", &url[..start], &url[at..]),
        None => url.to_string(),
    }
}

/// `text` with the credentials of `url` (whole, and each part of 3 bytes or more) cut out:
/// reqwest's errors quote the URL they failed on.
pub fn redact_in(text: &str, url: &str) -> String {
    let Some((start, at)) = userinfo(url) else {
        return text.to_string();
    };
    let info = &url[start..at];
    let mut out = text.replace(info, "***");
    for part in info.split(':').filter(|p| p.len() >= 3) {
        out = out.replace(part, "***");
    }
    out
}

/// The Prometheus client of one aggregator.
pub struct Poller {
    current: std::sync::Mutex<Current>,
    src: PrometheusSource,
    timeout: Duration,
}

/// The client in use, the token it sends, and whether the token file is failing (warned once).
struct Current {
    client: prometheus_http_query::Client,
    token: Option<Secret>,
    failing: bool,
}

fn build_client(
    src: &PrometheusSource,
    token: Option<&Secret>,
) -> Result<prometheus_http_query::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(Secret(token)) = token {
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the bearer token has characters a header cannot carry".to_string())?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(src.query_timeout)
        .connect_timeout(src.query_timeout)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    // `…/prometheus/` would become `…/prometheus//api/v1/query`.
    prometheus_http_query::Client::from(http, src.url.trim_end_matches('/')).map_err(|e| {
        redact_in(
            &format!("PROMETHEUS_URL `{}`: {e}", redact_url(&src.url)),
            &src.url,
        )
    })
}

impl Poller {
    /// A client for `src`. With a `bearer_token_file` and no `bearer_token`, the file is read
    /// now (an unreadable or empty file is an error).
    pub fn new(mut src: PrometheusSource) -> Result<Self, String> {
        if let (None, Some(path)) = (&src.bearer_token, &src.bearer_token_file) {
            src.bearer_token = Some(Secret::from_file(path)?);
        }
        let client = build_client(&src, src.bearer_token.as_ref())?;
        Ok(Poller {
            current: std::sync::Mutex::new(Current {
                client,
                token: src.bearer_token.clone(),
                failing: false,
            }),
            timeout: src.query_timeout,
            src,
        })
    }

    /// The client to poll with: rebuilt when the token file's content changed.
    fn client(&self) -> prometheus_http_query::Client {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(path) = &self.src.bearer_token_file {
            let read = Secret::from_file(path);
            let fresh = match &read {
                Ok(t) if cur.token.as_ref() == Some(t) => Ok(None),
                Ok(t) => build_client(&self.src, Some(t)).map(Some),
                Err(e) => Err(e.clone()),
            };
            match fresh {
                Ok(Some(client)) => {
                    cur.client = client;
                    cur.token = read.ok();
                    cur.failing = false;
                    tracing::info!(file = %path.display(), "bearer token file changed: re-read");
                }
                Ok(None) => cur.failing = false,
                Err(e) => {
                    if !cur.failing {
                        tracing::warn!(error = %e,
                            "bearer token file cannot be used; keeping the last token");
                    }
                    cur.failing = true;
                }
            }
        }
        cur.client.clone()
    }

    /// The source.
    pub fn source(&self) -> &PrometheusSource {
        &self.src
    }

    /// Evaluate every query of every service at `at`, concurrently.
    pub async fn poll_once(&self, services: &[String], at: DateTime<Utc>) -> BTreeMap<String, Raw> {
        let mut set = tokio::task::JoinSet::new();
        // At most this many queries in flight: dozens of discovered services must not hit
        // Prometheus with hundreds of requests at once.
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_QUERIES));
        let client = self.client();
        for service in services {
            for name in QUERY_NAMES {
                let Some(q) = self.src.queries.for_service(name, service) else {
                    continue;
                };
                let client = client.clone();
                let service = service.clone();
                // Prometheus's own timeout a little below ours, so its answer (a `timeout`
                // error: the feature is missing) arrives before the client gives up.
                let timeout_ms = ((self.timeout.as_millis() as f64 * 0.8) as i64).max(1);
                let at = at.timestamp();
                let permits = permits.clone();
                set.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let answer = ask(client.query(q).at(at).timeout(timeout_ms)).await;
                    (service, name, answer)
                });
            }
        }
        let url = self.src.url.clone();
        let clean = move |a: Answer| match a {
            Answer::Unreachable(t) => Answer::Unreachable(redact_in(&t, &url)),
            Answer::Refused(t) => Answer::Refused(redact_in(&t, &url)),
            Answer::Missing(t) => Answer::Missing(redact_in(&t, &url)),
            v => v,
        };
        let mut out: BTreeMap<String, Raw> =
            services.iter().map(|s| (s.clone(), Raw::new())).collect();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((service, name, answer)) => {
                    out.entry(service).or_default().insert(name, clean(answer));
                }
                // A panicking query task is a bug; the feature it owed stays absent (missing).
                Err(e) => tracing::error!(error = %e, "query task failed"),
            }
        }
        out
    }

    /// Poll with retries: while *every* answer says unreachable, retry with exponential backoff
    /// (0.5 s, 1 s, 2 s, …) until `budget` is spent. `Err` carries the last transport error.
    pub async fn poll(
        &self,
        services: &[String],
        at: DateTime<Utc>,
        budget: Duration,
        retries: &mut u64,
    ) -> Result<BTreeMap<String, Raw>, String> {
        let deadline = tokio::time::Instant::now() + budget;
        let mut backoff = Duration::from_millis(500);
        loop {
            let raw = self.poll_once(services, at).await;
            let failure = raw.values().flat_map(|r| r.values()).find_map(|a| match a {
                Answer::Unreachable(e) | Answer::Refused(e) => Some(e.clone()),
                _ => None,
            });
            let all_failed = raw
                .values()
                .flat_map(|r| r.values())
                .all(|a| matches!(a, Answer::Unreachable(_) | Answer::Refused(_)));
            let refused = raw
                .values()
                .flat_map(|r| r.values())
                .any(|a| matches!(a, Answer::Refused(_)));
            match failure {
                Some(e) if all_failed => {
                    // Another attempt must fit in the budget, timeout included, so the vectors
                    // still describe their poll; a refusal is not retried.
                    let now = tokio::time::Instant::now();
                    if refused || now + backoff + self.timeout > deadline {
                        return Err(e);
                    }
                    *retries += 1;
                    tracing::warn!(error = %e, retry_in = ?backoff, "Prometheus unreachable; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(8));
                }
                // Some queries answered: the others are missing features, not an outage.
                _ => return Ok(raw),
            }
        }
    }
}

/// The previous poll's values of one service, for deltas.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Previous {
    rps: Option<f64>,
    p95: Option<f64>,
    cpu: Option<f64>,
}

fn value(raw: &Raw, name: &str) -> Option<f64> {
    match raw.get(name) {
        Some(Answer::Value(v)) => Some(*v),
        _ => None,
    }
}

/// Features and replicas of one service from its raw answers, with deltas against `prev`
/// (`None` right after an outage or at the first poll); updates `prev`.
pub fn features(raw: &Raw, prev: &mut Option<Previous>) -> (Features, Option<u32>) {
    // Negative rates or usages cannot be measured; a query returning one is broken. Deltas are
    // taken from the accepted values only.
    let non_negative = |v: Option<f64>| v.filter(|x| *x >= 0.0);
    let rps = non_negative(value(raw, "request_rate_rps"));
    let p95 = non_negative(value(raw, "p95_latency_ms"));
    let cpu = non_negative(value(raw, "cpu_usage_pct"));
    let delta = |now: Option<f64>, before: Option<f64>| Some(now? - before?);
    let (d_rps, d_p95, d_cpu) = match prev {
        Some(p) => (delta(rps, p.rps), delta(p95, p.p95), delta(cpu, p.cpu)),
        None => (None, None, None),
    };
    *prev = Some(Previous { rps, p95, cpu });
    let f = Features {
        request_rate_rps: rps,
        error_rate_pct: non_negative(value(raw, "error_rate_pct")).map(|e| e.min(100.0)),
        p50_latency_ms: non_negative(value(raw, "p50_latency_ms")),
        p95_latency_ms: p95,
        p99_latency_ms: non_negative(value(raw, "p99_latency_ms")),
        cpu_usage_pct: cpu,
        memory_usage_mb: non_negative(value(raw, "memory_usage_mb")),
        delta_rps: d_rps,
        delta_p95_latency_ms: d_p95,
        delta_cpu_usage_pct: d_cpu,
    };
    let replicas = value(raw, "replicas")
        .filter(|r| *r >= 0.0 && *r <= u32::MAX as f64)
        .map(|r| r.round() as u32);
    (f, replicas)
}

/// Why features are missing, for the log: `name: reason` pairs.
pub fn missing_reasons(raw: &Raw) -> Vec<String> {
    raw.iter()
        .filter_map(|(n, a)| match a {
            Answer::Value(_) => None,
            Answer::Missing(r) | Answer::Unreachable(r) | Answer::Refused(r) => {
                Some(format!("{n}: {r}"))
            }
        })
        .collect()
}

/// The evaluation time of a poll: now, whole seconds (Prometheus evaluates at that instant).
pub fn poll_time() -> DateTime<Utc> {
    let now = Utc::now().timestamp();
    Utc.timestamp_opt(now, 0).single().unwrap_or_else(Utc::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_the_service_name() {
        let q = Queries::preset(Preset::Sockshop);
        let s = q.for_service("request_rate_rps", r#"we"ird\name"#).unwrap();
        assert_eq!(
            s,
            r#"sum(rate(request_duration_seconds_count{service="we\"ird\\name"}[1m]))"#
        );
        let d = Queries::preset(Preset::Demo)
            .for_service("p95_latency_ms", "front-end")
            .unwrap();
        assert!(d.contains(r#"route!="/health""#), "{d}");
        assert!(d.contains("histogram_quantile(0.95"), "{d}");
    }

    #[test]
    fn every_query_name_has_a_template_in_both_presets() {
        for p in [Preset::Sockshop, Preset::Demo] {
            let q = Queries::preset(p);
            for n in QUERY_NAMES {
                assert!(q.template(n).is_some(), "{p:?} lacks {n}");
            }
        }
    }

    #[test]
    fn overrides_replace_by_name_and_reject_typos() {
        let mut q = Queries::preset(Preset::Sockshop);
        let mut o = HashMap::new();
        o.insert(
            "memory_usage_mb".to_string(),
            "sum(x{s=\"{service}\"})".to_string(),
        );
        q.override_with(&o).unwrap();
        assert_eq!(
            q.for_service("memory_usage_mb", "a").unwrap(),
            "sum(x{s=\"a\"})"
        );
        o.insert("memory_mb".to_string(), "x".to_string());
        let e = q.override_with(&o).unwrap_err();
        assert!(e.contains("unknown query `memory_mb`"), "{e}");
    }

    #[test]
    fn config_file_parses_and_rejects_unknown_keys() {
        let c = ConfigFile::parse(
            r#"
            prometheus_url = "http://127.0.0.1:9090"
            preset = "demo"
            services = ["a", "b"]
            [queries]
            replicas = "1"
            "#,
        )
        .unwrap();
        assert_eq!(c.preset, Some(Preset::Demo));
        assert_eq!(c.services, vec!["a", "b"]);
        assert_eq!(c.queries.get("replicas").unwrap(), "1");
        let e = ConfigFile::parse("servics = [\"a\"]").unwrap_err();
        assert!(e.contains("servics"), "{e}");
        let e = ConfigFile::parse("preset = \"k8s\"").unwrap_err();
        assert!(e.contains("k8s") || e.contains("variant"), "{e}");
    }

    fn raw(pairs: &[(&'static str, Answer)]) -> Raw {
        pairs.iter().cloned().collect()
    }

    #[test]
    fn missing_and_non_finite_answers_are_missing_never_zero() {
        let r = raw(&[
            ("request_rate_rps", Answer::Value(0.0)),
            ("error_rate_pct", Answer::Missing("NaN".into())),
            ("p95_latency_ms", Answer::Missing("no data".into())),
            ("cpu_usage_pct", Answer::Value(12.5)),
            ("replicas", Answer::Value(3.0)),
        ]);
        let mut prev = None;
        let (f, replicas) = features(&r, &mut prev);
        assert_eq!(f.request_rate_rps, Some(0.0), "a measured zero stays zero");
        assert_eq!(f.error_rate_pct, None);
        assert_eq!(f.p95_latency_ms, None);
        assert_eq!(f.p50_latency_ms, None, "absent answer = missing");
        assert_eq!(f.cpu_usage_pct, Some(12.5));
        assert_eq!(replicas, Some(3));
        assert_eq!(
            (f.delta_rps, f.delta_cpu_usage_pct),
            (None, None),
            "first poll"
        );
    }

    #[test]
    fn deltas_need_both_polls_and_reset_after_an_outage() {
        let mut prev = None;
        let a = raw(&[
            ("request_rate_rps", Answer::Value(10.0)),
            ("p95_latency_ms", Answer::Value(40.0)),
        ]);
        let b = raw(&[
            ("request_rate_rps", Answer::Value(14.0)),
            ("cpu_usage_pct", Answer::Value(5.0)),
        ]);
        features(&a, &mut prev);
        let (f, _) = features(&b, &mut prev);
        assert_eq!(f.delta_rps, Some(4.0));
        assert_eq!(f.delta_p95_latency_ms, None, "p95 missing now");
        assert_eq!(f.delta_cpu_usage_pct, None, "cpu missing before");
        // An outage forgets the previous poll.
        prev = None;
        let (f, _) = features(&b, &mut prev);
        assert_eq!(f.delta_rps, None);
    }

    #[test]
    fn negative_measurements_are_refused() {
        let mut prev = None;
        let r = raw(&[
            ("request_rate_rps", Answer::Value(-1.0)),
            ("error_rate_pct", Answer::Value(130.0)),
            ("replicas", Answer::Value(-2.0)),
        ]);
        let (f, replicas) = features(&r, &mut prev);
        assert_eq!(f.request_rate_rps, None);
        assert_eq!(f.error_rate_pct, Some(100.0));
        assert_eq!(replicas, None);
        // A refused value is no base for a delta either.
        let (f, _) = features(&raw(&[("request_rate_rps", Answer::Value(5.0))]), &mut prev);
        assert_eq!(f.delta_rps, None);
    }

    #[test]
    fn source_problems_are_all_reported() {
        let mut s = PrometheusSource::new("not a url", vec![], Preset::Sockshop);
        s.query_timeout = Duration::from_secs(30);
        s.polls = Some(0);
        let p = s.problems(30).join("\n");
        assert!(p.contains("no services"), "{p}");
        assert!(p.contains("PROMETHEUS_URL"), "{p}");
        assert!(p.contains("half the poll interval"), "{p}");
        assert!(p.contains("--polls"), "{p}");
    }
}
