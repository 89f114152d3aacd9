//! # A simulated service driven by a request trace
//!
//! This crate turns a request trace into the ten [`Features`](autoscaler_contract::Features) the
//! metrics-aggregator would have measured, for a service whose replica count changes over time.
//! It is used by the aggregator's `--source replay`, by the one-process demo, and to generate
//! labelled training data (on synthetic traces, so the models never train on the demo trace).
//!
//! Where to start:
//!
//! * [`Trace`]: arrivals per step, from CSV ([`Trace::from_csv_path`]), the embedded NASA sample
//!   ([`Trace::nasa_sample`]) or a seeded synthetic shape ([`Trace::synthetic`]).
//! * [`ServiceParams`]: capacity, latency, start-up delay, CPU and memory of one replica.
//! * [`SimulatedCluster`]: desired and ready replicas per service, with start-up delays.
//! * [`ReplayFeed`]: one per service; [`ReplayFeed::poll`] advances the simulation to `now` and
//!   returns what Prometheus would show over the last minute.
//! * [`label_violations`], [`generate_training_runs`] and [`write_training_csv`]: training data.
//!
//! Everything random is drawn from a [`rand_chacha::ChaCha8Rng`] seeded by the caller, so the
//! same seed gives the same output on every machine.
//!
//! ## Queueing model
//!
//! Time advances in sub-steps of [`SUBSTEP_SECS`] (1 s). In a sub-step of length `dt` with `c`
//! ready replicas, each of capacity `μ = capacity_rps_per_replica`:
//!
//! * **Arrivals.** `λ = trace.rate_rps(trace_offset + t) · trace_scale · (1 + noise·N(0,1))`
//!   requests/s (the noise factor is clamped to `1 ± 3·noise`, never negative).
//! * **Service and backlog.** The load is split evenly over the ready replicas. A backlog `B`
//!   (requests waiting) is carried across sub-steps: `served = min(B + λ·dt, c·μ·dt)` and
//!   `B ← B + λ·dt − served`, so the backlog grows by `(λ − cμ)·dt` under overload and drains
//!   when the load falls below `cμ`.
//! * **Rejections.** Backlog above `queue_limit_secs · c·μ` is rejected and answered 5xx.
//!   With `c = 0` nothing is served: every arrival (and the backlog left over) is rejected.
//! * **Latency.** Each replica is an M/M/1 server at utilisation `ρ = λ/(c·μ)`, whose response
//!   time is exponential with a mean of `base_latency_ms / (1 − ρ)`: the M/M/1 law with its
//!   time scale set so that the mean response time at zero load is `base_latency_ms` (a replica
//!   works on several requests at once, so its throughput `μ` is larger than
//!   `1000 / base_latency_ms`). Quantile `q` of a successful request is
//!
//!   ```text
//!   latency_q = wait_ms + base_latency_ms · ln(1 / (1 − q)) / (1 − ρ')
//!   wait_ms   = 1000 · B / (c·μ)             (time to drain the backlog ahead of it)
//!   ρ'        = min(ρ, 0.95), or 0.95 while a backlog remains (the replicas are saturated)
//!   ```
//!
//!   At zero load p50 = 0.69·base, p95 = 3.0·base and p99 = 4.6·base (60 ms at p95 with the
//!   defaults); p95 reaches the default 250 ms SLA at `ρ ≈ 0.76` without a backlog, and grows
//!   without bound as the backlog builds.
//! * **CPU** (percent of one core, summed over replicas, can exceed 100):
//!   `idle_cpu_pct_per_replica · c + cpu_pct_per_rps · served_rps`.
//! * **Memory** (MiB): `memory_base_mb_per_replica · c + memory_per_inflight_mb · B`.
//!
//! ## What a replica costs
//!
//! A replica costs from the moment it is asked for (a starting container holds its node's
//! resources) until it is removed: replica-hours integrate the *desired* count. It serves only
//! after `startup_delay_secs` (60 s by default); a scale-down is immediate and removes
//! not-yet-ready replicas first. With the defaults a ready replica serves `μ` = 10 requests/s
//! at most, keeps p95 within the default 250 ms SLA up to about 7.6 requests/s (ρ ≈ 0.76), and
//! uses `1 % + 6 %` of a core per request/s (61 % of a core at capacity, which the lab takes as
//! the replica's CPU request for HPA and the threshold script) and 120 MiB.
//!
//! ## The fast model of backtests
//!
//! [`FastFeed`] evaluates the same laws at 5 s sub-steps ([`FAST_SUBSTEP_SECS`]) over a
//! [`LoadProfile`] whose noisy arrivals are drawn once per service and shared by every policy,
//! with report noise a pure function of `(seed, time)` ([`report_noise`]): policies that poll
//! at different intervals see the same traffic (common random numbers). Its tests check it
//! against [`ReplayFeed`] (equal without noise; mean p95 within 5 % with noise).
//! `docs/how-it-compares.md` records a calibration of these laws against real Sock Shop
//! measurements.
//!
//! ## What a poll reports
//!
//! [`ReplayFeed::poll`] reports the sub-steps of the last [`WINDOW_SECS`] (60 s), like
//! Prometheus' `rate(...[1m])`:
//!
//! * `request_rate_rps` = arrivals / window seconds;
//! * `error_rate_pct` = rejected / (served + rejected) × 100; `None` when no request completed;
//! * `p50/p95/p99_latency_ms`: the exact quantile of the *mixture* of the window's per-sub-step
//!   response-time distributions weighted by the requests each served (an approximation of
//!   `histogram_quantile` without bucket interpolation error), times one noise factor per poll;
//!   `None` when nothing was served (no traffic, or no ready replica), never 0;
//! * `cpu_usage_pct`: the window mean, times a noise factor; `None` when no replica was ready
//!   during the whole window (no process to measure);
//! * `memory_usage_mb`: the value at the end of the window; `None` when no replica is ready;
//! * the three deltas against this feed's previous poll; `None` on the first poll, after
//!   [`ReplayFeed::reset_deltas`], or when either side is `None`.
#![deny(missing_docs)]

mod cluster;
mod fast;
mod feed;
mod labels;
mod params;
mod trace;
mod training;

pub use cluster::SimulatedCluster;
pub use fast::{report_noise, slot_within_sla, FastFeed, LoadProfile, FAST_SUBSTEP_SECS};
pub use feed::{Poll, ReplayFeed, SUBSTEP_SECS, WINDOW_SECS};
pub use labels::{label_violations, ERROR_VIOLATION_PCT};
pub use params::{ServiceParams, DEFAULT_SEED, DEFAULT_TRACE_SCALE};
pub use trace::{SyntheticShape, Trace, TraceError, NASA_TRACE_CSV};
pub use training::{
    generate_training_runs, training_csv_header, write_training_csv, TrainingDataConfig,
    TrainingRow, TrainingRun, DEFAULT_TRAINING_DAYS, DEFAULT_TRAINING_RUNS,
};

/// Errors of the simulated cluster, the feeds and the training-data writer.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The service was never registered with the cluster.
    #[error("unknown service `{0}` (register it first)")]
    UnknownService(String),
    /// Service parameters that cannot describe a service; one message per problem.
    #[error("invalid service parameters: {}", .0.join("; "))]
    InvalidParams(Vec<String>),
    /// Writing CSV failed.
    #[error("cannot write CSV: {0}")]
    Csv(#[from] csv::Error),
    /// An I/O error while writing.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
