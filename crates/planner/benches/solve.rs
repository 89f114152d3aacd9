//! Plan solve time for 60 and 600 steps (microlp), on a fixed daily-shaped demand.
//! `cargo bench -p autoscaler-planner --bench solve`; criterion prints the mean, and this
//! bench also prints p50/p99 over its own solves per size: [`QUANTILE_SOLVES`], fewer when
//! they take longer than [`QUANTILE_BUDGET`] (at least [`QUANTILE_MIN_SOLVES`]; the count is
//! printed). A 600-step solve takes seconds, so criterion samples flat (one solve per
//! iteration count, not 1..=n) to keep the whole bench to minutes.
use std::time::{Duration, Instant};

use autoscaler_planner::{solve, PlanParams};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};

/// Plan lengths measured (steps).
const STEPS: [usize; 2] = [60, 600];
/// Most solves behind the printed p50/p99, per size.
const QUANTILE_SOLVES: usize = 200;
/// Fewest solves behind the printed p50/p99, however long they take.
const QUANTILE_MIN_SOLVES: usize = 20;
/// Wall time after which no new quantile solve is started (once [`QUANTILE_MIN_SOLVES`] are
/// done).
const QUANTILE_BUDGET: Duration = Duration::from_secs(60);
/// Criterion samples per size.
const SAMPLE_SIZE: usize = 20;
/// Solver time limit: far above any solve, so the solve is measured, not the limit.
const TIMEOUT_MS: u64 = 30_000;

fn demand(steps: usize) -> Vec<f64> {
    (0..steps)
        .map(|t| {
            let a = 2.0 * std::f64::consts::PI * t as f64 / 240.0;
            40.0 + 30.0 * a.sin() + ((t * 7919) % 17) as f64
        })
        .collect()
}

fn params() -> PlanParams {
    let mut p = PlanParams::new(3, 1, 20, 8.0);
    p.timeout_ms = TIMEOUT_MS;
    p
}

/// The `q` quantile (nearest rank) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn quantiles(steps: usize) {
    let p = params();
    let d = demand(steps);
    let started = Instant::now();
    let mut ms = Vec::with_capacity(QUANTILE_SOLVES);
    while ms.len() < QUANTILE_SOLVES
        && (ms.len() < QUANTILE_MIN_SOLVES || started.elapsed() < QUANTILE_BUDGET)
    {
        let t = Instant::now();
        let plan = solve(&p, &d).unwrap();
        assert!(plan.fallback.is_none(), "{:?}", plan.fallback);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "plan {steps} steps: p50 {:.2} ms, p99 {:.2} ms ({} solves)",
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
            quantiles(steps);
        }
        let p = params();
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
