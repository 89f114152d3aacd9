//! # The policy lab: every policy side by side on one trace
//!
//! [`run`] replays a trace through simulated services (the fast model of
//! [`autoscaler_simulator::FastFeed`]: the queueing model of the simulator's docs at 5 s
//! sub-steps, with arrivals shared by every run), once per policy and service, all from the same
//! seed and start, in parallel threads; the results do not depend on the number of threads (each
//! run is independent and its result lands in its own slot).
//!
//! Where to start:
//!
//! * [`BacktestConfig`]: the trace, the window (`start_secs`, `duration_secs`), the services,
//!   bounds, seed, SLA.
//! * [`run`] → [`Backtest`]: per policy ([`PolicyResult`]) and per service ([`ServiceResult`])
//!   the SLA-violation minutes, replica-hours, scale events, p95 distribution and the SPEC
//!   Research Group elasticity metrics against the oracle's demand ([`metrics`]).
//! * [`oracle`]: the clairvoyant lower bound.
//! * [`Backtest::to_json`], [`Backtest::table`], [`plot`]: what the `backtest` command and the
//!   demo print and draw.
//!
//! What a run measures, every [`EVAL_SECS`] (30 s) of simulated time: the window's p95 and error
//! rate (a violation when p95 > SLA or errors ≥ 50 %, as the demo counts them; each violating
//! point counts half a minute), the desired replicas (replica-hours integrate them: a starting
//! replica costs as much as a ready one) and the ready ones (the supply of the elasticity
//! metrics).
#![deny(missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use autoscaler_contract::Features;
use autoscaler_policy::{
    Bounds, Observation, Policy, PolicyContext, PolicyKind, PolicySpec, SpecError,
};
use autoscaler_simulator::{FastFeed, LoadProfile, ServiceParams, Trace};
use indicatif::ProgressBar;
use serde::Serialize;

pub mod calibration;
pub mod demo;
pub mod metrics;
pub mod oracle;
pub mod plot;
mod replicas;

pub use metrics::{Elasticity, P95Distribution};
pub use replicas::Replicas;

/// The evaluation interval (and the oracle's slot), seconds.
pub const EVAL_SECS: f64 = 30.0;
/// Default initial replicas of every service (as the demo's).
pub const DEFAULT_INITIAL_REPLICAS: u32 = 2;
/// Default bounds (the scaler's defaults).
pub const DEFAULT_MIN_REPLICAS: u32 = 1;
/// See [`DEFAULT_MIN_REPLICAS`].
pub const DEFAULT_MAX_REPLICAS: u32 = 10;
/// Default seed (the demo's).
pub const DEFAULT_SEED: u64 = 42;
/// Default HPA targets of the sweep, percent.
pub const DEFAULT_HPA_TARGETS: [f64; 5] = [50.0, 60.0, 70.0, 80.0, 90.0];
/// Default policy list of `backtest` (every policy, HPA as the sweep).
pub const DEFAULT_POLICIES: &str = "all";
/// Default start of a backtest's window, hours into the trace.
pub const DEFAULT_START_HOUR: f64 = 0.0;
/// Default worker threads of a backtest (0: one per core).
pub const DEFAULT_THREADS: usize = 0;
/// Default services (the demo's two).
pub const DEFAULT_SERVICES: [&str; 2] = ["front-end", "orders"];
/// Points kept per timeline (for plots).
pub const TIMELINE_POINTS: usize = 1500;

/// One simulated service of a backtest.
#[derive(Debug, Clone)]
pub struct ServiceSetup {
    /// Its name.
    pub name: String,
    /// Its parameters (trace scale included).
    pub params: ServiceParams,
}

/// The demo's services: `front-end` at the trace scale, `orders` at 1/1.5 of it (the replay's
/// convention: service `i` gets `scale / (1 + i/2)`).
pub fn default_services(names: &[String], trace_scale: f64) -> Vec<ServiceSetup> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| ServiceSetup {
            name: name.clone(),
            params: ServiceParams {
                trace_scale: trace_scale / (1.0 + i as f64 / 2.0),
                ..ServiceParams::default()
            },
        })
        .collect()
}

