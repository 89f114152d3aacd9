//! The scaler's options (shared by `scaler` and `run`) and their mapping into [`ScalerConfig`].

use std::time::Duration;

use autoscaler_contract::{ClockMode, ModelKind, Strategy, DEFAULT_CLOCK};
use autoscaler_scaler::envelope::{
    DEFAULT_COOLDOWN_DOWN_SECS, DEFAULT_COOLDOWN_UP_SECS, DEFAULT_MAX_REPLICAS, DEFAULT_MAX_STEP,
    DEFAULT_MIN_REPLICAS, DEFAULT_STABILIZATION_SECS,
};
use autoscaler_scaler::{EnvelopeConfig, ScalerConfig, DEFAULT_DECISION_WINDOW_SECS};
use autoscaler_voting::rules::{
    DEFAULT_MIN_QUORUM, DEFAULT_SCALE_DOWN_MAX_PROBABILITY, DEFAULT_STRATEGY,
    DEFAULT_WEIGHTED_THRESHOLD,
};
use autoscaler_voting::VotingConfig;
use clap::Args;

use crate::exit::ConfigError;
use crate::opts::parse::{parse_strategy, parse_weight};

/// Scaler options.
#[derive(Debug, Clone, Args)]
pub struct ScalerOpts {
    /// Voting strategy.
    #[arg(long = "strategy", env = "VOTING_STRATEGY", default_value_t = DEFAULT_STRATEGY, value_parser = parse_strategy)]
    pub strategy: Strategy,
    /// Decide at the latest this many seconds after a vector's first vote.
    #[arg(
        long = "decision-window-sec",
        env = "DECISION_WINDOW_SEC",
        default_value_t = DEFAULT_DECISION_WINDOW_SECS as f64
    )]
    pub decision_window_sec: f64,
    /// Per-model weights for the weighted strategy, e.g. `xgboost=2,random_forest=1`.
    #[arg(long, env = "MODEL_WEIGHTS", value_delimiter = ',', value_parser = parse_weight)]
    pub weights: Vec<(ModelKind, f64)>,
    /// The weighted strategy scales up when Σw·p/Σw is above this.
    #[arg(long, env = "WEIGHTED_THRESHOLD", default_value_t = DEFAULT_WEIGHTED_THRESHOLD)]
    pub weighted_threshold: f64,
    /// Scale down only when every model's P(violation) at one replica fewer is at most this.
    #[arg(long, env = "SCALE_DOWN_MAX_PROBABILITY", default_value_t = DEFAULT_SCALE_DOWN_MAX_PROBABILITY)]
    pub scale_down_max_probability: f64,
    /// The weighted strategy needs at least this many votes.
    #[arg(long, env = "MIN_QUORUM", default_value_t = DEFAULT_MIN_QUORUM)]
    pub min_quorum: usize,
    /// Fewest replicas.
    #[arg(long, env = "MIN_REPLICAS", default_value_t = DEFAULT_MIN_REPLICAS)]
    pub min_replicas: u32,
    /// Most replicas.
    #[arg(long, env = "MAX_REPLICAS", default_value_t = DEFAULT_MAX_REPLICAS)]
    pub max_replicas: u32,
    /// No scaling up within this many seconds of the last scale-up.
    #[arg(long = "cooldown-up-sec", env = "COOLDOWN_UP_SEC", default_value_t = DEFAULT_COOLDOWN_UP_SECS)]
    pub cooldown_up_sec: u64,
    /// No scaling down within this many seconds of the last scale-down.
    #[arg(long = "cooldown-down-sec", env = "COOLDOWN_DOWN_SEC", default_value_t = DEFAULT_COOLDOWN_DOWN_SECS)]
    pub cooldown_down_sec: u64,
    /// No scaling down while an "up" was recommended within this many seconds.
    #[arg(long = "stabilization-sec", env = "STABILIZATION_SEC", default_value_t = DEFAULT_STABILIZATION_SECS)]
    pub stabilization_sec: u64,
    /// Most replicas added per decision.
    #[arg(long, env = "MAX_STEP", default_value_t = DEFAULT_MAX_STEP)]
    pub max_step: u32,
    /// Decide and publish, change nothing ("would scale").
    #[arg(long, env = "DRY_RUN")]
    pub dry_run: bool,
    /// The clock votes are checked against: `wall` in production, `replay` when the metrics are
    /// a replayed log with simulated time (the log's own time is the clock).
    #[arg(long, env = "AUTOSCALER_CLOCK", default_value_t = DEFAULT_CLOCK)]
    pub clock: ClockMode,
}

impl Default for ScalerOpts {
    /// What an empty command line gives, without the environment: the libraries' defaults.
    fn default() -> Self {
        ScalerOpts {
            strategy: DEFAULT_STRATEGY,
            decision_window_sec: DEFAULT_DECISION_WINDOW_SECS as f64,
            weights: Vec::new(),
            weighted_threshold: DEFAULT_WEIGHTED_THRESHOLD,
            scale_down_max_probability: DEFAULT_SCALE_DOWN_MAX_PROBABILITY,
            min_quorum: DEFAULT_MIN_QUORUM,
            min_replicas: DEFAULT_MIN_REPLICAS,
            max_replicas: DEFAULT_MAX_REPLICAS,
            cooldown_up_sec: DEFAULT_COOLDOWN_UP_SECS,
            cooldown_down_sec: DEFAULT_COOLDOWN_DOWN_SECS,
            stabilization_sec: DEFAULT_STABILIZATION_SECS,
            max_step: DEFAULT_MAX_STEP,
            dry_run: false,
            clock: DEFAULT_CLOCK,
        }
    }
}

/// The scaler's configuration, or every problem with the options.
pub fn scaler_config(o: &ScalerOpts) -> Result<ScalerConfig, ConfigError> {
    let mut voting = VotingConfig::new(o.strategy);
    voting.weights = o.weights.iter().copied().collect();
    voting.weighted_threshold = o.weighted_threshold;
    voting.min_quorum = o.min_quorum;
    voting.scale_down_max_probability = o.scale_down_max_probability;
    let mut cfg = ScalerConfig::new(voting);
    let mut problems = Vec::new();
    if o.decision_window_sec.is_finite() && o.decision_window_sec > 0.0 {
        cfg.decision_window = Duration::from_secs_f64(o.decision_window_sec);
    } else {
        problems.push(format!(
            "decision window must be > 0 s, got {}",
            o.decision_window_sec
        ));
    }
    cfg.envelope = EnvelopeConfig {
        min_replicas: o.min_replicas,
        max_replicas: o.max_replicas,
        cooldown_up_secs: o.cooldown_up_sec,
        cooldown_down_secs: o.cooldown_down_sec,
        stabilization_secs: o.stabilization_sec,
        max_step: o.max_step,
    };
    cfg.dry_run = o.dry_run;
    cfg.clock = o.clock;
    problems.extend(cfg.problems());
    ConfigError::check(problems)?;
    Ok(cfg)
}
