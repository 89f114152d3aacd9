//! Where model artefacts live (`--models-dir`), and loading the three models.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use autoscaler_contract::ModelKind;
use autoscaler_models::{Model, DEFAULT_MODELS_DIR};
use clap::Args;

/// Model options.
#[derive(Debug, Clone, Args)]
pub struct ModelsOpts {
    /// Directory of model artefacts (`<dir>/<model>/model.json` + `metadata.json`). Missing
    /// artefacts are trained from simulated data on first use.
    #[arg(long, env = "MODELS_DIR", default_value = DEFAULT_MODELS_DIR)]
    pub models_dir: PathBuf,
}

/// Load the three models, training defaults first if `dir` has none.
pub fn load_models(dir: &Path, sla_p95_ms: f64, seed: u64) -> anyhow::Result<Vec<Arc<dyn Model>>> {
    crate::default_models::ensure(dir, sla_p95_ms, seed)?;
    ModelKind::ALL
        .into_iter()
        .map(|k| {
            autoscaler_models::load(k, dir)
                .map(Arc::from)
                .with_context(|| format!("loading the {k} model from {}", dir.display()))
        })
        .collect()
}