/// What to backtest.
#[derive(Debug, Clone)]
pub struct BacktestConfig {
    /// The trace.
    pub trace: Trace,
    /// Its name in tables and JSON (the file name).
    pub trace_name: String,
    /// The services.
    pub services: Vec<ServiceSetup>,
    /// Where the window starts in the trace, seconds.
    pub start_secs: f64,
    /// Length of the window, seconds.
    pub duration_secs: f64,
    /// Seed of the noise.
    pub seed: u64,
    /// Replicas of every service at the start (clamped into the bounds).
    pub initial_replicas: u32,
    /// Bounds of every service.
    pub bounds: Bounds,
    /// The SLA on p95, ms.
    pub sla_p95_ms: f64,
    /// Worker threads (0: the machine's parallelism).
    pub threads: usize,
}

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A policy could not be built.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The configuration cannot describe a run.
    #[error("invalid backtest: {0}")]
    Invalid(String),
    /// A service's parameters are invalid.
    #[error(transparent)]
    Sim(#[from] autoscaler_simulator::SimError),
    /// A policy returned a count outside the bounds (never clamped silently).
    #[error("policy `{policy}` recommended {replicas} replicas for `{service}` at t = {t_secs} s, outside the bounds {min}..={max}")]
    OutOfBounds {
        /// The policy.
        policy: String,
        /// The service.
        service: String,
        /// When.
        t_secs: f64,
        /// What it asked for.
        replicas: u32,
        /// Lower bound.
        min: u32,
        /// Upper bound.
        max: u32,
    },
    /// A policy panicked.
    #[error("policy `{policy}` panicked on `{service}`: {message}")]
    Panicked {
        /// The policy.
        policy: String,
        /// The service.
        service: String,
        /// The panic message.
        message: String,
    },
}

/// The shared, clairvoyant part of a backtest: per service the arrivals, the demand and the
/// oracle's plan.
#[derive(Debug)]
pub struct Prepared {
    services: Vec<PreparedService>,
}

#[derive(Debug)]
struct PreparedService {
    setup: ServiceSetup,
    profile: Arc<LoadProfile>,
    demand: Arc<Vec<u32>>,
    plan: Arc<Vec<u32>>,
    unavoidable: Vec<bool>,
}

impl Prepared {
    /// The demand of service `i` per evaluation slot.
    pub fn demand(&self, i: usize) -> &[u32] {
        &self.services[i].demand
    }

    /// The oracle's plan of service `i`.
    pub fn plan(&self, i: usize) -> &[u32] {
        &self.services[i].plan
    }

    /// Slots of service `i` where a violation cannot be avoided.
    pub fn unavoidable(&self, i: usize) -> &[bool] {
        &self.services[i].unavoidable
    }
}

impl BacktestConfig {
    fn check(&self) -> Result<(), LabError> {
        let mut problems = Vec::new();
        if self.services.is_empty() {
            problems.push("no services".to_string());
        }
        if self.duration_secs.is_nan() || self.duration_secs < EVAL_SECS {
            problems.push(format!("the window must be at least {EVAL_SECS} s"));
        }
        if self.bounds.min > self.bounds.max {
            problems.push(format!(
                "min replicas {} > max {}",
                self.bounds.min, self.bounds.max
            ));
        }
        if !(self.sla_p95_ms.is_finite() && self.sla_p95_ms > 0.0) {
            problems.push("the SLA must be > 0 ms".into());
        }
        if !(self.start_secs.is_finite() && self.start_secs >= 0.0) {
            problems.push("the start must be >= 0".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::Invalid(problems.join("; ")))
        }
    }

    fn initial(&self) -> u32 {
        self.bounds.clamp(self.initial_replicas)
    }

    /// Draw the arrivals and compute the oracle's demand and plan for every service.
    pub fn prepare(&self) -> Result<Prepared, LabError> {
        self.check()?;
        let slots = (self.duration_secs / EVAL_SECS).floor() as usize;
        let duration = slots as f64 * EVAL_SECS;
        let services = self
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let seed = self.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let profile =
                    LoadProfile::new(&self.trace, &s.params, self.start_secs, duration, seed)?;
                let demand = oracle::demand(&profile, &s.params, EVAL_SECS, self.sla_p95_ms);
                let look = oracle::lookahead_slots(s.params.startup_delay_secs, EVAL_SECS);
                let plan = oracle::plan(&demand, look, self.bounds, self.initial());
                let unavoidable = oracle::unavoidable(&demand, look, self.bounds, self.initial());
                Ok(PreparedService {
                    setup: s.clone(),
                    profile: Arc::new(profile),
                    demand: Arc::new(demand),
                    plan: Arc::new(plan),
                    unavoidable,
                })
            })
            .collect::<Result<Vec<_>, LabError>>()?;
        Ok(Prepared { services })
    }
}

