//! Default models: `models/` ships them (trained by `scripts/train-default-models.sh`); when a
//! directory lacks them, they are trained here the same way and cached there.
//!
//! The same way: simulated training runs (`autoscaler training-data`: synthetic diurnal, spiky,
//! ramp and step traces under a random replica policy, never the demo's NASA trace), then
//! `autoscaler train --split by-run --seed <seed>` with every other option at its default
//! (future-only labels, horizon 2, validation runs for the threshold, test runs for the
//! scores).

use std::path::Path;

use anyhow::Context;
use autoscaler_contract::ModelKind;
use autoscaler_models::TrainParams;
use autoscaler_simulator::TrainingDataConfig;
use autoscaler_training::{
    load_csvs, train_models, BadRows, DataInput, SlaSpec, SplitConfig, SplitKind, TrainConfig,
    DEFAULT_CALIBRATION, DEFAULT_HORIZON, DEFAULT_TARGET_RECALL,
};
use indicatif::{ProgressBar, ProgressStyle};

/// What `autoscaler train --split by-run --seed <seed> --sla-p95-ms <sla>` trains: every other
/// setting at the training libraries' defaults.
pub fn default_train_config(kinds: Vec<ModelKind>, sla_p95_ms: f64, seed: u64) -> TrainConfig {
    TrainConfig {
        kinds,
        horizon: DEFAULT_HORIZON,
        sla: SlaSpec::Global(sla_p95_ms),
        split: SplitConfig {
            kind: SplitKind::ByRun,
            seed,
            ..SplitConfig::default()
        },
        params: TrainParams {
            seed,
            ..TrainParams::default()
        },
        target_recall: DEFAULT_TARGET_RECALL,
        features: None,
        use_csv_labels: false,
        created_at: chrono::Utc::now().to_rfc3339(),
        calibration: DEFAULT_CALIBRATION,
    }
}

/// Train and save every model missing from `dir`. Returns the models trained.
pub fn ensure(dir: &Path, sla_p95_ms: f64, seed: u64) -> anyhow::Result<Vec<ModelKind>> {
    let missing: Vec<ModelKind> = ModelKind::ALL
        .into_iter()
        .filter(|k| !dir.join(k.as_str()).join("model.json").exists())
        .collect();
    if missing.is_empty() {
        return Ok(missing);
    }
    eprintln!(
        "No trained {} in {}: training defaults on simulated traffic (once; cached there).",
        missing
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        dir.display()
    );
    let bar = ProgressBar::new(2 + 2 * missing.len() as u64 + 1).with_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template"),
    );
    bar.set_message("simulating training runs");
    let csv = std::env::temp_dir().join(format!(
        "autoscaler-default-training-{}-{seed}.csv",
        std::process::id()
    ));
    let sim = TrainingDataConfig {
        seed,
        ..TrainingDataConfig::default()
    };
    autoscaler_training::simulated_csv(&sim, &csv)?;
    bar.inc(1);
    let result = (|| {
        let cfg = default_train_config(missing.clone(), sla_p95_ms, seed);
        let loaded = load_csvs(
            &[DataInput::parse(&csv.display().to_string())],
            BadRows::Fail,
        )?;
        train_models(&loaded, &cfg, dir, &mut |step: &str| {
            bar.set_message(step.to_string());
            bar.inc(1);
        })
        .with_context(|| format!("training the default models into {}", dir.display()))
    })();
    let _ = std::fs::remove_file(&csv);
    bar.finish_and_clear();
    result?;
    Ok(missing)
}
