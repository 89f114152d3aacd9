//! Model artefacts on disk: `models_dir/<kind>/{model.json,metadata.json}`, written atomically,
//! read back with every check that makes a wrong file a clear error; and the envelope
//! (`format`, `format_version`, `feature_names`) of this crate's own model-file formats.

use std::fs;
use std::path::Path;

use autoscaler_contract::ModelKind;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::calibration::{self, Calibration};
use crate::engine;
use crate::model::{check_features, check_threshold, version_of};
use crate::native::Native;
use crate::{
    is_known_feature, read_metadata, MetadataExtra, Model, ModelError, ModelMetadata, TrainedModel,
    TrainingInfo, METADATA_FORMAT_VERSION,
};

/// File name of the model itself inside `models_dir/<kind>/`.
pub const MODEL_FILE: &str = "model.json";
/// File name of the metadata inside `models_dir/<kind>/`.
pub const METADATA_FILE: &str = "metadata.json";

/// What a model file says about its inputs.
pub(crate) enum FileFeatures {
    /// The file names its features, in order.
    Names(Vec<String>),
    /// The file only knows how many (an XGBoost model saved without feature names).
    Count(usize),
}

/// One of this crate's own model-file formats: its name and version.
pub(crate) type Format = (&'static str, u32);

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    format: &'a str,
    format_version: u32,
    feature_names: &'a [String],
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Deserialize)]
struct Header {
    format: String,
    format_version: u32,
}

#[derive(Deserialize)]
struct EnvelopeIn<T> {
    feature_names: Vec<String>,
    #[serde(flatten)]
    body: T,
}

/// A model body saved in one of this crate's own formats: `model.json` is the envelope
/// (`format`, `format_version`, `feature_names`) followed by the body's fields. [`encode`] and
/// [`decode`] are the only code that reads or writes the envelope.
pub(crate) trait OwnFormat: Serialize + DeserializeOwned {
    /// The format's name and version.
    const FORMAT: Format;
    /// The file, as errors name it while encoding (`random_forest/model.json`).
    const FILE: &'static str;
    /// Pretty-printed when set.
    const PRETTY: bool = false;
    /// Why this decoded body cannot serve with `feature_names` (the file is then refused as a
    /// [`ModelError::BadArtefact`]).
    fn check(&self, feature_names: &[String]) -> Result<(), String>;
}

/// `model.json`'s bytes for `body` with these feature names.
pub(crate) fn encode<T: OwnFormat>(
    body: &T,
    feature_names: &[String],
) -> Result<Vec<u8>, ModelError> {
    let (format, format_version) = T::FORMAT;
    let file = EnvelopeOut {
        format,
        format_version,
        feature_names,
        body,
    };
    let bytes = if T::PRETTY {
        serde_json::to_vec_pretty(&file)
    } else {
        serde_json::to_vec(&file)
    };
    bytes.map_err(|source| ModelError::Json {
        path: T::FILE.into(),
        source,
    })
}

/// Decode a model file of `T`'s format (`path` names it in errors) and check its body; also
/// the features it names. The `format` and `format_version` are checked first, so a file of
/// another format or version is reported as such rather than as whatever field its body lacks.
pub(crate) fn decode<T: OwnFormat>(
    bytes: &[u8],
    path: &Path,
) -> Result<(T, FileFeatures), ModelError> {
    let file: EnvelopeIn<T> = read_artefact(bytes, path, T::FORMAT)?;
    file.body
        .check(&file.feature_names)
        .map_err(|reason| ModelError::BadArtefact {
            path: path.to_path_buf(),
            reason,
        })?;
    Ok((file.body, FileFeatures::Names(file.feature_names)))
}

/// Decode `bytes` as `T` once its `format` and `format_version` are `format` (`path` names the
/// file in errors): a file of another format or version is reported as such rather than as
/// whatever field its body lacks. [`decode`] and the native evaluator read files through it.
pub(crate) fn read_artefact<T: DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
    format: Format,
) -> Result<T, ModelError> {
    let (expected, expected_version) = format;
    let json = |source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    };
    let h: Header = serde_json::from_slice(bytes).map_err(json)?;
    if h.format != expected || h.format_version != expected_version {
        return Err(ModelError::BadArtefact {
            path: path.to_path_buf(),
            reason: format!(
                "format `{}` v{}, expected `{expected}` v{expected_version}",
                h.format, h.format_version
            ),
        });
    }
    serde_json::from_slice(bytes).map_err(json)
}

