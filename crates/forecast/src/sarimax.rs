//! SARIMAX: regression with ARIMA errors, fitted by exact maximum likelihood.
//!
//! No maintained Rust crate fits ARIMA with exogenous inputs by maximum likelihood (augurs has
//! MSTL and ETS, not ARIMA), so it is written here.
//!
//! ## The model
//!
//! `y_t = x_t'β + u_t` with `φ(L)(1 − L)^d u_t = θ(L)ε_t`, `ε_t ~ N(0, σ²)`, exactly
//! statsmodels' `SARIMAX(y, exog=x, order=(p,d,q), trend='c' if d == 0 else 'n',
//! simple_differencing=True)` when `x` holds the Fourier columns and the exogenous inputs:
//!
//! * `d = 1`: the series and every regressor are differenced once and the differenced errors
//!   are ARMA(p, q), no constant (as statsmodels with `trend='n'`);
//! * `d = 0`: a constant is one more regressor; reported as statsmodels' `intercept`
//!   `c = μ(1 − Σφ)`.
//! * Seasonality: with at least two days of history and an autocorrelation of at least
//!   [`SEASONAL_ACF_MIN`] at one day (lag 288), the regressors get [`DAILY_HARMONICS`] daily
//!   Fourier pairs `sin/cos(2πjt/288)`; with at least two weeks and the same test at lag 2016,
//!   [`WEEKLY_HARMONICS`] weekly pairs (never with the default 7-day window: one week cannot tell
//!   a weekly cycle from a trend). A seasonal ARMA at lag 288 would need a 289-dimensional
//!   state; the Fourier terms keep the filter at dimension `max(p, q + 1)`.
//! * Exogenous inputs (`History::exog`, e.g. p95 latency, backlog, processing time) are held at
//!   their last value over the forecast (a documented choice: their own forecast would add
//!   another model's error).
//!
//! ## The fit
//!
//! The exact Gaussian likelihood of the (differenced) series comes from a Kalman filter on
//! Harvey's state-space form of the ARMA, its initial state covariance the stationary one
//! (solving `P = TPT' + RR'`). The filter is linear in the data, so β and σ² are concentrated
//! out: the series and each regressor are filtered with the same gains, β is the GLS estimate
//! from the innovations, σ² the mean squared standardised innovation. The remaining φ and θ
//! are searched by Nelder–Mead over unconstrained values mapped to the stationary
//! (invertible) region through partial autocorrelations (`tanh`, Durbin–Levinson), the
//! maximum-likelihood point statsmodels' L-BFGS search reaches when it is interior.
//! AIC = `−2 log L + 2k`, `k` counting φ, θ, β (with the constant) and σ², as statsmodels does.
//!
//! The order is chosen by minimum AIC among [`CANDIDATE_ORDERS`] once a day
//! ([`ORDER_REFRESH_BUCKETS`]); between, the chosen order is refitted from the previous optimum.

use crate::{
    Forecast, ForecastError, Forecaster, History, ModelInfo, BUCKETS_PER_DAY, BUCKETS_PER_WEEK,
    INTERVAL_LEVEL,
};

/// An ARIMA order `(p, d, q)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    /// AR order.
    pub p: usize,
    /// Differences (0 or 1).
    pub d: usize,
    /// MA order.
    pub q: usize,
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({},{},{})", self.p, self.d, self.q)
    }
}

/// The candidate orders of the issue, in its order.
pub const CANDIDATE_ORDERS: [Order; 4] = [
    Order { p: 1, d: 1, q: 1 },
    Order { p: 1, d: 0, q: 1 },
    Order { p: 2, d: 1, q: 1 },
    Order { p: 1, d: 1, q: 0 },
];
/// At most this many points (7 days of 5-minute buckets) are fitted on.
pub const SARIMAX_MAX_HISTORY: usize = 7 * BUCKETS_PER_DAY;
/// The fewest points SARIMAX fits on (without seasonal terms).
pub const SARIMAX_MIN_POINTS: usize = 32;
/// Daily Fourier pairs when the data shows a daily period.
pub const DAILY_HARMONICS: usize = 3;
/// Weekly Fourier pairs when the data shows a weekly period (≥ 2 weeks of history).
pub const WEEKLY_HARMONICS: usize = 2;
/// The autocorrelation at the period above which the period is modelled.
pub const SEASONAL_ACF_MIN: f64 = 0.3;
/// The order is chosen again after this many buckets (one day).
pub const ORDER_REFRESH_BUCKETS: usize = BUCKETS_PER_DAY;
const NM_MAX_EVALS: usize = 3000;
const NM_FTOL: f64 = 1e-10;
const NM_XTOL: f64 = 1e-8;

