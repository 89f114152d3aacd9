//! What `run` and `demo` share: load the models, run the [embedded](crate::embedded) pipeline,
//! print decision blocks as they come and the summary at the end.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use autoscaler_aggregator::AggregatorConfig;
use autoscaler_bus::DEFAULT_MEMORY_CAPACITY;
use autoscaler_contract::Decision;
use autoscaler_scaler::ScalerConfig;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::embedded::{self, Embedded, Progress};
use crate::exit::ConfigError;
use crate::opts::aggregator::{aggregator_config, AggregatorOpts};
use crate::opts::models::{load_models, ModelsOpts};
use crate::opts::scaler::{scaler_config, ScalerOpts};
use crate::report;

/// One run of the whole pipeline in this process.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The aggregator (a replay, or a live Prometheus).
    pub aggregator: AggregatorConfig,
    /// The scaler.
    pub scaler: ScalerConfig,
    /// Where the models are (trained there first when missing).
    pub models_dir: PathBuf,
    /// The SLA missing models are trained for, ms.
    pub sla_p95_ms: f64,
    /// Seed of missing models' training.
    pub seed: u64,
    /// Replicas the simulated actuator starts each service with.
    pub initial_replicas: u32,
    /// Print a decision block for every decision that changes something.
    pub print_decisions: bool,
    /// Write every decision as one JSON line to this file.
    pub decisions_jsonl: Option<PathBuf>,
}

impl Pipeline {
    /// The pipeline of these options, or every problem with them (the aggregator's first).
    pub fn from_opts(
        aggregator: &AggregatorOpts,
        models: &ModelsOpts,
        scaler: &ScalerOpts,
    ) -> Result<Pipeline, ConfigError> {
        Ok(Pipeline {
            aggregator: aggregator_config(aggregator)?,
            scaler: scaler_config(scaler)?,
            models_dir: models.models_dir.clone(),
            sla_p95_ms: aggregator.sla_p95_ms,
            seed: aggregator.seed,
            initial_replicas: aggregator.initial_replicas,
            print_decisions: false,
            decisions_jsonl: None,
        })
    }
}

/// A progress indication on stderr: a bar on a terminal, a line every 10 % otherwise.
fn progress(label: &'static str) -> (Progress, ProgressBar) {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:40}] {percent:>3}% simulated {pos}/{len} polls, {elapsed}",
        )
        .expect("valid template"),
    );
    bar.set_message(label);
    let tty = std::io::stderr().is_terminal();
    let b = bar.clone();
    let last_tenth = Arc::new(Mutex::new(u64::MAX));
    let f = move |done: u64, total: u64| {
        if tty {
            b.set_length(total);
            b.set_position(done);
        } else {
            let tenth = done * 10 / total.max(1);
            let mut last = last_tenth.lock().unwrap_or_else(|e| e.into_inner());
            if *last != tenth {
                *last = tenth;
                eprintln!("{label}: {}% ({done}/{total} polls)", tenth * 10);
            }
        }
    };
    (Arc::new(f), bar)
}

/// Run `p` until its replay ends (or its polls are done, or `shutdown`), printing the models,
/// decision blocks (when asked) and the summary on stdout.
pub async fn run(p: Pipeline, shutdown: CancellationToken) -> anyhow::Result<()> {
    let interval = p.aggregator.poll_interval_secs;
    let models = load_models(&p.models_dir, p.sla_p95_ms, p.seed)?;
    for m in &models {
        println!("  model {:<20} version {}", m.kind().as_str(), m.version());
    }
    let mut jsonl = match &p.decisions_jsonl {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let print = p.print_decisions;
    let verdicts = Arc::new(Mutex::new(report::VerdictCounts::default()));
    let v2 = verdicts.clone();
    let mut n = 0;
    let observe = Box::new(move |d: &Decision| {
        v2.lock().unwrap_or_else(|e| e.into_inner()).add(d);
        if let Some(w) = jsonl.as_mut() {
            let _ = writeln!(
                w,
                "{}",
                String::from_utf8_lossy(&autoscaler_contract::encode(d))
            );
        }
        if print && report::changes_something(d) {
            n += 1;
            println!("{}", report::decision_block(n, d));
        }
    });
    let (progress, bar) = progress("run");
    let r = embedded::run_embedded(
        Embedded {
            aggregator: p.aggregator,
            scaler: p.scaler,
            models,
            initial_replicas: p.initial_replicas,
            bus_capacity: DEFAULT_MEMORY_CAPACITY,
        },
        observe,
        Some(progress),
        shutdown,
    )
    .await?;
    bar.finish_and_clear();
    let v = *verdicts.lock().unwrap_or_else(|e| e.into_inner());
    println!(
        "{}",
        report::summary(&r.aggregator, &r.scaler, &r.inference, interval, &v)
    );
    Ok(())
}
