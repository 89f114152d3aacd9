//! # Demand forecasting per service
//!
//! Forecasts a service's request rate (and, for the per-client CPU forest, its CPU) for the next
//! minutes, with prediction intervals, from the history the aggregator sees.
//!
//! Every model works on **5-minute aggregates** ([`BUCKET_SECS`]): the mean request rate in
//! requests/s over each 5-minute bucket, bucket `i` covering `[i·300, (i+1)·300)` s of the
//! trace ([`aggregate`]). Bucket indices are absolute (counted from the trace start), so a model
//! knows the time of day of every value (`index % 288`).
//!
//! Models ([`Forecaster`]), by their names in reports:
//!
//! * `naive`: the last value.
//! * `seasonal_naive`: the same bucket one day earlier (the same minutes one day earlier).
//! * `mstl`: MSTL decomposition (daily 288 and, with ≥ 2 weeks of history, weekly 2016) with an
//!   AutoETS trend, from the `augurs` crates ([`seasonal::Mstl`]).
//! * `sarimax`: SARIMAX fitted by exact maximum likelihood (Kalman filter), its order chosen by
//!   minimum AIC among [`sarimax::CANDIDATE_ORDERS`] once a day, daily seasonality through
//!   Fourier terms when the data shows it ([`sarimax::Sarimax`]).
//! * `lag_xgboost`: XGBoost on lags, rolling means and hour of day ([`boost::LagBoost`]).
//!
//! [`cpu_forest`] holds TrafficShaprX's per-client CPU random forest and [`eval`] the
//! rolling-origin evaluation behind `autoscaler forecast-eval`.
#![deny(missing_docs)]

pub mod baseline;
pub mod boost;
pub mod cpu_forest;
pub mod eval;
pub mod plot;
pub mod sarimax;
pub mod seasonal;

use serde::{Deserialize, Serialize};

use autoscaler_simulator::Trace;

/// Seconds per aggregate bucket (5 minutes).
pub const BUCKET_SECS: u64 = 300;
/// Buckets per day (the daily season).
pub const BUCKETS_PER_DAY: usize = 288;
/// Buckets per week (the weekly season).
pub const BUCKETS_PER_WEEK: usize = 7 * BUCKETS_PER_DAY;
/// Minutes between refits of every model (the spec's 5–10 minutes).
pub const FORECAST_INTERVAL_MIN: u32 = 10;
/// The horizons (minutes) `forecast-eval` scores by default.
pub const DEFAULT_HORIZONS_MIN: [u32; 3] = [15, 30, 60];
/// Level of the prediction intervals.
pub const INTERVAL_LEVEL: f64 = 0.95;

/// Why a forecast could not be made. Each is a final error for this history: the caller keeps
/// its conservative default (hold) instead.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ForecastError {
    /// Fewer points than the model needs.
    #[error(
        "{model}: the history has {got} points (5-minute buckets), the model needs at least {need}"
    )]
    TooShort {
        /// The model.
        model: String,
        /// Points needed.
        need: usize,
        /// Points given.
        got: usize,
    },
    /// Every value is missing (NaN).
    #[error("the history is all missing ({len} points, all NaN)")]
    AllMissing {
        /// Length of the history.
        len: usize,
    },
    /// A value is NaN or infinite.
    #[error("the history has a missing or non-finite value at point {index} ({value})")]
    NotFinite {
        /// Index into the history.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A value is negative (a rate never is).
    #[error("the history has a negative value at point {index} ({value})")]
    Negative {
        /// Index into the history.
        index: usize,
        /// The value.
        value: f64,
    },
    /// Every value is the same: nothing to fit.
    #[error("{model}: the history is constant ({value}); nothing to fit")]
    Constant {
        /// The model.
        model: String,
        /// The value.
        value: f64,
    },
    /// An exogenous column does not have one value per point.
    #[error("exogenous variable `{name}` has {got} values, the history has {want}")]
    ExogLength {
        /// The variable.
        name: String,
        /// Values given.
        got: usize,
        /// Values expected.
        want: usize,
    },
    /// A model's fit failed (optimiser or library error).
    #[error("{model}: fit failed: {reason}")]
    Fit {
        /// The model.
        model: String,
        /// Why.
        reason: String,
    },
    /// Bad arguments (a horizon of 0 steps, an unknown model name...).
    #[error("invalid forecast request: {0}")]
    Invalid(String),
}

/// An exogenous input: one value per history point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exog {
    /// Its name (for example `p95_latency_ms`).
    pub name: String,
    /// One value per history point.
    pub values: Vec<f64>,
}

