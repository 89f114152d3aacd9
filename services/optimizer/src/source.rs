//! Where an app's history comes from: Prometheus range queries, or a trace replayed for every
//! app (`--trace`).

use std::time::Instant;

use async_trait::async_trait;

use autoscaler_forecast::{aggregate, History, BUCKET_SECS};
use autoscaler_simulator::Trace;

/// Buckets of history the optimizer asks for (7 days, SARIMAX's window).
pub const HISTORY_BUCKETS: usize = autoscaler_forecast::sarimax::SARIMAX_MAX_HISTORY;

/// An app's history of 5-minute mean request rates.
#[async_trait]
pub trait HistorySource: Send + Sync {
    /// The history of `app` up to now, or why not.
    async fn history(&self, app: &str) -> Result<History, String>;
}

/// Replays one trace for every app: the replay starts `start_bucket` buckets into the trace
/// and advances with the wall clock (times `speed`), wrapping at the trace's end.
pub struct TraceSource {
    series: Vec<f64>,
    start_bucket: usize,
    speed: f64,
    started: Instant,
}

impl TraceSource {
    /// A replay of `trace` scaled by `scale`, starting after 7 days (or the trace's middle when
    /// it is shorter).
    pub fn new(trace: &Trace, scale: f64, speed: f64) -> Result<Self, String> {
        let series = aggregate(trace, scale).map_err(|e| e.to_string())?;
        if series.len() < 2 {
            return Err("the trace is shorter than two 5-minute buckets".into());
        }
        let start_bucket = HISTORY_BUCKETS.min(series.len() / 2);
        Ok(TraceSource {
            series,
            start_bucket,
            speed,
            started: Instant::now(),
        })
    }

    /// The bucket the replay is at.
    pub fn now_bucket(&self) -> usize {
        let elapsed = self.started.elapsed().as_secs_f64() * self.speed;
        let b = self.start_bucket + (elapsed / BUCKET_SECS as f64) as usize;
        let n = self.series.len();
        // Wrap, keeping at least start_bucket of history.
        self.start_bucket + (b - self.start_bucket) % (n - self.start_bucket).max(1)
    }
}

#[async_trait]
impl HistorySource for TraceSource {
    async fn history(&self, _app: &str) -> Result<History, String> {
        let end = self.now_bucket();
        let start = end.saturating_sub(HISTORY_BUCKETS);
        Ok(History::new(start, self.series[start..end].to_vec()))
    }
}

/// Range queries against Prometheus: the template's `{service}` is replaced by the app name
/// (escaped), stepped every 5 minutes over the last 7 days.
pub struct PrometheusSource {
    client: prometheus_http_query::Client,
    template: String,
}

/// The default request-rate query (the demo service's and Sock Shop's histogram).
pub const DEFAULT_RATE_QUERY: &str =
    r#"sum(rate(request_duration_seconds_count{service="{service}"}[5m]))"#;

fn escape(s: &str) -> String {
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

impl PrometheusSource {
    /// A source querying `url` with `template`.
    pub fn new(url: &str, template: &str) -> Result<Self, String> {
        let client = prometheus_http_query::Client::try_from(url.trim_end_matches('/'))
            .map_err(|e| format!("Prometheus URL {url}: {e}"))?;
        Ok(PrometheusSource {
            client,
            template: template.to_string(),
        })
    }
}

#[async_trait]
impl HistorySource for PrometheusSource {
    async fn history(&self, app: &str) -> Result<History, String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs() as i64;
        let step = BUCKET_SECS as i64;
        let end = now - now % step;
        let start = end - step * HISTORY_BUCKETS as i64;
        let q = self.template.replace("{service}", &escape(app));
        let res = self
            .client
            .query_range(q, start, end, step as f64)
            .get()
            .await
            .map_err(|e| format!("Prometheus range query: {e}"))?;
        let prometheus_http_query::response::Data::Matrix(m) = res.data() else {
            return Err("Prometheus answered no matrix".into());
        };
        let Some(series) = m.first() else {
            return Err(format!("Prometheus has no request-rate series for `{app}`"));
        };
        let samples = series.samples();
        let Some(first) = samples.first() else {
            return Err(format!("Prometheus has no samples for `{app}`"));
        };
        // Missing steps stay missing (NaN), so the fit refuses a gappy history.
        let first_t = first.timestamp() as i64;
        let n = ((end - first_t) / step + 1) as usize;
        let mut values = vec![f64::NAN; n];
        for s in samples {
            let i = ((s.timestamp() as i64 - first_t) / step) as usize;
            if i < n {
                values[i] = s.value();
            }
        }
        Ok(History::new((first_t / step) as usize, values))
    }
}