/// A full specification: order plus the seasonal Fourier terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The ARIMA order.
    pub order: Order,
    /// Daily Fourier pairs (0 = none).
    pub daily_harmonics: usize,
    /// Weekly Fourier pairs (0 = none).
    pub weekly_harmonics: usize,
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.order)?;
        if self.daily_harmonics > 0 {
            write!(f, "+daily_fourier({})", self.daily_harmonics)?;
        }
        if self.weekly_harmonics > 0 {
            write!(f, "+weekly_fourier({})", self.weekly_harmonics)?;
        }
        Ok(())
    }
}

/// A fitted SARIMAX.
#[derive(Debug, Clone)]
pub struct SarimaxFit {
    /// What was fitted.
    pub spec: Spec,
    /// AR coefficients (statsmodels' `ar.L1…`).
    pub phi: Vec<f64>,
    /// MA coefficients (statsmodels' `ma.L1…`).
    pub theta: Vec<f64>,
    /// Regression coefficients, named as [`SarimaxFit::regressor_names`].
    pub beta: Vec<f64>,
    /// Names of the regressors: `const` (d = 0), the exogenous inputs, `daily_sin1`… .
    pub regressor_names: Vec<String>,
    /// Innovation variance.
    pub sigma2: f64,
    /// Log-likelihood.
    pub loglik: f64,
    /// Akaike information criterion.
    pub aic: f64,
    /// Observations in the likelihood (n − d).
    pub nobs: usize,
    x: Vec<f64>,
    end: usize,
    last_y: f64,
    last_exog: Vec<f64>,
    state: Vec<f64>,
}

impl SarimaxFit {
    /// statsmodels' `intercept` for d = 0 (`μ(1 − Σφ)`), None for d = 1.
    pub fn intercept(&self) -> Option<f64> {
        (self.spec.order.d == 0).then(|| self.beta[0] * (1.0 - self.phi.iter().sum::<f64>()))
    }

    /// Forecast the `steps` buckets after the fitted history.
    pub fn forecast(&self, steps: usize, level: f64) -> Forecast {
        let arma = Arma::new(&self.phi, &self.theta);
        let d = self.spec.order.d;
        let mut a = self.state.clone();
        let mut prev_row = regressor_row(&self.spec, self.end - 1, &self.last_exog);
        let mut y = self.last_y;
        let mut mean = Vec::with_capacity(steps);
        for k in 0..steps {
            let row = regressor_row(&self.spec, self.end + k, &self.last_exog);
            let z: Vec<f64> = if d == 1 {
                row.iter().zip(&prev_row).map(|(a, b)| a - b).collect()
            } else {
                row.clone()
            };
            let w = dot(&z, &self.beta) + a[0];
            y = if d == 1 { y + w } else { w };
            mean.push(y);
            a = arma.transition(&a);
            prev_row = row;
        }
        // ψ-weights of φ(L)(1 − L)^d against θ(L).
        let mut ar = self.phi.clone();
        if d == 1 {
            let mut full = vec![0.0; ar.len() + 1];
            for (i, f) in full.iter_mut().enumerate() {
                let cur = if i < ar.len() { ar[i] } else { 0.0 };
                let prev = if i == 0 { -1.0 } else { ar[i - 1] };
                *f = cur - prev;
            }
            ar = full;
        }
        let mut psi = vec![1.0];
        for j in 1..steps {
            let mut v = if j <= self.theta.len() {
                self.theta[j - 1]
            } else {
                0.0
            };
            for (i, c) in ar.iter().enumerate() {
                if j > i {
                    v += c * psi[j - i - 1];
                }
            }
            psi.push(v);
        }
        let mut acc = 0.0;
        let sd: Vec<f64> = psi
            .iter()
            .map(|p| {
                acc += p * p;
                (self.sigma2 * acc).sqrt()
            })
            .collect();
        Forecast::from_mean_sd(mean, &sd, level)
    }
}

