//! Fit time per forecasting model and history length (a benchmark, not a test).
//!
//! `cargo bench -p autoscaler-forecast --bench fit`
//!
//! Every model of the crate is fitted (and asked for the optimizer's one-hour forecast) on 1, 3
//! and 7 days of 5-minute aggregates (288, 864 and 2016 points) of a deterministic synthetic
//! daily-shaped series generated here: `naive`, `seasonal_naive`, `mstl`, `sarimax` (a fresh
//! model, so the AIC choice among the candidate orders runs: the daily cost), `sarimax_refit`
//! (the order kept, coefficients refitted from the previous fit on a history two buckets
//! longer: what runs every `FORECAST_INTERVAL_MIN`), `lag_xgboost` and `cpu_forest` (on a CPU
//! series derived from the same shape). A model whose minimum history is longer than a length is
//! skipped, and says so.
//!
//! Criterion prints its mean; this bench also prints p50/p99 over its own repeated fits (up to
//! [`QUANTILE_FITS`] per model and length, fewer when they take longer than
//! [`QUANTILE_BUDGET`]; the count is printed). `cargo test --all-targets` runs the bench once in
//! test mode, without the quantiles.
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use autoscaler_forecast::cpu_forest::{CpuForest, CPU_MIN_POINTS};
use autoscaler_forecast::sarimax::Sarimax;
use autoscaler_forecast::{
    make_model, Forecaster, History, BUCKETS_PER_DAY, BUCKET_SECS, FORECAST_INTERVAL_MIN,
    MODEL_NAMES,
};

/// History lengths, in days of 5-minute buckets.
const HISTORY_DAYS: [usize; 3] = [1, 3, 7];
/// Buckets forecast per fit: one hour plus the plan's lead, as the optimizer asks.
const FORECAST_BUCKETS: usize = 14;
/// Buckets the history grows by between two refits (one refit interval).
const REFIT_NEW_BUCKETS: usize = FORECAST_INTERVAL_MIN as usize * 60 / BUCKET_SECS as usize;
/// Most fits per model and length behind the printed p50/p99.
const QUANTILE_FITS: usize = 50;
/// Fewest fits behind the printed p50/p99, however long they take.
const QUANTILE_MIN_FITS: usize = 5;
/// Wall time after which no new quantile fit is started (once [`QUANTILE_MIN_FITS`] are done).
const QUANTILE_BUDGET: Duration = Duration::from_secs(8);
/// Criterion samples per benchmark (its minimum).
const SAMPLE_SIZE: usize = 10;
/// Criterion's measurement time per benchmark (it runs longer when one fit takes longer).
const MEASUREMENT: Duration = Duration::from_secs(3);
/// Criterion's warm-up time per benchmark.
const WARM_UP: Duration = Duration::from_secs(1);
/// Seed of the series' noise.
const SEED: u64 = 11;
/// Mean request rate of the synthetic service (requests/s).
const BASE_RPS: f64 = 120.0;
/// Amplitude of its daily cycle (requests/s).
const DAILY_AMPLITUDE_RPS: f64 = 80.0;
/// Amplitude of a second, half-day harmonic (a lunchtime dip; requests/s).
const HALF_DAY_AMPLITUDE_RPS: f64 = 15.0;
/// Standard deviation of the noise (requests/s).
const NOISE_SD_RPS: f64 = 6.0;
/// CPU (%) of the synthetic service when idle.
const CPU_IDLE_PCT: f64 = 5.0;
/// CPU (%) per request/s.
const CPU_PCT_PER_RPS: f64 = 0.3;
/// Seed of the CPU forest.
const FOREST_SEED: u64 = 7;

/// The request rate per 5-minute bucket: a daily cycle (trough at 03:00, peak at 15:00), a
/// half-day harmonic and Gaussian noise, never negative.
fn series(buckets: usize) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let noise = Normal::new(0.0, NOISE_SD_RPS).expect("finite sd");
    (0..buckets)
        .map(|i| {
            let day =
                2.0 * std::f64::consts::PI * (i % BUCKETS_PER_DAY) as f64 / BUCKETS_PER_DAY as f64;
            let v = BASE_RPS - DAILY_AMPLITUDE_RPS * (day - std::f64::consts::PI / 4.0).cos()
                + HALF_DAY_AMPLITUDE_RPS * (2.0 * day).cos()
                + noise.sample(&mut rng);
            v.max(0.0)
        })
        .collect()
}

