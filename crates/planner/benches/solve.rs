//! Plan solve time for 60 and 600 steps (microlp), on a fixed daily-shaped demand.
//! `cargo bench -p autoscaler-planner --bench solve`.
//!
//! Per size it prints p50/p99 over its own solves at two time limits, with the solver statuses
//! seen (a solve stopped at the limit with a feasible plan is a `TimeLimit`: its time is the
//! limit's, not the solve's; `Failed`/`Rejected` are fallback plans):
//!
//! * [`GENEROUS_TIMEOUT_MS`], to measure the solve to proven optimality, not the limit;
//! * [`SOLVER_TIMEOUT_MS`], the limit the optimizer solves under on every request.
//!
//! Each pass runs [`QUANTILE_SOLVES`] solves, fewer when they take longer than
//! [`QUANTILE_BUDGET`] (at least [`QUANTILE_MIN_SOLVES`]; the count is printed). Criterion's
//! mean is of the solve under [`SOLVER_TIMEOUT_MS`] (flat sampling, its minimum of 10 samples,
//! so the bench takes minutes; `cargo test --all-targets` runs it once, without the quantiles).
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use autoscaler_planner::{solve, PlanParams, SOLVER_TIMEOUT_MS};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};

/// Plan lengths measured (steps).
const STEPS: [usize; 2] = [60, 600];
/// Most solves behind each printed p50/p99.
const QUANTILE_SOLVES: usize = 200;
/// Fewest solves behind each printed p50/p99, however long they take.
const QUANTILE_MIN_SOLVES: usize = 3;
/// Wall time after which no new quantile solve is started (once [`QUANTILE_MIN_SOLVES`] are
/// done).
const QUANTILE_BUDGET: Duration = Duration::from_secs(60);
/// A time limit far above a 60-step solve: the solve to optimality is measured, not the limit.
const GENEROUS_TIMEOUT_MS: u64 = 30_000;
/// Criterion samples per size (its minimum).
const SAMPLE_SIZE: usize = 10;

fn demand(steps: usize) -> Vec<f64> {
    (0..steps)
        .map(|t| {
            let a = 2.0 * std::f64::consts::PI * t as f64 / 240.0;
            40.0 + 30.0 * a.sin() + ((t * 7919) % 17) as f64
        })
        .collect()
}

fn params(timeout_ms: u64) -> PlanParams {
    let mut p = PlanParams::new(3, 1, 20, 8.0);
    p.timeout_ms = timeout_ms;
    p
}

/// The `q` quantile (nearest rank) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn quantiles(steps: usize, timeout_ms: u64) {
    let p = params(timeout_ms);
    let d = demand(steps);
    let started = Instant::now();
    let mut ms = Vec::with_capacity(QUANTILE_SOLVES);
    let mut statuses = BTreeMap::new();
    while ms.len() < QUANTILE_SOLVES
        && (ms.len() < QUANTILE_MIN_SOLVES || started.elapsed() < QUANTILE_BUDGET)
    {
        let t = Instant::now();
        let plan = solve(&p, &d).unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        *statuses
            .entry(format!("{:?}", plan.status))
            .or_insert(0usize) += 1;
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "plan {steps} steps, limit {timeout_ms} ms: p50 {:.2} ms, p99 {:.2} ms ({} solves; {statuses:?})",
        quantile(&ms, 0.5),
        quantile(&ms, 0.99),
        ms.len()
    );
}

fn bench(c: &mut Criterion) {
    // `cargo test --all-targets` runs benches once in test mode (no `--bench`): check that they
    // run, without the quantiles.
    let measuring = std::env::args().any(|a| a == "--bench");
    let mut group = c.benchmark_group("solve");
    group.sampling_mode(SamplingMode::Flat);
    for steps in STEPS {
        if measuring {
            quantiles(steps, GENEROUS_TIMEOUT_MS);
            quantiles(steps, SOLVER_TIMEOUT_MS);
        }
        let p = params(SOLVER_TIMEOUT_MS);
        let d = demand(steps);
        group.bench_function(format!("{steps}_steps"), |b| {
            b.iter(|| solve(&p, &d).unwrap())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(SAMPLE_SIZE);
    targets = bench
}
criterion_main!(benches);
