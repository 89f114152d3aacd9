//! The same service model at a coarser sub-step, with common random numbers: what backtests use.
//!
//! [`ReplayFeed`](crate::ReplayFeed) simulates 1 s sub-steps and draws its noise from one
//! stream in call order, so two runs whose polls differ (a policy that syncs every 15 s beside
//! one that polls every 30 s) see different noise. A backtest compares policies on *the same*
//! traffic, so here:
//!
//! * the noisy arrival rate of every sub-step is drawn once per service into a [`LoadProfile`]
//!   and shared (read-only) by every policy's run;
//! * the latency and CPU noise of a report at time `t` is a pure function of `(seed, t)`
//!   ([`report_noise`]), not of how many reports came before.
//!
//! The queueing law, rejections, CPU and memory are exactly those of the crate docs, evaluated
//! per sub-step of [`FAST_SUBSTEP_SECS`] (5 s) instead of 1 s: a trace of one-minute steps is
//! constant within each minute anyway, so the coarser step only changes how often the
//! arrival noise is redrawn (12 times a minute instead of 60: the noise on a one-minute mean is
//! `noise/√12` instead of `noise/√60`, i.e. 1.4 % instead of 0.6 % with the default 5 %). A
//! test checks the two feeds agree on steady load within a few percent.

use std::collections::VecDeque;
use std::sync::Arc;

use autoscaler_contract::Features;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::feed::RHO_MAX;
use crate::{Poll, ServiceParams, SimError, Trace, WINDOW_SECS};

/// Sub-step of the fast model, seconds. Polls, HPA syncs (15 s) and start-up delays that are
/// multiples of it are exact.
pub const FAST_SUBSTEP_SECS: f64 = 5.0;

/// Noisy arrival rates of one service, one per sub-step, from simulation time 0.
#[derive(Debug, Clone)]
pub struct LoadProfile {
    substep_secs: f64,
    /// Requests/s in sub-step `k` (trace rate × trace scale × noise factor).
    rates: Vec<f64>,
    /// The same without noise (what a clairvoyant planner would plan on, if it ignores noise).
    clean: Vec<f64>,
    seed: u64,
}

impl LoadProfile {
    /// `duration_secs` of `trace` from `trace_offset_secs` (wrapping), scaled by
    /// `params.trace_scale`, with arrival noise drawn from `seed`.
    pub fn new(
        trace: &Trace,
        params: &ServiceParams,
        trace_offset_secs: f64,
        duration_secs: f64,
        seed: u64,
    ) -> Result<Self, SimError> {
        params.validate()?;
        let steps = (duration_secs.max(0.0) / FAST_SUBSTEP_SECS).ceil() as usize;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = params.noise;
        let mut rates = Vec::with_capacity(steps);
        let mut clean = Vec::with_capacity(steps);
        for k in 0..steps {
            let t = trace_offset_secs + k as f64 * FAST_SUBSTEP_SECS;
            let base = trace.rate_rps(t) * params.trace_scale;
            let z: f64 = rng.sample(StandardNormal);
            let factor = (1.0 + n * z).clamp(1.0 - 3.0 * n, 1.0 + 3.0 * n);
            clean.push(base);
            rates.push(base * factor);
        }
        Ok(LoadProfile {
            substep_secs: FAST_SUBSTEP_SECS,
            rates,
            clean,
            seed,
        })
    }

    /// Sub-step length, seconds.
    pub fn substep_secs(&self) -> f64 {
        self.substep_secs
    }

    /// Number of sub-steps.
    pub fn len(&self) -> usize {
        self.rates.len()
    }

