//! Replay of a trace through the simulated service: one feed per service.

use std::collections::VecDeque;

use autoscaler_contract::Features;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::{ServiceParams, SimError, SimulatedCluster, Trace};

/// Length of one simulation sub-step, seconds.
pub const SUBSTEP_SECS: f64 = 1.0;
/// The window a poll reports on, seconds (like Prometheus' `rate(...[1m])`).
pub const WINDOW_SECS: f64 = 60.0;
/// Utilisation used in the latency formula is capped here (and set here while a backlog
/// remains): the M/M/1 law diverges at 1, while a real saturated service is bounded by its
/// queue.
pub(crate) const RHO_MAX: f64 = 0.95;
/// A poll more than this after the previous one simulates only the last day of the gap.
const MAX_CATCH_UP_SECS: f64 = 86_400.0;

/// What one sub-step did.
#[derive(Debug, Clone, Copy)]
struct SubStep {
    t_end: f64,
    dt: f64,
    arrived: f64,
    served: f64,
    rejected: f64,
    replicas: u32,
    /// Utilisation used for the latency law (already capped).
    rho: f64,
    /// Backlog after the sub-step, requests.
    backlog: f64,
    /// Time to drain that backlog, ms.
    wait_ms: f64,
}

/// What a poll of a [`ReplayFeed`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    /// The simulation time of the poll, seconds.
    pub t_secs: f64,
    /// The ten features, as the aggregator would publish them.
    pub features: Features,
    /// Arrivals per second over the window.
    pub arrived_rps: f64,
    /// Requests served successfully per second over the window.
    pub served_rps: f64,
    /// Requests rejected (5xx) per second over the window.
    pub rejected_rps: f64,
    /// p95 latency, ms (same as `features.p95_latency_ms`).
    pub p95_ms: Option<f64>,
    /// Error percentage (same as `features.error_rate_pct`).
    pub error_pct: Option<f64>,
    /// Requests queued at the end of the window.
    pub backlog: f64,
    /// Replicas ready at the end of the window.
    pub ready_replicas: u32,
    /// Mean arrivals / ready capacity over the window, without noise; `None` when no replica
    /// was ready during the window.
    pub utilisation: Option<f64>,
}

/// A simulated service replaying a trace, polled like Prometheus. See the crate docs for the
/// model.
///
/// Simulation time `t` reads the trace at `trace_offset_secs + t` (wrapping around its end).
/// The first poll simulates `max(poll_interval, 60 s)` before `now`, starting with an empty
/// queue, so its window is full; later polls continue from the previous poll's time.
#[derive(Debug, Clone)]
pub struct ReplayFeed {
    service: String,
    trace: Trace,
    params: ServiceParams,
    trace_offset_secs: f64,
    rng: ChaCha8Rng,
    backlog: f64,
    simulated_to: Option<f64>,
    window: VecDeque<SubStep>,
    previous: Option<Features>,
}

impl ReplayFeed {
    /// A feed of `service` replaying `trace` from `trace_offset_secs`, with noise seeded by
    /// `seed`. Fails when `params` do not [validate](ServiceParams::validate).
    pub fn new(
        service: &str,
        trace: Trace,
        params: ServiceParams,
        trace_offset_secs: f64,
        seed: u64,
    ) -> Result<Self, SimError> {
        params.validate()?;
        Ok(ReplayFeed {
            service: service.to_string(),
            trace,
            params,
            trace_offset_secs: if trace_offset_secs.is_finite() {
                trace_offset_secs
            } else {
                0.0
            },
            rng: ChaCha8Rng::seed_from_u64(seed),
            backlog: 0.0,
            simulated_to: None,
            window: VecDeque::new(),
            previous: None,
        })
    }

    /// The service this feed simulates.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The parameters of the simulated service.
    pub fn params(&self) -> &ServiceParams {
        &self.params
    }

    /// Requests queued now.
    pub fn backlog(&self) -> f64 {
        self.backlog
    }

    /// Forget the previous poll, so the next poll's deltas are `None` (call it when polls were
    /// missed, as the aggregator does after an outage).
    pub fn reset_deltas(&mut self) {
        self.previous = None;
    }

    /// Advance to `now_secs` with `ready_replicas` ready throughout, and report the last minute.
    pub fn poll(&mut self, now_secs: f64, poll_interval_secs: f64, ready_replicas: u32) -> Poll {
        self.poll_with(now_secs, poll_interval_secs, |_| ready_replicas)
    }

