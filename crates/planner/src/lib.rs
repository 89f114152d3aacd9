//! # The replica plan
//!
//! From a demand forecast, the replica count per step that minimises
//!
//! ```text
//! Σ_t  replica_cost·replicas[t] + penalty·shortfall[t] + startup_cost·scale_up[t]
//!      + shutdown_cost·scale_down[t]
//! subject to  min ≤ replicas[t] ≤ max                    (integer)
//!             capacity·replicas[t] + shortfall[t] ≥ demand[t],   shortfall[t] ≥ 0
//!             replicas[t] = replicas[t−1] + scale_up[t] − scale_down[t]  (replicas[−1] = current)
//!             0 ≤ scale_up[t] ≤ max_scale_up,  0 ≤ scale_down[t] ≤ max_scale_down
//!             scale_down[t] ≤ replicas[t−1]
//! ```
//!
//! the seed's program ([`solve`]), through `good_lp` with the pure-Rust `microlp` under a time
//! limit ([`SOLVER_TIMEOUT_MS`]). Every plan is checked against those constraints
//! ([`verify`]) before use; on a timeout, a solver error or a plan that fails the check, the
//! plan is the linear interpolation from the current count to the count the forecast's
//! ceiling needs ([`fallback_plan`]), and the result says so ([`Plan::fallback`]).
//!
//! [`demand_from_forecast`] turns a forecast into demand by one of the spec's three policies,
//! [`learn_capacity`] learns the request rate one replica serves within the SLA, and
//! [`cache::PlanCache`] serves a plan one value per second.
#![deny(missing_docs)]

pub mod cache;

use std::time::{Duration, Instant};

use good_lp::{
    constraint, microlp, variable, Expression, ProblemVariables, ResolutionError, Solution,
    SolutionStatus, SolverModel, Variable, WithTimeLimit,
};
use serde::{Deserialize, Serialize};

use autoscaler_forecast::Forecast;

/// Time limit of one solve (ms).
pub const SOLVER_TIMEOUT_MS: u64 = 200;
/// Seconds per plan step.
pub const PLAN_STEP_SECS: u64 = 60;
/// Steps planned (one hour at one-minute steps).
pub const PLAN_STEPS: usize = 60;
/// Seconds a new replica takes to serve: step t's replicas cover the demand at t + lead.
pub const PLAN_LEAD_SECS: u64 = 120;
/// Headroom of the `buffered` policy (fraction over the mean).
pub const BUFFER_HEADROOM: f64 = 0.2;
/// Default demand policy by name (what `autoscaler optimizer --demand-policy` takes).
pub const DEFAULT_DEMAND_POLICY: &str = "confidence-aware";
/// Cost of one replica per step.
pub const REPLICA_COST: f64 = 1.0;
/// Penalty per request/s of unmet demand per step.
pub const SLA_PENALTY: f64 = 10.0;
/// Cost of starting one replica.
pub const STARTUP_COST: f64 = 0.5;
/// Cost of stopping one replica.
pub const SHUTDOWN_COST: f64 = 0.2;
/// Most replicas started per step.
pub const MAX_SCALE_UP: u32 = 4;
/// Most replicas stopped per step.
pub const MAX_SCALE_DOWN: u32 = 2;
/// Most steps one solve may plan (keeps the solver bounded whatever a caller asks).
pub const MAX_PLAN_STEPS: usize = 3600;
/// Fewest samples [`learn_capacity`] needs.
pub const CAPACITY_MIN_SAMPLES: usize = 10;
/// The quantile of per-replica rates within the SLA taken as the capacity.
pub const CAPACITY_QUANTILE: f64 = 0.9;

/// Why a plan request is refused (before any solve).
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum PlanError {
    /// Bad parameters.
    #[error("invalid plan request: {0}")]
    Invalid(String),
}

/// The program's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanParams {
    /// Replicas now.
    pub current_replicas: u32,
    /// Fewest replicas.
    pub min_replicas: u32,
    /// Most replicas.
    pub max_replicas: u32,
    /// Requests/s one replica serves within the SLA.
    pub capacity_rps_per_replica: f64,
    /// Cost of one replica per step.
    pub replica_cost: f64,
    /// Penalty per request/s short per step.
    pub sla_penalty: f64,
    /// Cost of starting a replica.
    pub startup_cost: f64,
    /// Cost of stopping a replica.
    pub shutdown_cost: f64,
    /// Most replicas started per step.
    pub max_scale_up: u32,
    /// Most replicas stopped per step.
    pub max_scale_down: u32,
    /// Solver time limit.
    pub timeout_ms: u64,
}

