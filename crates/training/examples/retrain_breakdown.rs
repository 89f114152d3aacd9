//! Where a retrain's time goes: simulate `ROWS` rows (default 100,000) with the project's
//! training-data simulator, run [`retrain`] on them (no live models, nothing promoted) and
//! print each step's wall time.
//!
//! `cargo run -p autoscaler-training --example retrain_breakdown [-- ROWS [LIVE_DIR]]`
//!
//! (the `dev` profile is the optimised one the tests and the demo use). With `LIVE_DIR` the
//! live models there are scored on the recent slice too, as a scheduled retrain does.

use std::path::PathBuf;
use std::time::Instant;

use autoscaler_models::TrainParams;
use autoscaler_simulator::TrainingDataConfig;
use autoscaler_training::learning::{
    retrain, RetrainConfig, DEFAULT_HOLDOUT_FRACTION, DEFAULT_PROMOTION_MARGIN, DEFAULT_PSI_ALARM,
    DEFAULT_RECALL_DROP_ALARM, DEFAULT_VALIDATION_FRACTION, MIN_RETRAIN_ROWS,
};
use autoscaler_training::{
    simulated_csv, DataInput, SlaSpec, StepTimes, DEFAULT_HORIZON, DEFAULT_TARGET_RECALL,
};

/// Rows simulated and trained on by default.
const DEFAULT_ROWS: usize = 100_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().map_or(Ok(DEFAULT_ROWS), |a| a.parse())?;
    let live = args.next().map(PathBuf::from);
    let dir = std::env::temp_dir().join(format!("autoscaler-retrain-breakdown-{rows}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;

    let base = TrainingDataConfig::default();
    let per_run = (f64::from(base.days_per_run) * 86_400.0 / base.poll_interval_secs) as usize;
    let sim = TrainingDataConfig {
        runs: rows.div_ceil(per_run.max(1)),
        ..base
    };
    let csv = dir.join("simulated.csv");
    let t0 = Instant::now();
    let written = simulated_csv(&sim, &csv)?;
    println!(
        "simulated {written} rows ({} runs) in {:.1}s -> {}",
        sim.runs,
        t0.elapsed().as_secs_f64(),
        csv.display()
    );

    let cfg = RetrainConfig {
        data: vec![DataInput {
            path: csv,
            pattern: None,
        }],
        live_dir: live.unwrap_or_else(|| dir.join("no-live-models")),
        candidates_dir: dir.join("candidates"),
        window_rows: rows,
        min_rows: MIN_RETRAIN_ROWS,
        holdout_fraction: DEFAULT_HOLDOUT_FRACTION,
        validation_fraction: DEFAULT_VALIDATION_FRACTION,
        horizon: DEFAULT_HORIZON,
        sla: SlaSpec::Global(sim.sla_p95_ms),
        params: TrainParams::default(),
        target_recall: DEFAULT_TARGET_RECALL,
        margin: DEFAULT_PROMOTION_MARGIN,
        psi_alarm: DEFAULT_PSI_ALARM,
        recall_drop: DEFAULT_RECALL_DROP_ALARM,
        promote: false,
        created_at: "2025-01-01T00:00:00Z".into(),
    };
    let mut steps = StepTimes::new();
    let start = Instant::now();
    let out = retrain(&cfg, &mut |s: &str| steps.step(s));
    let total = start.elapsed().as_secs_f64();
    let out = out?;
    println!("{:<56} {:>8}", "step", "seconds");
    for (name, d) in steps.durations() {
        println!("{name:<56} {:>8.2}", d.as_secs_f64());
    }
    println!("{:<56} {total:>8.2}", "total (retrain)");
    let (train, val, recent) = out.card.rows;
    println!(
        "window {} rows: train {train}, validation {val}, recent {recent}; candidate mean F1 on \
         the recent slice {:.3}",
        out.card.window_rows, out.card.decision.candidate_f1
    );
    Ok(())
}
