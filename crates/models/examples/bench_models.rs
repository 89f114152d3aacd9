//! Driver of the models benchmark (see `autoscaler_models::native::bench`) until the CLI's
//! `bench-models` command exists:
//!
//!     cargo run --release -p autoscaler-models --example bench_models -- \
//!         [--json FILE] [--rows N] [--seconds S] [--python PY] [--callgrind]
//!
//! `--callgrind-case DIR KIND ENGINE BATCH ROWS` is the child run under valgrind.

use std::path::PathBuf;

use autoscaler_models::native::bench::{self, BenchConfig, Engine, RunOptions};
use autoscaler_models::ModelKind;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--callgrind-case") {
        let kind: ModelKind = serde_json::from_value(serde_json::json!(args[2]))?;
        let engine: Engine = serde_json::from_value(serde_json::json!(args[3]))?;
        let sum = bench::callgrind_case(
            &PathBuf::from(&args[1]),
            kind,
            engine,
            args[4].parse()?,
            args[5].parse()?,
        )?;
        println!("{sum}");
        return Ok(());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let mut cfg = BenchConfig {
        models_dir: root.join("models"),
        cache_dir: PathBuf::from(home).join(".cache/autoscaler/bench-models"),
        rows: bench::DEFAULT_ROWS,
        seconds_per_case: bench::DEFAULT_SECONDS_PER_CASE,
    };
    let mut json = None;
    let mut python = None;
    let mut callgrind = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--json" => json = Some(PathBuf::from(val()?)),
            "--rows" => cfg.rows = val()?.parse()?,
            "--seconds" => cfg.seconds_per_case = val()?.parse()?,
            "--python" => python = Some(PathBuf::from(val()?)),
            "--models-dir" => cfg.models_dir = PathBuf::from(val()?),
            "--cache-dir" => cfg.cache_dir = PathBuf::from(val()?),
            "--callgrind" => callgrind = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let exe = std::env::current_exe()?;
    let rows = cfg.rows;
    let child = move |bm: &bench::BenchModel, engine: Engine, batch: usize| {
        let mut c = std::process::Command::new(&exe);
        c.arg("--callgrind-case")
            .arg(&bm.dir)
            .arg(bm.kind.as_str())
            .arg(engine.as_str())
            .arg(batch.to_string())
            .arg(rows.min(bench::CALLGRIND_ROWS.max(batch) * 2).to_string());
        c
    };
    let opts = RunOptions {
        python,
        python_script: root.join("scripts/bench_models.py"),
        callgrind: if callgrind { Some(&child) } else { None },
    };
    let results = bench::run(&cfg, &opts, &mut |m| eprintln!("bench-models: {m}"))?;
    print!("{}", bench::table(&results));
    if let Some(path) = json {
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&bench::json_rows(&results))?,
        )?;
        eprintln!("bench-models: wrote {}", path.display());
    }
    Ok(())
}