impl PlanParams {
    /// The defaults for a service with these bounds and capacity.
    pub fn new(current: u32, min: u32, max: u32, capacity_rps_per_replica: f64) -> Self {
        PlanParams {
            current_replicas: current,
            min_replicas: min,
            max_replicas: max,
            capacity_rps_per_replica,
            replica_cost: REPLICA_COST,
            sla_penalty: SLA_PENALTY,
            startup_cost: STARTUP_COST,
            shutdown_cost: SHUTDOWN_COST,
            max_scale_up: MAX_SCALE_UP,
            max_scale_down: MAX_SCALE_DOWN,
            timeout_ms: SOLVER_TIMEOUT_MS,
        }
    }

    /// Every problem with the parameters, or none.
    pub fn validate(&self) -> Result<(), PlanError> {
        let mut errs = Vec::new();
        if self.min_replicas > self.max_replicas {
            errs.push(format!(
                "min_replicas {} > max_replicas {}",
                self.min_replicas, self.max_replicas
            ));
        }
        if !(self.capacity_rps_per_replica.is_finite() && self.capacity_rps_per_replica > 0.0) {
            errs.push(format!(
                "capacity_rps_per_replica must be > 0, got {}",
                self.capacity_rps_per_replica
            ));
        }
        for (n, v) in [
            ("replica_cost", self.replica_cost),
            ("sla_penalty", self.sla_penalty),
            ("startup_cost", self.startup_cost),
            ("shutdown_cost", self.shutdown_cost),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                errs.push(format!("{n} must be finite and ≥ 0, got {v}"));
            }
        }
        if self.timeout_ms == 0 {
            errs.push("timeout_ms must be > 0 (the solver never runs unbounded)".into());
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(PlanError::Invalid(errs.join("; ")))
        }
    }
}

/// How demand is read from a forecast (the spec's three policies).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum DemandPolicy {
    /// The interval's upper bound.
    ConfidenceAware,
    /// The mean plus `headroom` (a fraction).
    Buffered {
        /// Fraction over the mean.
        headroom: f64,
    },
    /// The highest mean of the horizon, at every step.
    Ceiling,
}

impl std::str::FromStr for DemandPolicy {
    type Err = PlanError;
    fn from_str(s: &str) -> Result<Self, PlanError> {
        match s {
            "confidence-aware" | "confidence_aware" => Ok(DemandPolicy::ConfidenceAware),
            "buffered" => Ok(DemandPolicy::Buffered {
                headroom: BUFFER_HEADROOM,
            }),
            "ceiling" => Ok(DemandPolicy::Ceiling),
            other => Err(PlanError::Invalid(format!(
                "unknown demand policy `{other}` (confidence-aware, buffered, ceiling)"
            ))),
        }
    }
}

/// Demand (requests/s) per plan step of `step_secs` from a forecast of 5-minute buckets
/// starting now: step t takes the bucket holding second `t·step_secs + lead_secs` (the last
/// bucket beyond the forecast).
pub fn demand_from_forecast(
    f: &Forecast,
    policy: DemandPolicy,
    steps: usize,
    step_secs: u64,
    lead_secs: u64,
) -> Vec<f64> {
    let bucket = autoscaler_forecast::BUCKET_SECS;
    let n = f.mean.len();
    if n == 0 {
        return vec![0.0; steps];
    }
    let ceiling = f.ceiling();
    (0..steps)
        .map(|t| {
            let b = (((t as u64 * step_secs + lead_secs) / bucket) as usize).min(n - 1);
            match policy {
                DemandPolicy::ConfidenceAware => f.upper[b],
                DemandPolicy::Buffered { headroom } => f.mean[b] * (1.0 + headroom),
                DemandPolicy::Ceiling => ceiling,
            }
        })
        .collect()
}

/// One sample of a service's own metrics for [`learn_capacity`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacitySample {
    /// Request rate (requests/s).
    pub rps: f64,
    /// Ready replicas.
    pub replicas: u32,
    /// p95 latency (ms).
    pub p95_ms: f64,
}