/// A run waiting for a worker: (policy index, service index, the policy).
type Job = (usize, usize, Box<dyn Policy>);

/// One point of a timeline (a bucket of evaluation points).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct TimelinePoint {
    /// Start of the bucket, hours since the window's start.
    pub hour: f64,
    /// Mean arrivals, requests/s.
    pub load_rps: f64,
    /// Largest desired count in the bucket.
    pub replicas: u32,
    /// Largest p95 in the bucket, ms (0 when none was measured).
    pub p95_ms: f64,
    /// Largest oracle demand in the bucket.
    pub demand: u32,
}

/// The result of one policy on one service.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceResult {
    /// The service.
    pub service: String,
    /// Minutes in violation (each violating 30 s evaluation point counts ½).
    pub sla_violation_minutes: f64,
    /// Of which in slots where no policy could have avoided it.
    pub unavoidable_violation_minutes: f64,
    /// ∫ desired replicas dt, hours.
    pub replica_hours: f64,
    /// Changes of the desired count.
    pub scale_events: u64,
    /// Largest desired count.
    pub max_replicas: u32,
    /// p95 over the evaluation points.
    pub p95_distribution: P95Distribution,
    /// SPEC elasticity metrics against the oracle's demand.
    pub elasticity: Elasticity,
    /// The timeline, bucketed (not in the JSON).
    #[serde(skip)]
    pub timeline: Vec<TimelinePoint>,
}

/// The result of one policy, summed over services.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PolicyResult {
    /// The policy's name (`hybrid`, `hpa-70`, `oracle`, …).
    pub name: String,
    /// Its kind.
    pub kind: PolicyKind,
    /// Its parameters.
    pub params: serde_json::Value,
    /// Minutes in violation, summed over services.
    pub sla_violation_minutes: f64,
    /// Share of service-minutes in violation, percent.
    pub violation_pct: f64,
    /// Replica-hours, summed over services.
    pub replica_hours: f64,
    /// Scale events, summed over services.
    pub scale_events: u64,
    /// p95 over every service's evaluation points.
    pub p95_distribution: P95Distribution,
    /// Elasticity metrics, the mean over services.
    pub elasticity: Elasticity,
    /// Per service.
    pub per_service: Vec<ServiceResult>,
}

/// A whole backtest.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Backtest {
    /// The trace's name.
    pub trace: String,
    /// Hours simulated.
    pub hours: f64,
    /// Where the window started, hours into the trace.
    pub start_hour: f64,
    /// The seed.
    pub seed: u64,
    /// The SLA, ms.
    pub sla_p95_ms: f64,
    /// Bounds of every service.
    pub bounds: Bounds,
    /// The services.
    pub services: Vec<String>,
    /// One entry per policy, in the order asked.
    pub policies: Vec<PolicyResult>,
}

/// The oracle's spec.
pub fn oracle_spec() -> PolicySpec {
    PolicySpec::new(PolicyKind::Oracle)
}

/// Run `specs` on every service of `cfg` (see the crate docs). `progress`, when given, advances
/// by one per simulated evaluation point of every run.
pub fn run(
    cfg: &BacktestConfig,
    specs: &[PolicySpec],
    ctx: &PolicyContext,
    progress: Option<&ProgressBar>,
) -> Result<Backtest, LabError> {
    let prepared = cfg.prepare()?;
    run_prepared(cfg, &prepared, specs, ctx, progress)
}

/// Evaluation points one run simulates (what a progress bar counts, per policy and service).
pub fn points_per_run(cfg: &BacktestConfig) -> u64 {
    (cfg.duration_secs / EVAL_SECS).floor() as u64
}

