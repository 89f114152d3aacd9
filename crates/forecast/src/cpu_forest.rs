//! TrafficShaprX's per-client CPU forecaster: a random forest (smartcore) predicting the next
//! CPU sample from the last five samples, their rolling statistics and their deltas; one model
//! per service ("client"); no prediction before [`CPU_MIN_POINTS`] samples. It feeds the
//! `triggers` policy's ML trigger ([`CpuForecasters::predict`] is `None` until then).
//!
//! Features of a window of the last [`CPU_LAGS`] samples `x1 (newest) … x5`:
//! `x1…x5`, mean, standard deviation, min, max, and the deltas `x1−x2 … x4−x5` (13 in all).

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;

use crate::eval::Accuracy;
use crate::ForecastError;

/// Lags the features are built from.
pub const CPU_LAGS: usize = 5;
/// Samples needed before a prediction (five lags plus one target to train on).
pub const CPU_MIN_POINTS: usize = CPU_LAGS + 1;
/// Trees in the forest.
pub const CPU_TREES: usize = 50;
/// Depth of each tree.
pub const CPU_MAX_DEPTH: u16 = 8;
/// A client's forest is refitted after this many new samples.
pub const CPU_REFIT_EVERY: usize = 12;
/// Samples kept per client (one day at 5-minute samples).
pub const CPU_MAX_HISTORY: usize = 288;

type Forest = RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>;

/// The 13 features of the window ending at `y[t − 1]` (needs `t ≥ 5`).
pub fn cpu_features(y: &[f64], t: usize) -> Vec<f64> {
    let w: Vec<f64> = (1..=CPU_LAGS).map(|i| y[t - i]).collect();
    let mean = w.iter().sum::<f64>() / CPU_LAGS as f64;
    let sd = (w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / CPU_LAGS as f64).sqrt();
    let min = w.iter().copied().fold(f64::INFINITY, f64::min);
    let max = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut f = w.clone();
    f.extend([mean, sd, min, max]);
    f.extend(w.windows(2).map(|p| p[0] - p[1]));
    f
}

fn sc(e: smartcore::error::Failed) -> ForecastError {
    ForecastError::Fit {
        model: "cpu_forest".into(),
        reason: e.to_string(),
    }
}

/// A fitted forest for one client.
pub struct CpuForest {
    forest: Forest,
}

impl std::fmt::Debug for CpuForest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CpuForest")
    }
}

impl CpuForest {
    /// Fit on a client's samples (≥ [`CPU_MIN_POINTS`], finite).
    pub fn fit(y: &[f64], seed: u64) -> Result<Self, ForecastError> {
        if y.len() < CPU_MIN_POINTS {
            return Err(ForecastError::TooShort {
                model: "cpu_forest".into(),
                need: CPU_MIN_POINTS,
                got: y.len(),
            });
        }
        if let Some((index, value)) = y.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ForecastError::NotFinite {
                index,
                value: *value,
            });
        }
        let rows: Vec<Vec<f64>> = (CPU_LAGS..y.len()).map(|t| cpu_features(y, t)).collect();
        let target: Vec<f64> = y[CPU_LAGS..].to_vec();
        let x = DenseMatrix::from_2d_vec(&rows).map_err(sc)?;
        let params = RandomForestRegressorParameters::default()
            .with_n_trees(CPU_TREES)
            .with_max_depth(CPU_MAX_DEPTH)
            .with_seed(seed);
        Ok(CpuForest {
            forest: Forest::fit(&x, &target, params).map_err(sc)?,
        })
    }

    /// The next sample after `y` (needs ≥ [`CPU_LAGS`] samples).
    pub fn predict_next(&self, y: &[f64]) -> Result<f64, ForecastError> {
        if y.len() < CPU_LAGS {
            return Err(ForecastError::TooShort {
                model: "cpu_forest".into(),
                need: CPU_LAGS,
                got: y.len(),
            });
        }
        let x = DenseMatrix::from_2d_vec(&vec![cpu_features(y, y.len())]).map_err(sc)?;
        Ok(self.forest.predict(&x).map_err(sc)?[0])
    }
}

/// One forest per client, refitted every [`CPU_REFIT_EVERY`] samples.
#[derive(Debug, Default)]
pub struct CpuForecasters {
    clients: HashMap<String, Client>,
}

#[derive(Debug, Default)]
struct Client {
    samples: Vec<f64>,
    since_fit: usize,
    forest: Option<CpuForest>,
}

impl CpuForecasters {
    /// Record a client's CPU sample. A non-finite sample is refused (never read as 0).
    pub fn observe(&mut self, client: &str, cpu: f64) -> Result<(), ForecastError> {
        if !cpu.is_finite() {
            return Err(ForecastError::NotFinite {
                index: 0,
                value: cpu,
            });
        }
        let c = self.clients.entry(client.to_string()).or_default();
        c.samples.push(cpu);
        if c.samples.len() > CPU_MAX_HISTORY {
            c.samples.remove(0);
        }
        c.since_fit += 1;
        Ok(())
    }

    /// The client's next CPU sample, `None` until it has [`CPU_MIN_POINTS`] samples.
    pub fn predict(&mut self, client: &str) -> Result<Option<f64>, ForecastError> {
        let Some(c) = self.clients.get_mut(client) else {
            return Ok(None);
        };
        if c.samples.len() < CPU_MIN_POINTS {
            return Ok(None);
        }
        if c.forest.is_none() || c.since_fit >= CPU_REFIT_EVERY {
            c.forest = Some(CpuForest::fit(&c.samples, 7)?);
            c.since_fit = 0;
        }
        let f = c.forest.as_ref().expect("just fitted");
        f.predict_next(&c.samples).map(Some)
    }
}

