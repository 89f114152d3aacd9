//! Default models: trained from simulated data when `models/` has none.
//!
//! Training data come from `autoscaler-simulator`'s synthetic traces (diurnal, spiky, ramp and
//! step shapes, never the demo's NASA trace) under a random replica policy. Labels are future
//! only (p95 above the SLA in any of the next `horizon` polls). The last run is held out: the
//! models train on the others and are scored on it, and the scores go in `metadata.json`.

use std::path::Path;

use anyhow::Context;
use autoscaler_contract::ModelKind;
use autoscaler_models::{
    default_feature_names, input_row, save, train, Dataset, MetadataExtra, Model, TrainParams,
};
use autoscaler_simulator::{generate_training_runs, TrainingDataConfig, TrainingRun};
use indicatif::{ProgressBar, ProgressStyle};

/// Rows of a run with a known label and every feature present, in time order.
fn dataset(runs: &[TrainingRun]) -> (Dataset, usize) {
    let names = default_feature_names();
    let mut d = Dataset {
        feature_names: names.clone(),
        rows: Vec::new(),
        labels: Vec::new(),
    };
    let mut skipped = 0;
    for run in runs {
        for row in &run.rows {
            match (
                row.sla_violated,
                input_row(&row.features, Some(row.replicas), &names),
            ) {
                (Some(label), Ok(x)) => {
                    d.rows.push(x);
                    d.labels.push(label);
                }
                // Unknown label (end of run) or a missing feature: left out, never imputed as 0.
                _ => skipped += 1,
            }
        }
    }
    (d, skipped)
}

fn accuracy(model: &dyn Model, d: &Dataset) -> anyhow::Result<serde_json::Value> {
    let p = model.predict_proba_batch(&d.rows)?;
    let (mut tp, mut fp, mut tn, mut fneg) = (0u32, 0u32, 0u32, 0u32);
    for (p, y) in p.iter().zip(&d.labels) {
        match (*p > model.threshold(), *y) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fneg += 1,
        }
    }
    let n = (tp + fp + tn + fneg).max(1) as f64;
    let precision = tp as f64 / ((tp + fp).max(1)) as f64;
    let recall = tp as f64 / ((tp + fneg).max(1)) as f64;
    Ok(serde_json::json!({
        "split": "held-out run (the last simulated run)",
        "rows": d.rows.len(),
        "accuracy": (tp + tn) as f64 / n,
        "precision": precision,
        "recall": recall,
        "f1": if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 },
        "tp": tp, "fp": fp, "tn": tn, "fn": fneg,
    }))
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
    let bar = ProgressBar::new(missing.len() as u64 + 1).with_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template"),
    );
    bar.set_message("simulating training runs");
    let cfg = TrainingDataConfig {
        sla_p95_ms,
        seed,
        ..TrainingDataConfig::default()
    };
    let runs = generate_training_runs(&cfg);
    let (train_runs, held_out) = runs.split_at(runs.len() - 1);
    let (train_set, skipped) = dataset(train_runs);
    let (test_set, _) = dataset(held_out);
    bar.inc(1);
    let params = TrainParams {
        seed,
        ..TrainParams::default()
    };
    for kind in missing.iter().copied() {
        bar.set_message(format!("training {kind}"));
        let model = train(kind, &train_set, &params)
            .with_context(|| format!("training the default {kind} model"))?;
        let mut scores = accuracy(model.as_ref(), &test_set)?;
        scores["skipped_rows"] = serde_json::json!(skipped);
        let extra = MetadataExtra {
            horizon: cfg.horizon as u32,
            sla_p95_ms,
            created_at: chrono::Utc::now().to_rfc3339(),
            threshold: None,
            scores,
        };
        save(model.as_ref(), dir, &extra)
            .with_context(|| format!("saving the {kind} model to {}", dir.display()))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(missing)
}
