//! SARIMAX against statsmodels' SARIMAX on the same series: the same chosen order (minimum AIC
//! over the candidates) and close coefficients for every candidate.
//!
//! Needs the venv of `scripts/statsmodels-venv.sh` (statsmodels pinned). Without it the test
//! prints why and passes locally; with `CI=true` it fails.

use std::path::PathBuf;
use std::process::Command;

use autoscaler_forecast::sarimax::{design, fit, select, Spec, CANDIDATE_ORDERS};
use autoscaler_forecast::{Exog, History};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Largest allowed differences (reported by the test when it passes).
const COEF_TOL: f64 = 0.02;
const BETA_REL_TOL: f64 = 0.02;
const SIGMA2_REL_TOL: f64 = 0.01;
const AIC_TOL: f64 = 0.5;

fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("AUTOSCALER_STATSMODELS_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/autoscaler/venv-statsmodels"))
        })?;
    let py = venv.join("bin/python");
    if py.exists() {
        Some(py)
    } else {
        let why = format!(
            "needs the statsmodels venv at {} (run scripts/statsmodels-venv.sh)",
            venv.display()
        );
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{why}");
        }
        eprintln!("skipped: {why}");
        None
    }
}

fn arma(n: usize, phi: f64, theta: f64, sd: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let (mut u, mut e_prev) = (0.0, 0.0);
    let mut out = Vec::with_capacity(n);
    for i in 0..n + 200 {
        let e: f64 = StandardNormal.sample(&mut *rng);
        let e = e * sd;
        u = phi * u + e + theta * e_prev;
        e_prev = e;
        if i >= 200 {
            out.push(u);
        }
    }
    out
}