/// The request rate one replica serves within the SLA: the [`CAPACITY_QUANTILE`] of
/// `rps / replicas` over the samples whose p95 met `sla_ms`, capped by the lowest per-replica
/// rate that broke it. `None` with fewer than [`CAPACITY_MIN_SAMPLES`] usable samples (the
/// caller keeps its configured capacity).
pub fn learn_capacity(samples: &[CapacitySample], sla_ms: f64) -> Option<f64> {
    let usable: Vec<&CapacitySample> = samples
        .iter()
        .filter(|s| s.replicas > 0 && s.rps.is_finite() && s.rps > 0.0 && s.p95_ms.is_finite())
        .collect();
    if usable.len() < CAPACITY_MIN_SAMPLES {
        return None;
    }
    let mut ok: Vec<f64> = usable
        .iter()
        .filter(|s| s.p95_ms <= sla_ms)
        .map(|s| s.rps / f64::from(s.replicas))
        .collect();
    if ok.len() < CAPACITY_MIN_SAMPLES {
        return None;
    }
    ok.sort_by(f64::total_cmp);
    let q = ok[((ok.len() - 1) as f64 * CAPACITY_QUANTILE).round() as usize];
    let broke = usable
        .iter()
        .filter(|s| s.p95_ms > sla_ms)
        .map(|s| s.rps / f64::from(s.replicas))
        .fold(f64::INFINITY, f64::min);
    Some(q.min(broke))
}

/// How the plan was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SolverStatus {
    /// Proven optimal.
    Optimal,
    /// Stopped at the time limit with a feasible plan.
    TimeLimit,
    /// Stopped at the MIP gap.
    GapLimit,
    /// The solver failed or timed out without a plan: fallback.
    Failed,
    /// The solver's plan broke a constraint: fallback.
    Rejected,
    /// No solve was attempted (no forecast yet): fallback.
    NotRun,
}

/// A replica plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Replicas per step.
    pub replicas: Vec<u32>,
    /// The objective's value for this plan.
    pub cost: f64,
    /// How it was made.
    pub status: SolverStatus,
    /// Why the fallback was used (None when the solver's plan is used).
    pub fallback: Option<String>,
    /// Wall time of the solve.
    pub solve_ms: f64,
}

/// The objective of `replicas` for `demand`.
pub fn plan_cost(p: &PlanParams, demand: &[f64], replicas: &[u32]) -> f64 {
    let mut prev = f64::from(p.current_replicas);
    let mut cost = 0.0;
    for (d, r) in demand.iter().zip(replicas) {
        let r = f64::from(*r);
        let short = (d - p.capacity_rps_per_replica * r).max(0.0);
        let up = (r - prev).max(0.0);
        let down = (prev - r).max(0.0);
        cost += p.replica_cost * r
            + p.sla_penalty * short
            + p.startup_cost * up
            + p.shutdown_cost * down;
        prev = r;
    }
    cost
}

/// Check `replicas` against the program's constraints (shortfall is implied); `Err` names the
/// first broken one.
pub fn verify(p: &PlanParams, demand: &[f64], replicas: &[u32]) -> Result<(), String> {
    if replicas.len() != demand.len() {
        return Err(format!(
            "{} steps planned for {} demand steps",
            replicas.len(),
            demand.len()
        ));
    }
    let mut prev = p.current_replicas;
    for (t, r) in replicas.iter().enumerate() {
        if *r < p.min_replicas || *r > p.max_replicas {
            return Err(format!(
                "step {t}: {r} replicas outside [{}, {}]",
                p.min_replicas, p.max_replicas
            ));
        }
        if *r > prev && r - prev > p.max_scale_up {
            return Err(format!(
                "step {t}: scale-up {} > {}",
                r - prev,
                p.max_scale_up
            ));
        }
        if *r < prev && prev - r > p.max_scale_down {
            return Err(format!(
                "step {t}: scale-down {} > {}",
                prev - r,
                p.max_scale_down
            ));
        }
        prev = *r;
    }
    Ok(())
}