    /// True when the profile covers no time.
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }

    /// Noisy arrival rate of each sub-step, requests/s.
    pub fn rates(&self) -> &[f64] {
        &self.rates
    }

    /// Arrival rate of each sub-step without noise, requests/s.
    pub fn clean_rates(&self) -> &[f64] {
        &self.clean
    }

    /// The seed the noise came from (report noise derives from it too).
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// The `(latency, cpu)` noise factors of a report at `t_secs` of a feed seeded `seed`: a pure
/// function, so every run reporting at `t` sees the same factors. Each is `1 + noise·N(0,1)`
/// clamped to `1 ± 3·noise`.
pub fn report_noise(seed: u64, t_secs: f64, noise: f64) -> (f64, f64) {
    let key = (t_secs * 1000.0).round() as i64 as u64;
    let mut state = seed ^ key.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03;
    let u1 = unit(splitmix64(&mut state));
    let u2 = unit(splitmix64(&mut state));
    // Box–Muller: two independent standard normals from two uniforms.
    let r = (-2.0 * u1.ln()).sqrt();
    let (z1, z2) = (
        r * (std::f64::consts::TAU * u2).cos(),
        r * (std::f64::consts::TAU * u2).sin(),
    );
    let f = |z: f64| (1.0 + noise * z).clamp(1.0 - 3.0 * noise, 1.0 + 3.0 * noise);
    (f(z1), f(z2))
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform in (0, 1], never 0 (so its logarithm is finite).
fn unit(x: u64) -> f64 {
    ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// What one sub-step did.
#[derive(Debug, Clone, Copy)]
struct Sub {
    dt: f64,
    arrived: f64,
    served: f64,
    rejected: f64,
    replicas: u32,
    rho: f64,
    backlog: f64,
    wait_ms: f64,
}

/// One service of one backtest run: a [`LoadProfile`] played through the queueing model with
/// the replicas the run's policy provides. Cheap to create; clone the profile's `Arc`.
#[derive(Debug, Clone)]
pub struct FastFeed {
    profile: Arc<LoadProfile>,
    params: ServiceParams,
    next: usize,
    backlog: f64,
    window: VecDeque<Sub>,
    window_len: usize,
    previous: Option<Features>,
    components: Vec<(f64, f64, f64)>,
}

impl FastFeed {
    /// A feed over `profile` with `params` (its `trace_scale` and `noise` are already in the
    /// profile; the rest is used here).
    pub fn new(profile: Arc<LoadProfile>, params: ServiceParams) -> Result<Self, SimError> {
        params.validate()?;
        let window_len = (WINDOW_SECS / profile.substep_secs()).round().max(1.0) as usize;
        Ok(FastFeed {
            profile,
            params,
            next: 0,
            backlog: 0.0,
            window: VecDeque::with_capacity(window_len + 1),
            window_len,
            previous: None,
            components: Vec::with_capacity(window_len),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &ServiceParams {
        &self.params
    }

    /// Simulation time reached, seconds.
    pub fn now_secs(&self) -> f64 {
        self.next as f64 * self.profile.substep_secs()
    }

    /// Requests queued now.
    pub fn backlog(&self) -> f64 {
        self.backlog
    }

    /// Simulate up to `until_secs` (rounded to sub-steps; past the profile's end nothing
    /// arrives), with `ready_at(t)` replicas serving in the sub-step starting at `t`.
    pub fn advance(&mut self, until_secs: f64, mut ready_at: impl FnMut(f64) -> u32) {
        let dt = self.profile.substep_secs();
        let end = (until_secs / dt).round().max(0.0) as usize;
        while self.next < end {
            let t = self.next as f64 * dt;
            let rate = self.profile.rates().get(self.next).copied().unwrap_or(0.0);
            let replicas = ready_at(t);
            let sub = step(&self.params, &mut self.backlog, rate, dt, replicas);
            if self.window.len() == self.window_len {
                self.window.pop_front();
            }
            self.window.push_back(sub);
            self.next += 1;
        }
    }

    /// What Prometheus would show now over the last minute (see the crate docs), with noise from
    /// [`report_noise`] at the current time. Deltas compare with this feed's previous report.
    pub fn report(&mut self) -> Poll {
        let now = self.now_secs();
        let (latency_noise, cpu_noise) = report_noise(self.profile.seed(), now, self.params.noise);
        let p = &self.params;
        let w = &self.window;
        let (mut duration, mut arrived, mut served, mut rejected) = (0.0, 0.0, 0.0, 0.0);
        let (mut ready_duration, mut cpu_secs, mut capacity_secs) = (0.0, 0.0, 0.0);
        self.components.clear();
        for s in w {
            duration += s.dt;
            arrived += s.arrived;
            served += s.served;
            rejected += s.rejected;
            if s.replicas > 0 {
                ready_duration += s.dt;
            }
            cpu_secs += p.idle_cpu_pct_per_replica * s.replicas as f64 * s.dt
                + p.cpu_pct_per_rps * s.served;
            capacity_secs += s.replicas as f64 * p.capacity_rps_per_replica * s.dt;
            if s.served > 0.0 {
                self.components
                    .push((s.served, s.wait_ms, p.base_latency_ms / (1.0 - s.rho)));
            }
        }
        let per_sec = |x: f64| if duration > 0.0 { x / duration } else { 0.0 };
        let completed = served + rejected;
        let quantile = |q: f64| quantile_of_mixture(&self.components, q).map(|v| v * latency_noise);
        let last = w.back();
        let mut features = Features {
            request_rate_rps: (duration > 0.0).then(|| arrived / duration),
            error_rate_pct: (completed > 1e-12).then(|| 100.0 * rejected / completed),
            p50_latency_ms: quantile(0.50),
            p95_latency_ms: quantile(0.95),
            p99_latency_ms: quantile(0.99),
            cpu_usage_pct: (ready_duration > 0.0).then(|| cpu_secs / duration * cpu_noise),
            memory_usage_mb: last.filter(|s| s.replicas > 0).map(|s| {
                p.memory_base_mb_per_replica * s.replicas as f64
                    + p.memory_per_inflight_mb * s.backlog
            }),
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
            ready_replicas: last.map_or(0, |s| s.replicas),
            utilisation: (capacity_secs > 0.0).then(|| arrived / capacity_secs),
        }
    }
}

/// Quantile `q` of a mixture of shifted exponentials `(weight, shift, mean)`, like the 1 s
/// feed's, solved by Newton's method safeguarded by bisection (a handful of iterations instead
/// of ~40 bisections: the report is the backtest's hot path). `None` when the weight is 0.
fn quantile_of_mixture(components: &[(f64, f64, f64)], q: f64) -> Option<f64> {
    let total: f64 = components.iter().map(|c| c.0).sum();
    if total <= 0.0 {
        return None;
    }
    let tail = -(1.0 - q).ln();
    let (mut lo, mut hi) = components
        .iter()
        .map(|&(_, shift, mean)| shift + mean * tail)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
    if hi - lo <= 1e-9 * hi.max(1.0) {
        return Some(0.5 * (lo + hi));
    }
    // F(t) - q and its derivative.
    let f = |t: f64| {
        let (mut cdf, mut pdf) = (0.0, 0.0);
        for &(w, shift, mean) in components {
            if t > shift {
                let e = (-(t - shift) / mean).exp();
                cdf += w * (1.0 - e);
                pdf += w * e / mean;
            }
        }
        (cdf / total - q, pdf / total)
    };
    let mut x = components
        .iter()
        .map(|&(w, shift, mean)| w * (shift + mean * tail))
        .sum::<f64>()
        / total;
    for _ in 0..100 {
        let (g, d) = f(x);
        if g < 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        let newton = if d > 0.0 { x - g / d } else { f64::NAN };
        let next = if newton.is_finite() && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - x).abs() <= 1e-7 * x.abs().max(1.0) || hi - lo <= 1e-7 * hi.max(1.0) {
            return Some(next);
        }
        x = next;
    }
    Some(x)
}

/// One sub-step of the queueing model (crate docs), updating `backlog`.
fn step(p: &ServiceParams, backlog: &mut f64, rate: f64, dt: f64, replicas: u32) -> Sub {
    let arrived = rate * dt;
    if replicas == 0 {
        let rejected = arrived + *backlog;
        *backlog = 0.0;
        return Sub {
            dt,
            arrived,
            served: 0.0,
            rejected,
            replicas,
            rho: RHO_MAX,
            backlog: 0.0,
            wait_ms: 0.0,
        };
    }
    let capacity = replicas as f64 * p.capacity_rps_per_replica;
    let total = *backlog + arrived;
    let served = total.min(capacity * dt);
    let mut b = total - served;
    let rejected = (b - p.queue_limit_secs * capacity).max(0.0);
    b -= rejected;
    if b < 1e-9 {
        b = 0.0;
    }
    *backlog = b;
    let rho = if b > 0.0 {
        RHO_MAX
    } else {
        (rate / capacity).min(RHO_MAX)
    };
    Sub {
        dt,
        arrived,
        served,
        rejected,
        replicas,
        rho,
        backlog: b,
        wait_ms: 1000.0 * b / capacity,
    }
}

/// Whether `replicas` ready replicas keep sub-steps `from..to` of `profile` within the SLA *by
/// themselves*, starting from an empty queue: nothing rejected, no backlog left at the end, and
/// the p95 of the mixture of those sub-steps, times the largest of `latency_noise`, at or below
/// `sla_ms`. By the mixture property (the quantile of a mixture is at most the largest
/// quantile of its parts) every window made of such slots is within the SLA too. Used by the
/// clairvoyant oracle to compute demand.
pub fn slot_within_sla(
    profile: &LoadProfile,
    params: &ServiceParams,
    from: usize,
    to: usize,
    replicas: u32,
    sla_ms: f64,
    latency_noise: f64,
) -> bool {
    let dt = profile.substep_secs();
    let mut backlog = 0.0;
    let mut components = Vec::with_capacity(to.saturating_sub(from));
    for k in from..to {
        let rate = profile.rates().get(k).copied().unwrap_or(0.0);
        let s = step(params, &mut backlog, rate, dt, replicas);
        if s.rejected > 0.0 {
            return false;
        }
        if s.served > 0.0 {
            components.push((s.served, s.wait_ms, params.base_latency_ms / (1.0 - s.rho)));
        }
    }
    if backlog > 0.0 {
        return false;
    }
    match quantile_of_mixture(&components, 0.95) {
        Some(p95) => p95 * latency_noise <= sla_ms,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReplayFeed;

    fn constant(rps: f64) -> Trace {
        Trace::from_requests(60.0, vec![rps * 60.0]).unwrap()
    }

    fn params(noise: f64) -> ServiceParams {
        ServiceParams {
            noise,
            trace_scale: 1.0,
            ..ServiceParams::default()
        }
    }

    #[test]
    fn agrees_with_the_one_second_feed_without_noise() {
        for (rps, replicas) in [(3.0, 1), (7.0, 1), (15.0, 2), (30.0, 4)] {
            let p = params(0.0);
            let profile = Arc::new(LoadProfile::new(&constant(rps), &p, 0.0, 600.0, 1).unwrap());
            let mut fast = FastFeed::new(profile, p.clone()).unwrap();
            fast.advance(120.0, |_| replicas);
            let a = fast.report();
            let mut slow = ReplayFeed::new("web", constant(rps), p, 0.0, 1).unwrap();
            let b = slow.poll(120.0, 120.0, replicas);
            let (pa, pb) = (a.p95_ms.unwrap(), b.p95_ms.unwrap());
            assert!((pa - pb).abs() < 1e-6 * pb, "{rps} rps: {pa} vs {pb}");
            assert_eq!(a.features.cpu_usage_pct, b.features.cpu_usage_pct);
            assert_eq!(a.features.memory_usage_mb, b.features.memory_usage_mb);
        }
    }

    #[test]
    fn agrees_with_the_one_second_feed_with_noise_on_average() {
        // Over a day of 70 % load the mean p95 of the two feeds differs by a few percent (the
        // noise is redrawn 12 instead of 60 times a minute).
        let p = params(0.05);
        let trace = constant(7.0);
        let profile = Arc::new(LoadProfile::new(&trace, &p, 0.0, 86_400.0, 3).unwrap());
        let mut fast = FastFeed::new(profile, p.clone()).unwrap();
        let mut slow = ReplayFeed::new("web", trace, p, 0.0, 3).unwrap();
        let (mut sa, mut sb, mut n) = (0.0, 0.0, 0.0);
        for k in 2..2880 {
            let t = k as f64 * 30.0;
            fast.advance(t, |_| 1);
            sa += fast.report().p95_ms.unwrap();
            sb += slow.poll(t, 30.0, 1).p95_ms.unwrap();
            n += 1.0;
        }
        let (ma, mb) = (sa / n, sb / n);
        assert!(
            (ma - mb).abs() / mb < 0.05,
            "fast {ma:.1} ms vs 1 s {mb:.1} ms"
        );
    }

    #[test]
    fn report_noise_is_a_pure_function_of_seed_and_time() {
        assert_eq!(report_noise(7, 30.0, 0.05), report_noise(7, 30.0, 0.05));
        assert_ne!(report_noise(7, 30.0, 0.05), report_noise(7, 60.0, 0.05));
        assert_ne!(report_noise(7, 30.0, 0.05), report_noise(8, 30.0, 0.05));
        assert_eq!(report_noise(7, 30.0, 0.0), (1.0, 1.0));
        let (mut s, mut s2) = (0.0, 0.0);
        for k in 0..20_000 {
            let (a, _) = report_noise(1, k as f64 * 15.0, 0.1);
            s += a;
            s2 += a * a;
        }
        let mean = s / 20_000.0;
        let sd = (s2 / 20_000.0 - mean * mean).sqrt();
        assert!(
            (mean - 1.0).abs() < 0.005 && (sd - 0.1).abs() < 0.01,
            "{mean} {sd}"
        );
    }

    #[test]
    fn slot_check_matches_the_feed() {
        let p = params(0.0);
        let profile = LoadProfile::new(&constant(15.0), &p, 0.0, 600.0, 1).unwrap();
        // 15 rps: 2 replicas are at ρ = 0.75 (p95 ≈ 240 ms), 1 is overloaded.
        assert!(!slot_within_sla(&profile, &p, 0, 6, 1, 250.0, 1.0));
        assert!(slot_within_sla(&profile, &p, 0, 6, 2, 250.0, 1.0));
        assert!(!slot_within_sla(&profile, &p, 0, 6, 2, 250.0, 1.1));
        assert!(slot_within_sla(&profile, &p, 0, 6, 3, 250.0, 1.1));
    }
}