/// The history a model fits on: 5-minute aggregates, the first at absolute bucket `start`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    /// Absolute bucket index of `values[0]` (bucket 0 starts at the trace's offset 0).
    pub start: usize,
    /// Mean request rate (requests/s) per bucket.
    pub values: Vec<f64>,
    /// Exogenous inputs, one value per bucket each (used by SARIMAX only).
    pub exog: Vec<Exog>,
}

impl History {
    /// A history without exogenous inputs.
    pub fn new(start: usize, values: Vec<f64>) -> Self {
        History {
            start,
            values,
            exog: Vec::new(),
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether it has no points.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Absolute bucket index one past the last point (the first forecast bucket).
    pub fn end(&self) -> usize {
        self.start + self.values.len()
    }

    /// The last `n` points (all if fewer), exogenous inputs cut alike.
    pub fn tail(&self, n: usize) -> History {
        let skip = self.values.len().saturating_sub(n);
        History {
            start: self.start + skip,
            values: self.values[skip..].to_vec(),
            exog: self
                .exog
                .iter()
                .map(|e| Exog {
                    name: e.name.clone(),
                    values: e.values[skip.min(e.values.len())..].to_vec(),
                })
                .collect(),
        }
    }

    /// Check the history for a model that needs `need` points: every value finite and ≥ 0, not
    /// all missing, at least `need` points, not constant, exogenous columns of the same length.
    pub fn validate(&self, model: &str, need: usize) -> Result<(), ForecastError> {
        let len = self.values.len();
        if len > 0 && self.values.iter().all(|v| v.is_nan()) {
            return Err(ForecastError::AllMissing { len });
        }
        if let Some((index, value)) = self.values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ForecastError::NotFinite {
                index,
                value: *value,
            });
        }
        if let Some((index, value)) = self.values.iter().enumerate().find(|(_, v)| **v < 0.0) {
            return Err(ForecastError::Negative {
                index,
                value: *value,
            });
        }
        if len < need {
            return Err(ForecastError::TooShort {
                model: model.to_string(),
                need,
                got: len,
            });
        }
        let first = self.values[0];
        if self.values.iter().all(|v| *v == first) {
            return Err(ForecastError::Constant {
                model: model.to_string(),
                value: first,
            });
        }
        for e in &self.exog {
            if e.values.len() != len {
                return Err(ForecastError::ExogLength {
                    name: e.name.clone(),
                    got: e.values.len(),
                    want: len,
                });
            }
            if let Some((index, value)) = e.values.iter().enumerate().find(|(_, v)| !v.is_finite())
            {
                return Err(ForecastError::NotFinite {
                    index,
                    value: *value,
                });
            }
        }
        Ok(())
    }
}

/// A forecast of the `mean.len()` buckets after the history, with an interval at `level`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// Point forecast per bucket (requests/s, ≥ 0).
    pub mean: Vec<f64>,
    /// Lower bound of the interval per bucket (≥ 0).
    pub lower: Vec<f64>,
    /// Upper bound of the interval per bucket.
    pub upper: Vec<f64>,
    /// Interval level (for example 0.95).
    pub level: f64,
}

impl Forecast {
    /// A forecast from a mean and a standard deviation per step (normal interval), clamped at 0.
    pub fn from_mean_sd(mean: Vec<f64>, sd: &[f64], level: f64) -> Self {
        let z = normal_quantile(0.5 + level / 2.0);
        let lower = mean
            .iter()
            .zip(sd)
            .map(|(m, s)| (m - z * s).max(0.0))
            .collect();
        let upper = mean
            .iter()
            .zip(sd)
            .map(|(m, s)| (m + z * s).max(0.0))
            .collect();
        Forecast {
            mean: mean.into_iter().map(|m| m.max(0.0)).collect(),
            lower,
            upper,
            level,
        }
    }

    /// The highest point forecast (the "ceiling").
    pub fn ceiling(&self) -> f64 {
        self.mean.iter().copied().fold(0.0, f64::max)
    }
}

/// What a fitted model reports about itself (SARIMAX: order and AIC).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model's name.
    pub model: String,
    /// The chosen order, e.g. `(1,1,1)+daily_fourier(3)`, when the model has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// AIC of the last fit, when the model has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aic: Option<f64>,
}

/// A forecasting model, refitted on every call (the caller decides how often).
pub trait Forecaster: Send {
    /// Its name in reports (`naive`, `seasonal_naive`, `mstl`, `sarimax`, `lag_xgboost`).
    fn name(&self) -> &'static str;
    /// The fewest history points (5-minute buckets) it can fit on.
    fn min_history(&self) -> usize;
    /// Fit on `history` and forecast the next `steps` buckets.
    fn fit_forecast(&mut self, history: &History, steps: usize) -> Result<Forecast, ForecastError>;
    /// What the last fit chose (order, AIC).
    fn info(&self) -> ModelInfo {
        ModelInfo {
            model: self.name().to_string(),
            ..ModelInfo::default()
        }
    }
}

