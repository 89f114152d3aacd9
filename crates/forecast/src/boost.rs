//! The lag-feature gradient-boosting regressor (`lag_xgboost`): XGBoost (`reg:squarederror`,
//! through the `xgb` binding crates/models uses) on lags, rolling means and hour of day.
//!
//! Direct strategy: one booster per anchor step in [`ANCHOR_STEPS`] (5, 15, 30 and 60 minutes
//! ahead), each predicting the change `y[t+k] − y[t]` from the features at `t`:
//!
//! * `lag1…lag6`: the last six buckets; `mean3`, `mean12`, `mean36`: rolling means;
//!   `sd12`: rolling standard deviation;
//! * `day_ago`: the target bucket one day earlier; `tod_sin`, `tod_cos`: its time of day.
//!
//! Steps between anchors are interpolated linearly (from the last value at step 0); steps
//! beyond the last anchor hold its forecast. The interval is normal with the in-sample residual
//! standard deviation of each anchor's booster (in-sample, so optimistic: `forecast-eval`
//! reports its coverage).

use xgb::{parameters::BoosterParameters, Booster, DMatrix};

use crate::{Forecast, ForecastError, Forecaster, History, BUCKETS_PER_DAY, INTERVAL_LEVEL};

/// The steps (5-minute buckets ahead) a booster is trained for.
pub const ANCHOR_STEPS: [usize; 4] = [1, 3, 6, 12];
/// Points fitted on at most (7 days).
pub const BOOST_MAX_HISTORY: usize = 7 * BUCKETS_PER_DAY;
/// The fewest points: one day for `day_ago` plus one day of training rows.
pub const BOOST_MIN_POINTS: usize = 2 * BUCKETS_PER_DAY;
/// Boosting rounds.
pub const BOOST_ROUNDS: usize = 40;
/// Tree depth.
pub const BOOST_MAX_DEPTH: u32 = 4;
/// Learning rate.
pub const BOOST_ETA: f64 = 0.1;
const FEATURES: usize = 13;

/// The features at origin `t` (history `y[..t]`) for the target `t − 1 + k`.
fn features(y: &[f64], start: usize, t: usize, k: usize) -> [f32; FEATURES] {
    let last = |n: usize| &y[t - n..t];
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let m12 = mean(last(12));
    let sd12 = (last(12).iter().map(|v| (v - m12).powi(2)).sum::<f64>() / 12.0).sqrt();
    let target = t - 1 + k;
    let ang = 2.0 * std::f64::consts::PI * ((start + target) % BUCKETS_PER_DAY) as f64
        / BUCKETS_PER_DAY as f64;
    let f = [
        y[t - 1],
        y[t - 2],
        y[t - 3],
        y[t - 4],
        y[t - 5],
        y[t - 6],
        mean(last(3)),
        m12,
        mean(last(36)),
        sd12,
        y[target - BUCKETS_PER_DAY],
        ang.sin(),
        ang.cos(),
    ];
    f.map(|v| v as f32)
}

fn xgb_err(e: xgb::XGBError) -> ForecastError {
    ForecastError::Fit {
        model: "lag_xgboost".into(),
        reason: e.to_string(),
    }
}

/// The `lag_xgboost` forecaster.
#[derive(Debug, Clone)]
pub struct LagBoost {
    /// Points fitted on at most.
    pub max_history: usize,
    /// Boosting rounds.
    pub rounds: usize,
}

impl Default for LagBoost {
    fn default() -> Self {
        LagBoost {
            max_history: BOOST_MAX_HISTORY,
            rounds: BOOST_ROUNDS,
        }
    }
}