/// What `forecast-eval --cpu-csv` finds in a node-CPU CSV (TrafficShaprX's data set).
#[derive(Debug, Clone, Serialize)]
pub struct CpuReport {
    /// Data rows.
    pub rows: usize,
    /// Rows whose timestamp is exactly 300 s after the previous one.
    pub regular_steps: usize,
    /// Rows where `cpu_used_percent + cpu_idle_percent` is 100 (±0.011).
    pub used_plus_idle_is_100: usize,
    /// Whether `mem_total_mb` is the same on every row.
    pub mem_total_constant: bool,
    /// Rows with CPU exactly 0.
    pub cpu_zero_rows: usize,
    /// Autocorrelation of CPU at lag 1 (5 min).
    pub acf_lag1: f64,
    /// Autocorrelation of CPU at lag 288 (one day).
    pub acf_lag_day: f64,
    /// Correlation of CPU and `live_connections`.
    pub corr_connections: f64,
    /// Rows trained on (the first 70 %, time-ordered).
    pub train_rows: usize,
    /// One-step-ahead accuracy of the forest on the last 30 %.
    pub forest: Accuracy,
    /// The same for the last value.
    pub naive: Accuracy,
}

fn corr(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Analyse and evaluate a node-CPU CSV with TrafficShaprX's header
/// (`timestamp,cpu_used_percent,cpu_idle_percent,mem_total_mb,…,live_connections`).
pub fn evaluate_cpu_csv(path: &Path) -> Result<CpuReport, ForecastError> {
    let bad = |r: String| ForecastError::Invalid(format!("{}: {r}", path.display()));
    let mut rdr = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
    let headers = rdr.headers().map_err(|e| bad(e.to_string()))?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| bad(format!("no column `{name}`")))
    };
    let (ts_i, cpu_i, idle_i, mem_i, conn_i) = (
        col("timestamp")?,
        col("cpu_used_percent")?,
        col("cpu_idle_percent")?,
        col("mem_total_mb")?,
        col("live_connections")?,
    );
    let (mut ts, mut cpu, mut idle, mut mem, mut conn) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        let num = |j: usize| -> Result<f64, ForecastError> {
            rec.get(j)
                .and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad(format!("line {}: column {j} is not a finite number", i + 2)))
        };
        let t = chrono::NaiveDateTime::parse_from_str(
            rec.get(ts_i).unwrap_or(""),
            "%Y-%m-%d %H:%M:%S%.f",
        )
        .map_err(|e| bad(format!("line {}: timestamp: {e}", i + 2)))?;
        ts.push(t);
        cpu.push(num(cpu_i)?);
        idle.push(num(idle_i)?);
        mem.push(num(mem_i)?);
        conn.push(num(conn_i)?);
    }
    let rows = cpu.len();
    if rows < 2 * CPU_MIN_POINTS {
        return Err(ForecastError::TooShort {
            model: "cpu_forest".into(),
            need: 2 * CPU_MIN_POINTS,
            got: rows,
        });
    }
    let regular_steps = ts
        .windows(2)
        .filter(|w| (w[1] - w[0]).num_milliseconds() == 300_000)
        .count();
    let train_rows = rows * 7 / 10;
    let forest = CpuForest::fit(&cpu[..train_rows], 7)?;
    let mut pred_f = Vec::new();
    let mut pred_n = Vec::new();
    for t in train_rows..rows {
        pred_f.push(forest.predict_next(&cpu[..t])?);
        pred_n.push(cpu[t - 1]);
    }
    let actual = &cpu[train_rows..];
    Ok(CpuReport {
        rows,
        regular_steps,
        used_plus_idle_is_100: cpu
            .iter()
            .zip(&idle)
            .filter(|(c, i)| (*c + *i - 100.0).abs() <= 0.011)
            .count(),
        mem_total_constant: mem.iter().all(|m| *m == mem[0]),
        cpu_zero_rows: cpu.iter().filter(|c| **c == 0.0).count(),
        acf_lag1: crate::sarimax::acf(&cpu, 1),
        acf_lag_day: crate::sarimax::acf(&cpu, 288),
        corr_connections: corr(&cpu, &conn),
        train_rows,
        forest: Accuracy::of(&pred_f, actual),
        naive: Accuracy::of(&pred_n, actual),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_prediction_before_six_points() {
        let mut f = CpuForecasters::default();
        for i in 0..5 {
            f.observe("web", 10.0 + i as f64).unwrap();
            assert_eq!(f.predict("web").unwrap(), None);
        }
        f.observe("web", 15.0).unwrap();
        assert!(f.predict("web").unwrap().is_some());
        assert_eq!(f.predict("db").unwrap(), None);
        assert!(f.observe("web", f64::NAN).is_err());
    }

    #[test]
    fn learns_an_alternating_pattern() {
        let y: Vec<f64> = (0..200)
            .map(|i| if i % 2 == 0 { 20.0 } else { 60.0 })
            .collect();
        let f = CpuForest::fit(&y, 1).unwrap();
        // The last sample (i = 199) is 60: next is 20.
        assert!((f.predict_next(&y).unwrap() - 20.0).abs() < 5.0);
    }

    #[test]
    fn features_have_lags_stats_and_deltas() {
        let y = [1.0, 2.0, 3.0, 4.0, 5.0];
        let f = cpu_features(&y, 5);
        assert_eq!(f.len(), 13);
        assert_eq!(&f[..5], &[5.0, 4.0, 3.0, 2.0, 1.0]);
        assert_eq!(f[5], 3.0);
        assert_eq!(&f[9..], &[1.0; 4]);
    }
}
