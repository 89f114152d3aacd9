//! `autoscaler bench-models`: the models benchmark (see `autoscaler_models::native::bench`).
//!
//! The same model files predicted by the native engine, by libxgboost's C API (smartcore for
//! the forest) and by Python's xgboost / scikit-learn, one row at a time and in batches of
//! 1,000, for the shipped models and 200-tree versions. Prints a table; `--json FILE` writes the
//! issue's fields. `scripts/bench-models.sh` installs what it needs (venv, valgrind) and runs
//! it.

use std::path::PathBuf;

use anyhow::Context;
use autoscaler_models::native::bench::{
    self, BenchConfig, BenchModel, Engine, RunOptions, DEFAULT_ROWS, DEFAULT_SECONDS_PER_CASE,
};
use autoscaler_models::{ModelKind, DEFAULT_MODELS_DIR};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

/// Default directory of the large models, the rows and the Python hand-over files (under
/// `$HOME`).
pub const DEFAULT_CACHE_DIR: &str = ".cache/autoscaler/bench-models";
/// Default Python script (relative to the working directory: the repository root).
pub const DEFAULT_PYTHON_SCRIPT: &str = "scripts/bench_models.py";

/// `autoscaler bench-models`.
#[derive(Debug, Clone, Args)]
pub struct BenchModelsArgs {
    /// Directory of the shipped models.
    #[arg(long, env = "MODELS_DIR", default_value = DEFAULT_MODELS_DIR)]
    pub models_dir: PathBuf,
    /// Where the 200-tree models (trained once), the rows and the Python files are kept
    /// (default: ~/.cache/autoscaler/bench-models).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Distinct rows every timing loop cycles through (≥ 10,000 for a reportable run).
    #[arg(long, default_value_t = DEFAULT_ROWS)]
    pub rows: usize,
    /// Minimum seconds of one timed pass (five passes per case, the median is reported).
    #[arg(long, default_value_t = DEFAULT_SECONDS_PER_CASE)]
    pub seconds: f64,
    /// Python with xgboost and scikit-learn (scripts/bench-models-venv.sh makes one); without
    /// it Python is not measured.
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The Python side.
    #[arg(long, default_value = DEFAULT_PYTHON_SCRIPT)]
    pub python_script: PathBuf,
    /// Count instructions per row with `valgrind --tool=callgrind` (each native and library
    /// case run once more in a child process).
    #[arg(long)]
    pub callgrind: bool,
    /// Write the results as JSON: `[{"model","trees","engine","batch","us_per_row"}]`.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Internal: the child run under callgrind (`DIR KIND ENGINE BATCH ROWS`).
    #[arg(long, hide = true, num_args = 5)]
    pub callgrind_case: Option<Vec<String>>,
}

/// Run the benchmark and print its table.
pub async fn run(a: BenchModelsArgs, _shutdown: CancellationToken) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || run_blocking(a)).await?
}

fn run_blocking(a: BenchModelsArgs) -> anyhow::Result<()> {
    if let Some(c) = &a.callgrind_case {
        let kind: ModelKind = c[1].parse().map_err(anyhow::Error::msg)?;
        let engine: Engine = serde_json::from_value(serde_json::json!(c[2]))
            .with_context(|| format!("engine `{}`", c[2]))?;
        let sum = bench::callgrind_case(
            &PathBuf::from(&c[0]),
            kind,
            engine,
            c[3].parse()?,
            c[4].parse()?,
        )?;
        println!("{sum}");
        return Ok(());
    }
    let cache_dir = match a.cache_dir {
        Some(d) => d,
        None => {
            PathBuf::from(std::env::var("HOME").context("HOME is not set")?).join(DEFAULT_CACHE_DIR)
        }
    };
    let cfg = BenchConfig {
        models_dir: a.models_dir,
        cache_dir,
        rows: a.rows,
        seconds_per_case: a.seconds,
    };
    let exe = std::env::current_exe().context("locating this binary for callgrind")?;
    let rows = cfg.rows;
    let child = move |bm: &BenchModel, engine: Engine, batch: usize| {
        let mut c = std::process::Command::new(&exe);
        c.arg("bench-models")
            .arg("--callgrind-case")
            .arg(&bm.dir)
            .arg(bm.kind.as_str())
            .arg(engine.as_str())
            .arg(batch.to_string())
            .arg(rows.min(2 * bench::callgrind_rows(batch)).to_string());
        c
    };
    let opts = RunOptions {
        python: a.python,
        python_script: a.python_script,
        callgrind: if a.callgrind { Some(&child) } else { None },
    };
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let results = bench::run(&cfg, &opts, &mut |m| bar.set_message(m.to_string()))?;
    bar.finish_and_clear();
    print!("{}", bench::table(&results));
    println!(
        "rows: {} distinct (f32 values), each case ≥ {} s × {} passes, median; µs per row",
        cfg.rows,
        cfg.seconds_per_case,
        bench::REPEATS
    );
    if let Some(path) = a.json {
        let json = serde_json::to_vec_pretty(&bench::json_rows(&results))?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench-models: wrote {}", path.display());
    }
    Ok(())
}
