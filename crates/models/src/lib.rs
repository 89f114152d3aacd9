//! # The ensemble's three models
//!
//! Each model predicts **P(violation)**: the probability that the service's p95 latency breaks
//! its SLA within the horizon. Three kinds ([`ModelKind`]):
//!
//! | kind | library | `model.json` |
//! |---|---|---|
//! | `xgboost` | XGBoost 3.x C API through the `xgb` crate | XGBoost's own JSON (loadable by Python's xgboost) |
//! | `random_forest` | CART trees grown here on histogram cuts, bagged (see [`forest`]) | the trees in smartcore's serde form |
//! | `logistic_regression` | Newton's method on linfa-logistic's objective, standardised inputs | coefficients, intercept, means and stds |
//!
//! The flow: build rows with [`input_row`] (a missing input is an error, never a 0), gather a
//! time-ordered [`Dataset`], [`train`] a model with [`TrainParams`], [`save`] it to
//! `models/<kind>/{model.json,metadata.json}`, [`load`] it in the inference service and call
//! [`Model::predict_proba`].
//!
//! Determinism: the same data and the same [`TrainParams::seed`] give identical models and
//! predictions (XGBoost trains with `seed` and one thread; the forest's bootstrap and feature
//! subsets come from a ChaCha RNG seeded with it, one stream per tree, whatever the number of
//! threads fitting them; logistic regression is deterministic).
//!
//! ## Linking XGBoost
//! `xgb` links `-lxgboost` (and `-lgomp`). The library is XGBoost 3.2.0 from the PyPI wheel
//! `xgboost-cpu==3.2.0`, installed into `/usr/local/lib` by `scripts/install-xgboost.sh`.
//! `xgb`'s build script downloads a prebuilt library unless `XGBOOST_LIB_DIR` is set, so builds
//! run with `XGBOOST_LIB_DIR=/usr/local/lib`.
//!
//! ## Layout
//!
//! | module | what |
//! |---|---|
//! | `error` | [`ModelError`] |
//! | `dataset` | [`Dataset`]: rows in time order, labels, fingerprint |
//! | `params` | [`TrainParams`] and each model's own checked parameters ([`XgbParams`], [`ForestParams`], [`LogisticParams`]) |
//! | `model` | the [`Model`] trait, [`TrainedModel`], [`train`] |
//! | `engine` | the three fitted models behind one internal trait; the only `match` on the kind |
//! | `xgboost`, [`forest`], `logistic` | each model: fit, predict, its file body |
//! | `metadata` | [`ModelMetadata`] (`metadata.json`), [`MetadataExtra`], [`read_metadata`] |
//! | `artefact` | [`save`], [`load`]: files on disk and the envelope of our model-file formats |
//! | `features` | building an input row from a feature vector ([`input_row`]) |
//! | [`history`] | history features (lags, rolling statistics) from a service's recent polls |
//! | [`calibration`] | probabilities calibrated on the validation split (recorded in the metadata) |
//! | [`native`] | the native evaluator predictions run on (the fitting library is the reference) |
#![deny(missing_docs)]

pub use autoscaler_contract::{Features, ModelKind, FEATURE_NAMES};

mod artefact;
pub mod calibration;
mod dataset;
mod engine;
mod error;
mod features;
pub mod forest;
pub mod history;
mod logistic;
mod metadata;
mod model;
pub mod native;
mod params;
mod xgboost;

pub use native::Candidate;

pub use artefact::{
    artefacts_present, load, load_consistent, load_expecting, save, METADATA_FILE, MODEL_FILE,
};
pub(crate) use artefact::{read_artefact, FileFeatures};
pub use dataset::Dataset;
pub use error::ModelError;
pub use features::{
    default_feature_names, input_row, input_row_one_fewer, is_known_feature, EXTRA_FEATURES,
};
pub use metadata::{
    read_metadata, MetadataExtra, ModelMetadata, Preprocessing, TrainingInfo,
    METADATA_FORMAT_VERSION,
};
pub use model::{check_features, train, Model, TrainedModel, DEFAULT_THRESHOLD};
pub use params::{
    Checked, ForestParams, LogisticParams, ParamGuard, TrainParams, XgbParams, DEFAULT_LR_ALPHA,
    DEFAULT_LR_MAX_ITERATIONS, DEFAULT_MODELS_DIR, DEFAULT_RF_MAX_DEPTH, DEFAULT_RF_TREES,
    DEFAULT_SEED, DEFAULT_XGB_ETA, DEFAULT_XGB_MAX_DEPTH, DEFAULT_XGB_ROUNDS,
};
