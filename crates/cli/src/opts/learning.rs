//! Options shared by the learning loop's `retrain` and `drift`: the rolling window of labelled
//! rows, the live models, and the drift thresholds.

use std::path::PathBuf;

use autoscaler_contract::DEFAULT_SLA_P95_MS;
use autoscaler_models::{TrainParams, DEFAULT_MODELS_DIR};
use autoscaler_training::learning::{
    RetrainConfig, DEFAULT_CANDIDATES_DIR, DEFAULT_HOLDOUT_FRACTION, DEFAULT_OUTCOMES_CSV,
    DEFAULT_PROMOTION_MARGIN, DEFAULT_PSI_ALARM, DEFAULT_RECALL_DROP_ALARM,
    DEFAULT_VALIDATION_FRACTION, DEFAULT_WINDOW_ROWS, MIN_RETRAIN_ROWS,
};
use autoscaler_training::{DataInput, SlaSpec, DEFAULT_HORIZON, DEFAULT_TARGET_RECALL};
use clap::Args;

/// The window and the live models.
#[derive(Debug, Clone, Args)]
pub struct WindowOpts {
    /// Labelled rows: `outcomes.csv` files (written by `autoscaler outcomes`; their
    /// `sla_violated` is the label) and/or metrics CSVs (labels derived, future-only).
    #[arg(long, env = "AUTOSCALER_LEARNING_DATA", value_delimiter = ',', num_args = 1..,
        default_value = DEFAULT_OUTCOMES_CSV)]
    pub data: Vec<String>,
    /// The live models (`<live>/<model>/`, and `card.json` once a candidate was promoted).
    #[arg(long, env = "MODELS_DIR", default_value = DEFAULT_MODELS_DIR)]
    pub live: PathBuf,
    /// Most recent rows kept in the window.
    #[arg(long, env = "AUTOSCALER_WINDOW_ROWS", default_value_t = DEFAULT_WINDOW_ROWS)]
    pub window_rows: usize,
    /// Share of the window (the most recent rows) held out to compare candidate and live, and
    /// to check drift on.
    #[arg(long, env = "AUTOSCALER_HOLDOUT_FRACTION", default_value_t = DEFAULT_HOLDOUT_FRACTION)]
    pub holdout_fraction: f64,
    /// Label horizon of metrics CSVs, polls.
    #[arg(long, env = "AUTOSCALER_HORIZON", default_value_t = DEFAULT_HORIZON)]
    pub horizon: usize,
    /// The SLA on p95 latency, ms (labels of metrics CSVs).
    #[arg(long = "sla-p95-ms", env = "AUTOSCALER_SLA_P95_MS", default_value_t = DEFAULT_SLA_P95_MS)]
    pub sla_p95_ms: f64,
    /// Per-service SLAs (`service=ms` lines or a JSON object); wins over --sla-p95-ms.
    #[arg(long, env = "AUTOSCALER_SLA_FILE")]
    pub sla_file: Option<PathBuf>,
    /// A feature whose PSI on the recent slice exceeds this raises the drift alarm.
    #[arg(long, env = "AUTOSCALER_PSI_ALARM", default_value_t = DEFAULT_PSI_ALARM)]
    pub psi_alarm: f64,
    /// A live model whose recall on the recent slice is this far below its validation recall
    /// raises the drift alarm.
    #[arg(long, env = "AUTOSCALER_RECALL_DROP_ALARM", default_value_t = DEFAULT_RECALL_DROP_ALARM)]
    pub recall_drop: f64,
}

