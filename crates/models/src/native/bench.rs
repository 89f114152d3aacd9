//! The models benchmark behind `autoscaler bench-models` (and `scripts/bench-models.sh`): the
//! same model files predicted by the native engine, by the library that fitted them (XGBoost's
//! C API; smartcore for the forest) and by Python (xgboost / scikit-learn, in a venv the script
//! makes), one row at a time and in batches of 1,000, for the shipped models and for 200-tree
//! versions (XGBoost depth 6, forest depth 8).
//!
//! * Rows: [`BenchConfig::rows`] (≥ 10,000) distinct rows, drawn once from a fixed seed; every
//!   timing loop cycles through all of them, so neither branch predictors nor caches can learn
//!   one row. Their values are `f32` numbers (widened to `f64`): scikit-learn's trees compare in
//!   `f32`, and with `f32` inputs its forest takes exactly the branches smartcore's `f64` walk
//!   takes — so Python predicts the *same* model, and the script checks it does before timing.
//! * Time: each case runs for at least [`BenchConfig::seconds_per_case`] and at least one pass
//!   over the rows, [`REPEATS`] times; the median pass is reported, in µs per row.
//! * Instructions: with `callgrind` the caller runs each native and C-API case under
//!   `valgrind --tool=callgrind`, collecting only inside [`measured_loop`]; instructions per
//!   row are repeatable on a noisy machine where times are not.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use autoscaler_contract::ModelKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{
    default_feature_names, load, save, train, Dataset, MetadataExtra, Model, ModelError,
    TrainParams,
};

/// Distinct rows every timing loop cycles through.
pub const DEFAULT_ROWS: usize = 10_000;
/// Minimum wall time of one timed pass, seconds.
pub const DEFAULT_SECONDS_PER_CASE: f64 = 0.3;
/// Timed passes per case (the median is reported).
pub const REPEATS: usize = 5;
/// The batch size of the batch cases.
pub const BATCH: usize = 1_000;
/// Trees of the large versions.
pub const BIG_TREES: usize = 200;
/// Depth of the large XGBoost model.
pub const BIG_XGB_DEPTH: u32 = 6;
/// Depth of the large forest.
pub const BIG_FOREST_DEPTH: u16 = 8;
/// Rows the large models are trained on.
pub const BIG_TRAIN_ROWS: usize = 20_000;
/// Seed of the rows and of the large models' training data.
pub const SEED: u64 = 20_251_201;
/// Predictions per callgrind run (per row: batch cases run `CALLGRIND_ROWS / BATCH` batches).
pub const CALLGRIND_ROWS: usize = 2_000;

/// Which implementation predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// This crate's native evaluator (`Model::predict_proba` / `predict_proba_into`).
    Native,
    /// libxgboost through its C API (the `xgb` crate).
    CApi,
    /// smartcore's `predict` (the forest's reference).
    Smartcore,
    /// Python's xgboost or scikit-learn.
    Python,
}

impl Engine {
    /// Name in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Native => "native",
            Engine::CApi => "c_api",
            Engine::Smartcore => "smartcore",
            Engine::Python => "python",
        }
    }
}

/// One model file under test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchModel {
    /// `shipped` or `200-trees`.
    pub label: String,
    /// Which model.
    pub kind: ModelKind,
    /// Trees (0 for logistic regression).
    pub trees: usize,
    /// Its models directory (holding `<kind>/model.json`).
    pub dir: PathBuf,
}

/// One measured case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// Which model.
    pub model: ModelKind,
    /// Trees (0 for logistic regression).
    pub trees: usize,
    /// Which implementation.
    pub engine: Engine,
    /// Rows per call (1 or [`BATCH`]).
    pub batch: usize,
    /// Median µs per row.
    pub us_per_row: f64,
    /// Instructions per row under callgrind, when measured.
    #[serde(default)]
    pub instructions_per_row: Option<f64>,
}

