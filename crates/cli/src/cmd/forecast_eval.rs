//! `autoscaler forecast-eval`: rolling-origin evaluation of the demand forecasters on a trace —
//! MAE / RMSE / MAPE per model and horizon (a table and JSON), SARIMAX's chosen orders with
//! their AIC, and a plot of the best 30-minute forecast and its interval over the actual.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use autoscaler_forecast::cpu_forest::evaluate_cpu_csv;
use autoscaler_forecast::eval::{
    evaluate, report_json, EvalConfig, DEFAULT_EVAL_JSON, DEFAULT_EVAL_PLOT, EVAL_WARMUP_BUCKETS,
};
use autoscaler_forecast::plot::write_forecast_plot;
use autoscaler_forecast::{
    aggregate, BUCKETS_PER_DAY, BUCKET_SECS, DEFAULT_HORIZONS_MIN, FORECAST_INTERVAL_MIN,
    MODEL_NAMES,
};
use autoscaler_simulator::{Trace, DEFAULT_TRACE_SCALE};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::exit::ConfigError;

/// `autoscaler forecast-eval`.
#[derive(Debug, Clone, Args)]
pub struct ForecastEvalArgs {
    /// The trace (CSV `timestamp,requests`, the simulator's format).
    #[arg(long, env = "AUTOSCALER_TRACE")]
    pub trace: PathBuf,
    /// Multiply the trace's request counts by this (the replay's scale).
    #[arg(long = "trace-scale", env = "AUTOSCALER_TRACE_SCALE", default_value_t = DEFAULT_TRACE_SCALE)]
    pub trace_scale: f64,
    /// Evaluate only the first H hours (default: the whole trace).
    #[arg(long, env = "AUTOSCALER_FORECAST_HOURS")]
    pub hours: Option<f64>,
    /// Horizons, minutes (multiples of 5).
    #[arg(long, env = "AUTOSCALER_FORECAST_HORIZONS", value_delimiter = ',', default_values_t = DEFAULT_HORIZONS_MIN)]
    pub horizons: Vec<u32>,
    /// Models to evaluate (naive, seasonal_naive, mstl, sarimax, lag_xgboost).
    #[arg(long, env = "AUTOSCALER_FORECAST_MODELS", value_delimiter = ',', default_values_t = MODEL_NAMES.map(String::from))]
    pub models: Vec<String>,
    /// Minutes between refits (the rolling origins), as `FORECAST_INTERVAL_MIN`.
    #[arg(long = "interval-min", env = "FORECAST_INTERVAL_MIN", default_value_t = FORECAST_INTERVAL_MIN)]
    pub interval_min: u32,
    /// Hours of history before the first origin.
    #[arg(long = "warmup-hours", env = "AUTOSCALER_FORECAST_WARMUP_HOURS", default_value_t = (EVAL_WARMUP_BUCKETS as u64 * BUCKET_SECS) as f64 / 3600.0)]
    pub warmup_hours: f64,
    /// The table as JSON (`{"models":[{"name","horizon_min","mae","rmse","mape"}…]}`).
    #[arg(long = "json-out", env = "AUTOSCALER_FORECAST_JSON", default_value = DEFAULT_EVAL_JSON)]
    pub json_out: PathBuf,
    /// The plot (SVG): the best model's forecast and interval over the actual.
    #[arg(long, env = "AUTOSCALER_FORECAST_PLOT", default_value = DEFAULT_EVAL_PLOT)]
    pub plot: PathBuf,
    /// Also evaluate TrafficShaprX's per-client CPU forest on this CSV (the peer data's
    /// `ml/data_set_2025.csv` format).
    #[arg(long = "cpu-csv", env = "AUTOSCALER_FORECAST_CPU_CSV")]
    pub cpu_csv: Option<PathBuf>,
}

impl ForecastEvalArgs {
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.trace_scale.is_finite() && self.trace_scale > 0.0) {
            p.push(format!("--trace-scale {} must be > 0", self.trace_scale));
        }
        if let Some(h) = self.hours {
            if !(h.is_finite() && h > 0.0) {
                p.push(format!("--hours {h} must be > 0"));
            }
        }
        if !(self.warmup_hours.is_finite() && self.warmup_hours >= 0.0) {
            p.push(format!("--warmup-hours {} must be >= 0", self.warmup_hours));
        }
        for m in &self.models {
            if !MODEL_NAMES.contains(&m.as_str()) {
                p.push(format!(
                    "unknown model `{m}` (known: {})",
                    MODEL_NAMES.join(", ")
                ));
            }
        }
        if self.models.is_empty() {
            p.push("--models is empty".into());
        }
        p
    }
}

