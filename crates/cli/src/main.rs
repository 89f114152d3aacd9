//! # `autoscaler`
//!
//! One binary, one subcommand per service (`aggregator`, `inference`, `scaler`), plus `run` (all
//! of them in one process) and `demo` (the embedded pipeline on a replay of a real trace). Each
//! subcommand parses its options, sets up logging and calls the service's library
//! `run(config, deps, shutdown)` — the same function the tests call.
//!
//! Exit codes: 0 done; 1 failed while running; 2 bad command line (clap); 64 bad configuration
//! (every problem listed); 130 stopped by a second signal.

mod args;
mod bench_cmd;
mod default_models;
mod pipeline;
mod reload;
mod report;
mod tail;
mod train_cmd;

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use args::{ActuatorKind, Cli, Command, DemoArgs, RunArgs};
use autoscaler_contract::Decision;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::ConfigError;
use tokio_util::sync::CancellationToken;

/// Exit code for a configuration that cannot run (BSD sysexits' EX_CONFIG is 78; EX_USAGE, 64,
/// is what the seed and our docs promise).
const EXIT_CONFIG: i32 = 64;

fn main() {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<ConfigError>() {
            Some(c) => {
                eprint!("autoscaler: {c}");
                EXIT_CONFIG
            }
            None => {
                eprintln!("autoscaler: error: {e:#}");
                1
            }
        },
    };
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// A root token cancelled by SIGINT or SIGTERM; a second signal exits at once.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        for n in 0.. {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            if n == 0 {
                eprintln!("autoscaler: stopping (signal again to force)");
                t.cancel();
            } else {
                eprintln!("autoscaler: forced exit");
                std::process::exit(130);
            }
        }
    });
    token
}

async fn dispatch(cmd: Command) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signal();
    match cmd {
        Command::Aggregator(a) => {
            let mut cfg = pipeline::aggregator_config(&a.opts)?;
            cfg.metrics_topic = a.bus.metrics_topic.clone();
            cfg.decisions_topic = a.bus.decisions_topic.clone();
            if let (autoscaler_aggregator::Source::Replay(r), args::BusKind::Kafka) =
                (&mut cfg.source, a.bus.bus)
            {
                // Over Kafka the consumers check a vector's age against the wall clock: the
                // replay runs from now (its vector ids are then unique per run, too).
                r.start_time = chrono::Utc::now();
            }
            let needs_peers = cfg.mode == autoscaler_aggregator::Mode::Production;
            let bus = pipeline::standalone_bus(&a.bus, needs_peers).await?;
            let report = autoscaler_aggregator::run(
                cfg,
                autoscaler_aggregator::AggregatorDeps {
                    bus,
                    progress: None,
                },
                shutdown,
            )
            .await?;
            eprintln!(
                "aggregator: {} polls, {} vectors",
                report.ticks, report.vectors
            );
            Ok(())
        }
        Command::Inference(a) => {
            let model = autoscaler_models::load(a.model, &a.models.models_dir)
                .with_context(|| format!("loading {}", a.model))?;
            let bus = pipeline::standalone_bus(&a.bus, true).await?;
            let mut cfg = autoscaler_inference::InferenceConfig::new(a.model);
            cfg.metrics_topic = a.bus.metrics_topic.clone();
            cfg.votes_topic = a.bus.votes_topic.clone();
            cfg.max_skew_secs = (a.max_skew_sec > 0).then_some(a.max_skew_sec);
            let deps = autoscaler_inference::InferenceDeps {
                bus,
                model: Arc::from(model),
            };
            // Reload on SIGHUP or when the artefact changes; no vector is lost in the swap.
            let models =
                reload::watch_models(a.model, a.models.models_dir.clone(), deps.model.clone())?;
            autoscaler_inference::run_with_reload(cfg, deps, models, shutdown).await?;
            Ok(())
        }
        Command::Scaler(a) => {
            let cfg = pipeline::scaler_config(&a.opts)?;
            let actuator: Arc<dyn autoscaler_scaler::Actuator> = match a.actuator {
                ActuatorKind::Simulated => Arc::new(autoscaler_scaler::SimulatedActuator::new(
                    a.initial_replicas,
                )),
                ActuatorKind::DryRun => Arc::new(autoscaler_scaler::DryRunActuator::standalone(
                    a.initial_replicas,
                )),
                ActuatorKind::Swarm => {
                    let policy_file = match &a.policy_file {
                        Some(p) => autoscaler_scaler::PolicyFile::load(p)
                            .map_err(|e| ConfigError(vec![e.to_string()]))?,
                        None => autoscaler_scaler::PolicyFile::default(),
                    };
                    Arc::new(autoscaler_scaler::SwarmActuator::new(
                        autoscaler_scaler::SwarmConfig {
                            docker_host: a.docker_host.clone(),
                            policy_file,
                            ..Default::default()
                        },
                    ))
                }
            };
            let mut cfg = cfg;
            cfg.state_db = a.state_db.clone();
            cfg.votes_topic = a.bus.votes_topic.clone();
            cfg.decisions_topic = a.bus.decisions_topic.clone();
            let bus = pipeline::standalone_bus(&a.bus, true).await?;
            autoscaler_scaler::run(
                cfg,
                autoscaler_scaler::ScalerDeps { bus, actuator },
                shutdown,
            )
            .await?;
            Ok(())
        }
        Command::Run(a) => run_all(a, shutdown).await,
        Command::Tail(a) => tail::run(a, shutdown).await,
        Command::BenchKafka(a) => bench_cmd::run(a, shutdown).await,
        Command::Train(a) => train_cmd::train(&a),
        Command::Evaluate(a) => train_cmd::evaluate_cmd(&a),
        Command::TrainingData(a) => train_cmd::training_data(&a),
        Command::Demo(a) => demo(a, shutdown).await,
        Command::DemoService(a) => demo_service(a, shutdown).await,
    }
}

