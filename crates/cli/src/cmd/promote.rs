//! `autoscaler promote`: promote a candidate (a directory `retrain` wrote) to the live models by
//! hand — every candidate model must load first; each model directory is swapped by rename
//! (the previous one kept in `<live>/.previous/`); the inference services pick it up on their
//! hot reload.

use std::path::PathBuf;

use autoscaler_models::DEFAULT_MODELS_DIR;
use autoscaler_training::learning::{promote, CARD_FILE};
use clap::Args;
use tokio_util::sync::CancellationToken;

/// `autoscaler promote`.
#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    /// The candidate's directory (`<candidates>/<created_at>/`).
    #[arg(long)]
    pub candidate: PathBuf,
    /// The live models.
    #[arg(long, env = "MODELS_DIR", default_value = DEFAULT_MODELS_DIR)]
    pub live: PathBuf,
}

/// Promote, and copy the candidate's card beside the live models.
pub async fn run(a: PromoteArgs, _shutdown: CancellationToken) -> anyhow::Result<()> {
    promote(&a.candidate, &a.live)?;
    let card = a.candidate.join(CARD_FILE);
    if card.exists() {
        std::fs::copy(&card, a.live.join(CARD_FILE))?;
    }
    println!("promoted {} to {}", a.candidate.display(), a.live.display());
    Ok(())
}
