//! Request traces: arrivals per fixed step, read from CSV or generated.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};
use serde::{Deserialize, Serialize};

/// The embedded NASA-HTTP sample: 1995-07-12 00:00 to 07-15 00:00 EDT, requests per minute,
/// `timestamp_s` rebased to 0. See `data/README.md` in this crate for its origin and terms.
pub const NASA_TRACE_CSV: &str = include_str!("../data/nasa_http_1995_07_12to14_60s.csv");

/// The header every trace CSV must start with.
const HEADER: [&str; 2] = ["timestamp_s", "requests"];

/// Why a trace could not be read. Line numbers count the header as line 1.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be opened or read.
    #[error("cannot read trace {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The CSV itself is malformed (for example not UTF-8).
    #[error("line {line}: malformed CSV: {source}")]
    Csv {
        /// Line of the error (0 when the reader did not say).
        line: u64,
        /// The cause.
        #[source]
        source: csv::Error,
    },
    /// The input has no lines at all.
    #[error("line 1: the trace is empty (expected the header `timestamp_s,requests`)")]
    Empty,
    /// The first line is not the expected header.
    #[error("line 1: expected the header `timestamp_s,requests`, found `{found}`")]
    BadHeader {
        /// The header found.
        found: String,
    },
    /// A row does not have exactly two fields.
    #[error("line {line}: expected 2 fields (`timestamp_s,requests`), found {found}")]
    FieldCount {
        /// The line.
        line: u64,
        /// Number of fields found.
        found: usize,
    },
    /// A field is not a finite number.
    #[error("line {line}: `{column}` = `{value}` is not a finite number")]
    NotANumber {
        /// The line.
        line: u64,
        /// The column.
        column: &'static str,
        /// The text found.
        value: String,
    },
    /// A field is negative.
    #[error("line {line}: `{column}` = {value} is negative")]
    Negative {
        /// The line.
        line: u64,
        /// The column.
        column: &'static str,
        /// The value found.
        value: f64,
    },
    /// Fewer than two data rows, so the step cannot be inferred.
    #[error("line {line}: a trace needs at least two data rows to infer its step, found {rows}")]
    TooShort {
        /// The line after the last row read.
        line: u64,
        /// Number of data rows found.
        rows: usize,
    },
    /// The second timestamp is not after the first.
    #[error("line {line}: timestamp_s must increase (step inferred from the first two rows is {step} s)")]
    NonIncreasing {
        /// The line.
        line: u64,
        /// The step found.
        step: f64,
    },
    /// A step differs from the step inferred from the first two rows.
    #[error("line {line}: step of {found} s differs from the step of {expected} s inferred from the first two rows")]
    UnevenStep {
        /// The line.
        line: u64,
        /// The step of the first two rows.
        expected: f64,
        /// The step found at this line.
        found: f64,
    },
    /// A programmatic trace with a non-positive step or no values.
    #[error("invalid trace: {0}")]
    Invalid(String),
}

/// Arrivals per fixed step, starting at offset 0.
///
/// `requests[i]` is the number of requests that arrived in `[i·step, (i+1)·step)` seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    step_secs: f64,
    requests: Vec<f64>,
}

