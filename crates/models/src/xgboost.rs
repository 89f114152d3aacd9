//! Gradient-boosted trees through XGBoost's C API (`xgb` crate).
//!
//! Objective `binary:logistic`, so the prediction is P(violation). NaN in a row is XGBoost's
//! missing value (the tree's learned default direction is taken). The model file is XGBoost's own
//! JSON (`XGBoosterSaveModelToBuffer` with `format: json`), the same file Python's
//! `Booster.save_model("model.json")` writes and reads.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use xgb::{parameters::BoosterParameters, Booster, DMatrix};

use crate::artefact::FileFeatures;
use crate::engine::{hyper, Engine};
use crate::params::{Checked, XgbParams};
use crate::{Dataset, ModelError};

/// A fitted booster. `Booster` is `Send` but not `Sync` (prediction mutates the learner), hence
/// the mutex. A loaded model creates its booster from the model's JSON on first use (only
/// reference predictions need it: the native engine predicts), so a service that loads a model
/// never pays libxgboost's load time or memory.
pub(crate) struct XgbModel {
    booster: OnceLock<Mutex<Booster>>,
}

fn xgb_err(context: &str) -> impl FnOnce(xgb::XGBError) -> ModelError + '_ {
    move |source| ModelError::Xgboost {
        context: context.to_string(),
        source,
    }
}

fn dense(rows: &[&[f64]]) -> Result<DMatrix, ModelError> {
    let flat: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.iter().map(|v| *v as f32))
        .collect();
    DMatrix::from_dense_with_missing(&flat, rows.len(), f32::NAN)
        .map_err(xgb_err("building a DMatrix"))
}

impl XgbModel {
    pub(crate) fn fit(
        data: &Dataset,
        params: &Checked<XgbParams>,
    ) -> Result<(Self, serde_json::Value), ModelError> {
        let rows: Vec<&[f64]> = data.rows.iter().map(Vec::as_slice).collect();
        let mut dtrain = dense(&rows)?;
        let labels: Vec<f32> = data
            .labels
            .iter()
            .map(|l| f32::from(u8::from(*l)))
            .collect();
        dtrain
            .set_labels(&labels)
            .map_err(xgb_err("setting labels"))?;

        let positives = data.positive_rows();
        let negatives = data.rows.len() - positives;
        let scale_pos_weight = if params.class_weighting {
            negatives as f64 / positives as f64
        } else {
            1.0
        };
        let settings: Vec<(&str, String)> = vec![
            ("objective", "binary:logistic".into()),
            ("eval_metric", "logloss".into()),
            ("tree_method", "hist".into()),
            ("max_depth", params.max_depth.to_string()),
            ("eta", params.eta.to_string()),
            ("scale_pos_weight", scale_pos_weight.to_string()),
            ("seed", params.seed.to_string()),
            // One thread: deterministic and frugal; the data sets are small.
            ("nthread", "1".into()),
            ("verbosity", "0".into()),
        ];

        let mut booster = Booster::new_with_cached_dmats(&BoosterParameters::default(), &[&dtrain])
            .map_err(xgb_err("creating the booster"))?;
        for (k, v) in &settings {
            booster
                .set_param(k, v)
                .map_err(xgb_err(&format!("setting parameter {k}={v}")))?;
        }
        let names: Vec<&str> = data.feature_names.iter().map(String::as_str).collect();
        booster
            .set_feature_names(&names)
            .map_err(xgb_err("setting feature names"))?;
        for round in 0..params.rounds {
            booster
                .update(&dtrain, round as i32)
                .map_err(xgb_err("training"))?;
        }
        let mut hp: Vec<(&str, serde_json::Value)> = settings
            .iter()
            .map(|(k, v)| (*k, serde_json::Value::String(v.clone())))
            .collect();
        hp.push(("num_boost_round", params.rounds.into()));
        hp.push(("class_weighting", params.class_weighting.into()));
        Ok((
            XgbModel {
                booster: OnceLock::from(Mutex::new(booster)),
            },
            hyper(&hp),
        ))
    }

    /// Load XGBoost JSON; also report the features the file declares.
    pub(crate) fn from_bytes(
        bytes: &[u8],
        path: &Path,
    ) -> Result<(Self, FileFeatures), ModelError> {
        let json: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|source| ModelError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let learner = &json["learner"];
        let bad = |reason: &str| ModelError::BadArtefact {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let objective = learner["objective"]["name"].as_str().unwrap_or_default();
        if objective != "binary:logistic" {
            return Err(bad(&format!(
                "objective is `{objective}`, expected `binary:logistic` (not an XGBoost \
                 classifier JSON model?)"
            )));
        }
        let names: Vec<String> = learner["feature_names"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let features = if names.is_empty() {
            let n = learner["learner_model_param"]["num_feature"]
                .as_str()
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or_else(|| bad("no learner.learner_model_param.num_feature"))?;
            FileFeatures::Count(n)
        } else {
            FileFeatures::Names(names)
        };
        Ok((
            XgbModel {
                booster: OnceLock::new(),
            },
            features,
        ))
    }

    /// The booster, created from `json` (the model file) on first use.
    fn booster(&self, json: &[u8]) -> Result<&Mutex<Booster>, ModelError> {
        if let Some(b) = self.booster.get() {
            return Ok(b);
        }
        let mut booster = Booster::load_buffer(json).map_err(xgb_err("loading the model"))?;
        booster
            .set_param("nthread", "1")
            .map_err(xgb_err("setting nthread"))?;
        // Two first uses at once: one booster is kept, the other dropped.
        let _ = self.booster.set(Mutex::new(booster));
        self.booster.get().ok_or(ModelError::Poisoned)
    }
}

impl Engine for XgbModel {
    /// P(violation) per row through the C API; NaN = missing.
    fn predict(&self, rows: &[&[f64]], model_file: &[u8]) -> Result<Vec<f64>, ModelError> {
        let dmat = dense(rows)?;
        let booster = self
            .booster(model_file)?
            .lock()
            .map_err(|_| ModelError::Poisoned)?;
        let out = booster.predict(&dmat).map_err(xgb_err("predicting"))?;
        Ok(out
            .into_iter()
            .map(|p| f64::from(p).clamp(0.0, 1.0))
            .collect())
    }
    /// XGBoost JSON of the model (it holds the feature names itself).
    fn to_bytes(&self, _feature_names: &[String]) -> Result<Vec<u8>, ModelError> {
        let booster = self
            .booster
            .get()
            .ok_or(ModelError::NotSaveable)?
            .lock()
            .map_err(|_| ModelError::Poisoned)?;
        booster
            .save_buffer(false)
            .map_err(xgb_err("serialising the model to JSON"))
    }
}