/// What the issue's `--json` file holds per case: exactly these fields.
#[derive(Debug, Serialize)]
pub struct JsonRow {
    /// `xgboost|random_forest|logistic_regression`.
    pub model: ModelKind,
    /// Trees.
    pub trees: usize,
    /// `native|c_api|python`.
    pub engine: &'static str,
    /// 1 or 1000.
    pub batch: usize,
    /// µs per row.
    pub us_per_row: f64,
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The shipped models.
    pub models_dir: PathBuf,
    /// Where the large models, the rows and the Python hand-over files are kept.
    pub cache_dir: PathBuf,
    /// Distinct rows (≥ 10,000 for a reportable run).
    pub rows: usize,
    /// Minimum seconds of one timed pass.
    pub seconds_per_case: f64,
}

/// The rows: `n` distinct rows of the default features, `f32` values widened to `f64`, in
/// plausible ranges (per-replica features consistent with their totals up to `f32` rounding).
pub fn bench_rows(n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let f = |x: f64| f64::from(x as f32);
    (0..n)
        .map(|_| {
            let replicas = f64::from(rng.random_range(1u32..=8));
            let rps = rng.random_range(0.0..600.0);
            let cpu = rng.random_range(0.0..95.0) * replicas;
            let p95 = rng.random_range(5.0..600.0);
            vec![
                f(rps),
                f(rng.random_range(0.0..10.0)),
                f(p95 * rng.random_range(0.2..0.8)),
                f(p95),
                f(p95 * rng.random_range(1.0..2.0)),
                f(cpu),
                f(rng.random_range(50.0..2000.0)),
                f(rng.random_range(-100.0..100.0)),
                f(rng.random_range(-100.0..100.0)),
                f(rng.random_range(-50.0..50.0)),
                f(rps / replicas),
                f(cpu / replicas),
            ]
        })
        .collect()
}

/// Training data for the large models: bench-like rows, labelled by a noisy rule (p95 or CPU
/// per replica high), so the trees grow to their full depth.
fn big_training_data() -> Dataset {
    let rows = bench_rows(BIG_TRAIN_ROWS, SEED ^ 0x5eed);
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let labels = rows
        .iter()
        .map(|r| r[3] + rng.random_range(-120.0..120.0) > 350.0 || r[11] > 75.0)
        .collect();
    Dataset {
        feature_names: default_feature_names(),
        rows,
        labels,
    }
}

/// The models under test: the three shipped ones, then the 200-tree XGBoost (depth 6) and
/// forest (depth 8), trained once into `cache_dir/models-200` (reused when present).
pub fn models(
    cfg: &BenchConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<BenchModel>, ModelError> {
    let mut out = Vec::new();
    for kind in ModelKind::ALL {
        let m = load(kind, &cfg.models_dir)?;
        out.push(BenchModel {
            label: "shipped".into(),
            kind,
            trees: trees_of(m.as_ref()),
            dir: cfg.models_dir.clone(),
        });
    }
    let big = cfg.cache_dir.join(format!("models-{BIG_TREES}"));
    let params = TrainParams {
        xgb_rounds: BIG_TREES as u32,
        xgb_max_depth: BIG_XGB_DEPTH,
        rf_trees: BIG_TREES,
        rf_max_depth: Some(BIG_FOREST_DEPTH),
        ..TrainParams::default()
    };
    let mut data = None;
    for kind in [ModelKind::Xgboost, ModelKind::RandomForest] {
        let m = match load(kind, &big) {
            Ok(m) if trees_of(m.as_ref()) == BIG_TREES => m,
            _ => {
                progress(&format!(
                    "training the {BIG_TREES}-tree {kind} (once; cached in {})",
                    big.display()
                ));
                let d = data.get_or_insert_with(big_training_data);
                let m = train(kind, d, &params)?;
                save(
                    m.as_ref(),
                    &big,
                    &MetadataExtra {
                        horizon: 1,
                        sla_p95_ms: 350.0,
                        created_at: "2025-12-01T00:00:00Z".into(),
                        threshold: None,
                        scores: serde_json::json!({}),
                        imputation: None,
                        training_data: serde_json::json!({
                            "source": "autoscaler-models bench rows",
                            "rows": BIG_TRAIN_ROWS,
                            "seed": SEED
                        }),
                    },
                )?;
                m
            }
        };
        out.push(BenchModel {
            label: format!("{BIG_TREES}-trees"),
            kind,
            trees: trees_of(m.as_ref()),
            dir: big.clone(),
        });
    }
    Ok(out)
}

fn trees_of(m: &dyn Model) -> usize {
    m.as_trained()
        .map(|t| t.native().shape().trees)
        .unwrap_or(0)
}

/// The engines that apply to `kind` on this side (Python is measured by the script).
pub fn rust_engines(kind: ModelKind) -> &'static [Engine] {
    match kind {
        ModelKind::Xgboost => &[Engine::Native, Engine::CApi],
        ModelKind::RandomForest => &[Engine::Native, Engine::Smartcore],
        ModelKind::LogisticRegression => &[Engine::Native],
    }
}