/// Our fit and statsmodels' of every candidate on `h`; asserts and returns the largest
/// coefficient difference.
fn compare(h: &History, py: &PathBuf) -> f64 {
    let (best, table) = select(h, &CANDIDATE_ORDERS).unwrap();
    let spec0 = table[0].0;
    let (names, rows) = design(h, &spec0);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("series.csv");
    let mut text = std::iter::once("y".to_string())
        .chain(names.iter().cloned())
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    for (y, r) in h.values.iter().zip(&rows) {
        let mut line = format!("{y:.17e}");
        for v in r {
            line.push_str(&format!(",{v:.17e}"));
        }
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(&csv, text).unwrap();
    let orders = CANDIDATE_ORDERS
        .iter()
        .map(|o| format!("{},{},{}", o.p, o.d, o.q))
        .collect::<Vec<_>>()
        .join(";");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/sarimax_reference.py"
    );
    let out = Command::new(py)
        .arg(script)
        .arg(&csv)
        .arg(&orders)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fits = json["fits"].as_array().unwrap();
    let mut sm_best = (f64::INFINITY, 0usize);
    let mut worst: f64 = 0.0;
    for (i, (spec, _)) in table.iter().enumerate() {
        let sm = &fits[i];
        let p = &sm["params"];
        let ours = fit(h, Spec { ..*spec }, None).unwrap();
        let aic = sm["aic"].as_f64().unwrap();
        if aic < sm_best.0 {
            sm_best = (aic, i);
        }
        let llf = sm["llf"].as_f64().unwrap();
        let mut report = format!(
            "{spec}: AIC ours {:.3} statsmodels {aic:.3} (logL {:.3} vs {llf:.3})",
            ours.aic, ours.loglik
        );
        // Never a worse optimum than statsmodels'.
        assert!(ours.loglik >= llf - 0.05, "{report}");
        let sm_coef = |name: String| p[name.as_str()].as_f64().unwrap();
        let sm_ar: Vec<f64> = (1..=ours.phi.len())
            .map(|j| sm_coef(format!("ar.L{j}")))
            .collect();
        let sm_ma: Vec<f64> = (1..=ours.theta.len())
            .map(|j| sm_coef(format!("ma.L{j}")))
            .collect();
        // An optimum on the stationarity/invertibility boundary (an over-differenced series
        // drives θ to −1) is where L-BFGS stops early: only interior optima are compared.
        let interior = ours
            .phi
            .iter()
            .chain(&ours.theta)
            .chain(&sm_ar)
            .chain(&sm_ma)
            .all(|c| c.abs() < 0.97);
        let mut diffs = Vec::new();
        for (j, (a, b)) in ours.phi.iter().zip(&sm_ar).enumerate() {
            report.push_str(&format!("; ar.L{} {a:.4} vs {b:.4}", j + 1));
            diffs.push((a - b).abs());
        }
        for (j, (a, b)) in ours.theta.iter().zip(&sm_ma).enumerate() {
            report.push_str(&format!("; ma.L{} {a:.4} vs {b:.4}", j + 1));
            diffs.push((a - b).abs());
        }
        let mut beta_ok = true;
        if let Some(c) = ours.intercept() {
            let s = p["intercept"].as_f64().unwrap();
            report.push_str(&format!("; intercept {c:.4} vs {s:.4}"));
            beta_ok &= (c - s).abs() <= BETA_REL_TOL * s.abs() + 0.05;
        }
        let off = usize::from(spec.order.d == 0);
        for (name, b) in ours.regressor_names[off..].iter().zip(&ours.beta[off..]) {
            let s = p[name.as_str()].as_f64().unwrap();
            report.push_str(&format!("; {name} {b:.4} vs {s:.4}"));
            beta_ok &= (b - s).abs() <= BETA_REL_TOL * s.abs() + 0.02;
        }
        let s2 = p["sigma2"].as_f64().unwrap();
        report.push_str(&format!("; sigma2 {:.5} vs {s2:.5}", ours.sigma2));
        eprintln!(
            "{report}{}",
            if interior {
                ""
            } else {
                " [boundary: not compared]"
            }
        );
        if interior || table[i].0 == best.spec {
            assert!((ours.aic - aic).abs() < AIC_TOL, "{report}");
            assert!(diffs.iter().all(|d| *d < COEF_TOL), "{report}");
            assert!(beta_ok, "{report}");
            assert!((ours.sigma2 - s2).abs() <= SIGMA2_REL_TOL * s2, "{report}");
            worst = diffs.iter().copied().fold(worst, f64::max);
        }
    }
    assert_eq!(
        table[sm_best.1].0, best.spec,
        "statsmodels chose {} by AIC, we chose {}",
        table[sm_best.1].0, best.spec
    );
    eprintln!("chosen by both: {}", best.spec);
    worst
}

#[test]
fn sarimax_matches_statsmodels_on_a_daily_series() {
    let Some(py) = python() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let noise = arma(600, 0.7, 0.2, 1.0, &mut rng);
    let values: Vec<f64> = noise
        .iter()
        .enumerate()
        .map(|(t, u)| {
            let a = 2.0 * std::f64::consts::PI * t as f64 / 288.0;
            30.0 + 6.0 * a.sin() + 2.0 * (2.0 * a).cos() + u
        })
        .collect();
    let worst = compare(&History::new(0, values), &py);
    eprintln!("largest AR/MA difference: {worst:.5}");
}

#[test]
fn sarimax_matches_statsmodels_with_an_exogenous_input() {
    let Some(py) = python() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let lat: Vec<f64> = arma(400, 0.9, 0.0, 5.0, &mut rng)
        .into_iter()
        .map(|v| 120.0 + v)
        .collect();
    let noise = arma(400, 0.5, 0.4, 1.0, &mut rng);
    let values: Vec<f64> = lat
        .iter()
        .zip(&noise)
        .map(|(l, u)| 10.0 + 0.08 * l + u)
        .collect();
    let h = History {
        start: 0,
        values,
        exog: vec![Exog {
            name: "p95_latency_ms".into(),
            values: lat,
        }],
    };
    let worst = compare(&h, &py);
    eprintln!("largest AR/MA difference: {worst:.5}");
}