impl Trace {
    /// A trace from its step and its arrivals per step (at least one, each finite and ≥ 0).
    pub fn from_requests(step_secs: f64, requests: Vec<f64>) -> Result<Self, TraceError> {
        if !(step_secs.is_finite() && step_secs > 0.0) {
            return Err(TraceError::Invalid(format!(
                "step must be a positive number of seconds, got {step_secs}"
            )));
        }
        if requests.is_empty() {
            return Err(TraceError::Invalid(
                "a trace needs at least one step".into(),
            ));
        }
        if let Some((i, v)) = requests
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(TraceError::Invalid(format!(
                "requests[{i}] = {v} is not a finite non-negative number"
            )));
        }
        Ok(Trace {
            step_secs,
            requests,
        })
    }

    /// Read a CSV with header `timestamp_s,requests`; the step is inferred from the first two
    /// rows and must be the same for every row.
    pub fn from_csv_reader<R: Read>(reader: R) -> Result<Self, TraceError> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(reader);
        let mut records = rdr.records();
        let csv_err = |source: csv::Error| TraceError::Csv {
            line: source.position().map_or(0, |p| p.line()),
            source,
        };

        let header = match records.next() {
            None => return Err(TraceError::Empty),
            Some(r) => r.map_err(csv_err)?,
        };
        let names: Vec<&str> = header
            .iter()
            .map(|f| f.trim_start_matches('\u{feff}'))
            .collect();
        if names != HEADER {
            return Err(TraceError::BadHeader {
                found: names.join(","),
            });
        }

        let mut timestamps: Vec<f64> = Vec::new();
        let mut requests: Vec<f64> = Vec::new();
        let mut step = 0.0;
        let mut last_line = 1;
        for record in records {
            let record = record.map_err(csv_err)?;
            let line = record.position().map_or(last_line + 1, |p| p.line());
            last_line = line;
            if record.len() != 2 {
                return Err(TraceError::FieldCount {
                    line,
                    found: record.len(),
                });
            }
            let ts = parse_field(&record[0], line, "timestamp_s")?;
            let n = parse_field(&record[1], line, "requests")?;
            if let Some(&prev) = timestamps.last() {
                let found = ts - prev;
                if timestamps.len() == 1 {
                    if found <= 0.0 {
                        return Err(TraceError::NonIncreasing { line, step: found });
                    }
                    step = found;
                } else if (found - step).abs() > 1e-6 * step {
                    return Err(TraceError::UnevenStep {
                        line,
                        expected: step,
                        found,
                    });
                }
            }
            timestamps.push(ts);
            requests.push(n);
        }
        if requests.len() < 2 {
            return Err(TraceError::TooShort {
                line: last_line + 1,
                rows: requests.len(),
            });
        }
        Trace::from_requests(step, requests)
    }

    /// Read a trace CSV file (see [`Trace::from_csv_reader`]).
    pub fn from_csv_path(path: &Path) -> Result<Self, TraceError> {
        let file = std::fs::File::open(path).map_err(|source| TraceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Trace::from_csv_reader(std::io::BufReader::new(file))
    }

    /// The embedded NASA-HTTP sample ([`NASA_TRACE_CSV`]): 3 days, 4,320 one-minute steps,
    /// peak 405 requests/min (the STS-70 launch, Jul 13 09:49 EDT).
    pub fn nasa_sample() -> Self {
        // The embedded file is checked by a unit test; parsing it cannot fail at run time.
        Trace::from_csv_reader(NASA_TRACE_CSV.as_bytes())
            .unwrap_or_else(|e| unreachable!("embedded NASA trace is valid: {e}"))
    }

    /// A seeded per-minute synthetic trace of `days` days (0 is read as 1), in requests per
    /// minute of the same order as the NASA sample (tens to hundreds). See [`SyntheticShape`].
    pub fn synthetic(shape: SyntheticShape, days: u32, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ shape.salt());
        let minutes = days.max(1) as usize * 1440;
        let mean = match shape {
            SyntheticShape::Diurnal => diurnal(&mut rng, minutes),
            SyntheticShape::Spiky => {
                let mut m = diurnal(&mut rng, minutes);
                add_flash_crowds(&mut rng, &mut m);
                m
            }
            SyntheticShape::Ramp => ramp(&mut rng, minutes),
            SyntheticShape::Step => steps(&mut rng, minutes),
        };
        let requests = mean
            .into_iter()
            .map(|m| match Poisson::new(m) {
                Ok(p) => p.sample(&mut rng),
                Err(_) => 0.0,
            })
            .collect();
        Trace {
            step_secs: 60.0,
            requests,
        }
    }

    /// Length of one step, seconds.
    pub fn step_secs(&self) -> f64 {
        self.step_secs
    }

    /// Length of the whole trace, seconds (`len · step`).
    pub fn duration_secs(&self) -> f64 {
        self.step_secs * self.requests.len() as f64
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Always `false`: a trace has at least one step.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Arrivals per step.
    pub fn requests(&self) -> &[f64] {
        &self.requests
    }

    /// Arrival rate (requests/s) of the step containing `offset_secs`. Offsets past the end
    /// (or before 0) wrap around modulo the duration; a non-finite offset reads step 0.
    pub fn rate_rps(&self, offset_secs: f64) -> f64 {
        let offset = if offset_secs.is_finite() {
            offset_secs.rem_euclid(self.duration_secs())
        } else {
            0.0
        };
        let i = ((offset / self.step_secs) as usize).min(self.requests.len() - 1);
        self.requests[i] / self.step_secs
    }
}

fn parse_field(text: &str, line: u64, column: &'static str) -> Result<f64, TraceError> {
    let value: f64 = text
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| TraceError::NotANumber {
            line,
            column,
            value: text.to_string(),
        })?;
    if value < 0.0 {
        return Err(TraceError::Negative {
            line,
            column,
            value,
        });
    }
    Ok(value)
}

/// Shapes of [`Trace::synthetic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyntheticShape {
    /// A sinusoidal day cycle (random level, amplitude and peak hour) with slow random wander.
    Diurnal,
    /// Diurnal plus 2–5 flash crowds a day, each 3–6× the load for 5–30 minutes.
    Spiky,
    /// Linear rises and falls (a triangle wave with a period of 6–24 h).
    Ramp,
    /// Piecewise-constant levels lasting 20 min to 4 h each.
    Step,
}