    /// Advance to `now_secs` reading the ready replicas of this feed's service from `cluster`
    /// at every sub-step (so start-ups finishing mid-interval count from when they finish).
    pub fn poll_cluster(
        &mut self,
        now_secs: f64,
        poll_interval_secs: f64,
        cluster: &SimulatedCluster,
    ) -> Result<Poll, SimError> {
        let service = self.service.clone();
        if cluster.desired(&service).is_none() {
            return Err(SimError::UnknownService(service));
        }
        Ok(self.poll_with(now_secs, poll_interval_secs, |t| {
            cluster.ready(&service, t).unwrap_or(0)
        }))
    }

    /// Advance to `now_secs` with `ready_at(t)` replicas ready in the sub-step starting at `t`,
    /// and report the last minute. A `now_secs` not after the previous poll simulates nothing.
    pub fn poll_with(
        &mut self,
        now_secs: f64,
        poll_interval_secs: f64,
        mut ready_at: impl FnMut(f64) -> u32,
    ) -> Poll {
        let now = if now_secs.is_finite() { now_secs } else { 0.0 };
        let start = match self.simulated_to {
            Some(t) => t.max(now - MAX_CATCH_UP_SECS),
            None => {
                let interval = if poll_interval_secs.is_finite() {
                    poll_interval_secs.clamp(WINDOW_SECS, MAX_CATCH_UP_SECS)
                } else {
                    WINDOW_SECS
                };
                now - interval
            }
        };
        let steps = ((now - start) / SUBSTEP_SECS).ceil().max(0.0) as u64;
        for k in 0..steps {
            let t = start + k as f64 * SUBSTEP_SECS;
            let dt = (now - t).min(SUBSTEP_SECS);
            if dt <= 1e-9 {
                break;
            }
            let replicas = ready_at(t);
            self.step(t, dt, replicas);
        }
        self.simulated_to = Some(self.simulated_to.map_or(now, |s| s.max(now)));
        while self
            .window
            .front()
            .is_some_and(|s| s.t_end <= now - WINDOW_SECS + 1e-9)
        {
            self.window.pop_front();
        }
        self.report(now)
    }

    /// A multiplicative noise factor `1 + noise·N(0,1)`, clamped to `1 ± 3·noise`.
    fn noise_factor(&mut self) -> f64 {
        let z: f64 = self.rng.sample(StandardNormal);
        let n = self.params.noise;
        (1.0 + n * z).clamp(1.0 - 3.0 * n, 1.0 + 3.0 * n)
    }

    fn step(&mut self, t: f64, dt: f64, replicas: u32) {
        let p = &self.params;
        let base_rate = self.trace.rate_rps(self.trace_offset_secs + t) * p.trace_scale;
        let rate = base_rate * self.noise_factor();
        let arrived = rate * dt;
        let p = &self.params;
        let sub = if replicas == 0 {
            // No endpoint: every arrival fails at once, and the requests queued in the replicas
            // that went away fail with them.
            let rejected = arrived + self.backlog;
            self.backlog = 0.0;
            SubStep {
                t_end: t + dt,
                dt,
                arrived,
                served: 0.0,
                rejected,
                replicas,
                rho: RHO_MAX,
                backlog: 0.0,
                wait_ms: 0.0,
            }
        } else {
            let capacity = replicas as f64 * p.capacity_rps_per_replica;
            let total = self.backlog + arrived;
            let served = total.min(capacity * dt);
            let mut backlog = total - served;
            let limit = p.queue_limit_secs * capacity;
            let rejected = (backlog - limit).max(0.0);
            backlog -= rejected;
            if backlog < 1e-9 {
                backlog = 0.0;
            }
            self.backlog = backlog;
            let rho = if backlog > 0.0 {
                RHO_MAX
            } else {
                (rate / capacity).min(RHO_MAX)
            };
            SubStep {
                t_end: t + dt,
                dt,
                arrived,
                served,
                rejected,
                replicas,
                rho,
                backlog,
                wait_ms: 1000.0 * backlog / capacity,
            }
        };
        self.window.push_back(sub);
    }

