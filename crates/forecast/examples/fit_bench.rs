//! Fit time per model and history length (a benchmark, not a test):
//! `cargo run -p autoscaler-forecast --example fit_bench -- TRACE [REPS]` (the dev profile is
//! optimised, opt-level 2).
//! Prints wall time and process CPU time per fit (CPU time from /proc/self/stat, 10 ms ticks,
//! averaged over the repetitions), so a loaded machine does not inflate the figure.
use std::path::Path;
use std::time::Instant;

use autoscaler_forecast::{aggregate, make_model, History, BUCKETS_PER_DAY, MODEL_NAMES};
use autoscaler_simulator::Trace;

fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: fit_bench TRACE [REPS]");
    let trace = Trace::from_csv_path(Path::new(path)).expect("trace");
    let reps: usize = args.get(2).map_or(3, |s| s.parse().unwrap());
    let series = aggregate(&trace, 1.0).unwrap();
    println!("| model | history (days) | wall ms/fit | CPU ms/fit |");
    println!("|---|---|---|---|");
    for days in [2usize, 7, 14] {
        // Two buckets are kept back for the refit below.
        let n = (days * BUCKETS_PER_DAY).min(series.len().saturating_sub(2));
        let h = History::new(0, series[..n].to_vec());
        for name in MODEL_NAMES {
            let (w0, c0) = (Instant::now(), cpu_secs());
            for _ in 0..reps {
                // A fresh model each time: SARIMAX chooses its order (the daily fit).
                let mut m = make_model(name).unwrap();
                m.fit_forecast(&h, 12).unwrap();
            }
            let wall = w0.elapsed().as_secs_f64() * 1e3 / reps as f64;
            let cpu = (cpu_secs() - c0) * 1e3 / reps as f64;
            println!("| {name} | {days} | {wall:.1} | {cpu:.1} |");
        }
        // SARIMAX refit with the order kept (what runs every FORECAST_INTERVAL_MIN).
        let mut m = autoscaler_forecast::sarimax::Sarimax::default();
        use autoscaler_forecast::Forecaster;
        m.fit_forecast(&h, 12).unwrap();
        let h2 = History::new(0, series[..n + 2].to_vec());
        let (w0, c0) = (Instant::now(), cpu_secs());
        for _ in 0..reps {
            m.fit_forecast(&h2, 12).unwrap();
        }
        let wall = w0.elapsed().as_secs_f64() * 1e3 / reps as f64;
        let cpu = (cpu_secs() - c0) * 1e3 / reps as f64;
        println!("| sarimax refit (order kept) | {days} | {wall:.1} | {cpu:.1} |");
    }
}
