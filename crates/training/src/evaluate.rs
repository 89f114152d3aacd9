//! Evaluating saved models, alone and under the three voting rules, on labelled data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use autoscaler_contract::{Ballot, ModelKind, Strategy};
use autoscaler_models::{load, read_metadata, Model};
use autoscaler_voting::{tally, ModelBallot, VotingConfig};
use serde::Serialize;

use crate::data::Loaded;
use crate::features::FeatureCache;
use crate::labels::{derive_labels, SlaSpec};
use crate::metrics::{metrics, metrics_from_decisions, pr_curve, roc_curve, Metrics};
use crate::train::prepare;
use crate::train::{EnsembleSummary, ENSEMBLE_KEY};
use crate::TrainingError;

/// Evaluation settings.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Models to evaluate (the voting rules need all three).
    pub kinds: Vec<ModelKind>,
    /// Label horizon; `None` = the models' own (they must agree).
    pub horizon: Option<usize>,
    /// The SLA; `None` = the models' own.
    pub sla: Option<SlaSpec>,
    /// Weights of the weighted rule (a model absent weighs 1).
    pub weights: BTreeMap<ModelKind, f64>,
    /// The weighted rule's threshold; `None` = the one `train` chose on validation (in the
    /// models' metadata), else [`DEFAULT_WEIGHTED_THRESHOLD`].
    pub weighted_threshold: Option<f64>,
    /// Use the CSV's `sla_violated` column instead of re-deriving labels.
    pub use_csv_labels: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            kinds: ModelKind::ALL.to_vec(),
            horizon: None,
            sla: None,
            weights: BTreeMap::new(),
            weighted_threshold: None,
            use_csv_labels: false,
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRow {
    /// Model or rule name.
    pub name: String,
    /// Its scores.
    pub metrics: Metrics,
    /// Its scores per row (for the curves).
    #[serde(skip)]
    pub scores: Vec<f64>,
}

/// The evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Rows read.
    pub rows: usize,
    /// Rows with a label.
    pub labelled: usize,
    /// Labelled rows with a missing input (imputed with each model's training medians;
    /// XGBoost takes them as missing).
    pub rows_with_missing_values: usize,
    /// Rows a model could not score (missing value and no imputation in its metadata):
    /// left out of every line.
    pub rows_left_out: usize,
    /// Of the rows left out, those whose window was shorter than the models need (the
    /// inference service abstains there).
    pub rows_without_history: usize,
    /// Weights the weighted rule used, and where they came from.
    pub weights: BTreeMap<ModelKind, f64>,
    /// `configured`, `validation` (the models' metadata) or `equal`.
    pub weights_source: String,
    /// Rows evaluated.
    pub evaluated: usize,
    /// Of which violations.
    pub positives: usize,
    /// Horizon used.
    pub horizon: usize,
    /// SLA used.
    pub sla: SlaSpec,
    /// One line per model.
    pub models: Vec<EvalRow>,
    /// One line per voting rule (when all three models are evaluated).
    pub rules: Vec<EvalRow>,
    /// Labels of the evaluated rows (for the curves).
    #[serde(skip)]
    pub labels: Vec<bool>,
}

impl EvalReport {
    /// The table, one line per model and per rule.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} rows evaluated ({} violations, {:.1} %); horizon {} polls; {} labelled rows had a \
             missing value; {} left out ({} with too little history)",
            self.evaluated,
            self.positives,
            100.0 * self.positives as f64 / self.evaluated.max(1) as f64,
            self.horizon,
            self.rows_with_missing_values,
            self.rows_left_out,
            self.rows_without_history
        );
        let _ = writeln!(
            s,
            "{:<22} {:>6} {:>8} {:>9} {:>7} {:>6} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6}",
            "model / rule",
            "thr",
            "accuracy",
            "precision",
            "recall",
            "F1",
            "ROC-AUC",
            "PR-AUC",
            "TP",
            "FP",
            "TN",
            "FN",
            "Brier"
        );
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
        for r in self.models.iter().chain(&self.rules) {
            let m = &r.metrics;
            let _ = writeln!(
                s,
                "{:<22} {:>6.3} {:>8.3} {:>9.3} {:>7.3} {:>6.3} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6}",
                r.name,
                m.threshold,
                m.accuracy,
                m.precision,
                m.recall,
                m.f1,
                opt(m.roc_auc),
                opt(m.pr_auc),
                m.tp,
                m.fp,
                m.tn,
                m.fn_,
                opt(m.brier)
            );
        }
        s
    }
}

