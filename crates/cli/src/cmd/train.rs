//! `autoscaler train`: train the models from metrics CSVs and save their artefacts.

use std::path::PathBuf;

use autoscaler_contract::DEFAULT_SLA_P95_MS;
use autoscaler_models::{
    TrainParams, DEFAULT_LR_ALPHA, DEFAULT_LR_MAX_ITERATIONS, DEFAULT_MODELS_DIR,
    DEFAULT_RF_MAX_DEPTH, DEFAULT_RF_TREES, DEFAULT_SEED, DEFAULT_XGB_ETA, DEFAULT_XGB_MAX_DEPTH,
    DEFAULT_XGB_ROUNDS,
};
use autoscaler_training::{
    train_models, train_steps, CalibrationMethod, SlaSpec, SplitConfig, SplitKind, TrainConfig,
    DEFAULT_CALIBRATION, DEFAULT_HORIZON, DEFAULT_TARGET_RECALL, DEFAULT_TEST_FRACTION,
    DEFAULT_VAL_FRACTION,
};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::opts::data::{DataOpts, ModelChoice};
use crate::report::steps_bar;

/// `--rf-max-depth 0`: trees of unlimited depth.
pub const UNLIMITED_DEPTH: u16 = 0;

/// `autoscaler train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// The data.
    #[command(flatten)]
    pub data: DataOpts,
    /// Output directory: `<out>/<model>/{model.json,metadata.json}`.
    #[arg(long, env = "AUTOSCALER_MODELS_OUT", default_value = DEFAULT_MODELS_DIR)]
    pub out: PathBuf,
    /// Models to train.
    #[arg(
        long,
        env = "AUTOSCALER_TRAIN_MODEL",
        value_enum,
        default_value = "all"
    )]
    pub model: ModelChoice,
    /// Label horizon: a violation in any of the next H polls (never the current one).
    #[arg(long, env = "AUTOSCALER_HORIZON", default_value_t = DEFAULT_HORIZON)]
    pub horizon: usize,
    /// Split: by time (purged at the cut-offs), by run, or by load pattern. Never by row.
    #[arg(long, env = "AUTOSCALER_SPLIT", default_value_t = SplitKind::Time)]
    pub split: SplitKind,
    /// Runs (by-run) or patterns (by-pattern) to test on; default: chosen with the seed.
    #[arg(long, env = "AUTOSCALER_TEST_GROUPS", value_delimiter = ',')]
    pub test_groups: Vec<String>,
    /// Fraction for validation (rows in time, or groups).
    #[arg(long, env = "AUTOSCALER_VAL_FRACTION", default_value_t = DEFAULT_VAL_FRACTION)]
    pub val_fraction: f64,
    /// Fraction for test (rows in time, or groups).
    #[arg(long, env = "AUTOSCALER_TEST_FRACTION", default_value_t = DEFAULT_TEST_FRACTION)]
    pub test_fraction: f64,
    /// Seed of every random choice (split groups, XGBoost, forest bootstraps).
    #[arg(long, env = "AUTOSCALER_SEED", default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// The decision threshold is the highest whose validation recall reaches this.
    #[arg(long, env = "AUTOSCALER_TARGET_RECALL", default_value_t = DEFAULT_TARGET_RECALL)]
    pub target_recall: f64,
    /// How the probabilities are calibrated on the validation split: platt, isotonic or none.
    #[arg(long, env = "AUTOSCALER_CALIBRATION", default_value_t = DEFAULT_CALIBRATION)]
    pub calibration: CalibrationMethod,
    /// Input features (comma-separated); default: the ten contract features, rps_per_replica
    /// and cpu_per_replica_pct (and their rolling means) when every row has `replicas`, lags
    /// of the last 5 polls and rolling mean/std/slope of rps, p95, p99 and CPU, and
    /// `service=<name>` when several services share the models.
    #[arg(long, env = "AUTOSCALER_FEATURES", value_delimiter = ',')]
    pub features: Vec<String>,
    /// `created_at` in the metadata (RFC 3339); default now. Fix it for byte-identical artefacts.
    #[arg(long, env = "AUTOSCALER_CREATED_AT")]
    pub created_at: Option<String>,
    /// XGBoost boosting rounds.
    #[arg(long, env = "AUTOSCALER_XGB_ROUNDS", default_value_t = DEFAULT_XGB_ROUNDS)]
    pub xgb_rounds: u32,
    /// XGBoost maximum tree depth.
    #[arg(long, env = "AUTOSCALER_XGB_MAX_DEPTH", default_value_t = DEFAULT_XGB_MAX_DEPTH)]
    pub xgb_max_depth: u32,
    /// XGBoost learning rate.
    #[arg(long, env = "AUTOSCALER_XGB_ETA", default_value_t = DEFAULT_XGB_ETA)]
    pub xgb_eta: f64,
    /// Random-forest trees.
    #[arg(long, env = "AUTOSCALER_RF_TREES", default_value_t = DEFAULT_RF_TREES)]
    pub rf_trees: usize,
    /// Random-forest maximum depth (0 = unlimited).
    #[arg(long, env = "AUTOSCALER_RF_MAX_DEPTH", default_value_t = DEFAULT_RF_MAX_DEPTH)]
    pub rf_max_depth: u16,
    /// Logistic-regression L2 penalty.
    #[arg(long, env = "AUTOSCALER_LR_ALPHA", default_value_t = DEFAULT_LR_ALPHA)]
    pub lr_alpha: f64,
    /// Logistic-regression Newton iterations (at most).
    #[arg(long, env = "AUTOSCALER_LR_MAX_ITERATIONS", default_value_t = DEFAULT_LR_MAX_ITERATIONS)]
    pub lr_max_iterations: u64,
    /// Do not re-weight the classes (by default violations count as much as the rest).
    #[arg(long, env = "AUTOSCALER_NO_CLASS_WEIGHTS")]
    pub no_class_weights: bool,
}

