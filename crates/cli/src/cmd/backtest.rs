//! `autoscaler backtest`: every chosen policy side by side on one trace through the simulated
//! services (the lab, `autoscaler-lab`), one table per service and overall, optionally JSON and
//! a plot. An unknown policy or parameter is a command-line error (exit 2, naming the valid
//! ones); a bad trace names its file and line (exit 64).

use std::path::PathBuf;
use std::time::Instant;

use autoscaler_lab::{
    default_services, BacktestConfig, DEFAULT_HPA_TARGETS, DEFAULT_INITIAL_REPLICAS,
    DEFAULT_MAX_REPLICAS, DEFAULT_MIN_REPLICAS, DEFAULT_POLICIES, DEFAULT_SERVICES,
    DEFAULT_START_HOUR, DEFAULT_THREADS,
};
use autoscaler_policy::{parse_policy_list, Bounds, PolicyContext, PolicyKind, PolicySpec};
use autoscaler_simulator::{Trace, DEFAULT_SEED, DEFAULT_TRACE_SCALE};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::exit::ConfigError;
use crate::opts::models::{load_models, ModelsOpts};

/// `autoscaler backtest`.
#[derive(Debug, Clone, Args)]
pub struct BacktestArgs {
    /// The trace: CSV `timestamp_s,requests` (default: the shipped NASA sample).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Multiplier on the trace's rates, as for `run` (service i gets scale / (1 + i/2)).
    #[arg(long, default_value_t = DEFAULT_TRACE_SCALE)]
    pub trace_scale: f64,
    /// Services to simulate.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_SERVICES.map(String::from))]
    pub services: Vec<String>,
    /// Hours to simulate (default: the whole trace from --start-hour; more than the trace holds
    /// is an error).
    #[arg(long)]
    pub hours: Option<f64>,
    /// Where in the trace to start, hours.
    #[arg(long, default_value_t = DEFAULT_START_HOUR)]
    pub start_hour: f64,
    /// Policies, comma-separated: hybrid, ensemble, capacity, hpa (the sweep), hpa-<target>,
    /// threshold, triggers, static, oracle, or all; parameters as name:key=value.
    #[arg(long, default_value = DEFAULT_POLICIES, value_parser = parse_policies)]
    pub policies: PolicyList,
    /// HPA CPU targets of the sweep, percent.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_HPA_TARGETS)]
    pub hpa_targets: Vec<f64>,
    /// Seed of the simulation.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Replicas of every service at the start.
    #[arg(long, default_value_t = DEFAULT_INITIAL_REPLICAS)]
    pub initial_replicas: u32,
    /// Fewest replicas of every service.
    #[arg(long, default_value_t = DEFAULT_MIN_REPLICAS)]
    pub min_replicas: u32,
    /// Most replicas of every service.
    #[arg(long, default_value_t = DEFAULT_MAX_REPLICAS)]
    pub max_replicas: u32,
    /// SLA on p95 latency, ms.
    #[arg(long = "sla-p95-ms", default_value_t = autoscaler_policy::DEFAULT_SLA_P95_MS)]
    pub sla_p95_ms: f64,
    /// Worker threads (0: one per core). Results do not depend on it.
    #[arg(long, default_value_t = DEFAULT_THREADS)]
    pub threads: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Draw the timelines and the Pareto chart here (.svg).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Where the models are (for ensemble and triggers).
    #[command(flatten)]
    pub models: ModelsOpts,
}

/// The policies as given (`all` and `hpa` expand once the sweep is known).
#[derive(Debug, Clone)]
pub struct PolicyList(pub String);

/// Check every entry now, so an unknown policy or parameter is clap's error (exit 2).
fn parse_policies(text: &str) -> Result<PolicyList, String> {
    parse_policy_list(text, &DEFAULT_HPA_TARGETS)
        .map_err(|e| e.to_string())
        .and_then(|l| {
            if l.is_empty() {
                Err("no policy given".to_string())
            } else {
                Ok(PolicyList(text.to_string()))
            }
        })
}