/// The regressors at absolute bucket `t`.
fn regressor_row(spec: &Spec, t: usize, exog: &[f64]) -> Vec<f64> {
    let mut row = Vec::new();
    if spec.order.d == 0 {
        row.push(1.0);
    }
    row.extend_from_slice(exog);
    for (k, period) in [
        (spec.daily_harmonics, BUCKETS_PER_DAY),
        (spec.weekly_harmonics, BUCKETS_PER_WEEK),
    ] {
        for j in 1..=k {
            let ang = 2.0 * std::f64::consts::PI * j as f64 * (t % period) as f64 / period as f64;
            row.push(ang.sin());
            row.push(ang.cos());
        }
    }
    row
}

/// The regressors of `spec` over `h` without the constant: names and one row per point (the
/// exogenous inputs, then the Fourier columns), as statsmodels gets them as `exog`.
pub fn design(h: &History, spec: &Spec) -> (Vec<String>, Vec<Vec<f64>>) {
    let no_const = Spec {
        order: Order { d: 1, ..spec.order },
        ..*spec
    };
    let names = regressor_names(&no_const, h);
    let rows = (0..h.len())
        .map(|i| {
            let ex: Vec<f64> = h.exog.iter().map(|e| e.values[i]).collect();
            regressor_row(&no_const, h.start + i, &ex)
        })
        .collect();
    (names, rows)
}

