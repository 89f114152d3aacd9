//! Reloading a model while the inference service runs: on SIGHUP, or when `model.json` or
//! `metadata.json` changes (polled every 2 s). A model that does not load is logged and the
//! current one kept; the service itself refuses one whose features it cannot build.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use autoscaler_contract::ModelKind;
use autoscaler_models::{Model, METADATA_FILE, MODEL_FILE};
use tokio::sync::watch;

fn stamp(dir: &Path) -> Vec<Option<(SystemTime, u64)>> {
    [MODEL_FILE, METADATA_FILE]
        .iter()
        .map(|f| {
            std::fs::metadata(dir.join(f))
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// A receiver of the current model, starting with `initial`, updated on SIGHUP or file change.
pub fn watch_models(
    kind: ModelKind,
    models_dir: PathBuf,
    initial: Arc<dyn Model>,
) -> anyhow::Result<watch::Receiver<Arc<dyn Model>>> {
    let (tx, rx) = watch::channel(initial);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let dir = models_dir.join(kind.as_str());
    tokio::spawn(async move {
        let mut last = stamp(&dir);
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            let why = tokio::select! {
                _ = hup.recv() => "SIGHUP",
                _ = tick.tick() => {
                    let now = stamp(&dir);
                    if now == last { continue; }
                    last = now;
                    "files changed"
                }
                _ = tx.closed() => break,
            };
            match autoscaler_models::load_consistent(kind, &models_dir) {
                Ok(m) => {
                    tracing::info!(model = %kind, version = m.version(), why, "reloading the model");
                    if tx.send(Arc::from(m)).is_err() {
                        break;
                    }
                }
                Err(e) => tracing::error!(model = %kind, why, error = %e,
                    "cannot reload the model; keeping the current one"),
            }
        }
    });
    Ok(rx)
}