fn models_sla(meta: &autoscaler_models::ModelMetadata) -> SlaSpec {
    serde_json::from_value(meta.training_data["sla"].clone())
        .unwrap_or(SlaSpec::Global(meta.sla_p95_ms))
}

/// Evaluate the models saved in `models_dir` on `loaded`.
pub fn evaluate(
    loaded: &Loaded,
    models_dir: &Path,
    cfg: &EvalConfig,
) -> Result<EvalReport, TrainingError> {
    if cfg.kinds.is_empty() {
        return Err(TrainingError::Config("no model to evaluate".into()));
    }
    // Each model with the imputation medians from its metadata.
    type WithImputation = (Box<dyn Model>, Option<Vec<f64>>);
    let mut models: Vec<WithImputation> = Vec::new();
    let mut ensembles: Vec<Option<EnsembleSummary>> = Vec::new();
    let mut horizon = cfg.horizon;
    let mut sla = cfg.sla.clone();
    for &kind in &cfg.kinds {
        let model = load(kind, models_dir)?;
        let meta = read_metadata(kind, models_dir)?;
        let h = meta.horizon as usize;
        match horizon {
            None => horizon = Some(h),
            Some(x) if cfg.horizon.is_none() && x != h => {
                return Err(TrainingError::Config(format!(
                    "the models were trained with different horizons ({x} and {h} polls); pass \
                     --horizon"
                )))
            }
            _ => {}
        }
        if sla.is_none() {
            sla = Some(models_sla(&meta));
        }
        let per_replica = model
            .feature_names()
            .iter()
            .any(|n| n.ends_with("_per_replica") || n == "cpu_per_replica_pct");
        if per_replica && !loaded.all_have_replicas() {
            return Err(TrainingError::Config(format!(
                "the {kind} model takes per-replica features but the data has no `replicas` \
                 column (or some rows lack a value)"
            )));
        }
        ensembles.push(
            meta.scores
                .get(ENSEMBLE_KEY)
                .and_then(|v| serde_json::from_value::<EnsembleSummary>(v.clone()).ok()),
        );
        models.push((model, meta.imputation));
    }
    // The weighted rule's weights: as configured, else each model's validation score from the
    // metadata (written by `train`), else equal.
    let mut weights = cfg.weights.clone();
    let mut weights_source = "configured".to_string();
    if weights.is_empty() {
        weights_source = "equal".into();
        if let Some(ens) = ensembles.first().and_then(|e| e.as_ref()) {
            weights = ens.weights.clone();
            weights_source = format!("validation ({})", ens.weights_source);
        }
    }
    // Its threshold: as configured, else the one `train` chose on validation, else the
    // voting crate's default.
    let ens = ensembles.first().and_then(|e| e.as_ref());
    let weighted_threshold = cfg
        .weighted_threshold
        .or(ens.map(|e| e.weighted_threshold))
        .unwrap_or(autoscaler_voting::rules::DEFAULT_WEIGHTED_THRESHOLD);
    let horizon = horizon.unwrap_or(2);
    let sla = sla.unwrap_or(SlaSpec::Global(autoscaler_contract::DEFAULT_SLA_P95_MS));
    let records = &loaded.records;
    let labels = if cfg.use_csv_labels {
        records.iter().map(|r| r.csv_label).collect()
    } else {
        derive_labels(records, &sla, horizon)?
    };
    let labelled: Vec<usize> = (0..records.len())
        .filter(|i| labels[*i].is_some())
        .collect();

    // Each model's input rows; a row any model cannot score is left out of every line.
    let mut inputs: Vec<Vec<Vec<f64>>> = Vec::new();
    let mut with_missing = vec![false; labelled.len()];
    let mut unscorable = vec![false; labelled.len()];
    let mut without_history = vec![false; labelled.len()];
    let mut features = FeatureCache::new(records);
    for (model, imputation) in &models {
        // The one feature function, over each record's window of recent polls (built once per
        // feature list: the three models usually share one).
        let all = features.rows(model.feature_names())?;
        let width = model.feature_names().len();
        let raw: Vec<Vec<f64>> = labelled
            .iter()
            .enumerate()
            .map(|(k, i)| {
                all[*i].clone().unwrap_or_else(|| {
                    without_history[k] = true;
                    vec![f64::NAN; width]
                })
            })
            .collect();
        let rows = prepare(model.kind(), &raw, imputation.as_deref());
        for (k, (r, p)) in raw.iter().zip(&rows).enumerate() {
            if without_history[k] {
                unscorable[k] = true;
                continue;
            }
            if r.iter().any(|v| v.is_nan()) {
                with_missing[k] = true;
            }
            if model.kind() != ModelKind::Xgboost && p.iter().any(|v| v.is_nan()) {
                unscorable[k] = true;
            }
        }
        inputs.push(rows);
    }
    let keep: Vec<usize> = (0..labelled.len()).filter(|k| !unscorable[*k]).collect();
    if keep.is_empty() {
        return Err(TrainingError::Config(
            "no labelled row to evaluate (runs shorter than the horizon, or no p95 at all)".into(),
        ));
    }
    let y: Vec<bool> = keep
        .iter()
        .map(|k| labels[labelled[*k]] == Some(true))
        .collect();
    let mut report = EvalReport {
        rows: records.len(),
        labelled: labelled.len(),
        rows_with_missing_values: with_missing.iter().filter(|m| **m).count(),
        rows_left_out: labelled.len() - keep.len(),
        rows_without_history: without_history.iter().filter(|m| **m).count(),
        evaluated: keep.len(),
        positives: y.iter().filter(|v| **v).count(),
        horizon,
        sla,
        models: Vec::new(),
        rules: Vec::new(),
        weights: weights.clone(),
        weights_source,
        labels: y.clone(),
    };
    let mut probs: Vec<Vec<f64>> = Vec::new();
    for ((model, _), rows) in models.iter().zip(&inputs) {
        let x: Vec<Vec<f64>> = keep.iter().map(|k| rows[*k].clone()).collect();
        let p = model.predict_proba_batch(&x)?;
        report.models.push(EvalRow {
            name: model.kind().to_string(),
            metrics: metrics(&p, &y, model.threshold()),
            scores: p.clone(),
        });
        probs.push(p);
    }
    if models.len() == ModelKind::ALL.len() {
        for strategy in [Strategy::Majority, Strategy::Unanimous, Strategy::Weighted] {
            let mut vc = VotingConfig::new(strategy);
            vc.weights = weights.clone();
            vc.weighted_threshold = weighted_threshold;
            let mut decisions = Vec::with_capacity(keep.len());
            let mut scores = Vec::with_capacity(keep.len());
            for row in 0..keep.len() {
                let ballots: Vec<ModelBallot> = models
                    .iter()
                    .zip(&probs)
                    .map(|((m, _), p)| {
                        let p = p[row];
                        let up = p > m.threshold();
                        ModelBallot {
                            model: m.kind(),
                            ballot: if up { Ballot::Up } else { Ballot::NoAction },
                            probability: Some(p),
                            confidence: Some(if up { p } else { 1.0 - p }),
                            probability_one_fewer: None,
                            threshold: m.threshold(),
                        }
                    })
                    .collect();
                let t = tally(&vc, &ballots);
                decisions.push(t.scale_up);
                // The score the rule thresholds: the share of "up" votes, or the weighted mean.
                scores.push(match strategy {
                    Strategy::Weighted => t.weighted_score.unwrap_or(0.0),
                    _ => f64::from(t.scale_up_votes) / ballots.len() as f64,
                });
            }
            let threshold = match strategy {
                Strategy::Majority => 0.5,
                Strategy::Unanimous => 1.0 - 0.5 / models.len() as f64,
                Strategy::Weighted => weighted_threshold,
            };
            report.rules.push(EvalRow {
                name: format!("vote: {strategy}"),
                metrics: metrics_from_decisions(&decisions, &scores, &y, threshold),
                scores,
            });
        }
    }
    Ok(report)
}

/// ROC and precision/recall curves of every line of `report`.
pub(crate) type Curves = Vec<(String, Vec<(f64, f64)>, Vec<(f64, f64)>)>;

pub(crate) fn curves(report: &EvalReport) -> Curves {
    report
        .models
        .iter()
        .chain(&report.rules)
        .map(|r| {
            (
                r.name.clone(),
                thin(roc_curve(&r.scores, &report.labels)),
                thin(pr_curve(&r.scores, &report.labels)),
            )
        })
        .collect()
}

/// At most ~1000 points (first and last kept): the plot stays small on large data sets.
fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let step = points.len().div_ceil(1000).max(1);
    let last = points.last().copied();
    let mut out: Vec<(f64, f64)> = points.into_iter().step_by(step).collect();
    if let Some(l) = last {
        if out.last() != Some(&l) {
            out.push(l);
        }
    }
    out
}
