//! Loading metrics CSVs (the Sock Shop columns, plus optional `replicas`, `run`, `pattern`).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use autoscaler_contract::{Features, FEATURE_NAMES};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::TrainingError;

/// One input file, with the load pattern it records when the file has no `pattern` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataInput {
    /// The CSV file.
    pub path: PathBuf,
    /// Pattern of every row of the file without a `pattern` column (e.g. `ramp`).
    pub pattern: Option<String>,
}

impl DataInput {
    /// Parse `[PATTERN=]PATH`: `spike=data/run_1/metrics.csv` tags the file's rows with pattern
    /// `spike`. A prefix containing `/` is read as part of the path.
    pub fn parse(s: &str) -> DataInput {
        match s.split_once('=') {
            Some((p, path)) if !p.is_empty() && !p.contains('/') && !path.is_empty() => DataInput {
                path: PathBuf::from(path),
                pattern: Some(p.to_string()),
            },
            _ => DataInput {
                path: PathBuf::from(s),
                pattern: None,
            },
        }
    }
}

/// What to do with a row that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadRows {
    /// Report it (file and line) and go on.
    #[default]
    Skip,
    /// Stop at the first one.
    Fail,
}

/// One row of a metrics CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Index of the input file (into [`Loaded::files`]).
    pub file: usize,
    /// 1-based line number in that file.
    pub line: u64,
    /// Poll time.
    pub timestamp: DateTime<Utc>,
    /// The service.
    pub service: String,
    /// The run: the `run` column, else the file's path.
    pub run: String,
    /// The load pattern: the `pattern` column, else the file's `PATTERN=` prefix.
    pub pattern: Option<String>,
    /// Ready replicas, when the file has a `replicas` column with a value.
    pub replicas: Option<u32>,
    /// The ten features; empty, `nan` or `null` are `None`.
    pub features: Features,
    /// The CSV's own `sla_violated` (ignored unless asked for).
    pub csv_label: Option<bool>,
}

/// A row that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRow {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: u64,
    /// Why.
    pub reason: String,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

/// Everything read from the input files.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The input files, in the order given.
    pub files: Vec<PathBuf>,
    /// sha256 (hex) of each file's bytes.
    pub file_sha256: Vec<String>,
    /// Rows read, file by file, in file order.
    pub records: Vec<Record>,
    /// Rows skipped.
    pub bad_rows: Vec<BadRow>,
}

impl Loaded {
    /// sha256 over the files' hashes, in order: one fingerprint of all the input rows.
    pub fn inputs_sha256(&self) -> String {
        let mut h = Sha256::new();
        for s in &self.file_sha256 {
            h.update(s.as_bytes());
            h.update(b"\n");
        }
        hex(&h.finalize())
    }

    /// Whether every row has a replica count.
    pub fn all_have_replicas(&self) -> bool {
        !self.records.is_empty() && self.records.iter().all(|r| r.replicas.is_some())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse a value: empty, `nan`, `null`, `none`, `na` (any case) are missing; anything else must
/// be a finite number.
fn value(s: &str) -> Result<Option<f64>, String> {
    let t = s.trim();
    if t.is_empty()
        || ["nan", "null", "none", "na", "-nan"].contains(&t.to_ascii_lowercase().as_str())
    {
        return Ok(None);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        Ok(v) => Err(format!("`{t}` is not finite ({v})")),
        Err(_) => Err(format!("`{t}` is not a number")),
    }
}

/// RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]` (UTC) or Unix seconds.
fn timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(d.and_utc());
        }
    }
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() {
            if let Some(d) = DateTime::from_timestamp_millis((secs * 1000.0).round() as i64) {
                return Ok(d);
            }
        }
    }
    Err(format!(
        "timestamp `{t}` is not RFC 3339, `YYYY-MM-DD HH:MM:SS` or Unix seconds"
    ))
}

fn label(s: &str) -> Result<Option<bool>, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "nan" | "null" => Ok(None),
        "1" | "1.0" | "true" => Ok(Some(true)),
        "0" | "0.0" | "false" => Ok(Some(false)),
        other => Err(format!("sla_violated `{other}` is not 0/1")),
    }
}

/// Read the files. A file that cannot be opened, or lacks a required column, is an error; a
/// row that cannot be read is reported with its file and line, and skipped or fatal as
/// `bad_rows` says.
pub fn load_csvs(inputs: &[DataInput], bad_rows: BadRows) -> Result<Loaded, TrainingError> {
    if inputs.is_empty() {
        return Err(TrainingError::Config("no input CSV given".into()));
    }
    let mut out = Loaded::default();
    for (file_idx, input) in inputs.iter().enumerate() {
        let bytes = std::fs::read(&input.path).map_err(|source| TrainingError::Io {
            path: input.path.clone(),
            source,
        })?;
        out.files.push(input.path.clone());
        out.file_sha256.push(hex(&Sha256::digest(&bytes)));
        load_one(file_idx, input, &bytes, bad_rows, &mut out)?;
    }
    Ok(out)
}