/// [`run`] on an already [prepared](BacktestConfig::prepare) configuration.
pub fn run_prepared(
    cfg: &BacktestConfig,
    prepared: &Prepared,
    specs: &[PolicySpec],
    ctx: &PolicyContext,
    progress: Option<&ProgressBar>,
) -> Result<Backtest, LabError> {
    // Build every policy first, so a bad spec fails before any work.
    let mut jobs: Vec<Job> = Vec::new();
    for (p, spec) in specs.iter().enumerate() {
        for (s, svc) in prepared.services.iter().enumerate() {
            let policy: Box<dyn Policy> = if spec.kind == PolicyKind::Oracle {
                Box::new(oracle::PlanPolicy::new(svc.plan.clone(), EVAL_SECS))
            } else {
                spec.build(ctx)?
            };
            jobs.push((p, s, policy));
        }
    }
    let n = jobs.len();
    let threads = match cfg.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    }
    .min(n.max(1));
    // Longest first (HPA syncs twice as often, models cost most), for a better balance.
    let slots: Vec<std::sync::Mutex<Option<Job>>> = jobs
        .into_iter()
        .map(|j| std::sync::Mutex::new(Some(j)))
        .collect();
    let results: Vec<std::sync::Mutex<Option<Result<ServiceResult, LabError>>>> =
        (0..n).map(|_| std::sync::Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let job = slots[i].lock().unwrap_or_else(|e| e.into_inner()).take();
                let Some((_, s, mut policy)) = job else {
                    continue;
                };
                let svc = &prepared.services[s];
                let name = policy.name();
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_one(cfg, svc, policy.as_mut(), progress)
                }))
                .unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(LabError::Panicked {
                        policy: name,
                        service: svc.setup.name.clone(),
                        message,
                    })
                });
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
            });
        }
    });
    let mut per_job = Vec::with_capacity(n);
    for r in results {
        let r = r
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .ok_or_else(|| LabError::Invalid("a run did not finish".into()))?;
        per_job.push(r?);
    }
    let services = prepared.services.len();
    let service_minutes = cfg.duration_secs / 60.0 * services as f64;
    let mut policies = Vec::with_capacity(specs.len());
    for (p, spec) in specs.iter().enumerate() {
        let per_service: Vec<ServiceResult> = per_job[p * services..(p + 1) * services].to_vec();
        let params = if spec.kind == PolicyKind::Oracle {
            serde_json::json!({ "clairvoyant": true })
        } else {
            spec.build(ctx)?.params()
        };
        let violation: f64 = per_service.iter().map(|s| s.sla_violation_minutes).sum();
        policies.push(PolicyResult {
            name: spec.name(),
            kind: spec.kind,
            params,
            sla_violation_minutes: violation,
            violation_pct: 100.0 * violation / service_minutes.max(1e-9),
            replica_hours: per_service.iter().map(|s| s.replica_hours).sum(),
            scale_events: per_service.iter().map(|s| s.scale_events).sum(),
            p95_distribution: P95Distribution::merge(
                per_service.iter().map(|s| &s.p95_distribution),
            ),
            elasticity: Elasticity::mean(per_service.iter().map(|s| &s.elasticity)),
            per_service,
        });
    }
    Ok(Backtest {
        trace: cfg.trace_name.clone(),
        hours: cfg.duration_secs / 3600.0,
        start_hour: cfg.start_secs / 3600.0,
        seed: cfg.seed,
        sla_p95_ms: cfg.sla_p95_ms,
        bounds: cfg.bounds,
        services: prepared
            .services
            .iter()
            .map(|s| s.setup.name.clone())
            .collect(),
        policies,
    })
}

/// The greatest common divisor of two periods in whole milliseconds, seconds.
fn gcd_secs(a: f64, b: f64) -> f64 {
    let (mut x, mut y) = ((a * 1000.0).round() as u64, (b * 1000.0).round() as u64);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    x.max(1) as f64 / 1000.0
}