fn regressor_names(spec: &Spec, h: &History) -> Vec<String> {
    let mut names = Vec::new();
    if spec.order.d == 0 {
        names.push("const".to_string());
    }
    names.extend(h.exog.iter().map(|e| e.name.clone()));
    for (k, tag) in [
        (spec.daily_harmonics, "daily"),
        (spec.weekly_harmonics, "weekly"),
    ] {
        for j in 1..=k {
            names.push(format!("{tag}_sin{j}"));
            names.push(format!("{tag}_cos{j}"));
        }
    }
    names
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Harvey's state-space form of an ARMA(p, q): state dimension r = max(p, q + 1).
struct Arma {
    r: usize,
    phi: Vec<f64>,
    /// R R' (r × r, row-major).
    rr: Vec<f64>,
}

impl Arma {
    fn new(phi: &[f64], theta: &[f64]) -> Self {
        let r = phi.len().max(theta.len() + 1);
        let mut rv = vec![0.0; r];
        rv[0] = 1.0;
        for (j, t) in theta.iter().enumerate() {
            rv[j + 1] = *t;
        }
        let mut rr = vec![0.0; r * r];
        for i in 0..r {
            for j in 0..r {
                rr[i * r + j] = rv[i] * rv[j];
            }
        }
        let mut p = phi.to_vec();
        p.resize(r, 0.0);
        Arma { r, phi: p, rr }
    }

    /// T a: (T a)_i = φ_i a_0 + a_{i+1}.
    fn transition(&self, a: &[f64]) -> Vec<f64> {
        (0..self.r)
            .map(|i| self.phi[i] * a[0] + if i + 1 < self.r { a[i + 1] } else { 0.0 })
            .collect()
    }

    /// T P T' + R R'.
    fn propagate(&self, p: &[f64]) -> Vec<f64> {
        let r = self.r;
        // TP: row i = φ_i P[0,:] + P[i+1,:]
        let mut tp = vec![0.0; r * r];
        for i in 0..r {
            for j in 0..r {
                tp[i * r + j] =
                    self.phi[i] * p[j] + if i + 1 < r { p[(i + 1) * r + j] } else { 0.0 };
            }
        }
        let mut out = vec![0.0; r * r];
        for i in 0..r {
            for j in 0..r {
                // (TP)T' [i,j] = Σ_k TP[i,k] T[j,k] = φ_j TP[i,0] + TP[i,j+1]
                out[i * r + j] = self.phi[j] * tp[i * r]
                    + if j + 1 < r { tp[i * r + j + 1] } else { 0.0 }
                    + self.rr[i * r + j];
            }
        }
        out
    }

    /// The stationary covariance: solve (I − T⊗T) vec P = vec RR'.
    fn stationary_cov(&self) -> Option<Vec<f64>> {
        let r = self.r;
        let n = r * r;
        let t = |i: usize, j: usize| -> f64 {
            (if j == 0 { self.phi[i] } else { 0.0 }) + if j == i + 1 { 1.0 } else { 0.0 }
        };
        let mut m = vec![0.0; n * n];
        for i in 0..r {
            for j in 0..r {
                let row = i * r + j;
                for k in 0..r {
                    for l in 0..r {
                        m[row * n + k * r + l] -= t(i, k) * t(j, l);
                    }
                }
                m[row * n + row] += 1.0;
            }
        }
        solve(m, self.rr.clone(), n)
    }
}

/// Solve the n × n system `a x = b` (Gaussian elimination, partial pivoting).
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    for c in 0..n {
        let piv = (c..n).max_by(|i, j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))?;
        if a[piv * n + c].abs() < 1e-300 {
            return None;
        }
        if piv != c {
            for k in 0..n {
                a.swap(piv * n + k, c * n + k);
            }
            b.swap(piv, c);
        }
        for r in c + 1..n {
            let f = a[r * n + c] / a[c * n + c];
            if f != 0.0 {
                for k in c..n {
                    a[r * n + k] -= f * a[c * n + k];
                }
                b[r] -= f * b[c];
            }
        }
    }
    let mut x = vec![0.0; n];
    for c in (0..n).rev() {
        let mut s = b[c];
        for k in c + 1..n {
            s -= a[c * n + k] * x[k];
        }
        x[c] = s / a[c * n + c];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// What one filter pass over the series and its regressors gives.
struct Profile {
    loglik: f64,
    sigma2: f64,
    beta: Vec<f64>,
    /// a_{n+1|n} of u = w − Zβ.
    state: Vec<f64>,
}

/// Filter `w` and every column of `z` (row-major, n × k) with the ARMA's gains; concentrate β, σ².
fn profile(arma: &Arma, w: &[f64], z: &[f64], k: usize) -> Option<Profile> {
    let n = w.len();
    let r = arma.r;
    let m = k + 1;
    let mut p = arma.stationary_cov()?;
    let mut a = vec![0.0; m * r];
    let mut cross = vec![0.0; m * m];
    let mut sum_logf = 0.0;
    let mut converged = false;
    let mut v = vec![0.0; m];
    let mut gain = vec![0.0; r];
    for t in 0..n {
        let f = p[0];
        if !(f > 0.0 && f.is_finite()) {
            return None;
        }
        for s in 0..m {
            let obs = if s == 0 { w[t] } else { z[t * k + s - 1] };
            v[s] = obs - a[s * r];
        }
        sum_logf += f.ln();
        for i in 0..m {
            for j in i..m {
                cross[i * m + j] += v[i] * v[j] / f;
            }
        }
        for (i, g) in gain.iter_mut().enumerate() {
            *g = p[i * r] / f;
        }
        for s in 0..m {
            let st = &mut a[s * r..(s + 1) * r];
            let filt: Vec<f64> = (0..r).map(|i| st[i] + gain[i] * v[s]).collect();
            let next = arma.transition(&filt);
            st.copy_from_slice(&next);
        }
        if !converged {
            let mut pf = p.clone();
            for i in 0..r {
                for j in 0..r {
                    pf[i * r + j] -= p[i * r] * p[j] / f;
                }
            }
            let next = arma.propagate(&pf);
            let delta = next
                .iter()
                .zip(&p)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            converged = delta < 1e-13;
            p = next;
        }
    }
    for i in 0..m {
        for j in 0..i {
            cross[i * m + j] = cross[j * m + i];
        }
    }
    let beta = if k > 0 {
        let mut szz = vec![0.0; k * k];
        let mut szy = vec![0.0; k];
        for i in 0..k {
            szy[i] = cross[(i + 1) * m];
            for j in 0..k {
                szz[i * k + j] = cross[(i + 1) * m + j + 1];
            }
        }
        solve(szz, szy, k)?
    } else {
        Vec::new()
    };
    let mut rss = cross[0];
    for i in 0..k {
        rss -= beta[i] * cross[(i + 1) * m];
    }
    let nf = n as f64;
    let sigma2 = rss / nf;
    if !(sigma2 > 0.0 && sigma2.is_finite()) {
        return None;
    }
    let loglik = -0.5 * nf * ((2.0 * std::f64::consts::PI * sigma2).ln() + 1.0) - 0.5 * sum_logf;
    let mut state = a[..r].to_vec();
    for (j, b) in beta.iter().enumerate() {
        for i in 0..r {
            state[i] -= b * a[(j + 1) * r + i];
        }
    }
    Some(Profile {
        loglik,
        sigma2,
        beta,
        state,
    })
}

/// Partial autocorrelations `tanh(x)` → coefficients of a stationary `1 − Σ a_i L^i`.
fn pacf_to_ar(x: &[f64]) -> Vec<f64> {
    let mut a: Vec<f64> = Vec::with_capacity(x.len());
    for (k, xi) in x.iter().enumerate() {
        let r = xi.tanh();
        let prev = a.clone();
        for i in 0..k {
            a[i] = prev[i] - r * prev[k - 1 - i];
        }
        a.push(r);
    }
    a
}

fn coefficients(order: &Order, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let phi = pacf_to_ar(&x[..order.p]);
    let theta = pacf_to_ar(&x[order.p..]).into_iter().map(|v| -v).collect();
    (phi, theta)
}

/// Nelder–Mead minimisation of `f` from `x0`.
pub(crate) fn nelder_mead(
    f: &mut dyn FnMut(&[f64]) -> f64,
    x0: &[f64],
    step: f64,
) -> (Vec<f64>, f64) {
    let n = x0.len();
    let mut pts: Vec<Vec<f64>> = vec![x0.to_vec()];
    for i in 0..n {
        let mut p = x0.to_vec();
        p[i] += step;
        pts.push(p);
    }
    let mut vals: Vec<f64> = pts.iter().map(|p| f(p)).collect();
    let mut evals = n + 1;
    while evals < NM_MAX_EVALS {
        let mut idx: Vec<usize> = (0..=n).collect();
        idx.sort_by(|a, b| vals[*a].total_cmp(&vals[*b]));
        pts = idx.iter().map(|i| pts[*i].clone()).collect();
        vals = idx.iter().map(|i| vals[*i]).collect();
        let spread = (vals[n] - vals[0]).abs();
        let size = pts[1..]
            .iter()
            .flat_map(|p| p.iter().zip(&pts[0]).map(|(a, b)| (a - b).abs()))
            .fold(0.0, f64::max);
        if spread <= NM_FTOL && size <= NM_XTOL {
            break;
        }
        let c: Vec<f64> = (0..n)
            .map(|j| pts[..n].iter().map(|p| p[j]).sum::<f64>() / n as f64)
            .collect();
        let at = |t: f64| -> Vec<f64> { (0..n).map(|j| c[j] + t * (pts[n][j] - c[j])).collect() };
        let xr = at(-1.0);
        let fr = f(&xr);
        evals += 1;
        if fr < vals[0] {
            let xe = at(-2.0);
            let fe = f(&xe);
            evals += 1;
            if fe < fr {
                pts[n] = xe;
                vals[n] = fe;
            } else {
                pts[n] = xr;
                vals[n] = fr;
            }
        } else if fr < vals[n - 1] {
            pts[n] = xr;
            vals[n] = fr;
        } else {
            let (xc, fc) = if fr < vals[n] {
                let x = at(-0.5);
                let v = f(&x);
                (x, v)
            } else {
                let x = at(0.5);
                let v = f(&x);
                (x, v)
            };
            evals += 1;
            if fc < vals[n].min(fr) {
                pts[n] = xc;
                vals[n] = fc;
            } else {
                for i in 1..=n {
                    let p: Vec<f64> = (0..n)
                        .map(|j| pts[0][j] + 0.5 * (pts[i][j] - pts[0][j]))
                        .collect();
                    vals[i] = f(&p);
                    pts[i] = p;
                }
                evals += n;
            }
        }
    }
    let best = (0..=n)
        .min_by(|a, b| vals[*a].total_cmp(&vals[*b]))
        .unwrap_or(0);
    (pts[best].clone(), vals[best])
}

/// Autocorrelation of `y` at `lag` (0 when too short).
pub fn acf(y: &[f64], lag: usize) -> f64 {
    if y.len() <= lag + 1 {
        return 0.0;
    }
    let m = y.iter().sum::<f64>() / y.len() as f64;
    let den: f64 = y.iter().map(|v| (v - m).powi(2)).sum();
    if den == 0.0 {
        return 0.0;
    }
    let num: f64 = (lag..y.len()).map(|t| (y[t] - m) * (y[t - lag] - m)).sum();
    num / den
}

/// The seasonal terms the data shows: daily (weekly) Fourier pairs when the history covers two
/// periods and its autocorrelation at the period is at least [`SEASONAL_ACF_MIN`].
pub fn seasonal_terms(y: &[f64]) -> (usize, usize) {
    let daily = if y.len() >= 2 * BUCKETS_PER_DAY && acf(y, BUCKETS_PER_DAY) >= SEASONAL_ACF_MIN {
        DAILY_HARMONICS
    } else {
        0
    };
    let weekly = if y.len() >= 2 * BUCKETS_PER_WEEK && acf(y, BUCKETS_PER_WEEK) >= SEASONAL_ACF_MIN
    {
        WEEKLY_HARMONICS
    } else {
        0
    };
    (daily, weekly)
}

/// Fit `spec` on `h` by exact maximum likelihood, starting from `start` (unconstrained φ, θ)
/// when given.
pub fn fit(h: &History, spec: Spec, start: Option<&[f64]>) -> Result<SarimaxFit, ForecastError> {
    h.validate("sarimax", SARIMAX_MIN_POINTS)?;
    let order = spec.order;
    if order.d > 1 {
        return Err(ForecastError::Invalid(format!(
            "d = {} (only 0 or 1)",
            order.d
        )));
    }
    let n = h.len();
    let names = regressor_names(&spec, h);
    let k = names.len();
    if n < order.d + k + order.p + order.q + 2 {
        return Err(ForecastError::TooShort {
            model: "sarimax".into(),
            need: order.d + k + order.p + order.q + 2,
            got: n,
        });
    }
    let rows: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let ex: Vec<f64> = h.exog.iter().map(|e| e.values[i]).collect();
            regressor_row(&spec, h.start + i, &ex)
        })
        .collect();
    let (w, z): (Vec<f64>, Vec<f64>) = if order.d == 1 {
        let w = h.values.windows(2).map(|p| p[1] - p[0]).collect();
        let z = rows
            .windows(2)
            .flat_map(|p| {
                p[1].iter()
                    .zip(&p[0])
                    .map(|(a, b)| a - b)
                    .collect::<Vec<_>>()
            })
            .collect();
        (w, z)
    } else {
        (h.values.clone(), rows.iter().flatten().copied().collect())
    };
    let dim = order.p + order.q;
    let mut objective = |x: &[f64]| -> f64 {
        let (phi, theta) = coefficients(&order, x);
        match profile(&Arma::new(&phi, &theta), &w, &z, k) {
            Some(p) => -p.loglik,
            None => f64::MAX,
        }
    };
    let mut starts: Vec<Vec<f64>> = Vec::new();
    if let Some(s) = start.filter(|s| s.len() == dim) {
        starts.push(s.to_vec());
    } else {
        starts.push(vec![0.0; dim]);
        let mut alt = vec![0.0; dim];
        if order.p > 0 {
            alt[0] = 1.0;
        }
        if order.q > 0 {
            alt[order.p] = -0.5;
        }
        starts.push(alt);
    }
    let mut best: Option<(Vec<f64>, f64)> = None;
    for s in &starts {
        let step = if start.is_some() { 0.1 } else { 0.5 };
        let (x, v) = nelder_mead(&mut objective, s, step);
        if start.is_some() {
            // A warm refit (every FORECAST_INTERVAL_MIN) starts next to the optimum: one pass.
            best = Some((x, v));
            continue;
        }
        // Restart once from the optimum (Nelder–Mead can stall on a ridge).
        let (x, v) = {
            let (x2, v2) = nelder_mead(&mut objective, &x, 0.05);
            if v2 <= v {
                (x2, v2)
            } else {
                (x, v)
            }
        };
        if best.as_ref().is_none_or(|(_, b)| v < *b) {
            best = Some((x, v));
        }
    }
    let (x, v) = best.expect("at least one start");
    if v == f64::MAX {
        return Err(ForecastError::Fit {
            model: "sarimax".into(),
            reason: format!("no finite likelihood for order {order}"),
        });
    }
    let (phi, theta) = coefficients(&order, &x);
    let pr = profile(&Arma::new(&phi, &theta), &w, &z, k).ok_or_else(|| ForecastError::Fit {
        model: "sarimax".into(),
        reason: "the likelihood at the optimum is not finite".into(),
    })?;
    let n_params = order.p + order.q + k + 1;
    Ok(SarimaxFit {
        spec,
        phi,
        theta,
        beta: pr.beta,
        regressor_names: names,
        sigma2: pr.sigma2,
        loglik: pr.loglik,
        aic: -2.0 * pr.loglik + 2.0 * n_params as f64,
        nobs: w.len(),
        x,
        end: h.end(),
        last_y: *h.values.last().expect("validated"),
        last_exog: h
            .exog
            .iter()
            .map(|e| *e.values.last().unwrap_or(&0.0))
            .collect(),
        state: pr.state,
    })
}