/// What a candidate is trained and promoted with.
#[derive(Debug, Clone, Args)]
pub struct CandidateOpts {
    /// Where candidates go (`<candidates>/<created_at>/`, with `card.json` and `shadow/`).
    #[arg(long, env = "AUTOSCALER_CANDIDATES_DIR", default_value = DEFAULT_CANDIDATES_DIR)]
    pub candidates: PathBuf,
    /// Fewest labelled rows a retrain accepts.
    #[arg(long, env = "AUTOSCALER_MIN_RETRAIN_ROWS", default_value_t = MIN_RETRAIN_ROWS)]
    pub min_rows: usize,
    /// Share of the window (before the held-out slice) for validation: calibration,
    /// thresholds, the weighted rule's weights.
    #[arg(long, env = "AUTOSCALER_VAL_FRACTION", default_value_t = DEFAULT_VALIDATION_FRACTION)]
    pub val_fraction: f64,
    /// Thresholds: the highest whose validation recall reaches this.
    #[arg(long, env = "AUTOSCALER_TARGET_RECALL", default_value_t = DEFAULT_TARGET_RECALL)]
    pub target_recall: f64,
    /// Promote only when the candidate's mean F1 on the recent slice beats the live models' by
    /// this much.
    #[arg(long, env = "AUTOSCALER_PROMOTION_MARGIN", default_value_t = DEFAULT_PROMOTION_MARGIN)]
    pub margin: f64,
    /// Never promote: write the candidate and its card as a report only.
    #[arg(long, env = "AUTOSCALER_NO_PROMOTE")]
    pub no_promote: bool,
    /// Seed of the models' random choices.
    #[arg(long, env = "AUTOSCALER_SEED", default_value_t = autoscaler_models::DEFAULT_SEED)]
    pub seed: u64,
}

impl WindowOpts {
    /// The SLA asked for.
    pub fn sla(&self) -> anyhow::Result<SlaSpec> {
        if let Some(f) = &self.sla_file {
            return Ok(SlaSpec::from_file(f)?);
        }
        if !(self.sla_p95_ms.is_finite() && self.sla_p95_ms > 0.0) {
            anyhow::bail!("--sla-p95-ms must be > 0, got {}", self.sla_p95_ms);
        }
        Ok(SlaSpec::Global(self.sla_p95_ms))
    }

    /// The library's configuration (`candidate` = `None` for a drift check: nothing trained).
    pub fn config(
        &self,
        candidate: Option<&CandidateOpts>,
        created_at: String,
    ) -> anyhow::Result<RetrainConfig> {
        let mut problems = Vec::new();
        if !(self.holdout_fraction > 0.0 && self.holdout_fraction < 1.0) {
            problems.push(format!(
                "--holdout-fraction must be in (0, 1), got {}",
                self.holdout_fraction
            ));
        }
        if self.window_rows == 0 {
            problems.push("--window-rows must be at least 1".to_string());
        }
        let c = candidate.cloned();
        if let Some(c) = &c {
            if !(c.val_fraction > 0.0 && c.val_fraction + self.holdout_fraction < 1.0) {
                problems.push(format!(
                    "--val-fraction must be > 0 and leave training rows (with --holdout-fraction {}), got {}",
                    self.holdout_fraction, c.val_fraction
                ));
            }
        }
        crate::exit::ConfigError::check(problems)?;
        let c = c.unwrap_or(CandidateOpts {
            candidates: PathBuf::from(DEFAULT_CANDIDATES_DIR),
            min_rows: MIN_RETRAIN_ROWS,
            val_fraction: DEFAULT_VALIDATION_FRACTION,
            target_recall: DEFAULT_TARGET_RECALL,
            margin: DEFAULT_PROMOTION_MARGIN,
            no_promote: true,
            seed: autoscaler_models::DEFAULT_SEED,
        });
        Ok(RetrainConfig {
            data: self.data.iter().map(|s| DataInput::parse(s)).collect(),
            live_dir: self.live.clone(),
            candidates_dir: c.candidates.clone(),
            window_rows: self.window_rows,
            min_rows: c.min_rows,
            holdout_fraction: self.holdout_fraction,
            validation_fraction: c.val_fraction,
            horizon: self.horizon,
            sla: self.sla()?,
            params: TrainParams {
                seed: c.seed,
                ..TrainParams::default()
            },
            target_recall: c.target_recall,
            margin: c.margin,
            psi_alarm: self.psi_alarm,
            recall_drop: self.recall_drop,
            promote: !c.no_promote,
            created_at,
        })
    }
}
