//! `autoscaler train`, `autoscaler evaluate` and `autoscaler training-data`: thin glue over
//! `autoscaler-training`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use autoscaler_contract::ModelKind;
use autoscaler_models::TrainParams;
use autoscaler_simulator::TrainingDataConfig;
use autoscaler_training::{
    evaluate, load_csvs, train_models, write_plot, BadRows, DataInput, EvalConfig, Loaded, SlaSpec,
    SplitConfig, SplitKind, TrainConfig, DEFAULT_TARGET_RECALL,
};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

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
    fn kinds(self) -> Vec<ModelKind> {
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
    fn load(&self) -> anyhow::Result<Loaded> {
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

    fn sla(&self) -> anyhow::Result<Option<SlaSpec>> {
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

/// `autoscaler train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataOpts,
    /// Output directory: `<out>/<model>/{model.json,metadata.json}`.
    #[arg(long, env = "AUTOSCALER_MODELS_OUT", default_value = "models")]
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
    #[arg(long, env = "AUTOSCALER_HORIZON", default_value_t = 2)]
    pub horizon: usize,
    /// Split: by time (purged at the cut-offs), by run, or by load pattern. Never by row.
    #[arg(long, env = "AUTOSCALER_SPLIT", default_value = "time")]
    pub split: SplitKind,
    /// Runs (by-run) or patterns (by-pattern) to test on; default: chosen with the seed.
    #[arg(long, env = "AUTOSCALER_TEST_GROUPS", value_delimiter = ',')]
    pub test_groups: Vec<String>,
    /// Fraction for validation (rows in time, or groups).
    #[arg(long, env = "AUTOSCALER_VAL_FRACTION", default_value_t = 0.2)]
    pub val_fraction: f64,
    /// Fraction for test (rows in time, or groups).
    #[arg(long, env = "AUTOSCALER_TEST_FRACTION", default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Seed of every random choice (split groups, XGBoost, forest bootstraps).
    #[arg(long, env = "AUTOSCALER_SEED", default_value_t = 42)]
    pub seed: u64,
    /// The decision threshold is the highest whose validation recall reaches this.
    #[arg(long, env = "AUTOSCALER_TARGET_RECALL", default_value_t = DEFAULT_TARGET_RECALL)]
    pub target_recall: f64,
    /// Input features (comma-separated); default: the ten contract features, plus
    /// rps_per_replica and cpu_per_replica_pct when every row has `replicas`.
    #[arg(long, env = "AUTOSCALER_FEATURES", value_delimiter = ',')]
    pub features: Vec<String>,
    /// `created_at` in the metadata (RFC 3339); default now. Fix it for byte-identical artefacts.
    #[arg(long, env = "AUTOSCALER_CREATED_AT")]
    pub created_at: Option<String>,
    /// XGBoost boosting rounds.
    #[arg(long, env = "AUTOSCALER_XGB_ROUNDS", default_value_t = 100)]
    pub xgb_rounds: u32,
    /// XGBoost maximum tree depth.
    #[arg(long, env = "AUTOSCALER_XGB_MAX_DEPTH", default_value_t = 4)]
    pub xgb_max_depth: u32,
    /// XGBoost learning rate.
    #[arg(long, env = "AUTOSCALER_XGB_ETA", default_value_t = 0.1)]
    pub xgb_eta: f64,
    /// Random-forest trees.
    #[arg(long, env = "AUTOSCALER_RF_TREES", default_value_t = 100)]
    pub rf_trees: usize,
    /// Random-forest maximum depth (0 = unlimited).
    #[arg(long, env = "AUTOSCALER_RF_MAX_DEPTH", default_value_t = 8)]
    pub rf_max_depth: u16,
    /// Logistic-regression L2 penalty.
    #[arg(long, env = "AUTOSCALER_LR_ALPHA", default_value_t = 1.0)]
    pub lr_alpha: f64,
    /// Logistic-regression L-BFGS iterations.
    #[arg(long, env = "AUTOSCALER_LR_MAX_ITERATIONS", default_value_t = 200)]
    pub lr_max_iterations: u64,
    /// Do not re-weight the classes (by default violations count as much as the rest).
    #[arg(long, env = "AUTOSCALER_NO_CLASS_WEIGHTS")]
    pub no_class_weights: bool,
}

/// `autoscaler evaluate`.
#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub data: DataOpts,
    /// Directory of the models.
    #[arg(long, env = "MODELS_DIR", default_value = "models")]
    pub models: PathBuf,
    /// Models to evaluate (the voting rules need all).
    #[arg(long, env = "AUTOSCALER_EVAL_MODEL", value_enum, default_value = "all")]
    pub model: ModelChoice,
    /// Label horizon; default: the models'.
    #[arg(long, env = "AUTOSCALER_HORIZON")]
    pub horizon: Option<usize>,
    /// Weights of the weighted rule, e.g. `xgboost=2,random_forest=1`.
    #[arg(long, env = "MODEL_WEIGHTS", value_delimiter = ',', value_parser = parse_weight)]
    pub weights: Vec<(ModelKind, f64)>,
    /// The weighted rule votes up above this.
    #[arg(long, env = "WEIGHTED_THRESHOLD", default_value_t = 0.5)]
    pub weighted_threshold: f64,
    /// The table as JSON.
    #[arg(
        long,
        env = "AUTOSCALER_EVAL_JSON",
        default_value = "output/evaluation.json"
    )]
    pub json_out: PathBuf,
    /// ROC and precision/recall curves (SVG).
    #[arg(
        long,
        env = "AUTOSCALER_EVAL_PLOT",
        default_value = "output/evaluation.svg"
    )]
    pub plot: PathBuf,
}