/// Fit every candidate order (with the seasonal terms the data shows) and keep the lowest AIC.
/// Also returns each candidate's AIC (NaN when its fit failed).
pub fn select(
    h: &History,
    candidates: &[Order],
) -> Result<(SarimaxFit, Vec<(Spec, f64)>), ForecastError> {
    h.validate("sarimax", SARIMAX_MIN_POINTS)?;
    let (daily, weekly) = seasonal_terms(&h.values);
    let mut table = Vec::new();
    let mut best: Option<SarimaxFit> = None;
    let mut last_err = None;
    for order in candidates {
        let spec = Spec {
            order: *order,
            daily_harmonics: daily,
            weekly_harmonics: weekly,
        };
        match fit(h, spec, None) {
            Ok(f) => {
                table.push((spec, f.aic));
                if best.as_ref().is_none_or(|b| f.aic < b.aic) {
                    best = Some(f);
                }
            }
            Err(e) => {
                table.push((spec, f64::NAN));
                last_err = Some(e);
            }
        }
    }
    match best {
        Some(b) => Ok((b, table)),
        None => {
            Err(last_err.unwrap_or_else(|| ForecastError::Invalid("no candidate orders".into())))
        }
    }
}

/// The `sarimax` forecaster: order by AIC once a day, coefficients refitted on every call on at
/// most [`SARIMAX_MAX_HISTORY`] points.
#[derive(Debug, Clone)]
pub struct Sarimax {
    /// Points fitted on at most.
    pub max_history: usize,
    /// Candidate orders.
    pub candidates: Vec<Order>,
    /// Buckets between order choices.
    pub order_refresh: usize,
    chosen: Option<(Spec, usize)>,
    last: Option<SarimaxFit>,
    last_table: Vec<(Spec, f64)>,
}