fn load_one(
    file_idx: usize,
    input: &DataInput,
    bytes: &[u8],
    policy: BadRows,
    out: &mut Loaded,
) -> Result<(), TrainingError> {
    let path = &input.path;
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let header = rdr
        .headers()
        .map_err(|e| TrainingError::Csv {
            path: path.clone(),
            reason: e.to_string(),
        })?
        .clone();
    let col: HashMap<String, usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim().to_string(), i))
        .collect();
    let mut missing: Vec<&str> = ["timestamp", "service"]
        .into_iter()
        .chain(FEATURE_NAMES)
        .filter(|c| !col.contains_key(*c))
        .collect();
    missing.sort_unstable();
    if !missing.is_empty() {
        return Err(TrainingError::Csv {
            path: path.clone(),
            reason: format!("missing column(s): {}", missing.join(", ")),
        });
    }
    let default_run = path.display().to_string();
    let feature_cols: Vec<usize> = FEATURE_NAMES.iter().map(|n| col[*n]).collect();
    for result in rdr.records() {
        let (line, parsed) = match result {
            Ok(rec) => {
                let line = rec.position().map_or(0, |p| p.line());
                (
                    line,
                    parse_row(&rec, &col, &feature_cols, input, &default_run),
                )
            }
            Err(e) => (e.position().map_or(0, |p| p.line()), Err(e.to_string())),
        };
        match parsed {
            Ok(mut r) => {
                r.file = file_idx;
                r.line = line;
                out.records.push(r);
            }
            Err(reason) => {
                let bad = BadRow {
                    file: path.clone(),
                    line,
                    reason,
                };
                if policy == BadRows::Fail {
                    return Err(TrainingError::BadRow(bad));
                }
                tracing::warn!(%bad, "skipping a bad row");
                out.bad_rows.push(bad);
            }
        }
    }
    Ok(())
}

fn parse_row(
    rec: &csv::StringRecord,
    col: &HashMap<String, usize>,
    feature_cols: &[usize],
    input: &DataInput,
    default_run: &str,
) -> Result<Record, String> {
    let get = |name: &str| col.get(name).and_then(|i| rec.get(*i));
    let need = |name: &str| get(name).ok_or_else(|| format!("no `{name}` field (short row)"));
    let ts = timestamp(need("timestamp")?)?;
    let service = need("service")?.trim().to_string();
    if service.is_empty() {
        return Err("empty service".into());
    }
    let mut v = [None; 10];
    for (slot, (i, name)) in v.iter_mut().zip(feature_cols.iter().zip(FEATURE_NAMES)) {
        let raw = rec
            .get(*i)
            .ok_or_else(|| format!("no `{name}` field (short row)"))?;
        *slot = value(raw).map_err(|e| format!("{name}: {e}"))?;
    }
    let features = Features {
        request_rate_rps: v[0],
        error_rate_pct: v[1],
        p50_latency_ms: v[2],
        p95_latency_ms: v[3],
        p99_latency_ms: v[4],
        cpu_usage_pct: v[5],
        memory_usage_mb: v[6],
        delta_rps: v[7],
        delta_p95_latency_ms: v[8],
        delta_cpu_usage_pct: v[9],
    };
    let replicas = match get("replicas").map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<u32>()
                .map_err(|_| format!("replicas `{s}` is not a whole number"))?,
        ),
    };
    let run = get("run")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map_or_else(|| default_run.to_string(), str::to_string);
    let pattern = get("pattern")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| input.pattern.clone());
    let csv_label = match get("sla_violated") {
        Some(s) => label(s)?,
        None => None,
    };
    Ok(Record {
        file: 0,
        line: 0,
        timestamp: ts,
        service,
        run,
        pattern,
        replicas,
        features,
        csv_label,
    })
}

/// The model input of a record, in `names` order; NaN where the value is missing (never 0).
/// Per-replica features are NaN without a replica count.
pub fn raw_row(r: &Record, names: &[String]) -> Result<Vec<f64>, TrainingError> {
    let replicas = r.replicas.filter(|n| *n > 0).map(f64::from);
    names
        .iter()
        .map(|n| {
            let v = match n.as_str() {
                "rps_per_replica" => r
                    .features
                    .request_rate_rps
                    .zip(replicas)
                    .map(|(a, b)| a / b),
                "cpu_per_replica_pct" => r.features.cpu_usage_pct.zip(replicas).map(|(a, b)| a / b),
                name if FEATURE_NAMES.contains(&name) => r.features.get(name),
                other => return Err(TrainingError::Config(format!("unknown feature `{other}`"))),
            };
            Ok(v.filter(|x| x.is_finite()).unwrap_or(f64::NAN))
        })
        .collect()
}
