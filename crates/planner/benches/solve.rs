//! Plan solve time for 60 and 600 steps (microlp), on a fixed daily-shaped demand.
//! `cargo bench -p autoscaler-planner --bench solve`; criterion prints the mean, and this
//! bench also prints p50/p99 over its own 200 solves per size.
use std::time::Instant;

use autoscaler_planner::{solve, PlanParams};
use criterion::{criterion_group, criterion_main, Criterion};

fn demand(steps: usize) -> Vec<f64> {
    (0..steps)
        .map(|t| {
            let a = 2.0 * std::f64::consts::PI * t as f64 / 240.0;
            40.0 + 30.0 * a.sin() + ((t * 7919) % 17) as f64
        })
        .collect()
}

fn quantiles(steps: usize) {
    let mut p = PlanParams::new(3, 1, 20, 8.0);
    // Measure the solve, not the limit.
    p.timeout_ms = 30_000;
    let d = demand(steps);
    let mut ms: Vec<f64> = (0..200)
        .map(|_| {
            let t = Instant::now();
            let plan = solve(&p, &d).unwrap();
            assert!(plan.fallback.is_none(), "{:?}", plan.fallback);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "plan {steps} steps: p50 {:.2} ms, p99 {:.2} ms (200 solves)",
        ms[100], ms[197]
    );
}

fn bench(c: &mut Criterion) {
    // `cargo test --all-targets` runs benches once in test mode (no `--bench`): check that they
    // run, without the 200-solve quantiles.
    let measuring = std::env::args().any(|a| a == "--bench");
    for steps in [60usize, 600] {
        if measuring {
            quantiles(steps);
        }
        let mut p = PlanParams::new(3, 1, 20, 8.0);
        // Measure the solve, not the limit.
        p.timeout_ms = 30_000;
        let d = demand(steps);
        c.bench_function(&format!("solve_{steps}_steps"), |b| {
            b.iter(|| solve(&p, &d).unwrap())
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