impl Default for Sarimax {
    fn default() -> Self {
        Sarimax {
            max_history: SARIMAX_MAX_HISTORY,
            candidates: CANDIDATE_ORDERS.to_vec(),
            order_refresh: ORDER_REFRESH_BUCKETS,
            chosen: None,
            last: None,
            last_table: Vec::new(),
        }
    }
}

impl Sarimax {
    /// The last fit.
    pub fn last_fit(&self) -> Option<&SarimaxFit> {
        self.last.as_ref()
    }

    /// Each candidate's AIC at the last order choice.
    pub fn last_selection(&self) -> &[(Spec, f64)] {
        &self.last_table
    }

    /// Fit (choosing the order when due) without forecasting.
    pub fn refit(&mut self, history: &History) -> Result<&SarimaxFit, ForecastError> {
        let h = history.tail(self.max_history);
        let due = match self.chosen {
            None => true,
            Some((_, at)) => h.end() < at || h.end() - at >= self.order_refresh,
        };
        let fitted = if due {
            None
        } else {
            let (spec, _) = self.chosen.expect("not due means chosen");
            let start = self
                .last
                .as_ref()
                .filter(|l| l.spec == spec)
                .map(|l| l.x.clone());
            fit(&h, spec, start.as_deref()).ok()
        };
        let f = match fitted {
            Some(f) => f,
            None => {
                let (f, table) = select(&h, &self.candidates)?;
                self.chosen = Some((f.spec, h.end()));
                self.last_table = table;
                f
            }
        };
        self.last = Some(f);
        Ok(self.last.as_ref().expect("just set"))
    }
}

