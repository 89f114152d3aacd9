//! Everything that can go wrong in this crate, with its cause kept as a source.

use std::path::PathBuf;

use autoscaler_contract::ModelKind;

/// Everything that can go wrong when building inputs, training, saving, loading or predicting.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Inputs that could not be computed (missing, not finite, or needing an unknown replica
    /// count). They are never replaced by 0.
    #[error("missing features: {}", .0.join(", "))]
    MissingFeatures(Vec<String>),
    /// A model taking history features (lags, rolling statistics) was given fewer polls of the
    /// service than it needs ([`crate::history::MIN_HISTORY_POINTS`]): it abstains.
    #[error("not enough history: the model needs {need} polls of the service, {have} seen")]
    NotEnoughHistory {
        /// Polls in the window.
        have: usize,
        /// Polls needed.
        need: usize,
    },
    /// A history feature asked of a row built from one vector alone.
    #[error("feature `{0}` is computed from the service's recent polls: build the row with history::input_row_from_history")]
    NeedsHistory(String),
    /// A feature name this crate does not know how to build.
    #[error(
        "unknown feature `{0}` (known: the ten contract features, rps_per_replica, cpu_per_replica_pct)"
    )]
    UnknownFeature(String),
    /// `input_row_one_fewer` needs at least two replicas.
    #[error("cannot compute the load at one replica fewer: replicas is {}", match .replicas { Some(r) => r.to_string(), None => "unknown".to_string() })]
    NoFewerReplicas {
        /// The replica count given.
        replicas: Option<u32>,
    },
    /// A row of the wrong length was given to a model.
    #[error("row has {found} values but the model takes {expected} features")]
    RowLength {
        /// Number of features of the model.
        expected: usize,
        /// Length of the row given.
        found: usize,
    },
    /// A value the model cannot take (NaN or infinite; only XGBoost takes NaN, as missing).
    #[error("feature `{feature}` = {value} is not a number the {kind} model accepts")]
    NonFiniteInput {
        /// The model kind.
        kind: ModelKind,
        /// The feature.
        feature: String,
        /// The value.
        value: f64,
    },
    /// Two feature lists that must agree do not.
    #[error("feature list mismatch ({context}): expected [{}], found [{}]", .expected.join(", "), .found.join(", "))]
    FeatureMismatch {
        /// Which two lists were compared.
        context: String,
        /// The list that was expected.
        expected: Vec<String>,
        /// The list that was found.
        found: Vec<String>,
    },
    /// Training data that cannot be used.
    #[error("invalid training data: {0}")]
    InvalidData(String),
    /// A training parameter out of range.
    #[error("invalid training parameter: {0}")]
    InvalidParams(String),
    /// A model file or directory that does not exist.
    #[error("model artefact not found: {} (train and save the models first)", .path.display())]
    MissingArtefact {
        /// The path looked for.
        path: PathBuf,
    },
    /// An artefact that exists but does not describe what was asked for.
    #[error("bad model artefact {}: {reason}", .path.display())]
    BadArtefact {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("I/O error on {}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A JSON artefact could not be parsed or written.
    #[error("JSON error in {}", .path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The XGBoost library failed.
    #[error("XGBoost failed while {context}")]
    Xgboost {
        /// What was being done.
        context: String,
        /// The library's message.
        #[source]
        source: xgb::XGBError,
    },
    /// smartcore failed.
    #[error("smartcore failed while {context}")]
    Smartcore {
        /// What was being done.
        context: String,
        /// The library's error.
        #[source]
        source: smartcore::error::Failed,
    },
    /// linfa-logistic failed.
    #[error("linfa-logistic failed while {context}")]
    Logistic {
        /// What was being done.
        context: String,
        /// The library's error.
        #[source]
        source: linfa_logistic::error::Error,
    },
    /// A model file using something the native evaluator does not compute (an objective, a
    /// booster, categorical splits, several outputs): refused rather than predicted differently.
    #[error("unsupported model {}: {what}", .path.display())]
    Unsupported {
        /// The model file.
        path: PathBuf,
        /// What is not supported.
        what: String,
    },
    /// `save` was given a model not built by this crate.
    #[error("this model was not built by autoscaler-models and cannot be saved")]
    NotSaveable,
    /// An internal lock was poisoned by a panic in another thread.
    #[error("model lock poisoned")]
    Poisoned,
}