impl LagBoost {
    /// Train one anchor's booster on `y` and predict its change from the end; also the
    /// in-sample residual standard deviation.
    fn anchor(&self, y: &[f64], start: usize, k: usize) -> Result<(f64, f64), ForecastError> {
        let n = y.len();
        let first = (BUCKETS_PER_DAY + 1).saturating_sub(k).max(36);
        let mut flat = Vec::new();
        let mut labels = Vec::new();
        for t in first..=n - k {
            flat.extend_from_slice(&features(y, start, t, k));
            labels.push((y[t - 1 + k] - y[t - 1]) as f32);
        }
        let rows = labels.len();
        let mut dtrain = DMatrix::from_dense(&flat, rows).map_err(xgb_err)?;
        dtrain.set_labels(&labels).map_err(xgb_err)?;
        let mut booster = Booster::new_with_cached_dmats(&BoosterParameters::default(), &[&dtrain])
            .map_err(xgb_err)?;
        for (key, v) in [
            ("objective", "reg:squarederror".to_string()),
            ("tree_method", "hist".into()),
            ("max_depth", BOOST_MAX_DEPTH.to_string()),
            ("eta", BOOST_ETA.to_string()),
            ("seed", "7".into()),
            // One thread: deterministic, and the machine's cores are shared.
            ("nthread", "1".into()),
            ("verbosity", "0".into()),
        ] {
            booster.set_param(key, &v).map_err(xgb_err)?;
        }
        for round in 0..self.rounds {
            booster.update(&dtrain, round as i32).map_err(xgb_err)?;
        }
        let fitted = booster.predict(&dtrain).map_err(xgb_err)?;
        let sd = (fitted
            .iter()
            .zip(&labels)
            .map(|(p, l)| f64::from(p - l).powi(2))
            .sum::<f64>()
            / rows as f64)
            .sqrt();
        let x = features(y, start, n, k);
        let dx = DMatrix::from_dense(&x, 1).map_err(xgb_err)?;
        let p = booster.predict(&dx).map_err(xgb_err)?;
        Ok((f64::from(p[0]), sd))
    }
}

impl Forecaster for LagBoost {
    fn name(&self) -> &'static str {
        "lag_xgboost"
    }

    fn min_history(&self) -> usize {
        BOOST_MIN_POINTS
    }

    fn fit_forecast(&mut self, history: &History, steps: usize) -> Result<Forecast, ForecastError> {
        let h = history.tail(self.max_history);
        h.validate(self.name(), self.min_history())?;
        let last = *h.values.last().expect("validated");
        let mut pts = vec![(0usize, last, 0.0)];
        for k in ANCHOR_STEPS {
            let (delta, sd) = self.anchor(&h.values, h.start, k)?;
            pts.push((k, last + delta, sd));
        }
        let mut mean = Vec::with_capacity(steps);
        let mut sd = Vec::with_capacity(steps);
        for s in 1..=steps {
            let (m, d) = match pts.windows(2).find(|w| s <= w[1].0) {
                Some(w) => {
                    let f = (s - w[0].0) as f64 / (w[1].0 - w[0].0) as f64;
                    (
                        w[0].1 + f * (w[1].1 - w[0].1),
                        w[0].2 + f * (w[1].2 - w[0].2),
                    )
                }
                None => {
                    let l = pts[pts.len() - 1];
                    (l.1, l.2)
                }
            };
            mean.push(m);
            sd.push(d);
        }
        Ok(Forecast::from_mean_sd(mean, &sd, INTERVAL_LEVEL))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_daily_ramp() {
        let y: Vec<f64> = (0..3 * BUCKETS_PER_DAY)
            .map(|t| 10.0 + ((t % BUCKETS_PER_DAY) as f64 / 24.0).floor())
            .collect();
        let n = y.len();
        // Cut mid-day so the next hour rises.
        let h = History::new(0, y[..n - 150].to_vec());
        let truth = &y[n - 150..n - 138];
        let f = LagBoost::default().fit_forecast(&h, 12).unwrap();
        assert_eq!(f.mean.len(), 12);
        let mae: f64 = f
            .mean
            .iter()
            .zip(truth)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / 12.0;
        assert!(mae < 0.5, "mae {mae}");
    }
}
