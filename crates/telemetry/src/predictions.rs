//! The prediction log writer: one row per vote in `<dir>/predictions_<model>.csv`, with the
//! columns of [`autoscaler_contract::predictions`].
//!
//! * **Rotation by size**: before a row would take the file over `max_bytes`, the file is
//!   renamed `predictions_<model>.<UTC time of rotation, %Y%m%dT%H%M%S%3fZ>.csv` (e.g.
//!   `predictions_xgboost.20240703T094640123Z.csv`; sorted by name = sorted by age) and a new
//!   `predictions_<model>.csv` begins with the header. Readers take every
//!   `predictions_<model>*.csv`.
//! * **Several replicas of one model** share the file safely: each row is appended with one
//!   `write` on a file opened `O_APPEND`, under an exclusive `flock`, after checking that the
//!   path still names the file locked (another replica may have rotated it), so no row is lost,
//!   split or written twice and the header is written once per file.
//! * The file is opened per row (a row per vector and model: a few a second at most), so a file
//!   moved away or deleted by an operator is simply started again.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use autoscaler_contract::predictions::{
    prediction_record, predictions_file_name, PREDICTION_COLUMNS,
};
use autoscaler_contract::{FeatureVector, ModelKind, Vote};
use rustix::fs::{flock, fstat, stat, FlockOperation};

/// Default size at which the prediction log is rotated: 64 MiB (about 200 000 rows).
pub const DEFAULT_PREDICTIONS_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// A prediction log could not be written.
#[derive(Debug, thiserror::Error)]
#[error("prediction log {path}: {source}")]
pub struct PredictionLogError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// The prediction log of one model.
#[derive(Debug, Clone)]
pub struct PredictionLog {
    dir: PathBuf,
    path: PathBuf,
    model: ModelKind,
    max_bytes: u64,
}

impl PredictionLog {
    /// The log of `model` in `dir` (created if absent), rotated past `max_bytes`.
    pub fn new(dir: &Path, model: ModelKind, max_bytes: u64) -> Result<Self, PredictionLogError> {
        std::fs::create_dir_all(dir).map_err(|source| PredictionLogError {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(PredictionLog {
            dir: dir.to_path_buf(),
            path: dir.join(predictions_file_name(model)),
            model,
            max_bytes: max_bytes.max(1),
        })
    }

    /// The current file (`<dir>/predictions_<model>.csv`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append the row of `vote` on `vector`.
    pub fn append(&self, vector: &FeatureVector, vote: &Vote) -> Result<(), PredictionLogError> {
        let err = |source: std::io::Error| PredictionLogError {
            path: self.path.clone(),
            source,
        };
        let row = csv_line(&prediction_record(vector, vote)).map_err(err)?;
        // Each retry follows a rotation by another writer (or by this one): bounded.
        for _ in 0..16 {
            let mut file = self.open().map_err(err)?;
            flock(&file, FlockOperation::LockExclusive).map_err(|e| err(e.into()))?;
            let ours = fstat(&file).map_err(|e| err(e.into()))?;
            match stat(&self.path) {
                Ok(at) if (at.st_dev, at.st_ino) == (ours.st_dev, ours.st_ino) => {}
                // Rotated (or removed) between our open and our lock: open the new one.
                _ => continue,
            }
            let len = ours.st_size.max(0) as u64;
            if len > 0 && len + row.len() as u64 > self.max_bytes {
                self.rotate().map_err(err)?;
                continue;
            }
            let bytes = if len == 0 {
                let mut b = csv_line(&PREDICTION_COLUMNS).map_err(err)?;
                b.extend_from_slice(&row);
                b
            } else {
                row
            };
            file.write_all(&bytes).map_err(err)?;
            return Ok(());
        }
        Err(err(std::io::Error::other(
            "the file kept being rotated under us",
        )))
    }

    fn open(&self) -> std::io::Result<File> {
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
    }

    /// Rename the current file to its rotated name (called with the file locked).
    fn rotate(&self) -> std::io::Result<()> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ");
        let model = self.model.as_str();
        let mut target = self.dir.join(format!("predictions_{model}.{stamp}.csv"));
        let mut n = 1;
        while target.exists() {
            target = self
                .dir
                .join(format!("predictions_{model}.{stamp}-{n}.csv"));
            n += 1;
        }
        tracing::info!(from = %self.path.display(), to = %target.display(), "prediction log rotated");
        std::fs::rename(&self.path, target)
    }
}

fn csv_line<S: AsRef<[u8]>>(fields: &[S]) -> std::io::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(fields).map_err(std::io::Error::other)?;
    w.into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))
}