impl SyntheticShape {
    /// Every shape, in the order training runs cycle through them.
    pub const ALL: [SyntheticShape; 4] = [
        SyntheticShape::Diurnal,
        SyntheticShape::Spiky,
        SyntheticShape::Ramp,
        SyntheticShape::Step,
    ];

    /// The lower-case name (`diurnal`, `spiky`, `ramp`, `step`).
    pub fn as_str(self) -> &'static str {
        match self {
            SyntheticShape::Diurnal => "diurnal",
            SyntheticShape::Spiky => "spiky",
            SyntheticShape::Ramp => "ramp",
            SyntheticShape::Step => "step",
        }
    }

    /// Distinct per shape, so one seed gives unrelated traces for different shapes.
    fn salt(self) -> u64 {
        match self {
            SyntheticShape::Diurnal => 0x9e37_79b9_7f4a_7c15,
            SyntheticShape::Spiky => 0xbf58_476d_1ce4_e5b9,
            SyntheticShape::Ramp => 0x94d0_49bb_1331_11eb,
            SyntheticShape::Step => 0xd6e8_feb8_6659_fd93,
        }
    }
}

impl fmt::Display for SyntheticShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SyntheticShape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SyntheticShape::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown shape `{s}` (valid: diurnal, spiky, ramp, step)"))
    }
}

/// A slow multiplicative wander around 1 (AR(1) in log space), so no two days look alike.
fn wander(rng: &mut ChaCha8Rng, minutes: usize, sigma: f64) -> Vec<f64> {
    let mut x: f64 = 0.0;
    (0..minutes)
        .map(|_| {
            let z: f64 = rng.sample(StandardNormal);
            x = 0.995 * x + sigma * z;
            x.clamp(-0.5, 0.5).exp()
        })
        .collect()
}

fn diurnal(rng: &mut ChaCha8Rng, minutes: usize) -> Vec<f64> {
    let base = rng.random_range(25.0..70.0);
    let amplitude = rng.random_range(0.45..0.85);
    let peak_hour = rng.random_range(11.0..16.0);
    let w = wander(rng, minutes, 0.02);
    (0..minutes)
        .map(|m| {
            let hour = (m as f64 / 60.0) % 24.0;
            let cycle = (std::f64::consts::TAU * (hour - peak_hour) / 24.0).cos();
            base * (1.0 + amplitude * cycle) * w[m]
        })
        .collect()
}

fn add_flash_crowds(rng: &mut ChaCha8Rng, mean: &mut [f64]) {
    let days = mean.len() / 1440;
    for day in 0..days {
        let crowds = rng.random_range(2..=5);
        for _ in 0..crowds {
            let start = day * 1440 + rng.random_range(0..1440);
            let duration = rng.random_range(5..=30usize);
            let factor: f64 = rng.random_range(3.0..6.0);
            let rise = 2.min(duration / 3).max(1);
            for k in 0..duration {
                let Some(m) = mean.get_mut(start + k) else {
                    break;
                };
                // Quick rise, plateau, then a linear decay over the last third.
                let decay_from = duration - duration / 3;
                let level = if k < rise {
                    (k + 1) as f64 / (rise + 1) as f64
                } else if k >= decay_from {
                    1.0 - (k - decay_from) as f64 / (duration - decay_from + 1) as f64
                } else {
                    1.0
                };
                *m *= 1.0 + (factor - 1.0) * level;
            }
        }
    }
}

fn ramp(rng: &mut ChaCha8Rng, minutes: usize) -> Vec<f64> {
    let period = rng.random_range(360.0..1440.0);
    let low = rng.random_range(10.0..30.0);
    let high = rng.random_range(120.0..250.0);
    let w = wander(rng, minutes, 0.01);
    (0..minutes)
        .map(|m| {
            let phase = (m as f64 % period) / period;
            let tri = 1.0 - (2.0 * phase - 1.0).abs();
            (low + (high - low) * tri) * w[m]
        })
        .collect()
}

