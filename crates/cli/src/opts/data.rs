//! Input data options shared by `train` and `evaluate`, and the choice of models.

use std::path::PathBuf;

use autoscaler_contract::ModelKind;
use autoscaler_training::{load_csvs, BadRows, DataInput, Loaded, SlaSpec};
use clap::{Args, ValueEnum};

/// Which models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ModelChoice {
    /// All three.
    All,
    /// XGBoost.
    Xgboost,
    /// Random forest.
    RandomForest,
    /// Logistic regression.
    LogisticRegression,
}

impl ModelChoice {
    /// The models chosen.
    pub fn kinds(self) -> Vec<ModelKind> {
        match self {
            ModelChoice::All => ModelKind::ALL.to_vec(),
            ModelChoice::Xgboost => vec![ModelKind::Xgboost],
            ModelChoice::RandomForest => vec![ModelKind::RandomForest],
            ModelChoice::LogisticRegression => vec![ModelKind::LogisticRegression],
        }
    }
}

/// What to do with an unreadable row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BadRowsArg {
    /// Report it (file:line) and skip it.
    Skip,
    /// Stop.
    Fail,
}

/// Input data options shared by `train` and `evaluate`.
#[derive(Debug, Clone, Args)]
pub struct DataOpts {
    /// Metrics CSVs (`[PATTERN=]FILE`; the prefix tags a file without a `pattern` column).
    /// Each file is one run unless a `run` column says otherwise.
    #[arg(long, env = "AUTOSCALER_DATA", value_delimiter = ',', num_args = 1.., required = true)]
    pub data: Vec<String>,
    /// Unreadable rows: reported with file and line, then skipped or fatal.
    #[arg(long, env = "AUTOSCALER_BAD_ROWS", value_enum, default_value = "skip")]
    pub bad_rows: BadRowsArg,
    /// Use the CSV's `sla_violated` column instead of re-deriving labels from p95.
    #[arg(long, env = "AUTOSCALER_USE_CSV_LABELS")]
    pub use_csv_labels: bool,
    /// The SLA on p95 latency, ms, for every service (default 250 when training; the models'
    /// own when evaluating).
    #[arg(long = "sla-p95-ms", env = "AUTOSCALER_SLA_P95_MS")]
    pub sla_p95_ms: Option<f64>,
    /// Per-service SLAs: `service=ms` lines (`*=ms` for the rest) or a JSON object. Wins over
    /// --sla-p95-ms.
    #[arg(long, env = "AUTOSCALER_SLA_FILE")]
    pub sla_file: Option<PathBuf>,
}

impl DataOpts {
    /// Read the CSVs, reporting the first bad rows on stderr.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let inputs: Vec<DataInput> = self.data.iter().map(|s| DataInput::parse(s)).collect();
        let policy = match self.bad_rows {
            BadRowsArg::Skip => BadRows::Skip,
            BadRowsArg::Fail => BadRows::Fail,
        };
        let loaded = load_csvs(&inputs, policy)?;
        for bad in loaded.bad_rows.iter().take(20) {
            eprintln!("skipped bad row {bad}");
        }
        if loaded.bad_rows.len() > 20 {
            eprintln!("… and {} more bad rows", loaded.bad_rows.len() - 20);
        }
        Ok(loaded)
    }

    /// The SLA asked for, if any: the file's, else `--sla-p95-ms`.
    pub fn sla(&self) -> anyhow::Result<Option<SlaSpec>> {
        if let Some(f) = &self.sla_file {
            return Ok(Some(SlaSpec::from_file(f)?));
        }
        match self.sla_p95_ms {
            Some(ms) if !(ms.is_finite() && ms > 0.0) => {
                anyhow::bail!("--sla-p95-ms must be > 0, got {ms}")
            }
            Some(ms) => Ok(Some(SlaSpec::Global(ms))),
            None => Ok(None),
        }
    }
}