/// Evaluate, print the table and the SARIMAX orders, write the JSON and the plot.
pub async fn run(a: ForecastEvalArgs, _shutdown: CancellationToken) -> anyhow::Result<()> {
    ConfigError::check(a.problems())?;
    let trace = Trace::from_csv_path(&a.trace)
        .with_context(|| format!("reading the trace {}", a.trace.display()))?;
    let mut series = aggregate(&trace, a.trace_scale)?;
    if let Some(h) = a.hours {
        series.truncate((h * 3600.0 / BUCKET_SECS as f64).floor() as usize);
    }
    let cfg = EvalConfig {
        horizons_min: a.horizons.clone(),
        interval_min: a.interval_min,
        warmup_buckets: (a.warmup_hours * 3600.0 / BUCKET_SECS as f64).round() as usize,
        models: a.models.clone(),
    };
    let name = a.trace.file_name().map_or_else(
        || a.trace.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    println!(
        "forecast-eval: {name} ×{}, {} buckets of 5 min ({:.1} days), refit every {} min, \
         horizons {:?} min",
        a.trace_scale,
        series.len(),
        series.len() as f64 / BUCKETS_PER_DAY as f64,
        a.interval_min,
        a.horizons
    );
    let pb = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} fits, {elapsed} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message("fitting");
    let t0 = Instant::now();
    let report = tokio::task::block_in_place(|| evaluate(&series, &cfg, Some(&pb)))?;
    pb.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    print!("{}", report.table());
    println!(
        "{} origins in {secs:.1} s; fit time per model: {}",
        report.origins,
        report
            .fit_secs
            .iter()
            .map(|(m, s)| format!("{m} {s:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for o in &report.sarimax_orders {
        println!(
            "sarimax order {} (AIC {:.1}) from bucket {} (day {:.1})",
            o.order,
            o.aic,
            o.origin_bucket,
            o.origin_bucket as f64 / BUCKETS_PER_DAY as f64
        );
    }
    let h30 = if a.horizons.contains(&30) {
        30
    } else {
        a.horizons[0]
    };
    if let (Some(best), Some(sn)) = (report.best(h30), report.score("seasonal_naive", h30)) {
        println!(
            "best {h30}-minute MAPE: {} {:.2}% = {:.2} × seasonal_naive's {:.2}%",
            best.name,
            best.mape * 100.0,
            best.mape / sn.mape.max(1e-12),
            sn.mape * 100.0
        );
    }
    write_json(
        &a.json_out,
        &serde_json::to_vec_pretty(&report_json(&report))?,
    )?;
    let best = report
        .best(report.trace_horizon_min)
        .map(|b| b.name.clone());
    if let Some((model, fc)) = best
        .as_ref()
        .and_then(|b| report.traces.iter().find(|(m, _)| m == b))
    {
        write_forecast_plot(
            &a.plot,
            &format!(
                "{name}: {model}, {} min ahead, {}% interval",
                report.trace_horizon_min,
                (autoscaler_forecast::INTERVAL_LEVEL * 100.0).round()
            ),
            &series,
            fc,
        )?;
    }
    println!("wrote {} and {}", a.json_out.display(), a.plot.display());
    if let Some(cpu) = &a.cpu_csv {
        let r = evaluate_cpu_csv(cpu)?;
        println!(
            "cpu_forest on {}: {} rows ({} regular 5-min steps, used+idle = 100 on {}, \
             mem_total constant: {}, CPU 0 on {}), ACF lag 1 {:.3}, lag 1 day {:.3}, \
             corr(CPU, connections) {:.3}; one step ahead on the last {} rows: forest MAE {:.3} \
             RMSE {:.3} MAPE {:.2}%, naive MAE {:.3} RMSE {:.3} MAPE {:.2}%",
            cpu.display(),
            r.rows,
            r.regular_steps,
            r.used_plus_idle_is_100,
            r.mem_total_constant,
            r.cpu_zero_rows,
            r.acf_lag1,
            r.acf_lag_day,
            r.corr_connections,
            r.rows - r.train_rows,
            r.forest.mae,
            r.forest.rmse,
            r.forest.mape * 100.0,
            r.naive.mae,
            r.naive.rmse,
            r.naive.mape * 100.0
        );
    }
    Ok(())
}

fn write_json(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