/// Predict `iterations` calls of `batch` rows each, cycling through `rows` (`flat` is the same
/// rows, row-major). Not inlined, so callgrind can collect inside it alone
/// (`--toggle-collect=*measured_loop*`). Returns a checksum (so nothing is optimised away).
#[inline(never)]
pub fn measured_loop(
    model: &dyn Model,
    engine: Engine,
    rows: &[Vec<f64>],
    flat: &[f64],
    batch: usize,
    iterations: usize,
    out: &mut [f64],
) -> Result<f64, ModelError> {
    let n = rows.len();
    let width = flat.len() / n.max(1);
    let trained = model.as_trained();
    let mut sum = 0.0;
    let batches = n / batch;
    for it in 0..iterations {
        let k = it % batches;
        let chunk = &rows[k * batch..(k + 1) * batch];
        match engine {
            Engine::Native if batch == 1 => sum += model.predict_proba(black_box(&chunk[0]))?,
            Engine::Native => {
                let x = &flat[k * batch * width..(k + 1) * batch * width];
                model.predict_proba_into(black_box(x), &mut out[..batch])?;
                sum += out[0];
            }
            Engine::CApi | Engine::Smartcore => {
                let t = trained.ok_or(ModelError::NotSaveable)?;
                sum += t.predict_proba_reference(black_box(chunk))?[0];
            }
            Engine::Python => {
                return Err(ModelError::InvalidParams(
                    "Python is timed by scripts/bench_models.py".into(),
                ))
            }
        }
    }
    Ok(black_box(sum))
}

/// Time one case: median over [`REPEATS`] passes of µs per row.
pub fn time_case(
    model: &dyn Model,
    engine: Engine,
    rows: &[Vec<f64>],
    flat: &[f64],
    batch: usize,
    seconds: f64,
) -> Result<f64, ModelError> {
    let mut out = vec![0.0; batch];
    let per_pass = rows.len() / batch;
    // Calibrate: how many calls fill `seconds`, in whole passes over the rows.
    let start = Instant::now();
    measured_loop(model, engine, rows, flat, batch, per_pass, &mut out)?;
    let one_pass = start.elapsed().as_secs_f64().max(1e-9);
    let passes = ((seconds / one_pass).ceil() as usize).max(1);
    let mut samples = Vec::with_capacity(REPEATS);
    for _ in 0..REPEATS {
        let start = Instant::now();
        measured_loop(
            model,
            engine,
            rows,
            flat,
            batch,
            per_pass * passes,
            &mut out,
        )?;
        let calls = (per_pass * passes * batch) as f64;
        samples.push(start.elapsed().as_secs_f64() * 1e6 / calls);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[REPEATS / 2])
}

/// What the Python script is handed: the rows (raw little-endian `f64`, row-major), and per
/// model its file(s) and the native predictions it must reproduce before timing.
#[derive(Debug, Serialize, Deserialize)]
pub struct PythonManifest {
    /// Raw rows file.
    pub rows_file: PathBuf,
    /// Rows in it.
    pub rows: usize,
    /// Values per row.
    pub n_features: usize,
    /// Minimum seconds per timed case.
    pub seconds_per_case: f64,
    /// Models.
    pub models: Vec<PythonModel>,
}