fn run_one(
    cfg: &BacktestConfig,
    svc: &PreparedService,
    policy: &mut dyn Policy,
    progress: Option<&ProgressBar>,
) -> Result<ServiceResult, LabError> {
    let params = &svc.setup.params;
    let period = policy
        .period_secs()
        .max(autoscaler_simulator::FAST_SUBSTEP_SECS);
    let tick = gcd_secs(period, EVAL_SECS).max(autoscaler_simulator::FAST_SUBSTEP_SECS);
    let slots = svc.demand.len();
    let duration = slots as f64 * EVAL_SECS;
    let ticks = (duration / tick).round() as u64;
    let eval_every = (EVAL_SECS / tick).round() as u64;
    let policy_every = (period / tick).round().max(1.0) as u64;
    let initial = cfg.initial();
    let mut replicas = Replicas::new(initial, params.startup_delay_secs);
    let mut feed = FastFeed::new(svc.profile.clone(), params.clone())?;
    let mut replica_secs = 0.0;
    let mut violation_points = 0u64;
    let mut unavoidable_points = 0u64;
    let mut events = 0u64;
    let mut max_replicas = initial;
    let mut p95s: Vec<f64> = Vec::with_capacity(slots);
    let mut elastic = metrics::ElasticityAccumulator::default();
    let bucket = slots.div_ceil(TIMELINE_POINTS).max(1);
    let mut timeline: Vec<TimelinePoint> = Vec::with_capacity(slots / bucket + 1);
    let mut bucket_load = 0.0;
    let mut bucket_n = 0usize;
    let name = policy.name();
    let mut reported = 0u64;
    for k in 1..=ticks {
        let t = k as f64 * tick;
        let desired = replicas.desired();
        feed.advance(t, |s| replicas.ready(s));
        replica_secs += desired as f64 * tick;
        let poll = feed.report();
        if k.is_multiple_of(eval_every) {
            let j = (k / eval_every) as usize; // this point closes slot j - 1
            let violated =
                autoscaler_contract::violates_sla(poll.p95_ms, poll.error_pct, cfg.sla_p95_ms);
            if violated {
                violation_points += 1;
                // Its window holds slots j-2 and j-1.
                let lo = j.saturating_sub(2);
                if svc.unavoidable[lo..j].iter().any(|u| *u) {
                    unavoidable_points += 1;
                }
            }
            if let Some(p) = poll.p95_ms {
                p95s.push(p);
            }
            let slot_start = t - EVAL_SECS;
            let supply = replicas.ready(slot_start).min(replicas.ready(t - tick));
            let demand = svc.demand[j - 1];
            elastic.add(supply, demand);
            // Timeline buckets.
            let slot = j - 1;
            if slot.is_multiple_of(bucket) {
                timeline.push(TimelinePoint {
                    hour: slot_start / 3600.0,
                    load_rps: 0.0,
                    replicas: desired,
                    p95_ms: 0.0,
                    demand,
                });
                bucket_load = 0.0;
                bucket_n = 0;
            }
            if let Some(last) = timeline.last_mut() {
                bucket_load += poll.arrived_rps;
                bucket_n += 1;
                last.load_rps = bucket_load / bucket_n as f64;
                last.replicas = last.replicas.max(desired);
                last.p95_ms = last.p95_ms.max(poll.p95_ms.unwrap_or(0.0));
                last.demand = last.demand.max(demand);
            }
            if let Some(pb) = progress {
                reported += 1;
                if reported.is_multiple_of(2048) {
                    pb.inc(2048);
                }
            }
        }
        if k.is_multiple_of(policy_every) && k < ticks {
            let obs = Observation {
                t_secs: t,
                features: &poll.features,
                replicas: desired,
                ready_replicas: replicas.ready(t),
                bounds: cfg.bounds,
                sla_p95_ms: cfg.sla_p95_ms,
            };
            let rec = policy.recommend(&obs);
            if !cfg.bounds.contains(rec.replicas) {
                return Err(LabError::OutOfBounds {
                    policy: name,
                    service: svc.setup.name.clone(),
                    t_secs: t,
                    replicas: rec.replicas,
                    min: cfg.bounds.min,
                    max: cfg.bounds.max,
                });
            }
            if rec.replicas != desired {
                replicas.set(rec.replicas, t);
                events += 1;
                max_replicas = max_replicas.max(rec.replicas);
            }
        }
    }
    if let Some(pb) = progress {
        pb.inc(reported % 2048);
    }
    Ok(ServiceResult {
        service: svc.setup.name.clone(),
        sla_violation_minutes: violation_points as f64 * EVAL_SECS / 60.0,
        unavoidable_violation_minutes: unavoidable_points as f64 * EVAL_SECS / 60.0,
        replica_hours: replica_secs / 3600.0,
        scale_events: events,
        max_replicas,
        p95_distribution: P95Distribution::from_values(&mut p95s),
        elasticity: elastic.finish(),
        timeline,
    })
}

