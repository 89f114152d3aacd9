//! `autoscaler evaluate`: saved models and the voting rules on metrics CSVs — table, JSON and
//! plot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use autoscaler_contract::ModelKind;
use autoscaler_models::DEFAULT_MODELS_DIR;
use autoscaler_training::{evaluate, write_plot, EvalConfig};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::opts::data::{DataOpts, ModelChoice};
use crate::opts::parse::parse_weight;

/// `autoscaler evaluate`.
#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    /// The data.
    #[command(flatten)]
    pub data: DataOpts,
    /// Directory of the models.
    #[arg(long, env = "MODELS_DIR", default_value = DEFAULT_MODELS_DIR)]
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
    /// The weighted rule votes up above this; default: the threshold `train` chose on the
    /// validation split (in the models' metadata), else 0.5.
    #[arg(long, env = "WEIGHTED_THRESHOLD")]
    pub weighted_threshold: Option<f64>,
    /// The table as JSON.
    #[arg(long, env = "AUTOSCALER_EVAL_JSON", default_value = DEFAULT_JSON_OUT)]
    pub json_out: PathBuf,
    /// ROC and precision/recall curves (SVG).
    #[arg(long, env = "AUTOSCALER_EVAL_PLOT", default_value = DEFAULT_PLOT)]
    pub plot: PathBuf,
}

/// Default path of the evaluation table as JSON.
pub const DEFAULT_JSON_OUT: &str = "output/evaluation.json";
/// Default path of the evaluation plot.
pub const DEFAULT_PLOT: &str = "output/evaluation.svg";

/// Evaluate, print the table, write the JSON and the plot.
pub async fn run(a: EvaluateArgs, _shutdown: CancellationToken) -> anyhow::Result<()> {
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