/// One model for the Python script.
#[derive(Debug, Serialize, Deserialize)]
pub struct PythonModel {
    /// Which model.
    pub kind: ModelKind,
    /// Trees.
    pub trees: usize,
    /// `shipped` or `200-trees`.
    pub label: String,
    /// XGBoost JSON, the flat forest (see [`super::ForestNative::export`]) or the logistic
    /// regression's `model.json`.
    pub file: PathBuf,
    /// Native P(violation) of every row, raw little-endian `f64`.
    pub native_file: PathBuf,
}

/// Write the Python hand-over files into `cache_dir/python` and return the manifest's path.
pub fn write_python_inputs(
    cfg: &BenchConfig,
    models: &[BenchModel],
    rows: &[Vec<f64>],
) -> Result<PathBuf, ModelError> {
    let dir = cfg.cache_dir.join("python");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let rows_file = dir.join("rows.f64");
    let bytes: Vec<u8> = rows
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&rows_file, bytes).map_err(io(&rows_file))?;
    let mut list = Vec::new();
    for (i, bm) in models.iter().enumerate() {
        let model = load(bm.kind, &bm.dir)?;
        let model_file = bm.dir.join(bm.kind.as_str()).join(crate::MODEL_FILE);
        let file = match (bm.kind, model.as_trained().map(|t| t.native())) {
            (ModelKind::RandomForest, Some(super::NativeModel::RandomForest(f))) => {
                let p = dir.join(format!("{i}-forest-flat.json"));
                let json = serde_json::to_vec(&serde_json::json!({
                    "n_features": f.n_features(),
                    "trees": f.export(),
                }))
                .map_err(|source| ModelError::Json {
                    path: p.clone(),
                    source,
                })?;
                std::fs::write(&p, json).map_err(io(&p))?;
                p
            }
            _ => model_file,
        };
        let native_file = dir.join(format!("{i}-native.f64"));
        let p = model.predict_proba_batch(rows)?;
        let bytes: Vec<u8> = p.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&native_file, bytes).map_err(io(&native_file))?;
        list.push(PythonModel {
            kind: bm.kind,
            trees: bm.trees,
            label: bm.label.clone(),
            file,
            native_file,
        });
    }
    let manifest = PythonManifest {
        rows_file,
        rows: rows.len(),
        n_features: rows.first().map_or(0, Vec::len),
        seconds_per_case: cfg.seconds_per_case,
        models: list,
    };
    let path = dir.join("manifest.json");
    let json = serde_json::to_vec_pretty(&manifest).map_err(|source| ModelError::Json {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&path, json).map_err(io(&path))?;
    Ok(path)
}

/// One line of the Python script's output.
#[derive(Debug, Deserialize)]
pub struct PythonResult {
    /// Which model.
    pub kind: ModelKind,
    /// Trees.
    pub trees: usize,
    /// 1 or 1000.
    pub batch: usize,
    /// Median µs per row.
    pub us_per_row: f64,
    /// Largest |Python − native| over all rows (checked before timing).
    pub max_abs_diff: f64,
    /// What Python called (e.g. `Booster.inplace_predict`).
    pub call: String,
}

/// What can stop a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Loading, training or predicting failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A helper program (Python, valgrind) could not be run or failed.
    #[error("{program} failed: {detail}")]
    Program {
        /// Which program.
        program: String,
        /// Its exit status and the end of its stderr.
        detail: String,
    },
}

/// How to run the Python side and callgrind.
pub struct RunOptions<'a> {
    /// The venv's python (`scripts/bench-models-venv.sh`); `None` skips Python.
    pub python: Option<PathBuf>,
    /// `scripts/bench_models.py`.
    pub python_script: PathBuf,
    /// The command that runs one case in a child process for callgrind (it must call
    /// [`callgrind_case`] with the same model, engine and batch); `None` skips callgrind.
    #[allow(clippy::type_complexity)]
    pub callgrind: Option<&'a dyn Fn(&BenchModel, Engine, usize) -> std::process::Command>,
}

