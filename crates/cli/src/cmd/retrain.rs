//! `autoscaler retrain`: the learning loop's candidate step — train a candidate on the rolling
//! window, score it and the live models on the most recent held-out slice (after all its
//! training data), check drift, log the candidate's shadow votes, and promote it only when it
//! beats the live models by the margin (else its card is the report).
//!
//! `--schedule` (or `RETRAIN_INTERVAL_MIN` set) repeats it every interval, checking drift every
//! `--drift-check-min` in between: a drift alarm retrains at once. With `--predictions`, each
//! round first refreshes the outcomes from the prediction logs (the closed loop: logs →
//! outcomes → retrain). Each round is resumable: it reads everything from files and writes its
//! results atomically; a failed round (too few rows, one class only) leaves the live models
//! untouched and the schedule goes on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use autoscaler_training::StepTimes;

use anyhow::Context;
use autoscaler_training::learning::{
    check_drift, headline, interval, outcomes, prediction_files, read_predictions, retrain,
    retrain_steps, summary, write_outcomes, RetrainConfig, DEFAULT_DRIFT_CHECK_MIN,
    DEFAULT_RETRAIN_INTERVAL_MIN,
};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::opts::learning::{CandidateOpts, WindowOpts};
use crate::report::steps_bar;

/// `autoscaler retrain`.
#[derive(Debug, Clone, Args)]
pub struct RetrainArgs {
    /// The window and the live models.
    #[command(flatten)]
    pub window: WindowOpts,
    /// The candidate.
    #[command(flatten)]
    pub candidate: CandidateOpts,
    /// Refresh the outcomes from this directory's prediction logs before each round (written
    /// beside the first `--data` file, which should then be its `outcomes.csv`).
    #[arg(long, env = "AUTOSCALER_PREDICTIONS_DIR")]
    pub predictions: Option<PathBuf>,
    /// Repeat every `--interval-min` minutes until stopped.
    #[arg(long)]
    pub schedule: bool,
    /// Minutes between two scheduled retrains; setting `RETRAIN_INTERVAL_MIN` implies
    /// `--schedule`.
    #[arg(long, env = "RETRAIN_INTERVAL_MIN", default_value_t = DEFAULT_RETRAIN_INTERVAL_MIN)]
    pub interval_min: u64,
    /// Minutes between two drift checks of the scheduled loop.
    #[arg(long, env = "AUTOSCALER_DRIFT_CHECK_MIN", default_value_t = DEFAULT_DRIFT_CHECK_MIN)]
    pub drift_check_min: u64,
    /// `created_at` of the candidate (RFC 3339; also its directory name); default now.
    #[arg(long, env = "AUTOSCALER_CREATED_AT")]
    pub created_at: Option<String>,
    /// Print the round's headline as JSON.
    #[arg(long)]
    pub json: bool,
}

fn refresh_outcomes(predictions: &Path, cfg: &RetrainConfig) -> anyhow::Result<()> {
    let out = cfg
        .data
        .first()
        .and_then(|d| d.path.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let log = read_predictions(&prediction_files(predictions)?)?;
    let o = outcomes(&log, None, &cfg.sla, cfg.horizon)?;
    let (v, _) = write_outcomes(&o, &out)?;
    tracing::info!(vectors = o.vectors.len(), pending = ?o.pending, path = %v.display(),
        "outcomes refreshed");
    Ok(())
}

async fn one_round(a: &RetrainArgs) -> anyhow::Result<()> {
    let created_at = a
        .created_at
        .clone()
        .unwrap_or_else(|| chrono::Utc::now().to_rfc3339());
    let cfg = a.window.config(Some(&a.candidate), created_at)?;
    let predictions = a.predictions.clone();
    let json = a.json;
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        if let Some(p) = &predictions {
            refresh_outcomes(p, &cfg).context("refreshing the outcomes")?;
        }
        let bar = steps_bar(retrain_steps());
        // Where the time goes: each step's duration, printed at the end.
        let mut steps = StepTimes::new();
        let out = retrain(&cfg, &mut |step: &str| {
            bar.set_message(step.to_string());
            bar.inc(1);
            steps.step(step);
        });
        bar.finish_and_clear();
        eprintln!("time: {}", steps.line());
        let out = out?;
        if json {
            println!("{}", serde_json::to_string_pretty(&headline(&out))?);
        } else {
            println!("{}", summary(&out));
        }
        Ok(())
    })
    .await?
}

/// Retrain once, or on the schedule until stopped.
pub async fn run(a: RetrainArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let scheduled = a.schedule || std::env::var_os("RETRAIN_INTERVAL_MIN").is_some();
    if !scheduled {
        return one_round(&a).await;
    }
    let every = interval(a.interval_min);
    let check = interval(a.drift_check_min).min(every);
    loop {
        if let Err(e) = one_round(&a).await {
            // A round that cannot train leaves the live models as they are; the schedule goes on.
            eprintln!("retrain round failed (live models untouched): {e:#}");
        }
        let next = Instant::now() + every;
        loop {
            let wait = check.min(next.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
            }
            if Instant::now() >= next {
                break;
            }
            let cfg = a.window.config(None, chrono::Utc::now().to_rfc3339())?;
            match tokio::task::spawn_blocking(move || check_drift(&cfg)).await? {
                Ok(r) if r.alarm => {
                    eprintln!("DRIFT ALARM: {} — retraining now", r.reasons.join("; "));
                    break;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "drift check failed"),
            }
        }
    }
}