fn steps(rng: &mut ChaCha8Rng, minutes: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(minutes);
    while out.len() < minutes {
        let length = rng.random_range(20..=240usize);
        let level: f64 = rng.random_range(10.0..220.0);
        out.extend(std::iter::repeat_n(level, length));
    }
    out.truncate(minutes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Trace, TraceError> {
        Trace::from_csv_reader(s.as_bytes())
    }

    #[test]
    fn parses_a_trace_and_infers_its_step() {
        let t = parse("timestamp_s,requests\n0,60\n60,120\n120,0\n").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.step_secs(), 60.0);
        assert_eq!(t.duration_secs(), 180.0);
        assert_eq!(t.rate_rps(0.0), 1.0);
        assert_eq!(t.rate_rps(59.9), 1.0);
        assert_eq!(t.rate_rps(60.0), 2.0);
        assert_eq!(t.rate_rps(150.0), 0.0);
        // Wraps around past the end and before the start.
        assert_eq!(t.rate_rps(180.0 + 61.0), 2.0);
        assert_eq!(t.rate_rps(-1.0), 0.0);
        assert_eq!(t.rate_rps(f64::NAN), 1.0);
    }

    #[test]
    fn bad_input_is_an_error_with_its_line() {
        let cases: [(&str, &str); 9] = [
            ("", "line 1: the trace is empty"),
            ("time,requests\n0,1\n", "line 1: expected the header"),
            (
                "timestamp_s,requests\n",
                "line 2: a trace needs at least two data rows",
            ),
            (
                "timestamp_s,requests\n0,1\n",
                "line 3: a trace needs at least two data rows",
            ),
            (
                "timestamp_s,requests\n0,1\n60,abc\n",
                "line 3: `requests` = `abc`",
            ),
            (
                "timestamp_s,requests\n0,1\n60,2\n120,-3\n",
                "line 4: `requests` = -3 is negative",
            ),
            (
                "timestamp_s,requests\n0,1\n60,2\n121,3\n",
                "line 4: step of 61 s differs",
            ),
            (
                "timestamp_s,requests\n60,1\n60,2\n",
                "line 3: timestamp_s must increase",
            ),
            (
                "timestamp_s,requests\n0,1\n60,2,3\n",
                "line 3: expected 2 fields",
            ),
        ];
        for (input, expected) in cases {
            let err = parse(input).expect_err(input).to_string();
            assert!(
                err.starts_with(expected),
                "{input:?}: got `{err}`, want `{expected}`"
            );
        }
        assert!(parse("timestamp_s,requests\n0,NaN\n60,1\n").is_err());
        assert!(Trace::from_csv_path(Path::new("/nonexistent/trace.csv")).is_err());
        assert!(Trace::from_requests(0.0, vec![1.0]).is_err());
        assert!(Trace::from_requests(1.0, vec![]).is_err());
        assert!(Trace::from_requests(1.0, vec![-1.0]).is_err());
    }

    #[test]
    fn nasa_sample_is_three_days_of_minutes() {
        let t = Trace::nasa_sample();
        assert_eq!(t.len(), 4320);
        assert_eq!(t.step_secs(), 60.0);
        assert_eq!(t.duration_secs(), 3.0 * 86400.0);
        let max = t.requests().iter().cloned().fold(0.0, f64::max);
        assert_eq!(max, 405.0);
        // The peak is the STS-70 launch, Jul 13 09:49 EDT; 19:49–20:10 is the logging outage.
        let peak = t.requests().iter().position(|&r| r == 405.0).unwrap();
        assert_eq!(peak, 1440 + 9 * 60 + 49);
        let outage = &t.requests()[1440 + 19 * 60 + 49..1440 + 20 * 60 + 11];
        assert_eq!(outage.len(), 22);
        assert!(outage.iter().all(|&r| r == 0.0));
    }

    #[test]
    fn synthetic_traces_are_seeded_and_plausible() {
        for shape in SyntheticShape::ALL {
            let a = Trace::synthetic(shape, 2, 7);
            assert_eq!(a, Trace::synthetic(shape, 2, 7), "{shape}");
            assert_ne!(a, Trace::synthetic(shape, 2, 8), "{shape}");
            assert_eq!(a.len(), 2 * 1440);
            assert_eq!(a.step_secs(), 60.0);
            let max = a.requests().iter().cloned().fold(0.0, f64::max);
            let mean = a.requests().iter().sum::<f64>() / a.len() as f64;
            assert!(mean > 5.0 && mean < 300.0, "{shape}: mean {mean}");
            assert!(max < 3000.0, "{shape}: max {max}");
            assert_eq!(shape.as_str().parse::<SyntheticShape>(), Ok(shape));
        }
        // Flash crowds make spiky traces burstier than plain diurnal ones with the same seed.
        let ratio = |t: &Trace| {
            let max = t.requests().iter().cloned().fold(0.0, f64::max);
            max / (t.requests().iter().sum::<f64>() / t.len() as f64)
        };
        let d = Trace::synthetic(SyntheticShape::Diurnal, 2, 3);
        let s = Trace::synthetic(SyntheticShape::Spiky, 2, 3);
        assert!(ratio(&s) > 2.5, "spiky peak/mean {}", ratio(&s));
        assert!(ratio(&d) < ratio(&s));
    }
}