    fn report(&mut self, now: f64) -> Poll {
        // Drawn first, in a fixed order, so the noise stream does not depend on the window.
        let latency_noise = self.noise_factor();
        let cpu_noise = self.noise_factor();
        let p = &self.params;
        let w = &self.window;
        let duration: f64 = w.iter().map(|s| s.dt).sum();
        let arrived: f64 = w.iter().map(|s| s.arrived).sum();
        let served: f64 = w.iter().map(|s| s.served).sum();
        let rejected: f64 = w.iter().map(|s| s.rejected).sum();
        let per_sec = |x: f64| if duration > 0.0 { x / duration } else { 0.0 };

        let request_rate = (duration > 0.0).then(|| arrived / duration);
        let completed = served + rejected;
        let error_pct = (completed > 1e-12).then(|| 100.0 * rejected / completed);

        // Latency of the mixture of the window's sub-steps, weighted by requests served.
        let components: Vec<(f64, f64, f64)> = w
            .iter()
            .filter(|s| s.served > 0.0)
            .map(|s| (s.served, s.wait_ms, p.base_latency_ms / (1.0 - s.rho)))
            .collect();
        let quantile = |q: f64| mixture_quantile(&components, q).map(|v| v * latency_noise);
        let (p50, p95, p99) = (quantile(0.50), quantile(0.95), quantile(0.99));

        let ready_duration: f64 = w.iter().filter(|s| s.replicas > 0).map(|s| s.dt).sum();
        let cpu = (ready_duration > 0.0).then(|| {
            let cpu_secs: f64 = w
                .iter()
                .map(|s| {
                    p.idle_cpu_pct_per_replica * s.replicas as f64 * s.dt
                        + p.cpu_pct_per_rps * s.served
                })
                .sum();
            cpu_secs / duration * cpu_noise
        });
        let last = w.back();
        let ready_replicas = last.map_or(0, |s| s.replicas);
        let memory = last.filter(|s| s.replicas > 0).map(|s| {
            p.memory_base_mb_per_replica * s.replicas as f64 + p.memory_per_inflight_mb * s.backlog
        });
        let capacity_secs: f64 = w
            .iter()
            .map(|s| s.replicas as f64 * p.capacity_rps_per_replica * s.dt)
            .sum();
        let utilisation = (capacity_secs > 0.0).then(|| arrived / capacity_secs);

        let mut features = Features {
            request_rate_rps: request_rate,
            error_rate_pct: error_pct,
            p50_latency_ms: p50,
            p95_latency_ms: p95,
            p99_latency_ms: p99,
            cpu_usage_pct: cpu,
            memory_usage_mb: memory,
            delta_rps: None,
            delta_p95_latency_ms: None,
            delta_cpu_usage_pct: None,
        };
        features.set_deltas_from(self.previous.take().as_ref());
        self.previous = Some(features.clone());

        Poll {
            t_secs: now,
            p95_ms: features.p95_latency_ms,
            error_pct: features.error_rate_pct,
            features,
            arrived_rps: per_sec(arrived),
            served_rps: per_sec(served),
            rejected_rps: per_sec(rejected),
            backlog: self.backlog,
            ready_replicas,
            utilisation,
        }
    }
}