/// A progress indication on stderr: a bar on a terminal, a line every 10 % otherwise.
fn progress(label: &'static str) -> (Arc<dyn Fn(u64, u64) + Send + Sync>, ProgressBar) {
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

async fn run_all(a: RunArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let agg = pipeline::aggregator_config(&a.aggregator)?;
    let scaler = pipeline::scaler_config(&a.scaler)?;
    let interval = agg.poll_interval_secs;
    let models = pipeline::load_models(
        &a.models.models_dir,
        a.aggregator.sla_p95_ms,
        a.aggregator.seed,
    )?;
    for m in &models {
        println!("  model {:<20} version {}", m.kind().as_str(), m.version());
    }
    let mut jsonl = match &a.decisions_jsonl {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let print = a.print_decisions;
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
    let r = pipeline::run_embedded(
        pipeline::Embedded {
            aggregator: agg,
            scaler,
            models,
            initial_replicas: a.aggregator.initial_replicas,
            bus_capacity: 1024,
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

/// `autoscaler demo-service`: validate (exit 64 listing every problem), bind, say where on
/// stderr (scripts wait for `listening on http://`), serve until SIGTERM or ctrl-c.
async fn demo_service(a: args::DemoServiceOpts, shutdown: CancellationToken) -> anyhow::Result<()> {
    let cfg = autoscaler_demo_service::DemoServiceConfig {
        listen: a.listen,
        service: a.service,
        work_ms: a.work_ms,
        workers: a.workers,
        error_pct: a.error_pct,
        sleep_ms: a.sleep_ms,
        ..Default::default()
    };
    let problems = cfg.problems();
    if !problems.is_empty() {
        return Err(ConfigError(problems).into());
    }
    let bound = autoscaler_demo_service::bind(cfg.clone()).await?;
    eprintln!(
        "demo-service {}: listening on http://{} ({} ms of work per request, {} worker{}, \
         {}% errors, {} ms sleep)",
        cfg.service,
        bound.local_addr(),
        cfg.work_ms,
        cfg.workers,
        if cfg.workers == 1 { "" } else { "s" },
        cfg.error_pct,
        cfg.sleep_ms
    );
    bound.serve(shutdown).await?;
    eprintln!("demo-service {}: stopped", cfg.service);
    Ok(())
}

async fn demo(a: DemoArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    if !(a.hours > 0.0 && a.hours <= 72.0) {
        return Err(ConfigError(vec![format!(
            "--hours must be in (0, 72] (the shipped trace is 3 days), got {}",
            a.hours
        )])
        .into());
    }
    let run = RunArgs::try_parse_demo(&a);
    let started = Instant::now();
    println!(
        "Demo: {} h of the NASA-HTTP trace (1995-07-12 onward, STS-70 launch flash crowd on \
         07-13) through two simulated services, three models voting ({}), seed {}.",
        a.hours, a.strategy, a.seed
    );
    run_all(run, shutdown).await?;
    eprintln!(
        "demo finished in {:.1} s wall time",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

impl RunArgs {
    /// The `run` options the demo uses: defaults, with the demo's strategy, seed and hours.
    fn try_parse_demo(a: &DemoArgs) -> RunArgs {
        // Parse an empty `run` command line so every default comes from one place (args.rs);
        // environment variables apply, as they do for `run`.
        let mut run = RunArgs {
            aggregator: default_of::<args::AggregatorOpts>(),
            models: a.models.clone(),
            scaler: default_of::<args::ScalerOpts>(),
            print_decisions: !a.quiet,
            decisions_jsonl: None,
        };
        run.aggregator.seed = a.seed;
        run.aggregator.duration_hours = a.hours;
        run.aggregator.trace = None;
        run.aggregator.source = args::SourceKind::Replay;
        run.aggregator.mode = args::ModeArg::Production;
        run.aggregator.speed = 0.0;
        run.scaler.strategy = a.strategy;
        run
    }
}

/// The defaults of a flattened options struct, as clap would fill them from an empty command
/// line.
fn default_of<T: clap::Args + clap::FromArgMatches>() -> T {
    let cmd = T::augment_args(clap::Command::new("defaults").no_binary_name(true));
    let matches = cmd
        .try_get_matches_from(std::iter::empty::<String>())
        .expect("every option has a default");
    T::from_arg_matches(&matches).expect("defaults parse")
}