/// Write `models_dir/<kind>/model.json` (the library's format) and
/// `models_dir/<kind>/metadata.json`, creating the directory.
pub fn save(
    model: &dyn Model,
    models_dir: &Path,
    meta_extra: &MetadataExtra,
) -> Result<(), ModelError> {
    let m = model.as_trained().ok_or(ModelError::NotSaveable)?;
    let threshold = meta_extra.threshold.unwrap_or(m.threshold);
    check_threshold(threshold)?;
    let dir = models_dir.join(m.kind.as_str());
    fs::create_dir_all(&dir).map_err(|source| ModelError::Io {
        path: dir.clone(),
        source,
    })?;
    let meta = ModelMetadata {
        format_version: METADATA_FORMAT_VERSION,
        model_kind: m.kind,
        version: m.version.clone(),
        feature_names: m.feature_names.clone(),
        preprocessing: m.preprocessing(),
        threshold,
        horizon: meta_extra.horizon,
        sla_p95_ms: meta_extra.sla_p95_ms,
        training_fingerprint: m.training.training_fingerprint.clone(),
        train_rows: m.training.train_rows,
        positive_rows: m.training.positive_rows,
        scores: meta_extra.scores.clone(),
        created_at: meta_extra.created_at.clone(),
        hyper_parameters: m.hyper_parameters.clone(),
        library: m.library(),
        imputation: meta_extra.imputation.clone(),
        training_data: meta_extra.training_data.clone(),
    };
    if let Some(imp) = &meta.imputation {
        if imp.len() != meta.feature_names.len() || imp.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::InvalidParams(format!(
                "imputation has {} values for {} features (all must be finite)",
                imp.len(),
                meta.feature_names.len()
            )));
        }
    }
    let model_path = dir.join(MODEL_FILE);
    write_file(&model_path, &m.model_bytes)?;
    let meta_path = dir.join(METADATA_FILE);
    let mut meta_bytes = serde_json::to_vec_pretty(&meta).map_err(|source| ModelError::Json {
        path: meta_path.clone(),
        source,
    })?;
    meta_bytes.push(b'\n');
    write_file(&meta_path, &meta_bytes)?;
    tracing::info!(model = %m.kind, version = %m.version, dir = %dir.display(), "saved model");
    Ok(())
}

