//! # Training and evaluation from metrics CSVs
//!
//! What `autoscaler train` and `autoscaler evaluate` do, as a library:
//!
//! 1. [`load_csvs`]: read the Sock Shop metrics CSV (plus optional `replicas`, `run`,
//!    `pattern` columns). Empty, `nan` and `null` are missing values (`None`), never 0. A bad
//!    row is reported with its file and line, skipped or fatal ([`BadRows`]).
//! 2. [`derive_labels`]: violation = p95 above the service's SLA (or an error rate of at least
//!    50 %) in any of the next `horizon` polls of the same service and run, **never the current
//!    row**. The CSV's `sla_violated` is ignored unless asked for.
//! 3. [`split()`]: by time (with purging at the cut-offs), by run or by pattern; never a random
//!    row split.
//! 4. [`train_models`]: missing values imputed with the training split's medians (XGBoost
//!    keeps them missing: it learns a default direction), class weights, a threshold chosen on
//!    the validation split for a target recall, scores on the test split, artefacts with their
//!    metadata in `models/<model>/`.
//! 5. [`evaluate`]: the saved models and the three voting rules on new data: accuracy,
//!    precision, recall, F1, ROC-AUC, PR-AUC, confusion counts; [`write_plot`] draws the ROC and
//!    precision/recall curves (SVG).
#![deny(missing_docs)]

use std::path::PathBuf;

mod data;
mod evaluate;
mod features;
mod labels;
pub mod learning;
pub mod metrics;
mod plot;
mod split;
mod timing;
mod train;

pub use data::{load_csvs, raw_row, BadRow, BadRows, DataInput, Loaded, Record};
pub use evaluate::{evaluate, EvalConfig, EvalReport, EvalRow};
pub use features::{default_features, feature_rows, DEFAULT_TIME_OF_DAY};
pub use labels::{derive_labels, groups, label_window_end, SlaSpec};
pub use metrics::Metrics;
pub use plot::write_plot;
pub use split::{
    split, Split, SplitConfig, SplitKind, DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION,
};
pub use timing::StepTimes;
pub use train::{
    simulated_csv, train_candidates, train_models, train_steps, CalibrationMethod, EnsembleSummary,
    Imputer, ModelSummary, TrainConfig, TrainReport, Trained, DEFAULT_CALIBRATION, DEFAULT_HORIZON,
    DEFAULT_TARGET_RECALL, ENSEMBLE_KEY, RELIABILITY_BINS,
};

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    /// A setting or input that cannot be used.
    #[error("{0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("I/O error on {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A CSV that cannot be read at all.
    #[error("{}: {reason}", .path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A bad row, when bad rows are fatal.
    #[error("bad row {0}")]
    BadRow(BadRow),
    /// The models crate failed.
    #[error(transparent)]
    Model(#[from] autoscaler_models::ModelError),
    /// Drawing the plot failed.
    #[error("plotting {}: {reason}", .path.display())]
    Plot {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}
