//! Calibration of the simulator's laws against the peer project's GKE Sock Shop runs:
//! `cargo run --release -p autoscaler-lab --example calibrate [-- DIR]`, `DIR` defaulting to
//! `../shared/peer-data/sockshop-ml-autoscaler/kafka-structured/data/gke/experiments` (read at
//! evaluation time; the data has no licence and is never copied into the repository).
//!
//! For every run and service with traffic it fits CPU = idle + k·rps and 1/p95 = a − b·rps
//! ([`autoscaler_lab::calibration::fit_laws`]) and prints R² and the median relative error of
//! the predicted p95.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use autoscaler_lab::calibration::fit_laws;

fn metrics_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            metrics_files(&p, out);
        } else if p.file_name().is_some_and(|n| n == "metrics.csv") {
            out.push(p);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(
                "../shared/peer-data/sockshop-ml-autoscaler/kafka-structured/data/gke/experiments",
            )
        });
    let mut files = Vec::new();
    metrics_files(&dir, &mut files);
    if files.is_empty() {
        return Err(format!("no metrics.csv under {}", dir.display()).into());
    }
    println!(
        "{:<28} {:<11} {:>6} {:>8} {:>9} {:>7} {:>9} {:>7}",
        "run", "service", "points", "P0 ms", "cap rps", "lat R²", "p95 err", "cpu R²"
    );
    let mut lat_r2 = Vec::new();
    let mut errs = Vec::new();
    let mut cpu_r2 = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f)?;
        let mut by_service: BTreeMap<String, Vec<(f64, f64, f64)>> = BTreeMap::new();
        for line in text.lines().skip(1) {
            let c: Vec<&str> = line.split(',').collect();
            if c.len() < 13 {
                continue;
            }
            let num = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
            if let (Some(r), Some(p), Some(cpu)) = (num(c[2]), num(c[5]), num(c[7])) {
                if r > 0.0 {
                    by_service
                        .entry(c[1].to_string())
                        .or_default()
                        .push((r, p, cpu));
                }
            }
        }
        let run = f
            .parent()
            .and_then(|p| p.strip_prefix(&dir).ok())
            .map_or_else(|| f.display().to_string(), |p| p.display().to_string());
        for (svc, pts) in by_service {
            let Some(fit) = fit_laws(&pts) else { continue };
            println!(
                "{:<28} {:<11} {:>6} {:>8.2} {:>9.1} {:>7.3} {:>8.1}% {:>7.3}",
                run,
                svc,
                fit.points,
                fit.p0_ms,
                fit.capacity_rps,
                fit.latency_r2,
                100.0 * fit.latency_median_rel_err,
                fit.cpu_r2
            );
            lat_r2.push(fit.latency_r2);
            errs.push(fit.latency_median_rel_err);
            cpu_r2.push(fit.cpu_r2);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "median over {} (run, service) fits: latency R² {:.3}, p95 median relative error {:.1} %, CPU R² {:.3}",
        lat_r2.len(),
        median(&mut lat_r2),
        100.0 * median(&mut errs),
        median(&mut cpu_r2)
    );
    Ok(())
}