/// What is benchmarked.
#[derive(Clone, Copy)]
enum Kind {
    /// A fresh model from `make_model` (SARIMAX chooses its order).
    Model(&'static str),
    /// SARIMAX with its order kept, refitted on a history [`REFIT_NEW_BUCKETS`] longer.
    SarimaxRefit,
    /// The per-client CPU random forest (fit, then the next sample).
    CpuForest,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Model(n) => n,
            Kind::SarimaxRefit => "sarimax_refit",
            Kind::CpuForest => "cpu_forest",
        }
    }

    fn min_points(self) -> usize {
        match self {
            Kind::Model(n) => make_model(n).expect("known model").min_history(),
            Kind::SarimaxRefit => Sarimax::default().min_history(),
            Kind::CpuForest => CPU_MIN_POINTS,
        }
    }

    /// One fit on the first `points` buckets of `y` (the forecast's ceiling, or the CPU
    /// prediction), and what the fit chose when the model chooses (SARIMAX's order and AIC).
    fn prepare(self, y: &[f64], points: usize) -> (Box<dyn FnMut() -> f64>, Option<String>) {
        let h = History::new(0, y[..points].to_vec());
        match self {
            Kind::Model(n) => (
                Box::new(move || {
                    let mut m = make_model(n).expect("known model");
                    m.fit_forecast(&h, FORECAST_BUCKETS)
                        .expect("fits")
                        .ceiling()
                }),
                None,
            ),
            Kind::SarimaxRefit => {
                // The order chosen here is the one a fresh `sarimax` chooses on this history
                // (the fit is deterministic).
                let mut fitted = Sarimax::default();
                fitted.refit(&h).expect("fits");
                let info = fitted.info();
                let chosen = format!(
                    "order kept: {}, AIC {:.1}",
                    info.order.unwrap_or_default(),
                    info.aic.unwrap_or(f64::NAN)
                );
                let later = History::new(0, y[..points + REFIT_NEW_BUCKETS].to_vec());
                (
                    Box::new(move || {
                        let mut m = fitted.clone();
                        m.fit_forecast(&later, FORECAST_BUCKETS)
                            .expect("refits")
                            .ceiling()
                    }),
                    Some(chosen),
                )
            }
            Kind::CpuForest => {
                let cpu: Vec<f64> = h
                    .values
                    .iter()
                    .map(|r| (CPU_IDLE_PCT + CPU_PCT_PER_RPS * r).min(100.0))
                    .collect();
                (
                    Box::new(move || {
                        CpuForest::fit(&cpu, FOREST_SEED)
                            .expect("fits")
                            .predict_next(&cpu)
                            .expect("predicts")
                    }),
                    None,
                )
            }
        }
    }
}

/// The `q` quantile (nearest rank) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds, in µs below 1 ms (the baselines fit in microseconds).
fn duration(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.1} µs", ms * 1e3)
    } else {
        format!("{ms:.2} ms")
    }
}

fn quantiles(kind: Kind, days: usize, fit: &mut dyn FnMut() -> f64, chosen: Option<&str>) {
    let started = Instant::now();
    let mut ms = Vec::with_capacity(QUANTILE_FITS);
    while ms.len() < QUANTILE_FITS
        && (ms.len() < QUANTILE_MIN_FITS || started.elapsed() < QUANTILE_BUDGET)
    {
        let t = Instant::now();
        black_box(fit());
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "fit {} {} points ({days} d): p50 {}, p99 {} ({} fits){}",
        kind.name(),
        days * BUCKETS_PER_DAY,
        duration(quantile(&ms, 0.5)),
        duration(quantile(&ms, 0.99)),
        ms.len(),
        chosen.map(|c| format!("; {c}")).unwrap_or_default()
    );
}

fn bench(c: &mut Criterion) {
    // `cargo test --all-targets` runs benches once in test mode (no `--bench`): check that they
    // run, without the quantiles.
    let measuring = std::env::args().any(|a| a == "--bench");
    let longest = HISTORY_DAYS.iter().max().expect("lengths") * BUCKETS_PER_DAY;
    let y = series(longest + REFIT_NEW_BUCKETS);
    let mut kinds: Vec<Kind> = MODEL_NAMES.iter().map(|n| Kind::Model(n)).collect();
    kinds.push(Kind::SarimaxRefit);
    kinds.push(Kind::CpuForest);
    for kind in kinds {
        let mut group = c.benchmark_group(format!("fit_{}", kind.name()));
        group.sampling_mode(SamplingMode::Flat);
        for days in HISTORY_DAYS {
            let points = days * BUCKETS_PER_DAY;
            if points < kind.min_points() {
                println!(
                    "fit {} {points} points ({days} d): skipped, the model needs at least {} points",
                    kind.name(),
                    kind.min_points()
                );
                continue;
            }
            let (mut fit, chosen) = kind.prepare(&y, points);
            if measuring {
                quantiles(kind, days, &mut fit, chosen.as_deref());
            }
            group.bench_function(BenchmarkId::from_parameter(points), |b| b.iter(&mut fit));
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(SAMPLE_SIZE)
        .measurement_time(MEASUREMENT)
        .warm_up_time(WARM_UP);
    targets = bench
}
criterion_main!(benches);
