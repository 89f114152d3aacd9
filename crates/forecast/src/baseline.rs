//! The two baselines: `naive` (the last value) and `seasonal_naive` (the same bucket one day
//! earlier). Their intervals come from the spread of the history's own h-step (or one-day)
//! changes.

use crate::{
    change_sd, Forecast, ForecastError, Forecaster, History, BUCKETS_PER_DAY, INTERVAL_LEVEL,
};

/// Points the naive model needs (two, to measure a change).
pub const NAIVE_MIN_POINTS: usize = 2;

/// The last value, held.
#[derive(Debug, Clone, Copy, Default)]
pub struct Naive;

impl Forecaster for Naive {
    fn name(&self) -> &'static str {
        "naive"
    }

    fn min_history(&self) -> usize {
        NAIVE_MIN_POINTS
    }

    fn fit_forecast(&mut self, h: &History, steps: usize) -> Result<Forecast, ForecastError> {
        h.validate(self.name(), self.min_history())?;
        let last = *h.values.last().expect("validated non-empty");
        let window = &h.values[h.len().saturating_sub(BUCKETS_PER_DAY * 7)..];
        let sd: Vec<f64> = (1..=steps).map(|k| change_sd(window, k)).collect();
        Ok(Forecast::from_mean_sd(
            vec![last; steps],
            &sd,
            INTERVAL_LEVEL,
        ))
    }
}

/// The same bucket one day earlier (needs one day of history; steps ≤ one day).
#[derive(Debug, Clone, Copy, Default)]
pub struct SeasonalNaive;

impl Forecaster for SeasonalNaive {
    fn name(&self) -> &'static str {
        "seasonal_naive"
    }

    fn min_history(&self) -> usize {
        BUCKETS_PER_DAY
    }

    fn fit_forecast(&mut self, h: &History, steps: usize) -> Result<Forecast, ForecastError> {
        h.validate(self.name(), self.min_history())?;
        if steps > BUCKETS_PER_DAY {
            return Err(ForecastError::Invalid(format!(
                "seasonal_naive forecasts at most {BUCKETS_PER_DAY} steps (one day), asked {steps}"
            )));
        }
        let n = h.len();
        let mean: Vec<f64> = (0..steps)
            .map(|k| h.values[n - BUCKETS_PER_DAY + k])
            .collect();
        let window = &h.values[n.saturating_sub(BUCKETS_PER_DAY * 7)..];
        let sd = change_sd(window, BUCKETS_PER_DAY);
        Ok(Forecast::from_mean_sd(
            mean,
            &vec![sd; steps],
            INTERVAL_LEVEL,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_holds_the_last_value() {
        let h = History::new(0, vec![1.0, 2.0, 3.0, 5.0]);
        let f = Naive.fit_forecast(&h, 3).unwrap();
        assert_eq!(f.mean, vec![5.0; 3]);
        assert!(f.upper.iter().zip(&f.mean).all(|(u, m)| u >= m));
    }

    #[test]
    fn seasonal_naive_repeats_yesterday() {
        let values: Vec<f64> = (0..2 * BUCKETS_PER_DAY)
            .map(|i| (i % BUCKETS_PER_DAY) as f64)
            .collect();
        let h = History::new(0, values);
        let f = SeasonalNaive.fit_forecast(&h, 4).unwrap();
        assert_eq!(f.mean, vec![0.0, 1.0, 2.0, 3.0]);
        let short = History::new(0, vec![1.0, 2.0]);
        assert!(matches!(
            SeasonalNaive.fit_forecast(&short, 1),
            Err(ForecastError::TooShort { need: 288, .. })
        ));
    }
}