/// Load `models_dir/<kind>/{model.json,metadata.json}`.
///
/// Fails with a clear error when the directory or a file is missing, when the metadata describes
/// another kind or an unknown format version, or when the feature list in the metadata disagrees
/// with the one in the model file. The version is recomputed from `model.json`'s bytes (a
/// mismatch with the metadata's is logged, not fatal, so a model saved by Python's xgboost with
/// hand-written metadata loads).
pub fn load(kind: ModelKind, models_dir: &Path) -> Result<Box<dyn Model>, ModelError> {
    let dir = models_dir.join(kind.as_str());
    if !dir.is_dir() {
        return Err(ModelError::MissingArtefact { path: dir });
    }
    let meta_path = dir.join(METADATA_FILE);
    let meta_bytes = read_file(&meta_path)?;
    let meta: ModelMetadata =
        serde_json::from_slice(&meta_bytes).map_err(|source| ModelError::Json {
            path: meta_path.clone(),
            source,
        })?;
    let bad_meta = |reason: String| ModelError::BadArtefact {
        path: meta_path.clone(),
        reason,
    };
    if meta.format_version != METADATA_FORMAT_VERSION {
        return Err(bad_meta(format!(
            "format_version {} (this build reads {METADATA_FORMAT_VERSION})",
            meta.format_version
        )));
    }
    if meta.model_kind != kind {
        return Err(bad_meta(format!(
            "describes a {} model, expected {kind}",
            meta.model_kind
        )));
    }
    check_threshold(meta.threshold).map_err(|e| bad_meta(e.to_string()))?;
    if let Some(unknown) = meta.feature_names.iter().find(|n| !is_known_feature(n)) {
        return Err(bad_meta(format!("unknown feature `{unknown}`")));
    }
    let model_path = dir.join(MODEL_FILE);
    let model_bytes = read_file(&model_path)?;
    // The native engine reads the file first: what it does not support is refused before the
    // C API parses it (libxgboost can crash on a model it does not expect).
    let (native, _) = Native::new(kind, &model_bytes, &model_path, &meta.feature_names)?;
    let (engine, file_features) = engine::decode(kind, &model_bytes, &model_path)?;
    match file_features {
        FileFeatures::Names(names) if names != meta.feature_names => {
            return Err(ModelError::FeatureMismatch {
                context: format!("{} vs {}", meta_path.display(), model_path.display()),
                expected: meta.feature_names,
                found: names,
            });
        }
        FileFeatures::Count(n) if n != meta.feature_names.len() => {
            return Err(ModelError::BadArtefact {
                path: model_path,
                reason: format!(
                    "the model takes {n} features but {} lists {}",
                    meta_path.display(),
                    meta.feature_names.len()
                ),
            });
        }
        _ => {}
    }
    let version = version_of(kind, &model_bytes);
    if version != meta.version {
        tracing::warn!(
            model = %kind,
            metadata_version = %meta.version,
            file_version = %version,
            "model.json does not hash to the version in metadata.json; using the file's"
        );
    }
    tracing::info!(model = %kind, version = %version, dir = %dir.display(), "loaded model");
    // Probabilities calibrated on the validation split, when the metadata records it.
    let calibration = Calibration::from_scores(&meta.scores).map_err(bad_meta)?;
    let model = Box::new(TrainedModel {
        kind,
        version,
        threshold: meta.threshold,
        feature_names: meta.feature_names,
        training: TrainingInfo {
            training_fingerprint: meta.training_fingerprint,
            train_rows: meta.train_rows,
            positive_rows: meta.positive_rows,
        },
        hyper_parameters: meta.hyper_parameters,
        model_bytes,
        engine,
        native,
    });
    Ok(calibration::wrap(model, calibration))
}

/// [`load`] for a reload while serving: also refuses a `model.json` that does not hash to the
/// version `metadata.json` gives (a half-copied artefact, the files of two trainings mixed) —
/// the caller keeps the model it has. [`load`] only warns, so a hand-written metadata file for
/// a model trained elsewhere still loads at start.
pub fn load_consistent(kind: ModelKind, models_dir: &Path) -> Result<Box<dyn Model>, ModelError> {
    let meta = read_metadata(kind, models_dir)?;
    let m = load(kind, models_dir)?;
    if m.version() != meta.version {
        return Err(ModelError::BadArtefact {
            path: models_dir.join(kind.as_str()).join(MODEL_FILE),
            reason: format!(
                "hashes to version {} but {} says {}",
                m.version(),
                METADATA_FILE,
                meta.version
            ),
        });
    }
    Ok(m)
}

/// [`load`], then check the model's feature list is exactly `expected` (names and order).
pub fn load_expecting(
    kind: ModelKind,
    models_dir: &Path,
    expected: &[String],
) -> Result<Box<dyn Model>, ModelError> {
    let model = load(kind, models_dir)?;
    check_features(model.as_ref(), expected)?;
    Ok(model)
}

/// Whether `models_dir/<kind>/{model.json,metadata.json}` exist for all three kinds.
pub fn artefacts_present(models_dir: &Path) -> bool {
    ModelKind::ALL.iter().all(|k| {
        let dir = models_dir.join(k.as_str());
        dir.join(MODEL_FILE).is_file() && dir.join(METADATA_FILE).is_file()
    })
}

/// Read a whole file; a missing one is [`ModelError::MissingArtefact`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, ModelError> {
    fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingArtefact {
                path: path.to_path_buf(),
            }
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Write via a temporary file and rename, so a reader never sees half a model.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let tmp = path.with_extension("json.tmp");
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    fs::write(&tmp, bytes).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}