/// `autoscaler training-data`.
#[derive(Debug, Clone, Args)]
pub struct TrainingDataArgs {
    /// The CSV to write.
    #[arg(
        long,
        env = "AUTOSCALER_TRAINING_CSV",
        default_value = "output/simulated_training.csv"
    )]
    pub out: PathBuf,
    /// Seed of the simulation.
    #[arg(long, env = "AUTOSCALER_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Simulated runs (shapes diurnal, spiky, ramp, step in turn).
    #[arg(long, env = "AUTOSCALER_SIM_RUNS", default_value_t = 8)]
    pub runs: usize,
    /// Days per run.
    #[arg(long, env = "AUTOSCALER_SIM_DAYS", default_value_t = 2)]
    pub days: u32,
}

fn parse_weight(s: &str) -> Result<(ModelKind, f64), String> {
    let (m, w) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not MODEL=WEIGHT"))?;
    let w: f64 = w
        .parse()
        .map_err(|_| format!("weight `{w}` of {m} is not a number"))?;
    Ok((m.parse()?, w))
}

fn bar(len: u64) -> ProgressBar {
    let b = ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("valid template"),
    );
    b.enable_steady_tick(std::time::Duration::from_millis(200));
    b
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
            rf_max_depth: (self.rf_max_depth > 0).then_some(self.rf_max_depth),
            lr_alpha: self.lr_alpha,
            lr_max_iterations: self.lr_max_iterations,
            class_weighting: !self.no_class_weights,
        };
        Ok(TrainConfig {
            kinds: self.model.kinds(),
            horizon: self.horizon,
            sla: self.data.sla()?.unwrap_or(SlaSpec::Global(250.0)),
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
        })
    }
}

/// `autoscaler train`.
pub fn train(a: &TrainArgs) -> anyhow::Result<()> {
    let cfg = a.config()?;
    let loaded = a.data.load()?;
    let b = bar(2 + 2 * cfg.kinds.len() as u64);
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
        "{:<20} {:>9} {:>9} {:>7} {:>6} {:>8} {:>7}   (test split)",
        "model", "threshold", "precision", "recall", "F1", "ROC-AUC", "PR-AUC"
    );
    for m in &report.models {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.3}"));
        match &m.test {
            Some(t) => println!(
                "{:<20} {:>9.3} {:>9.3} {:>7.3} {:>6.3} {:>8} {:>7}",
                m.kind.as_str(),
                m.threshold,
                t.precision,
                t.recall,
                t.f1,
                opt(t.roc_auc),
                opt(t.pr_auc)
            ),
            None => println!(
                "{:<20} {:>9.3}  (no test rows)",
                m.kind.as_str(),
                m.threshold
            ),
        }
    }
    println!("artefacts in {}", a.out.display());
    Ok(())
}

/// `autoscaler evaluate`.
pub fn evaluate_cmd(a: &EvaluateArgs) -> anyhow::Result<()> {
    let loaded = a.data.load()?;
    let cfg = EvalConfig {
        kinds: a.model.kinds(),
        horizon: a.horizon,
        sla: a.data.sla()?,
        weights: a.weights.iter().copied().collect::<BTreeMap<_, _>>(),
        weighted_threshold: a.weighted_threshold,
        use_csv_labels: a.data.use_csv_labels,
    };
    let report = evaluate(&loaded, &a.models, &cfg)?;
    print!("{}", report.table());
    write_json(&a.json_out, &serde_json::to_vec_pretty(&report)?)?;
    write_plot(&report, &a.plot)?;
    println!("wrote {} and {}", a.json_out.display(), a.plot.display());
    Ok(())
}

fn write_json(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// `autoscaler training-data`.
pub fn training_data(a: &TrainingDataArgs) -> anyhow::Result<()> {
    let cfg = TrainingDataConfig {
        runs: a.runs,
        days_per_run: a.days,
        seed: a.seed,
        ..TrainingDataConfig::default()
    };
    let rows = autoscaler_training::simulated_csv(&cfg, &a.out)?;
    println!("wrote {rows} rows ({} runs) to {}", a.runs, a.out.display());
    Ok(())
}