impl Forecaster for Sarimax {
    fn name(&self) -> &'static str {
        "sarimax"
    }

    fn min_history(&self) -> usize {
        SARIMAX_MIN_POINTS
    }

    fn fit_forecast(&mut self, history: &History, steps: usize) -> Result<Forecast, ForecastError> {
        let f = self.refit(history)?;
        Ok(f.forecast(steps, INTERVAL_LEVEL))
    }

    fn info(&self) -> ModelInfo {
        ModelInfo {
            model: "sarimax".into(),
            order: self.last.as_ref().map(|f| f.spec.to_string()),
            aic: self.last.as_ref().map(|f| f.aic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// ARMA(1,1) with φ = 0.6, θ = 0.3 around 10.
    fn arma11(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut y = Vec::with_capacity(n);
        let (mut prev_u, mut prev_e) = (0.0, 0.0);
        for _ in 0..n + 100 {
            let e: f64 = StandardNormal.sample(&mut rng);
            let u = 0.6 * prev_u + e + 0.3 * prev_e;
            prev_u = u;
            prev_e = e;
            y.push(10.0 + u);
        }
        y.split_off(100)
    }

    #[test]
    fn pacf_map_gives_stationary_coefficients() {
        let a = pacf_to_ar(&[0.4, -0.2]);
        assert_eq!(a.len(), 2);
        // AR(2) stationarity triangle.
        assert!(a[1].abs() < 1.0 && a[0] + a[1] < 1.0 && a[1] - a[0] < 1.0);
    }

    #[test]
    fn stationary_cov_of_ar1_is_one_over_one_minus_phi_squared() {
        let arma = Arma::new(&[0.5], &[]);
        let p = arma.stationary_cov().unwrap();
        assert!((p[0] - 1.0 / 0.75).abs() < 1e-12);
    }

    #[test]
    fn recovers_arma11_coefficients() {
        let y = arma11(2000, 7);
        let h = History::new(0, y);
        let spec = Spec {
            order: Order { p: 1, d: 0, q: 1 },
            daily_harmonics: 0,
            weekly_harmonics: 0,
        };
        let f = fit(&h, spec, None).unwrap();
        assert!((f.phi[0] - 0.6).abs() < 0.08, "phi {}", f.phi[0]);
        assert!((f.theta[0] - 0.3).abs() < 0.08, "theta {}", f.theta[0]);
        assert!((f.beta[0] - 10.0).abs() < 0.3, "mean {}", f.beta[0]);
        assert!((f.sigma2 - 1.0).abs() < 0.1);
        let fc = f.forecast(12, 0.95);
        assert_eq!(fc.mean.len(), 12);
        // Forecasts revert to the mean and intervals widen.
        assert!((fc.mean[11] - f.beta[0]).abs() < (fc.mean[0] - f.beta[0]).abs() + 1e-9);
        assert!(fc.upper[11] - fc.lower[11] > fc.upper[0] - fc.lower[0]);
    }

    #[test]
    fn selection_prefers_the_true_stationary_order() {
        let h = History::new(0, arma11(1500, 11));
        let (best, table) = select(&h, &CANDIDATE_ORDERS).unwrap();
        assert_eq!(table.len(), 4);
        assert_eq!(best.spec.order, Order { p: 1, d: 0, q: 1 });
    }

    #[test]
    fn daily_fourier_terms_follow_a_daily_cycle() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let y: Vec<f64> = (0..3 * BUCKETS_PER_DAY)
            .map(|t| {
                let e: f64 = StandardNormal.sample(&mut rng);
                20.0 + 8.0 * (2.0 * std::f64::consts::PI * t as f64 / 288.0).sin() + e
            })
            .collect();
        assert_eq!(seasonal_terms(&y).0, DAILY_HARMONICS);
        let mut m = Sarimax::default();
        let f = m.fit_forecast(&History::new(0, y), 72).unwrap();
        // 72 buckets ahead of t = 864 (≡ 0 mod 288) is a quarter day: the sine's peak, 28.
        assert!((f.mean[71] - 28.0).abs() < 2.0, "{}", f.mean[71]);
        assert!(m.info().order.unwrap().contains("daily_fourier(3)"));
    }

    #[test]
    fn bad_histories_are_errors_not_panics() {
        let mut m = Sarimax::default();
        assert!(matches!(
            m.fit_forecast(&History::new(0, vec![1.0; 5]), 3),
            Err(ForecastError::TooShort {
                need: SARIMAX_MIN_POINTS,
                ..
            })
        ));
        assert!(matches!(
            m.fit_forecast(&History::new(0, vec![3.0; 100]), 3),
            Err(ForecastError::Constant { .. })
        ));
        let mut y = arma11(100, 1);
        y[50] = f64::NAN;
        assert!(matches!(
            m.fit_forecast(&History::new(0, y), 3),
            Err(ForecastError::NotFinite { index: 50, .. })
        ));
    }
}
