//! Prediction latency (one row) and batch throughput of each model at its default size,
//! trained on a fixed-seed simulated data set.
//!
//! `cargo bench -p autoscaler-training --bench predict`

use std::hint::black_box;

use autoscaler_contract::ModelKind;
use autoscaler_models::{default_feature_names, input_row, train, Dataset, TrainParams};
use autoscaler_simulator::{generate_training_runs, TrainingDataConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn data() -> Dataset {
    let cfg = TrainingDataConfig {
        runs: 4,
        days_per_run: 1,
        seed: 42,
        ..TrainingDataConfig::default()
    };
    let names = default_feature_names();
    let mut d = Dataset {
        feature_names: names.clone(),
        rows: Vec::new(),
        labels: Vec::new(),
    };
    for run in generate_training_runs(&cfg) {
        for r in run.rows {
            if let (Some(l), Ok(x)) = (
                r.sla_violated,
                input_row(&r.features, Some(r.replicas), &names),
            ) {
                d.rows.push(x);
                d.labels.push(l);
            }
        }
    }
    d
}

fn bench(c: &mut Criterion) {
    let d = data();
    let params = TrainParams::default();
    let batch: Vec<Vec<f64>> = d.rows.iter().take(1000).cloned().collect();
    for kind in ModelKind::ALL {
        let model = train(kind, &d, &params).expect("trains");
        let row = d.rows[d.rows.len() / 2].clone();
        c.bench_function(&format!("single/{kind}"), |b| {
            b.iter(|| model.predict_proba(black_box(&row)).unwrap())
        });
        let mut g = c.benchmark_group("batch");
        g.throughput(Throughput::Elements(batch.len() as u64));
        g.bench_with_input(
            BenchmarkId::new(kind.as_str(), batch.len()),
            &batch,
            |b, x| b.iter(|| model.predict_proba_batch(black_box(x)).unwrap()),
        );
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