/// The fallback: linear interpolation from the current count to the count the demand's
/// ceiling needs, reached at the last step, clamped to [min, max] and to the step limits.
pub fn fallback_plan(p: &PlanParams, demand: &[f64]) -> Vec<u32> {
    let ceiling = demand.iter().copied().fold(0.0, f64::max);
    let target = (ceiling / p.capacity_rps_per_replica).ceil();
    let target = if target.is_finite() {
        target
    } else {
        f64::from(p.max_replicas)
    };
    let target = target.clamp(f64::from(p.min_replicas), f64::from(p.max_replicas));
    let cur = f64::from(p.current_replicas);
    let n = demand.len();
    let mut prev = p.current_replicas;
    (0..n)
        .map(|t| {
            let f = (t + 1) as f64 / n as f64;
            let mut r = (cur + f * (target - cur)).round() as u32;
            r = r.clamp(p.min_replicas, p.max_replicas);
            r = r.min(prev.saturating_add(p.max_scale_up));
            r = r.max(prev.saturating_sub(p.max_scale_down));
            r = r.clamp(p.min_replicas, p.max_replicas);
            prev = r;
            r
        })
        .collect()
}

/// The variables of the program, for building it with any good_lp solver.
struct Program {
    vars: ProblemVariables,
    replicas: Vec<Variable>,
    objective: Expression,
    constraints: Vec<good_lp::Constraint>,
}

fn build(p: &PlanParams, demand: &[f64]) -> Program {
    let mut vars = ProblemVariables::new();
    let n = demand.len();
    let (lo, hi) = (f64::from(p.min_replicas), f64::from(p.max_replicas));
    let replicas: Vec<Variable> = (0..n)
        .map(|_| vars.add(variable().integer().min(lo).max(hi)))
        .collect();
    let short: Vec<Variable> = (0..n).map(|_| vars.add(variable().min(0.0))).collect();
    let up: Vec<Variable> = (0..n)
        .map(|_| vars.add(variable().integer().min(0.0).max(f64::from(p.max_scale_up))))
        .collect();
    let down: Vec<Variable> = (0..n)
        .map(|_| {
            vars.add(
                variable()
                    .integer()
                    .min(0.0)
                    .max(f64::from(p.max_scale_down)),
            )
        })
        .collect();
    let mut objective = Expression::from(0.0);
    let mut constraints = Vec::new();
    for t in 0..n {
        objective += p.replica_cost * replicas[t]
            + p.sla_penalty * short[t]
            + p.startup_cost * up[t]
            + p.shutdown_cost * down[t];
        constraints.push(constraint!(
            p.capacity_rps_per_replica * replicas[t] + short[t] >= demand[t]
        ));
        let prev: Expression = if t == 0 {
            Expression::from(f64::from(p.current_replicas))
        } else {
            Expression::from(replicas[t - 1])
        };
        constraints.push(constraint!(replicas[t] == prev.clone() + up[t] - down[t]));
        constraints.push(constraint!(down[t] <= prev));
    }
    Program {
        vars,
        replicas,
        objective,
        constraints,
    }
}

fn round_plan(values: impl Iterator<Item = f64>) -> Vec<u32> {
    values.map(|v| v.round().max(0.0) as u32).collect()
}

