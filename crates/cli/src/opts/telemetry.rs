//! `--metrics-listen ADDR`: a service's Prometheus `/metrics` (`autoscaler_telemetry`).
//!
//! A flag only, no environment variable: off unless asked for, so several services started on
//! one host (the demo, the tests) never fight over a port through an inherited variable.

use std::net::SocketAddr;

use clap::Args;
use tokio_util::sync::CancellationToken;

/// Metrics endpoint options.
#[derive(Debug, Clone, Args)]
pub struct MetricsOpts {
    /// Serve Prometheus metrics on `http://ADDR/metrics` (e.g. `0.0.0.0:9100` in a container);
    /// off by default. A failed bind is logged and the service goes on without it.
    #[arg(long = "metrics-listen", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

impl MetricsOpts {
    /// Start the endpoint when asked for; it stops with `shutdown`. Returns the address bound.
    pub async fn start(&self, shutdown: &CancellationToken) -> Option<SocketAddr> {
        let addr = self.metrics_listen?;
        let bound = autoscaler_telemetry::start_metrics_server(addr, shutdown.clone()).await;
        if let Some(b) = bound {
            eprintln!("metrics: http://{b}/metrics");
        }
        bound
    }
}
