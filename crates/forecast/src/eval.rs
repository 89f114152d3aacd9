//! Rolling-origin evaluation of the forecasters on a series of 5-minute aggregates.
//!
//! Origins start after [`EVAL_WARMUP_BUCKETS`] (two days) and follow every
//! `interval_min` minutes ([`crate::FORECAST_INTERVAL_MIN`] by default). At each origin `o`
//! every model is refitted on `series[..o]` only and forecasts the buckets from `o` on; a
//! horizon of `h` minutes is scored on bucket `o + h/5 − 1` (the 5 minutes ending `h` minutes
//! after the origin), so no model is ever trained on a point it is scored on. MAPE is over the
//! points whose actual is > 0. A model that fails at an origin (for example a constant window)
//! is scored with the naive forecast there, and its failures are counted.

use std::time::Instant;

use indicatif::ProgressBar;
use serde::Serialize;

use crate::{make_model, Forecast, ForecastError, History, BUCKETS_PER_DAY, BUCKET_SECS};

/// Buckets of history before the first origin (two days: MSTL's and the booster's minimum).
pub const EVAL_WARMUP_BUCKETS: usize = 2 * BUCKETS_PER_DAY;
/// Default path of `forecast-eval`'s JSON.
pub const DEFAULT_EVAL_JSON: &str = "output/forecast-eval.json";
/// Default path of `forecast-eval`'s plot.
pub const DEFAULT_EVAL_PLOT: &str = "output/forecast-eval.svg";

/// MAE, RMSE and MAPE of a set of predictions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Accuracy {
    /// Mean absolute error.
    pub mae: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute percentage error (a fraction: 0.1 = 10 %), over actuals > 0.
    pub mape: f64,
    /// Points scored.
    pub n: usize,
}

impl Accuracy {
    /// Score `pred` against `actual`.
    pub fn of(pred: &[f64], actual: &[f64]) -> Self {
        let mut acc = Acc::default();
        for (p, a) in pred.iter().zip(actual) {
            acc.add(*p, *a, None);
        }
        acc.accuracy()
    }
}

#[derive(Debug, Default, Clone)]
struct Acc {
    abs: f64,
    sq: f64,
    ape: f64,
    n_ape: usize,
    n: usize,
    covered: usize,
}

impl Acc {
    fn add(&mut self, p: f64, a: f64, interval: Option<(f64, f64)>) {
        let e = p - a;
        self.abs += e.abs();
        self.sq += e * e;
        if a > 0.0 {
            self.ape += (e / a).abs();
            self.n_ape += 1;
        }
        if let Some((lo, hi)) = interval {
            if lo <= a && a <= hi {
                self.covered += 1;
            }
        }
        self.n += 1;
    }

    fn accuracy(&self) -> Accuracy {
        let n = self.n.max(1) as f64;
        Accuracy {
            mae: self.abs / n,
            rmse: (self.sq / n).sqrt(),
            mape: self.ape / self.n_ape.max(1) as f64,
            n: self.n,
        }
    }
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Horizons in minutes (multiples of 5).
    pub horizons_min: Vec<u32>,
    /// Minutes between origins (refits), a multiple of 5.
    pub interval_min: u32,
    /// Buckets before the first origin.
    pub warmup_buckets: usize,
    /// Model names (see [`crate::MODEL_NAMES`]).
    pub models: Vec<String>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            horizons_min: crate::DEFAULT_HORIZONS_MIN.to_vec(),
            interval_min: crate::FORECAST_INTERVAL_MIN,
            warmup_buckets: EVAL_WARMUP_BUCKETS,
            models: crate::MODEL_NAMES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// One model at one horizon: the JSON row `{"name","horizon_min","mae","rmse","mape"}` (plus
/// coverage of the interval, points and failures).
#[derive(Debug, Clone, Serialize)]
pub struct ModelScore {
    /// The model.
    pub name: String,
    /// The horizon.
    pub horizon_min: u32,
    /// Mean absolute error (requests/s).
    pub mae: f64,
    /// Root mean squared error (requests/s).
    pub rmse: f64,
    /// MAPE (fraction) over actuals > 0.
    pub mape: f64,
    /// Fraction of actuals inside the prediction interval.
    pub coverage: f64,
    /// Points scored.
    pub n: usize,
    /// Origins where the model failed and the naive forecast was scored instead.
    pub failures: usize,
}

/// A SARIMAX order choice seen during the evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct OrderChoice {
    /// Origin bucket where this order was first used.
    pub origin_bucket: usize,
    /// The order.
    pub order: String,
    /// Its AIC at that origin.
    pub aic: f64,
}

/// One plotted forecast: `(target bucket, mean, lower, upper)`.
pub type TracePoint = (usize, f64, f64, f64);

/// The evaluation's result.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// One row per model and horizon.
    pub models: Vec<ModelScore>,
    /// Origins evaluated.
    pub origins: usize,
    /// Buckets in the series.
    pub buckets: usize,
    /// Seconds spent fitting, per model (same order as the models).
    pub fit_secs: Vec<(String, f64)>,
    /// SARIMAX's order choices (when evaluated).
    pub sarimax_orders: Vec<OrderChoice>,
    /// For the plot: per model, the forecasts at the 30-minute horizon (or the first):
    /// `(target bucket, mean, lower, upper)`.
    #[serde(skip)]
    pub traces: Vec<(String, Vec<TracePoint>)>,
    /// The horizon `traces` hold.
    #[serde(skip)]
    pub trace_horizon_min: u32,
}

