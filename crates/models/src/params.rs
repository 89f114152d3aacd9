//! Hyper-parameters, each model's checked on its own before it trains (linfa's
//! `Params → checked → fitted`): [`TrainParams`] gathers the three, [`XgbParams`],
//! [`ForestParams`] and [`LogisticParams`] are what each model takes, and only a
//! [`Checked`] set reaches a fit.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Default directory of model artefacts (`<dir>/<model>/model.json` + `metadata.json`).
pub const DEFAULT_MODELS_DIR: &str = "models";
/// Default seed of every random choice in training.
pub const DEFAULT_SEED: u64 = 42;
/// Default XGBoost boosting rounds.
pub const DEFAULT_XGB_ROUNDS: u32 = 100;
/// Default XGBoost maximum tree depth.
pub const DEFAULT_XGB_MAX_DEPTH: u32 = 4;
/// Default XGBoost learning rate.
pub const DEFAULT_XGB_ETA: f64 = 0.1;
/// Default trees in the random forest.
pub const DEFAULT_RF_TREES: usize = 100;
/// Default maximum depth of a forest tree.
pub const DEFAULT_RF_MAX_DEPTH: u16 = 8;
/// Default L2 penalty of the logistic regression.
pub const DEFAULT_LR_ALPHA: f64 = 1.0;
/// Default (most) Newton iterations of the logistic regression.
pub const DEFAULT_LR_MAX_ITERATIONS: u64 = 200;

/// Parameters whose ranges were checked: the only form a model's fit takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checked<P>(P);

impl<P> std::ops::Deref for Checked<P> {
    type Target = P;
    fn deref(&self) -> &P {
        &self.0
    }
}

/// Parameters that can be checked.
pub trait ParamGuard: Sized {
    /// The parameters, or the first one out of range ([`ModelError::InvalidParams`]).
    fn check(self) -> Result<Checked<Self>, ModelError>;
}

fn bad<T>(m: &str) -> Result<T, ModelError> {
    Err(ModelError::InvalidParams(m.to_string()))
}

/// XGBoost's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct XgbParams {
    /// Boosting rounds, ≥ 1.
    pub rounds: u32,
    /// Maximum tree depth, ≥ 1.
    pub max_depth: u32,
    /// Learning rate, in (0, 1].
    pub eta: f64,
    /// XGBoost's `seed`.
    pub seed: u64,
    /// `scale_pos_weight = negatives / positives` when set.
    pub class_weighting: bool,
}

impl ParamGuard for XgbParams {
    fn check(self) -> Result<Checked<Self>, ModelError> {
        if self.rounds == 0 {
            return bad("xgb_rounds must be ≥ 1");
        }
        if self.max_depth == 0 {
            return bad("xgb_max_depth must be ≥ 1");
        }
        if !(self.eta > 0.0 && self.eta <= 1.0) {
            return bad("xgb_eta must be in (0, 1]");
        }
        Ok(Checked(self))
    }
}

/// The random forest's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForestParams {
    /// Trees, ≥ 1.
    pub trees: usize,
    /// Maximum depth of a tree, ≥ 1; `None` = unlimited.
    pub max_depth: Option<u16>,
    /// Seed of the bootstraps and feature subsets.
    pub seed: u64,
    /// Balanced bootstraps when set, stratified otherwise.
    pub class_weighting: bool,
}

impl ParamGuard for ForestParams {
    fn check(self) -> Result<Checked<Self>, ModelError> {
        if self.trees == 0 {
            return bad("rf_trees must be ≥ 1");
        }
        if self.max_depth == Some(0) {
            return bad("rf_max_depth must be ≥ 1 or None");
        }
        Ok(Checked(self))
    }
}

/// The logistic regression's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticParams {
    /// L2 penalty (linfa's `alpha`), finite and ≥ 0.
    pub alpha: f64,
    /// Newton iterations at most, ≥ 1.
    pub max_iterations: u64,
    /// Duplicate the minority class's rows when set.
    pub class_weighting: bool,
}