/// Solve the program with microlp under `p.timeout_ms`; verify; fall back when needed.
pub fn solve(p: &PlanParams, demand: &[f64]) -> Result<Plan, PlanError> {
    p.validate()?;
    if demand.is_empty() || demand.len() > MAX_PLAN_STEPS {
        return Err(PlanError::Invalid(format!(
            "a plan has 1 to {MAX_PLAN_STEPS} steps, asked {}",
            demand.len()
        )));
    }
    if let Some((t, d)) = demand
        .iter()
        .enumerate()
        .find(|(_, d)| !(d.is_finite() && **d >= 0.0))
    {
        return Err(PlanError::Invalid(format!(
            "demand[{t}] = {d} is not a finite rate ≥ 0"
        )));
    }
    let started = Instant::now();
    let prog = build(p, demand);
    let mut model = prog
        .vars
        .minimise(prog.objective)
        .using(microlp)
        .with_time_limit(Duration::from_millis(p.timeout_ms).as_secs_f64());
    for c in prog.constraints {
        model = model.with(c);
    }
    let result = model.solve();
    let solve_ms = started.elapsed().as_secs_f64() * 1e3;
    let fallback = |status: SolverStatus, why: String| {
        let replicas = fallback_plan(p, demand);
        Plan {
            cost: plan_cost(p, demand, &replicas),
            replicas,
            status,
            fallback: Some(why),
            solve_ms,
        }
    };
    let plan = match result {
        Ok(sol) => {
            let status = match sol.status() {
                SolutionStatus::Optimal => SolverStatus::Optimal,
                SolutionStatus::TimeLimit => SolverStatus::TimeLimit,
                SolutionStatus::GapLimit => SolverStatus::GapLimit,
            };
            let values: Vec<f64> = prog.replicas.iter().map(|v| sol.value(*v)).collect();
            let integral = values.iter().all(|v| (v - v.round()).abs() < 1e-6);
            let replicas = round_plan(values.into_iter());
            match verify(p, demand, &replicas) {
                Ok(()) if integral => Plan {
                    cost: plan_cost(p, demand, &replicas),
                    replicas,
                    status,
                    fallback: None,
                    solve_ms,
                },
                Ok(()) => fallback(
                    SolverStatus::Rejected,
                    "the solver's replicas are not integers".into(),
                ),
                Err(why) => fallback(
                    SolverStatus::Rejected,
                    format!("solver plan rejected: {why}"),
                ),
            }
        }
        Err(e) => {
            let why = match e {
                ResolutionError::Infeasible => "solver: infeasible".to_string(),
                ResolutionError::Unbounded => "solver: unbounded".to_string(),
                other => format!("solver: {other}"),
            };
            fallback(SolverStatus::Failed, why)
        }
    };
    if plan.fallback.is_some() {
        tracing::warn!(
            reason = plan.fallback.as_deref().unwrap_or(""),
            "replica plan: fallback used"
        );
    }
    Ok(plan)
}

/// A plan without a solve (no forecast yet): the fallback, marked.
pub fn fallback_only(p: &PlanParams, demand: &[f64], why: &str) -> Plan {
    let replicas = fallback_plan(p, demand);
    Plan {
        cost: plan_cost(p, demand, &replicas),
        replicas,
        status: SolverStatus::NotRun,
        fallback: Some(why.to_string()),
        solve_ms: 0.0,
    }
}

/// Test support: the same program solved by CBC (tests only, `coin_cbc` linked as a
/// dev-dependency), for the cross-check against microlp.
#[doc(hidden)]
pub mod cross_check {
    use super::*;