/// Run the backtest.
pub async fn run(a: BacktestArgs, _shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    let (trace, trace_name) = match &a.trace {
        Some(path) => match Trace::from_csv_path(path) {
            Ok(t) => (t, path.display().to_string()),
            Err(e) => return Err(ConfigError::one(format!("trace {}: {e}", path.display())).into()),
        },
        None => (
            Trace::nasa_sample(),
            "nasa_http_1995_07_12to14_60s.csv (shipped)".to_string(),
        ),
    };
    let total_h = trace.duration_secs() / 3600.0;
    if !(a.start_hour.is_finite() && a.start_hour >= 0.0 && a.start_hour < total_h) {
        problems.push(format!(
            "--start-hour {} must be in [0, {total_h}) (the trace's length)",
            a.start_hour
        ));
    }
    let hours = a.hours.unwrap_or(total_h - a.start_hour);
    if !(hours.is_finite() && hours > 0.0) {
        problems.push(format!("--hours must be > 0, got {hours}"));
    } else if a.start_hour + hours > total_h + 1e-9 {
        let rows = trace.len();
        problems.push(format!(
            "trace {trace_name}: line {}: the trace ends after {rows} rows ({total_h:.2} h), fewer than --start-hour {} + --hours {hours}",
            rows + 1,
            a.start_hour
        ));
    }
    if !(a.trace_scale.is_finite() && a.trace_scale > 0.0) {
        problems.push(format!("--trace-scale must be > 0, got {}", a.trace_scale));
    }
    if a.services.is_empty() {
        problems.push("--services is empty".into());
    }
    if a.min_replicas > a.max_replicas {
        problems.push(format!(
            "--min-replicas {} > --max-replicas {}",
            a.min_replicas, a.max_replicas
        ));
    }
    if let Some(t) = a.hpa_targets.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
        problems.push(format!("--hpa-targets: {t} is not a CPU target in percent"));
    }
    ConfigError::check(problems)?;
    let specs: Vec<PolicySpec> = parse_policy_list(&a.policies.0, &a.hpa_targets)?;
    let needs_models = specs.iter().any(|s| {
        matches!(s.kind, PolicyKind::Ensemble | PolicyKind::Triggers)
            || (s.kind == PolicyKind::Hybrid && s.get("predictive", 0.0) > 0.0)
    });
    let ctx = PolicyContext {
        models: if needs_models {
            Some(std::sync::Arc::new(load_models(
                &a.models.models_dir,
                a.sla_p95_ms,
                a.seed,
            )?))
        } else {
            None
        },
        ..PolicyContext::default()
    };
    let cfg = BacktestConfig {
        trace,
        trace_name: trace_name.clone(),
        services: default_services(&a.services, a.trace_scale),
        start_secs: a.start_hour * 3600.0,
        duration_secs: hours * 3600.0,
        seed: a.seed,
        initial_replicas: a.initial_replicas,
        bounds: Bounds {
            min: a.min_replicas,
            max: a.max_replicas,
        },
        sla_p95_ms: a.sla_p95_ms,
        threads: a.threads,
    };
    let started = Instant::now();
    let prepared = cfg.prepare()?;
    let total = autoscaler_lab::points_per_run(&cfg) * (specs.len() * a.services.len()) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} backtest [{bar:40}] {percent}% {elapsed_precise} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let bt = tokio::task::block_in_place(|| {
        autoscaler_lab::run_prepared(&cfg, &prepared, &specs, &ctx, Some(&bar))
    })?;
    bar.finish_and_clear();
    println!(
        "Backtest: {} h of {trace_name} from hour {}, {} policies × {} services, seed {}",
        bt.hours,
        a.start_hour,
        specs.len(),
        a.services.len(),
        a.seed
    );
    print!("{}", bt.table());
    if let (Some(h), Some(o)) = (bt.policy("hybrid"), bt.policy("oracle")) {
        let at = bt.hpa_violation_at(h.replica_hours);
        println!(
            "hybrid: {:.1} SLA-violation minutes ({:.2} % of service-minutes), {:.1} replica-hours = {:.2}× the oracle's; HPA's sweep at equal replica-hours: {}",
            h.sla_violation_minutes,
            h.violation_pct,
            h.replica_hours,
            h.replica_hours / o.replica_hours.max(1e-9),
            at.map_or("outside the sweep".to_string(), |v| format!("{v:.1} minutes"))
        );
    }
    if let Some(path) = &a.json_out {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&bt.to_json())?)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &a.plot {
        autoscaler_lab::plot::write_plot(&bt, path)?;
        eprintln!("wrote {}", path.display());
    }
    eprintln!(
        "backtest finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