impl TrainArgs {
    /// The library's configuration.
    pub fn config(&self) -> anyhow::Result<TrainConfig> {
        let params = TrainParams {
            seed: self.seed,
            xgb_rounds: self.xgb_rounds,
            xgb_max_depth: self.xgb_max_depth,
            xgb_eta: self.xgb_eta,
            rf_trees: self.rf_trees,
            rf_max_depth: (self.rf_max_depth != UNLIMITED_DEPTH).then_some(self.rf_max_depth),
            lr_alpha: self.lr_alpha,
            lr_max_iterations: self.lr_max_iterations,
            class_weighting: !self.no_class_weights,
        };
        Ok(TrainConfig {
            kinds: self.model.kinds(),
            horizon: self.horizon,
            sla: self
                .data
                .sla()?
                .unwrap_or(SlaSpec::Global(DEFAULT_SLA_P95_MS)),
            split: SplitConfig {
                kind: self.split,
                val_fraction: self.val_fraction,
                test_fraction: self.test_fraction,
                test_groups: self.test_groups.clone(),
                seed: self.seed,
            },
            params,
            target_recall: self.target_recall,
            features: (!self.features.is_empty()).then(|| self.features.clone()),
            use_csv_labels: self.data.use_csv_labels,
            created_at: self
                .created_at
                .clone()
                .unwrap_or_else(|| chrono::Utc::now().to_rfc3339()),
            calibration: self.calibration,
        })
    }
}

/// Train, save and print the test-split scores.
pub async fn run(a: TrainArgs, _shutdown: CancellationToken) -> anyhow::Result<()> {
    let cfg = a.config()?;
    let loaded = a.data.load()?;
    let b = steps_bar(train_steps(cfg.kinds.len()));
    let report = train_models(&loaded, &cfg, &a.out, &mut |step: &str| {
        b.set_message(step.to_string());
        b.inc(1);
    });
    b.finish_and_clear();
    let report = report?;
    println!(
        "{} rows read ({} bad rows skipped), {} labelled; split {}",
        report.rows, report.bad_rows, report.labelled, report.split
    );
    println!(
        "train {} rows ({} violations), validation {}, test {}, purged {}; features: {}",
        report.train_rows,
        report.train_positives,
        report.val_rows,
        report.test_rows,
        report.purged,
        report.feature_names.join(",")
    );
    println!(
        "{:<20} {:>9} {:>9} {:>7} {:>6} {:>8} {:>7} {:>6}   (test split)",
        "model", "threshold", "precision", "recall", "F1", "ROC-AUC", "PR-AUC", "Brier"
    );
    for m in &report.models {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.3}"));
        match &m.test {
            Some(t) => println!(
                "{:<20} {:>9.3} {:>9.3} {:>7.3} {:>6.3} {:>8} {:>7} {:>6}",
                m.kind.as_str(),
                m.threshold,
                t.precision,
                t.recall,
                t.f1,
                opt(t.roc_auc),
                opt(t.pr_auc),
                opt(t.brier)
            ),
            None => println!(
                "{:<20} {:>9.3}  (no test rows)",
                m.kind.as_str(),
                m.threshold
            ),
        }
    }
    if let Some(e) = &report.ensemble {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.3}"));
        if let Some(t) = &e.test {
            println!(
                "{:<20} {:>9.3} {:>9.3} {:>7.3} {:>6.3} {:>8} {:>7} {:>6}",
                "vote: weighted",
                e.weighted_threshold,
                t.precision,
                t.recall,
                t.f1,
                opt(t.roc_auc),
                opt(t.pr_auc),
                opt(t.brier)
            );
        }
        let w: Vec<String> = e
            .weights
            .iter()
            .map(|(k, w)| format!("{k}={w:.3}"))
            .collect();
        println!(
            "weighted rule: weights {} ({})",
            w.join(","),
            e.weights_source
        );
    }
    if report.without_history > 0 {
        println!(
            "{} labelled rows left out: fewer polls of their service than the history features need",
            report.without_history
        );
    }
    println!("artefacts in {}", a.out.display());
    Ok(())
}