/// Run every case: Rust engines timed here, Python through the script, callgrind counts through
/// child processes. `progress` gets a line per step.
pub fn run(
    cfg: &BenchConfig,
    opts: &RunOptions<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Measurement>, BenchError> {
    let models = models(cfg, progress)?;
    let rows = bench_rows(cfg.rows, SEED);
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let mut results = Vec::new();
    for bm in &models {
        let model = load(bm.kind, &bm.dir)?;
        for engine in rust_engines(bm.kind) {
            for batch in [1, BATCH] {
                progress(&format!(
                    "{} {} trees, {}, batch {batch}",
                    bm.kind,
                    bm.trees,
                    engine.as_str()
                ));
                let us = time_case(
                    model.as_ref(),
                    *engine,
                    &rows,
                    &flat,
                    batch,
                    cfg.seconds_per_case,
                )?;
                let instructions = match opts.callgrind {
                    Some(cmd) => Some(callgrind(cfg, cmd(bm, *engine, batch), bm, *engine, batch)?),
                    None => None,
                };
                results.push(Measurement {
                    model: bm.kind,
                    trees: bm.trees,
                    engine: *engine,
                    batch,
                    us_per_row: us,
                    instructions_per_row: instructions,
                });
            }
        }
    }
    if let Some(python) = &opts.python {
        progress("Python: checking the converted models predict the same, then timing");
        let manifest = write_python_inputs(cfg, &models, &rows)?;
        let out = cfg.cache_dir.join("python").join("results.json");
        let status = std::process::Command::new(python)
            .arg(&opts.python_script)
            .arg(&manifest)
            .arg(&out)
            .status()
            .map_err(|e| BenchError::Program {
                program: python.display().to_string(),
                detail: e.to_string(),
            })?;
        if !status.success() {
            return Err(BenchError::Program {
                program: opts.python_script.display().to_string(),
                detail: status.to_string(),
            });
        }
        let bytes = std::fs::read(&out).map_err(|source| ModelError::Io {
            path: out.clone(),
            source,
        })?;
        let py: Vec<PythonResult> =
            serde_json::from_slice(&bytes).map_err(|source| ModelError::Json {
                path: out.clone(),
                source,
            })?;
        for p in py {
            results.push(Measurement {
                model: p.kind,
                trees: p.trees,
                engine: Engine::Python,
                batch: p.batch,
                us_per_row: p.us_per_row,
                instructions_per_row: None,
            });
        }
    }
    Ok(results)
}

/// Instructions per row of one case, from `valgrind --tool=callgrind` on `child` collecting
/// inside [`measured_loop`] only.
fn callgrind(
    cfg: &BenchConfig,
    child: std::process::Command,
    bm: &BenchModel,
    engine: Engine,
    batch: usize,
) -> Result<f64, BenchError> {
    let dir = cfg.cache_dir.join("callgrind");
    std::fs::create_dir_all(&dir).map_err(|source| ModelError::Io {
        path: dir.clone(),
        source,
    })?;
    let out = dir.join(format!(
        "{}-{}-{}-{batch}.out",
        bm.kind,
        bm.trees,
        engine.as_str()
    ));
    let mut cmd = std::process::Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg("--toggle-collect=*measured_loop*")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(child.get_program())
        .args(child.get_args())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let fail = |detail: String| BenchError::Program {
        program: "valgrind".into(),
        detail,
    };
    let output = cmd.output().map_err(|e| fail(e.to_string()))?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        let tail: String = err.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        return Err(fail(format!("{}: {tail}", output.status)));
    }
    let total =
        callgrind_total(&out).ok_or_else(|| fail(format!("no totals in {}", out.display())))?;
    Ok(total as f64 / callgrind_rows(batch) as f64)
}

/// Rows predicted by one callgrind case.
pub fn callgrind_rows(batch: usize) -> usize {
    CALLGRIND_ROWS.max(batch)
}

