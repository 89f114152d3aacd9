//! The seasonal model: MSTL (multiple seasonal-trend decomposition by LOESS) with an AutoETS
//! model of the trend, from the `augurs` crates. Periods: daily (288 buckets) always, weekly
//! (2016) when the history holds two weeks. The forecast adds each season's last cycle to the
//! ETS forecast of the trend; the interval is AutoETS's.

use augurs_core::{Fit, Predict};
use augurs_ets::AutoETS;
use augurs_mstl::MSTLModel;

use crate::{
    Forecast, ForecastError, Forecaster, History, BUCKETS_PER_DAY, BUCKETS_PER_WEEK, INTERVAL_LEVEL,
};

/// At most this many points (two weeks) are fitted on.
pub const MSTL_MAX_HISTORY: usize = 2 * BUCKETS_PER_WEEK;
/// The fewest points: two daily cycles.
pub const MSTL_MIN_POINTS: usize = 2 * BUCKETS_PER_DAY;

/// The `mstl` forecaster.
#[derive(Debug, Clone)]
pub struct Mstl {
    /// Points fitted on at most.
    pub max_history: usize,
}

impl Default for Mstl {
    fn default() -> Self {
        Mstl {
            max_history: MSTL_MAX_HISTORY,
        }
    }
}

impl Forecaster for Mstl {
    fn name(&self) -> &'static str {
        "mstl"
    }

    fn min_history(&self) -> usize {
        MSTL_MIN_POINTS
    }

    fn fit_forecast(&mut self, history: &History, steps: usize) -> Result<Forecast, ForecastError> {
        let h = history.tail(self.max_history);
        h.validate(self.name(), self.min_history())?;
        let mut periods = vec![BUCKETS_PER_DAY];
        if h.len() >= 2 * BUCKETS_PER_WEEK {
            periods.push(BUCKETS_PER_WEEK);
        }
        let err = |e: &dyn std::fmt::Display| ForecastError::Fit {
            model: "mstl".into(),
            reason: e.to_string(),
        };
        let model = MSTLModel::new(periods, AutoETS::non_seasonal().into_trend_model());
        let fitted = model.fit(&h.values).map_err(|e| err(&e))?;
        let f = fitted.predict(steps, INTERVAL_LEVEL).map_err(|e| err(&e))?;
        let (lower, upper) = match f.intervals {
            Some(iv) => (iv.lower, iv.upper),
            None => (f.point.clone(), f.point.clone()),
        };
        if f.point.len() != steps || f.point.iter().any(|v| !v.is_finite()) {
            return Err(err(&"the forecast is not finite"));
        }
        Ok(Forecast {
            mean: f.point.iter().map(|v| v.max(0.0)).collect(),
            lower: lower.iter().map(|v| v.max(0.0)).collect(),
            upper: upper.iter().map(|v| v.max(0.0)).collect(),
            level: INTERVAL_LEVEL,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mstl_follows_a_daily_cycle() {
        let y: Vec<f64> = (0..3 * BUCKETS_PER_DAY)
            .map(|t| {
                20.0 + 8.0 * (2.0 * std::f64::consts::PI * t as f64 / 288.0).sin()
                    + ((t * 7919) % 13) as f64 / 13.0
            })
            .collect();
        let f = Mstl::default()
            .fit_forecast(&History::new(0, y), 72)
            .unwrap();
        assert!((f.mean[71] - 28.5).abs() < 2.0, "{}", f.mean[71]);
        assert!(f.lower[0] <= f.mean[0] && f.mean[0] <= f.upper[0]);
    }

    #[test]
    fn mstl_needs_two_days() {
        let y: Vec<f64> = (0..100).map(|t| t as f64).collect();
        assert!(matches!(
            Mstl::default().fit_forecast(&History::new(0, y), 3),
            Err(ForecastError::TooShort { need: 576, .. })
        ));
    }
}