/// The names [`make_model`] knows, in report order.
pub const MODEL_NAMES: [&str; 5] = ["naive", "seasonal_naive", "mstl", "sarimax", "lag_xgboost"];

/// A model by its report name.
pub fn make_model(name: &str) -> Result<Box<dyn Forecaster>, ForecastError> {
    Ok(match name {
        "naive" => Box::new(baseline::Naive),
        "seasonal_naive" => Box::new(baseline::SeasonalNaive),
        "mstl" => Box::new(seasonal::Mstl::default()),
        "sarimax" => Box::new(sarimax::Sarimax::default()),
        "lag_xgboost" => Box::new(boost::LagBoost::default()),
        other => {
            return Err(ForecastError::Invalid(format!(
                "unknown model `{other}` (known: {})",
                MODEL_NAMES.join(", ")
            )))
        }
    })
}

/// Mean request rate (requests/s) per 5-minute bucket of `trace`, times `scale`. A final partial
/// bucket is dropped. Needs a step that divides 300 s.
pub fn aggregate(trace: &Trace, scale: f64) -> Result<Vec<f64>, ForecastError> {
    let step = trace.step_secs();
    let per = (BUCKET_SECS as f64 / step).round();
    if per < 1.0 || (per * step - BUCKET_SECS as f64).abs() > 1e-9 {
        return Err(ForecastError::Invalid(format!(
            "the trace's step of {step} s does not divide {BUCKET_SECS} s"
        )));
    }
    let per = per as usize;
    Ok(trace
        .requests()
        .chunks_exact(per)
        .map(|c| c.iter().sum::<f64>() / BUCKET_SECS as f64 * scale)
        .collect())
}

/// The standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let lo = 0.02425;
    if p < lo {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - lo {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

/// Standard deviation of `y[t+h] − y[t]` over the history (the spread of an h-step change).
pub(crate) fn change_sd(values: &[f64], h: usize) -> f64 {
    if values.len() <= h + 1 {
        return 0.0;
    }
    let d: Vec<f64> = values.windows(h + 1).map(|w| w[h] - w[0]).collect();
    let m = d.iter().sum::<f64>() / d.len() as f64;
    (d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / d.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_each_bad_input() {
        let h = History::new(0, vec![]);
        assert!(matches!(
            h.validate("m", 3),
            Err(ForecastError::TooShort {
                need: 3,
                got: 0,
                ..
            })
        ));
        let h = History::new(0, vec![f64::NAN; 4]);
        assert_eq!(
            h.validate("m", 3),
            Err(ForecastError::AllMissing { len: 4 })
        );
        let h = History::new(0, vec![1.0, f64::NAN, 2.0, 3.0]);
        assert!(matches!(
            h.validate("m", 3),
            Err(ForecastError::NotFinite { index: 1, .. })
        ));
        let h = History::new(0, vec![2.0; 10]);
        assert!(matches!(
            h.validate("m", 3),
            Err(ForecastError::Constant { .. })
        ));
        let h = History::new(0, vec![1.0, -2.0, 3.0]);
        assert!(matches!(
            h.validate("m", 3),
            Err(ForecastError::Negative { index: 1, .. })
        ));
        let mut h = History::new(0, vec![1.0, 2.0, 3.0]);
        assert_eq!(h.validate("m", 3), Ok(()));
        h.exog.push(Exog {
            name: "x".into(),
            values: vec![1.0],
        });
        assert!(matches!(
            h.validate("m", 3),
            Err(ForecastError::ExogLength {
                got: 1,
                want: 3,
                ..
            })
        ));
    }

    #[test]
    fn normal_quantile_matches_known_values() {
        assert!((normal_quantile(0.975) - 1.959_963_985).abs() < 1e-6);
        assert!((normal_quantile(0.5)).abs() < 1e-9);
        assert!((normal_quantile(0.05) + 1.644_853_627).abs() < 1e-6);
    }

    #[test]
    fn aggregate_averages_buckets_into_rates() {
        let t = Trace::from_requests(60.0, vec![60.0; 11]).unwrap();
        let a = aggregate(&t, 2.0).unwrap();
        assert_eq!(a.len(), 2);
        assert!((a[0] - 2.0).abs() < 1e-12);
    }

    #[test]
    fn unknown_model_is_an_error() {
        assert!(make_model("prophet").is_err());
        for n in MODEL_NAMES {
            assert_eq!(make_model(n).unwrap().name(), n);
        }
    }
}