    /// The program's optimal cost by the given good_lp solver function, or None.
    pub fn optimal_cost_with<S, M>(
        p: &PlanParams,
        demand: &[f64],
        solver: S,
    ) -> Option<(f64, Vec<u32>)>
    where
        S: good_lp::Solver<Model = M>,
        M: SolverModel,
    {
        let prog = build(p, demand);
        let mut model = prog.vars.minimise(prog.objective).using(solver);
        for c in prog.constraints {
            model = model.with(c);
        }
        let sol = model.solve().ok()?;
        let replicas = round_plan(prog.replicas.iter().map(|v| sol.value(*v)));
        Some((plan_cost(p, demand, &replicas), replicas))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> PlanParams {
        PlanParams::new(2, 1, 10, 10.0)
    }

    #[test]
    fn plan_covers_demand_within_bounds_and_rates() {
        let demand: Vec<f64> = (0..60).map(|t| if t < 20 { 15.0 } else { 75.0 }).collect();
        let plan = solve(&params(), &demand).unwrap();
        assert_eq!(plan.fallback, None, "{plan:?}");
        assert_eq!(plan.status, SolverStatus::Optimal);
        verify(&params(), &demand, &plan.replicas).unwrap();
        // Enough replicas for 75 rps (8) by the end; 2 at the start (15 rps).
        assert_eq!(*plan.replicas.last().unwrap(), 8);
        assert_eq!(plan.replicas[0], 2);
        // Ramps ahead of the rise at step 20 (max 4 up per step, startup is cheap vs the penalty).
        assert!(plan.replicas[19] >= 4, "{:?}", &plan.replicas[15..22]);
    }

    #[test]
    fn solver_timeout_falls_back_and_says_so() {
        let mut p = params();
        p.timeout_ms = 1;
        p.max_replicas = 500;
        p.max_scale_up = 50;
        p.max_scale_down = 50;
        // A long, noisy plan cannot be proven optimal in 1 ms.
        let demand: Vec<f64> = (0..2000)
            .map(|t| ((t * 7919) % 997) as f64 * 3.7 + 0.33)
            .collect();
        let plan = solve(&p, &demand).unwrap();
        verify(&p, &demand, &plan.replicas).unwrap();
        assert_ne!(plan.status, SolverStatus::Optimal, "{:?}", plan.status);
        assert!(plan.solve_ms < 5_000.0, "bounded: {} ms", plan.solve_ms);
        if plan.status == SolverStatus::Failed {
            assert!(plan.fallback.is_some());
        }
    }

    #[test]
    fn bad_parameters_are_refused_with_every_reason() {
        let mut p = params();
        p.min_replicas = 5;
        p.max_replicas = 3;
        p.capacity_rps_per_replica = 0.0;
        let e = solve(&p, &[1.0]).unwrap_err().to_string();
        assert!(
            e.contains("min_replicas 5 > max_replicas 3") && e.contains("capacity"),
            "{e}"
        );
        assert!(solve(&params(), &[]).is_err());
        assert!(solve(&params(), &[f64::NAN]).is_err());
        assert!(solve(&params(), &vec![1.0; MAX_PLAN_STEPS + 1]).is_err());
    }

    #[test]
    fn verify_catches_each_broken_constraint() {
        let p = params();
        let d = [1.0; 3];
        assert!(verify(&p, &d, &[2, 2]).is_err());
        assert!(verify(&p, &d, &[0, 1, 1]).unwrap_err().contains("outside"));
        assert!(verify(&p, &d, &[7, 7, 7]).unwrap_err().contains("scale-up"));
        let mut p2 = p.clone();
        p2.current_replicas = 9;
        assert!(verify(&p2, &d, &[5, 5, 5])
            .unwrap_err()
            .contains("scale-down"));
        assert!(verify(&p, &d, &[3, 4, 5]).is_ok());
    }

    #[test]
    fn fallback_interpolates_to_the_ceiling_within_limits() {
        let p = params();
        let demand = vec![95.0; 10];
        let r = fallback_plan(&p, &demand);
        assert_eq!(*r.last().unwrap(), 10);
        verify(&p, &demand, &r).unwrap();
        assert!(r.windows(2).all(|w| w[1] >= w[0]));
        let marked = fallback_only(&p, &demand, "models not fitted yet");
        assert_eq!(marked.status, SolverStatus::NotRun);
        assert_eq!(marked.fallback.as_deref(), Some("models not fitted yet"));
    }

    #[test]
    fn demand_policies_read_the_forecast_three_ways() {
        let f = Forecast {
            mean: vec![10.0, 20.0],
            lower: vec![5.0, 15.0],
            upper: vec![14.0, 30.0],
            level: 0.95,
        };
        let ca = demand_from_forecast(&f, DemandPolicy::ConfidenceAware, 10, 60, 0);
        assert_eq!(ca[0], 14.0);
        assert_eq!(ca[5], 30.0);
        let bu = demand_from_forecast(&f, DemandPolicy::Buffered { headroom: 0.5 }, 10, 60, 0);
        assert_eq!(bu[0], 15.0);
        let ce = demand_from_forecast(&f, DemandPolicy::Ceiling, 3, 60, 0);
        assert_eq!(ce, vec![20.0; 3]);
        // The lead shifts demand earlier.
        let led = demand_from_forecast(&f, DemandPolicy::ConfidenceAware, 1, 60, 300);
        assert_eq!(led[0], 30.0);
        assert!("nonsense".parse::<DemandPolicy>().is_err());
    }

    #[test]
    fn capacity_is_learned_from_samples_within_the_sla() {
        let mut s: Vec<CapacitySample> = (1..=20)
            .map(|i| CapacitySample {
                rps: f64::from(i) * 2.0,
                replicas: 2,
                p95_ms: 100.0,
            })
            .collect();
        // 20 samples at 1..20 rps per replica, all within SLA: q90 ≈ 18.
        let c = learn_capacity(&s, 250.0).unwrap();
        assert!((c - 18.0).abs() < 1.01, "{c}");
        // A violation at 12 rps per replica caps it.
        s.push(CapacitySample {
            rps: 24.0,
            replicas: 2,
            p95_ms: 400.0,
        });
        assert_eq!(learn_capacity(&s, 250.0), Some(12.0));
        assert_eq!(learn_capacity(&s[..3], 250.0), None);
    }
}