impl ParamGuard for LogisticParams {
    fn check(self) -> Result<Checked<Self>, ModelError> {
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return bad("lr_alpha must be finite and ≥ 0");
        }
        if self.max_iterations == 0 {
            return bad("lr_max_iterations must be ≥ 1");
        }
        Ok(Checked(self))
    }
}

/// Hyper-parameters of the three models. [`Default`] gives the values below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    /// Seed of every random choice (XGBoost's `seed`, the forest's bootstrap and feature subsets).
    /// Default 42.
    pub seed: u64,
    /// XGBoost boosting rounds. Default 100.
    pub xgb_rounds: u32,
    /// XGBoost maximum tree depth. Default 4.
    pub xgb_max_depth: u32,
    /// XGBoost learning rate (`eta`), in (0, 1]. Default 0.1.
    pub xgb_eta: f64,
    /// Trees in the random forest. Default 100.
    pub rf_trees: usize,
    /// Maximum depth of each forest tree; `None` = unlimited. Default `Some(8)`.
    pub rf_max_depth: Option<u16>,
    /// L2 penalty of the logistic regression (linfa's `alpha`), ≥ 0. Default 1.0.
    pub lr_alpha: f64,
    /// Most Newton iterations of the logistic regression. Default 200.
    pub lr_max_iterations: u64,
    /// Re-weight classes so that violations (usually rare) count as much as the rest:
    /// XGBoost `scale_pos_weight = negatives / positives`; the forest draws balanced bootstraps;
    /// logistic regression duplicates the minority class's rows `round(majority / minority)`
    /// times. Default `true`.
    pub class_weighting: bool,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            seed: DEFAULT_SEED,
            xgb_rounds: DEFAULT_XGB_ROUNDS,
            xgb_max_depth: DEFAULT_XGB_MAX_DEPTH,
            xgb_eta: DEFAULT_XGB_ETA,
            rf_trees: DEFAULT_RF_TREES,
            rf_max_depth: Some(DEFAULT_RF_MAX_DEPTH),
            lr_alpha: DEFAULT_LR_ALPHA,
            lr_max_iterations: DEFAULT_LR_MAX_ITERATIONS,
            class_weighting: true,
        }
    }
}

impl TrainParams {
    /// XGBoost's part.
    pub fn xgboost(&self) -> XgbParams {
        XgbParams {
            rounds: self.xgb_rounds,
            max_depth: self.xgb_max_depth,
            eta: self.xgb_eta,
            seed: self.seed,
            class_weighting: self.class_weighting,
        }
    }

    /// The random forest's part.
    pub fn forest(&self) -> ForestParams {
        ForestParams {
            trees: self.rf_trees,
            max_depth: self.rf_max_depth,
            seed: self.seed,
            class_weighting: self.class_weighting,
        }
    }

    /// The logistic regression's part.
    pub fn logistic(&self) -> LogisticParams {
        LogisticParams {
            alpha: self.lr_alpha,
            max_iterations: self.lr_max_iterations,
            class_weighting: self.class_weighting,
        }
    }

    /// Check every model's parameters are in range.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.xgboost().check()?;
        self.forest().check()?;
        self.logistic().check()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_validation_rejects_out_of_range() {
        assert!(TrainParams::default().validate().is_ok());
        let p = TrainParams {
            xgb_eta: 0.0,
            ..TrainParams::default()
        };
        assert!(matches!(p.validate(), Err(ModelError::InvalidParams(_))));
        let p = TrainParams {
            rf_max_depth: Some(0),
            ..TrainParams::default()
        };
        assert!(p.validate().is_err());
    }

    #[test]
    fn each_model_checks_only_its_own_parameters() {
        let p = TrainParams {
            rf_trees: 0,
            ..TrainParams::default()
        };
        assert!(p.xgboost().check().is_ok());
        assert!(p.logistic().check().is_ok());
        let e = p.forest().check().unwrap_err().to_string();
        assert!(e.contains("rf_trees"), "{e}");
        let lr = LogisticParams {
            alpha: f64::NAN,
            ..TrainParams::default().logistic()
        };
        assert!(lr.check().is_err());
        let checked = TrainParams::default().xgboost().check().unwrap();
        assert_eq!(checked.rounds, DEFAULT_XGB_ROUNDS);
    }
}