/// Quantile `q` of a mixture of shifted exponentials `(weight, shift, mean)`: component `i` is
/// `shift_i + Exp(mean_i)`. `None` when the total weight is 0.
pub(crate) fn mixture_quantile(components: &[(f64, f64, f64)], q: f64) -> Option<f64> {
    let total: f64 = components.iter().map(|c| c.0).sum();
    if total <= 0.0 {
        return None;
    }
    let tail = -(1.0 - q).ln();
    // The mixture's quantile lies between the smallest and largest component quantile.
    let (mut lo, mut hi) = components
        .iter()
        .map(|&(_, shift, mean)| shift + mean * tail)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
    let cdf = |t: f64| {
        components
            .iter()
            .map(|&(w, shift, mean)| {
                if t <= shift {
                    0.0
                } else {
                    w * (1.0 - (-(t - shift) / mean).exp())
                }
            })
            .sum::<f64>()
            / total
    };
    for _ in 0..60 {
        if hi - lo <= 1e-6 * hi.max(1.0) {
            break;
        }
        let mid = 0.5 * (lo + hi);
        if cdf(mid) < q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(0.5 * (lo + hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A constant trace of `rps` requests/s (trace_scale 1).
    fn constant(rps: f64) -> Trace {
        Trace::from_requests(60.0, vec![rps * 60.0]).unwrap()
    }

    fn quiet() -> ServiceParams {
        ServiceParams {
            noise: 0.0,
            trace_scale: 1.0,
            ..ServiceParams::default()
        }
    }

    fn steady(rps: f64, replicas: u32) -> Poll {
        let mut feed = ReplayFeed::new("web", constant(rps), quiet(), 0.0, 1).unwrap();
        feed.poll(120.0, 30.0, replicas)
    }

    #[test]
    fn mixture_of_one_component_is_its_exponential_quantile() {
        let q = mixture_quantile(&[(5.0, 10.0, 20.0)], 0.95).unwrap();
        assert!((q - (10.0 + 20.0 * 20f64.ln())).abs() < 1e-3, "{q}");
        assert_eq!(mixture_quantile(&[], 0.5), None);
        // Two equal halves: the median of the mixture lies between the components' medians.
        let m = mixture_quantile(&[(1.0, 0.0, 10.0), (1.0, 0.0, 100.0)], 0.5).unwrap();
        assert!(m > 10.0 * 2f64.ln() && m < 100.0 * 2f64.ln(), "{m}");
    }

    #[test]
    fn zero_load_latency_follows_the_documented_formula() {
        let poll = steady(1e-9, 1);
        let f = &poll.features;
        let base = quiet().base_latency_ms;
        assert!((f.p50_latency_ms.unwrap() - base * 2f64.ln()).abs() < 0.01);
        assert!((f.p95_latency_ms.unwrap() - base * 20f64.ln()).abs() < 0.01);
        assert!((f.p99_latency_ms.unwrap() - base * 100f64.ln()).abs() < 0.01);
        // At ρ = 0.5 the latency doubles.
        let half = steady(5.0, 1).features.p95_latency_ms.unwrap();
        assert!((half - 2.0 * base * 20f64.ln()).abs() < 0.01, "{half}");
    }

    #[test]
    fn latency_grows_monotonically_with_load() {
        let mut last = 0.0;
        for tenth in 0..=9 {
            let rps = tenth as f64 + 0.5;
            let p = steady(rps, 1);
            let p95 = p.features.p95_latency_ms.unwrap();
            assert!(p95 > last, "p95 at {rps} rps = {p95}, not above {last}");
            let f = &p.features;
            assert!(f.p50_latency_ms.unwrap() < p95 && p95 < f.p99_latency_ms.unwrap());
            assert_eq!(f.error_rate_pct, Some(0.0));
            assert!((f.request_rate_rps.unwrap() - rps).abs() < 1e-9);
            let cpu = 1.0 + 6.0 * rps;
            assert!((f.cpu_usage_pct.unwrap() - cpu).abs() < 1e-9);
            assert_eq!(f.memory_usage_mb, Some(120.0));
            last = p95;
        }
        // Near saturation it is far above the SLA.
        assert!(last > 1000.0, "{last}");
    }

    #[test]
    fn more_replicas_lower_the_latency() {
        let mut last = f64::INFINITY;
        for replicas in 2..=6 {
            let p95 = steady(18.0, replicas).features.p95_latency_ms.unwrap();
            assert!(p95 < last, "{replicas} replicas: {p95} not below {last}");
            last = p95;
        }
    }

    #[test]
    fn overload_builds_a_backlog_then_errors() {
        // A minute of silence, then 15 requests/s against one replica of capacity 10.
        let trace = Trace::from_requests(60.0, vec![0.0, 900.0, 900.0, 900.0]).unwrap();
        let mut feed = ReplayFeed::new("web", trace, quiet(), 0.0, 1).unwrap();
        let silent = feed.poll(60.0, 30.0, 1);
        assert_eq!(
            silent.features.p95_latency_ms, None,
            "no traffic: no latency, not 0"
        );
        assert_eq!(silent.features.p50_latency_ms, None);
        assert_eq!(silent.features.error_rate_pct, None);
        assert_eq!(silent.features.request_rate_rps, Some(0.0));
        assert_eq!(silent.features.cpu_usage_pct, Some(1.0));

        let early = feed.poll(66.0, 6.0, 1);
        assert!((feed.backlog() - 30.0).abs() < 1e-6, "{}", feed.backlog());
        assert_eq!(early.features.error_rate_pct, Some(0.0));
        let later = feed.poll(70.0, 4.0, 1);
        assert!(feed.backlog() > 30.0);
        assert!(later.p95_ms.unwrap() > early.p95_ms.unwrap());
        assert!(later.features.memory_usage_mb.unwrap() > 120.0);

        // Past 10 s of overload the backlog hits 5 s · 10 rps = 50 and requests are rejected.
        let overloaded = feed.poll(120.0, 50.0, 1);
        assert!((feed.backlog() - 50.0).abs() < 1e-6);
        let err = overloaded.features.error_rate_pct.unwrap();
        assert!(err > 10.0 && err < 50.0, "{err}");
        assert!(overloaded.p95_ms.unwrap() > 5000.0);
        assert!((overloaded.served_rps - 10.0).abs() < 1e-6);

        // Enough replicas drain the backlog and the errors stop.
        let recovered = feed.poll(240.0, 120.0, 3);
        assert_eq!(feed.backlog(), 0.0);
        assert_eq!(recovered.features.error_rate_pct, Some(0.0));
        assert!(recovered.p95_ms.unwrap() < 250.0);
    }

    #[test]
    fn zero_replicas_fail_every_request() {
        let mut feed = ReplayFeed::new("web", constant(5.0), quiet(), 0.0, 1).unwrap();
        let p = feed.poll(60.0, 30.0, 0);
        assert_eq!(p.features.error_rate_pct, Some(100.0));
        assert_eq!(p.features.p50_latency_ms, None);
        assert_eq!(p.features.p95_latency_ms, None);
        assert_eq!(p.features.p99_latency_ms, None);
        assert_eq!(p.features.cpu_usage_pct, None);
        assert_eq!(p.features.memory_usage_mb, None);
        assert_eq!(p.features.request_rate_rps, Some(5.0));
        assert_eq!(p.utilisation, None);
        assert!(p.features.validate().is_ok());
    }

    #[test]
    fn deltas_compare_with_the_previous_poll() {
        let trace = Trace::from_requests(60.0, vec![60.0, 300.0]).unwrap();
        let mut feed = ReplayFeed::new("web", trace, quiet(), 0.0, 1).unwrap();
        let first = feed.poll(60.0, 30.0, 1);
        assert_eq!(first.features.delta_rps, None);
        assert_eq!(first.features.delta_p95_latency_ms, None);
        assert_eq!(first.features.delta_cpu_usage_pct, None);
        let second = feed.poll(120.0, 60.0, 1);
        assert!((second.features.delta_rps.unwrap() - 4.0).abs() < 1e-9);
        assert!(second.features.delta_p95_latency_ms.unwrap() > 0.0);
        assert!((second.features.delta_cpu_usage_pct.unwrap() - 24.0).abs() < 1e-9);
        feed.reset_deltas();
        let third = feed.poll(150.0, 30.0, 1);
        assert_eq!(third.features.delta_rps, None);
        assert!(third.features.request_rate_rps.is_some());
        // A poll with no latency has no latency delta, and neither has the poll after it.
        let mut feed = ReplayFeed::new("web", constant(5.0), quiet(), 0.0, 1).unwrap();
        feed.poll(60.0, 30.0, 1);
        let down = feed.poll(120.0, 60.0, 0);
        assert_eq!(down.features.delta_p95_latency_ms, None);
        assert!(down.features.delta_rps.is_some());
    }

    #[test]
    fn poll_cluster_honours_startup_delay_mid_interval() {
        let cluster = SimulatedCluster::new(60.0);
        let mut feed = ReplayFeed::new("web", constant(15.0), quiet(), 0.0, 1).unwrap();
        assert!(matches!(
            feed.poll_cluster(60.0, 30.0, &cluster),
            Err(SimError::UnknownService(_))
        ));
        cluster.register("web", 1, 0.0);
        feed.poll_cluster(60.0, 30.0, &cluster).unwrap();
        cluster.set_replicas("web", 2, 60.0).unwrap();
        let pending = feed.poll_cluster(90.0, 30.0, &cluster).unwrap();
        assert_eq!(pending.ready_replicas, 1);
        assert!((pending.served_rps - 10.0).abs() < 1e-6);
        let ready = feed.poll_cluster(180.0, 90.0, &cluster).unwrap();
        assert_eq!(ready.ready_replicas, 2);
        assert_eq!(feed.backlog(), 0.0);
    }

    #[test]
    fn same_seed_same_output_different_seed_different_noise() {
        let run = |seed: u64| {
            let params = ServiceParams::default();
            let mut feed =
                ReplayFeed::new("web", Trace::nasa_sample(), params, 3600.0, seed).unwrap();
            (1..=20)
                .map(|k| feed.poll(k as f64 * 30.0, 30.0, 2))
                .collect::<Vec<_>>()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        let b = run(2);
        assert_ne!(a, b);
        // Noise only: the levels stay close.
        let (ra, rb) = (
            a[19].features.request_rate_rps.unwrap(),
            b[19].features.request_rate_rps.unwrap(),
        );
        assert!((ra - rb).abs() / ra < 0.05, "{ra} vs {rb}");
        for p in &a {
            assert!(p.features.validate().is_ok(), "{:?}", p.features);
        }
    }

    #[test]
    fn invalid_params_are_rejected() {
        let params = ServiceParams {
            capacity_rps_per_replica: 0.0,
            ..ServiceParams::default()
        };
        assert!(ReplayFeed::new("web", constant(1.0), params, 0.0, 1).is_err());
    }
}