/// Features with nothing measured (a convenience for tests of policies).
pub fn empty_features() -> Features {
    Features::default()
}

impl Backtest {
    /// The JSON document (`trace`, `hours`, `policies[{name, params, sla_violation_minutes,
    /// replica_hours, scale_events, per_service[…], …}]`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
    }

    /// The policy named `name`.
    pub fn policy(&self, name: &str) -> Option<&PolicyResult> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// One table per service and one overall, plain text.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let header = format!(
            "  {:<12} {:>10} {:>7} {:>10} {:>7} {:>8} {:>7} {:>7} {:>7} {:>7}",
            "policy",
            "viol. min",
            "viol.%",
            "replica-h",
            "events",
            "p95 p99",
            "θU %",
            "θO %",
            "τU %",
            "τO %"
        );
        let row = |s: &mut String,
                   name: &str,
                   v: f64,
                   pct: f64,
                   rh: f64,
                   ev: u64,
                   p: &P95Distribution,
                   e: &Elasticity| {
            let _ = writeln!(
                s,
                "  {:<12} {:>10.1} {:>7.2} {:>10.1} {:>7} {:>8.0} {:>7.1} {:>7.1} {:>7.1} {:>7.1}",
                name, v, pct, rh, ev, p.p99_ms, e.theta_u, e.theta_o, e.tau_u, e.tau_o
            );
        };
        let minutes = self.hours * 60.0;
        for (i, svc) in self.services.iter().enumerate() {
            let _ = writeln!(s, "service {svc} ({} h of {})", self.hours, self.trace);
            let _ = writeln!(s, "{header}");
            for p in &self.policies {
                let r = &p.per_service[i];
                row(
                    &mut s,
                    &p.name,
                    r.sla_violation_minutes,
                    100.0 * r.sla_violation_minutes / minutes.max(1e-9),
                    r.replica_hours,
                    r.scale_events,
                    &r.p95_distribution,
                    &r.elasticity,
                );
            }
        }
        let _ = writeln!(s, "overall ({} services)", self.services.len());
        let _ = writeln!(s, "{header}");
        for p in &self.policies {
            row(
                &mut s,
                &p.name,
                p.sla_violation_minutes,
                p.violation_pct,
                p.replica_hours,
                p.scale_events,
                &p.p95_distribution,
                &p.elasticity,
            );
        }
        s
    }

    /// HPA's sweep as `(replica_hours, violation_minutes)` sorted by replica-hours.
    pub fn hpa_curve(&self) -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> = self
            .policies
            .iter()
            .filter(|p| p.kind == PolicyKind::Hpa)
            .map(|p| (p.replica_hours, p.sla_violation_minutes))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts
    }

    /// HPA's violation minutes at `replica_hours`, linearly interpolated on its sweep; `None`
    /// outside the sweep's range (or without a sweep of two points).
    pub fn hpa_violation_at(&self, replica_hours: f64) -> Option<f64> {
        let pts = self.hpa_curve();
        pts.windows(2).find_map(|w| {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            (x0 <= replica_hours && replica_hours <= x1).then(|| {
                if x1 - x0 < 1e-12 {
                    y0.min(y1)
                } else {
                    y0 + (y1 - y0) * (replica_hours - x0) / (x1 - x0)
                }
            })
        })
    }
}

/// Load the three shipped models from `dir` (`models/` of the repository).
pub fn load_models(
    dir: &std::path::Path,
) -> Result<Arc<Vec<Arc<dyn autoscaler_models::Model>>>, autoscaler_models::ModelError> {
    autoscaler_contract::ModelKind::ALL
        .into_iter()
        .map(|k| autoscaler_models::load(k, dir).map(Arc::from))
        .collect::<Result<Vec<_>, _>>()
        .map(Arc::new)
}