/// The child side of the callgrind run: load the model, make the rows, predict
/// [`callgrind_rows`] rows through [`measured_loop`].
pub fn callgrind_case(
    models_dir: &Path,
    kind: ModelKind,
    engine: Engine,
    batch: usize,
    rows: usize,
) -> Result<f64, ModelError> {
    let model = load(kind, models_dir)?;
    let rows = bench_rows(rows.max(batch), SEED);
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let mut out = vec![0.0; batch];
    measured_loop(
        model.as_ref(),
        engine,
        &rows,
        &flat,
        batch,
        callgrind_rows(batch) / batch,
        &mut out,
    )
}

/// The total of a callgrind output file (`totals:` or `summary:` line).
pub fn callgrind_total(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text
        .lines()
        .find(|l| l.starts_with("totals:"))
        .or_else(|| text.lines().find(|l| l.starts_with("summary:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The table: one line per (model, trees, batch), engines side by side, ratios to Python.
pub fn table(results: &[Measurement]) -> String {
    let mut keys: Vec<(ModelKind, usize, usize)> = Vec::new();
    for m in results {
        let k = (m.model, m.trees, m.batch);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let find = |k: &(ModelKind, usize, usize), e: Engine| {
        results
            .iter()
            .find(|m| (m.model, m.trees, m.batch) == *k && m.engine == e)
    };
    let us = |m: Option<&Measurement>| m.map_or("—".to_string(), |m| fmt_us(m.us_per_row));
    let ir = |m: Option<&Measurement>| {
        m.and_then(|m| m.instructions_per_row)
            .map_or("—".to_string(), |i| format!("{i:.0}"))
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| model | trees | batch | native µs/row | native instr/row | library µs/row | library instr/row | python µs/row | python ÷ native |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for k in &keys {
        let native = find(k, Engine::Native);
        let lib = find(k, Engine::CApi).or_else(|| find(k, Engine::Smartcore));
        let py = find(k, Engine::Python);
        let lib_name = lib.map_or("", |m| match m.engine {
            Engine::CApi => " (C API)",
            Engine::Smartcore => " (smartcore)",
            _ => "",
        });
        let ratio = match (native, py) {
            (Some(n), Some(p)) if n.us_per_row > 0.0 => {
                format!("{:.0}×", p.us_per_row / n.us_per_row)
            }
            _ => "—".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {}{} | {} | {} | {} |",
            k.0,
            k.1,
            k.2,
            us(native),
            ir(native),
            us(lib),
            lib_name,
            ir(lib),
            us(py),
            ratio
        );
    }
    s
}

fn fmt_us(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The `--json` rows: native, C API and Python cases only, the five fields.
pub fn json_rows(results: &[Measurement]) -> Vec<JsonRow> {
    results
        .iter()
        .filter(|m| matches!(m.engine, Engine::Native | Engine::CApi | Engine::Python))
        .map(|m| JsonRow {
            model: m.model,
            trees: m.trees,
            engine: m.engine.as_str(),
            batch: m.batch,
            us_per_row: m.us_per_row,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_distinct_f32_values() {
        let rows = bench_rows(2_000, 1);
        assert!(rows
            .iter()
            .flatten()
            .all(|v| f64::from(*v as f32) == *v && v.is_finite()));
        let mut firsts: Vec<u64> = rows.iter().map(|r| r[0].to_bits()).collect();
        firsts.sort_unstable();
        firsts.dedup();
        assert_eq!(firsts.len(), rows.len());
    }

    #[test]
    fn table_puts_engines_side_by_side() {
        let m = |engine, us| Measurement {
            model: ModelKind::Xgboost,
            trees: 100,
            engine,
            batch: 1,
            us_per_row: us,
            instructions_per_row: Some(1234.0),
        };
        let t = table(&[
            m(Engine::Native, 0.5),
            m(Engine::CApi, 60.0),
            m(Engine::Python, 150.0),
        ]);
        assert!(
            t.contains("| xgboost | 100 | 1 | 0.500 | 1234 | 60.00 (C API) | 1234 | 150 | 300× |"),
            "{t}"
        );
        assert_eq!(json_rows(&[m(Engine::Smartcore, 1.0)]).len(), 0);
    }
}
