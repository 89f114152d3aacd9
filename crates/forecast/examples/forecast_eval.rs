//! `cargo run --release -p autoscaler-forecast --example forecast_eval -- TRACE [HOURS] [SCALE]`:
//! the rolling-origin evaluation on a trace, before `autoscaler forecast-eval` exists.
use std::path::Path;
use std::time::Instant;

use autoscaler_forecast::eval::{evaluate, EvalConfig};
use autoscaler_forecast::{aggregate, BUCKETS_PER_DAY};
use autoscaler_simulator::Trace;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let trace = Trace::from_csv_path(Path::new(&args[1])).expect("trace");
    let mut series = aggregate(&trace, args.get(3).map_or(1.0, |s| s.parse().unwrap())).unwrap();
    if let Some(h) = args.get(2).map(|s| s.parse::<usize>().unwrap()) {
        series.truncate(h * 12);
    }
    println!(
        "{} buckets ({:.1} days)",
        series.len(),
        series.len() as f64 / BUCKETS_PER_DAY as f64
    );
    let t0 = Instant::now();
    let r = evaluate(&series, &EvalConfig::default(), None).unwrap();
    println!("{}", r.table());
    println!(
        "origins {} in {:.1} s; fit secs {:?}",
        r.origins,
        t0.elapsed().as_secs_f64(),
        r.fit_secs
    );
    for o in &r.sarimax_orders {
        println!(
            "sarimax order at bucket {}: {} AIC {:.1}",
            o.origin_bucket, o.order, o.aic
        );
    }
}