impl EvalReport {
    /// The score of `model` at `horizon_min`.
    pub fn score(&self, model: &str, horizon_min: u32) -> Option<&ModelScore> {
        self.models
            .iter()
            .find(|m| m.name == model && m.horizon_min == horizon_min)
    }

    /// The model with the lowest MAPE at `horizon_min`.
    pub fn best(&self, horizon_min: u32) -> Option<&ModelScore> {
        self.models
            .iter()
            .filter(|m| m.horizon_min == horizon_min)
            .min_by(|a, b| a.mape.total_cmp(&b.mape))
    }

    /// The table `forecast-eval` prints.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<16} {:>7} {:>10} {:>10} {:>8} {:>8} {:>6} {:>5}\n",
            "model", "horizon", "MAE", "RMSE", "MAPE", "cover", "n", "fail"
        );
        for m in &self.models {
            s.push_str(&format!(
                "{:<16} {:>5}m {:>10.4} {:>10.4} {:>7.2}% {:>7.1}% {:>6} {:>5}\n",
                m.name,
                m.horizon_min,
                m.mae,
                m.rmse,
                m.mape * 100.0,
                m.coverage * 100.0,
                m.n,
                m.failures
            ));
        }
        s
    }
}

/// Run the rolling-origin evaluation on `series` (5-minute mean rates).
pub fn evaluate(
    series: &[f64],
    cfg: &EvalConfig,
    progress: Option<&ProgressBar>,
) -> Result<EvalReport, ForecastError> {
    let bucket_min = (BUCKET_SECS / 60) as u32;
    if cfg.horizons_min.is_empty()
        || cfg
            .horizons_min
            .iter()
            .any(|h| *h == 0 || h % bucket_min != 0)
    {
        return Err(ForecastError::Invalid(format!(
            "horizons must be positive multiples of {bucket_min} minutes, got {:?}",
            cfg.horizons_min
        )));
    }
    if cfg.interval_min == 0 || cfg.interval_min % bucket_min != 0 {
        return Err(ForecastError::Invalid(format!(
            "the refit interval must be a positive multiple of {bucket_min} minutes, got {}",
            cfg.interval_min
        )));
    }
    let steps: Vec<usize> = cfg
        .horizons_min
        .iter()
        .map(|h| (h / bucket_min) as usize)
        .collect();
    let max_steps = *steps.iter().max().expect("non-empty");
    let stride = (cfg.interval_min / bucket_min) as usize;
    let n = series.len();
    if n < cfg.warmup_buckets + max_steps {
        return Err(ForecastError::TooShort {
            model: "forecast-eval".into(),
            need: cfg.warmup_buckets + max_steps,
            got: n,
        });
    }
    let mut models = cfg
        .models
        .iter()
        .map(|m| make_model(m))
        .collect::<Result<Vec<_>, _>>()?;
    let origins: Vec<usize> = (cfg.warmup_buckets..=n - max_steps)
        .step_by(stride)
        .collect();
    let trace_h = if cfg.horizons_min.contains(&30) {
        30
    } else {
        cfg.horizons_min[0]
    };
    let trace_k = (trace_h / bucket_min) as usize;
    if let Some(p) = progress {
        p.set_length((origins.len() * models.len()) as u64);
    }
    // Each model runs its own rolling loop on its own thread (they share nothing).
    let results: Vec<ModelRun> = std::thread::scope(|scope| {
        let handles: Vec<_> = models
            .iter_mut()
            .map(|m| {
                let (origins, steps) = (&origins, &steps);
                scope.spawn(move || {
                    run_model(
                        m.as_mut(),
                        series,
                        origins,
                        steps,
                        max_steps,
                        trace_k,
                        progress,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a model thread panicked"))
            .collect()
    });
    let acc: Vec<Vec<Acc>> = results.iter().map(|r| r.acc.clone()).collect();
    let failures: Vec<usize> = results.iter().map(|r| r.failures).collect();
    let secs: Vec<f64> = results.iter().map(|r| r.secs).collect();
    let orders: Vec<OrderChoice> = results.iter().flat_map(|r| r.orders.clone()).collect();
    let traces: Vec<Vec<(usize, f64, f64, f64)>> = results.into_iter().map(|r| r.trace).collect();
    let mut rows = Vec::new();
    for (mi, m) in models.iter().enumerate() {
        for (si, hm) in cfg.horizons_min.iter().enumerate() {
            let a = acc[mi][si].accuracy();
            rows.push(ModelScore {
                name: m.name().to_string(),
                horizon_min: *hm,
                mae: a.mae,
                rmse: a.rmse,
                mape: a.mape,
                coverage: acc[mi][si].covered as f64 / acc[mi][si].n.max(1) as f64,
                n: a.n,
                failures: failures[mi],
            });
        }
    }
    Ok(EvalReport {
        models: rows,
        origins: origins.len(),
        buckets: n,
        fit_secs: models
            .iter()
            .zip(&secs)
            .map(|(m, s)| (m.name().to_string(), *s))
            .collect(),
        sarimax_orders: orders,
        traces: models
            .iter()
            .zip(traces)
            .map(|(m, t)| (m.name().to_string(), t))
            .collect(),
        trace_horizon_min: trace_h,
    })
}

struct ModelRun {
    acc: Vec<Acc>,
    failures: usize,
    secs: f64,
    orders: Vec<OrderChoice>,
    trace: Vec<(usize, f64, f64, f64)>,
}

fn run_model(
    m: &mut dyn crate::Forecaster,
    series: &[f64],
    origins: &[usize],
    steps: &[usize],
    max_steps: usize,
    trace_k: usize,
    progress: Option<&ProgressBar>,
) -> ModelRun {
    use crate::Forecaster;
    let mut run = ModelRun {
        acc: vec![Acc::default(); steps.len()],
        failures: 0,
        secs: 0.0,
        orders: Vec::new(),
        trace: Vec::new(),
    };
    let mut naive = crate::baseline::Naive;
    for &o in origins {
        let h = History::new(0, series[..o].to_vec());
        let t0 = Instant::now();
        let r = m.fit_forecast(&h, max_steps);
        run.secs += t0.elapsed().as_secs_f64();
        let f: Forecast = match r {
            Ok(f) => f,
            Err(e) => {
                run.failures += 1;
                tracing::debug!(model = m.name(), origin = o, error = %e, "fit failed; naive scored");
                naive
                    .fit_forecast(&h, max_steps)
                    .unwrap_or_else(|_| Forecast {
                        mean: vec![series[o - 1]; max_steps],
                        lower: vec![series[o - 1]; max_steps],
                        upper: vec![series[o - 1]; max_steps],
                        level: crate::INTERVAL_LEVEL,
                    })
            }
        };
        if m.name() == "sarimax" {
            let info = m.info();
            if let (Some(order), Some(aic)) = (info.order, info.aic) {
                if run.orders.last().is_none_or(|l| l.order != order) {
                    run.orders.push(OrderChoice {
                        origin_bucket: o,
                        order,
                        aic,
                    });
                }
            }
        }
        for (si, k) in steps.iter().enumerate() {
            run.acc[si].add(
                f.mean[k - 1],
                series[o + k - 1],
                Some((f.lower[k - 1], f.upper[k - 1])),
            );
        }
        run.trace.push((
            o + trace_k - 1,
            f.mean[trace_k - 1],
            f.lower[trace_k - 1],
            f.upper[trace_k - 1],
        ));
        if let Some(p) = progress {
            p.inc(1);
        }
    }
    run
}

/// The JSON `forecast-eval --json-out` writes: `{"models":[…], …}`.
pub fn report_json(r: &EvalReport) -> serde_json::Value {
    serde_json::to_value(r).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daily(days: usize) -> Vec<f64> {
        (0..days * BUCKETS_PER_DAY)
            .map(|t| {
                let tod = (t % BUCKETS_PER_DAY) as f64 / BUCKETS_PER_DAY as f64;
                10.0 + 5.0 * (2.0 * std::f64::consts::PI * tod).sin()
                    + ((t * 7919) % 11) as f64 / 11.0
            })
            .collect()
    }

    #[test]
    fn scores_every_model_and_horizon_without_training_on_scored_points() {
        let y = daily(3);
        let cfg = EvalConfig {
            models: vec!["naive".into(), "seasonal_naive".into(), "sarimax".into()],
            interval_min: 60,
            ..EvalConfig::default()
        };
        let r = evaluate(&y, &cfg, None).unwrap();
        assert_eq!(r.models.len(), 9);
        assert!(r.origins > 0);
        // A deterministic daily cycle: seasonal naive is near-exact, naive is not.
        let sn = r.score("seasonal_naive", 60).unwrap();
        let nv = r.score("naive", 60).unwrap();
        assert!(sn.mae < nv.mae, "{} vs {}", sn.mae, nv.mae);
        assert!(!r.sarimax_orders.is_empty());
        let json = report_json(&r);
        let row = &json["models"][0];
        for k in ["name", "horizon_min", "mae", "rmse", "mape"] {
            assert!(!row[k].is_null(), "{k}");
        }
    }

    #[test]
    fn rejects_bad_horizons_and_short_series() {
        let y = daily(3);
        let cfg = EvalConfig {
            horizons_min: vec![7],
            ..EvalConfig::default()
        };
        assert!(evaluate(&y, &cfg, None).is_err());
        assert!(matches!(
            evaluate(&y[..100], &EvalConfig::default(), None),
            Err(ForecastError::TooShort { .. })
        ));
    }

    #[test]
    fn accuracy_skips_zero_actuals_in_mape() {
        let a = Accuracy::of(&[1.0, 2.0], &[0.0, 4.0]);
        assert!((a.mape - 0.5).abs() < 1e-12);
        assert!((a.mae - 1.5).abs() < 1e-12);
    }
}
