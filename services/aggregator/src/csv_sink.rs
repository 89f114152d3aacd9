//! Development mode: feature vectors appended to the Sock Shop metrics CSV.
//!
//! The header is the Sock Shop collector's 13 columns plus `replicas`. A missing value is an
//! empty field, never 0; `sla_violated` is left empty for `autoscaler train` to derive from the
//! *future* rows. Each row is written with one `write` and flushed, so a crash never leaves a
//! torn row behind the last complete one. A write that fails part-way (a full disk) may leave
//! one: the next row starts on a fresh line, so the torn one is reported by `train`, never
//! merged with the next.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use autoscaler_contract::FeatureVector;

/// The CSV header: the Sock Shop columns, then `replicas`.
pub fn header() -> Vec<&'static str> {
    let mut h = autoscaler_contract::metrics_csv_columns();
    h.push("replicas");
    h
}

/// Errors writing the CSV.
#[derive(Debug, thiserror::Error)]
pub enum CsvSinkError {
    /// The file could not be opened, written or flushed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file exists with another header.
    #[error("{path}: existing header `{found}` is not the metrics header")]
    Header {
        /// The file.
        path: PathBuf,
        /// The first line found.
        found: String,
    },
}

/// At most this much of an existing file is read to find its header (a header is ~200 bytes;
/// a path naming a device or a huge binary file must not be read whole).
pub const MAX_HEADER_BYTES: u64 = 64 * 1024;

/// Appends vectors to the metrics CSV.
pub struct CsvSink {
    path: PathBuf,
    file: File,
    /// The last append failed and may have left part of its row: start the next on a new line.
    torn: bool,
}

impl CsvSink {
    /// Open (or create, with the header) the CSV at `path`. An existing file must start with
    /// the same header.
    pub fn open(path: &Path) -> Result<Self, CsvSinkError> {
        let io = |source| CsvSinkError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let (first, ends_with_newline) = first_line_and_end(path).map_err(io)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let header = header().join(",");
        match first {
            None => {
                file.write_all(format!("{header}\n").as_bytes())
                    .map_err(io)?;
            }
            Some(first) if first == header => {
                // A crash mid-row (impossible with one write per row, but a disk-full could
                // truncate) would leave a line without its newline; end it so the next row
                // starts clean and the bad one is reported by `train`, not merged.
                if !ends_with_newline {
                    file.write_all(b"\n").map_err(io)?;
                }
            }
            Some(first) => {
                return Err(CsvSinkError::Header {
                    path: path.to_path_buf(),
                    found: first,
                })
            }
        }
        Ok(CsvSink {
            path: path.to_path_buf(),
            file,
            torn: false,
        })
    }

    /// Append one vector as one row, flushed.
    pub fn append(&mut self, v: &FeatureVector) -> Result<(), CsvSinkError> {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::with_capacity(256));
        let num = |x: Option<f64>| x.map(|x| format!("{x}")).unwrap_or_default();
        let mut row = vec![v.metric_time.to_rfc3339(), v.service.clone()];
        row.extend(v.features.named().iter().map(|(_, x)| num(*x)));
        row.push(String::new()); // sla_violated: derived by `train` from future rows
        row.push(v.replicas.map(|r| r.to_string()).unwrap_or_default());
        w.write_record(&row).map_err(|e| CsvSinkError::Io {
            path: self.path.clone(),
            source: e.into(),
        })?;
        let bytes = w.into_inner().map_err(|e| CsvSinkError::Io {
            path: self.path.clone(),
            source: e.into_error(),
        })?;
        let mut out = Vec::with_capacity(bytes.len() + 1);
        if self.torn {
            out.push(b'\n');
        }
        out.extend_from_slice(&bytes);
        let written = self.file.write_all(&out).and_then(|_| self.file.flush());
        self.torn = written.is_err();
        written.map_err(|source| CsvSinkError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Flush and ask the OS to put the rows on disk (once per poll: survives a machine crash,
    /// not only a process crash).
    pub fn sync(&mut self) -> Result<(), CsvSinkError> {
        self.flush()?;
        self.file.sync_data().map_err(|source| CsvSinkError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Flush to the OS.
    pub fn flush(&mut self) -> Result<(), CsvSinkError> {
        self.file.flush().map_err(|source| CsvSinkError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// The first line of an existing file (`None` when it is missing or empty) and whether the file
/// ends with a newline, reading at most [`MAX_HEADER_BYTES`] of it and its last byte.
fn first_line_and_end(path: &Path) -> std::io::Result<(Option<String>, bool)> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, true)),
        Err(e) => return Err(e),
    };
    let mut line = Vec::new();
    std::io::BufReader::new((&mut f).take(MAX_HEADER_BYTES)).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Ok((None, true));
    }
    let first: String = String::from_utf8_lossy(&line)
        .trim_end_matches(['\n', '\r'])
        .chars()
        .take(200)
        .collect();
    let mut last = [0u8; 1];
    f.seek(SeekFrom::End(-1))?;
    f.read_exact(&mut last)?;
    Ok((Some(first), last[0] == b'\n'))
}
