//! Labelled training data from simulated runs, and its CSV form.

use std::collections::VecDeque;
use std::io::Write;

use autoscaler_contract::Features;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::{label_violations, ReplayFeed, ServiceParams, SimError, SimulatedCluster};
use crate::{SyntheticShape, Trace};

/// Header of the training CSV: the Sock Shop columns, then `replicas`, `run`, `pattern`.
pub fn training_csv_header() -> Vec<&'static str> {
    let mut h = autoscaler_contract::metrics_csv_columns();
    h.extend(["replicas", "run", "pattern"]);
    h
}

/// How to generate training data. Missing fields take their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingDataConfig {
    /// Number of runs; run `k` uses shape `SyntheticShape::ALL[k % 4]`. Default 8.
    pub runs: usize,
    /// Length of each run, days. Default 2.
    pub days_per_run: u32,
    /// Time between polls, seconds. Default 30.
    pub poll_interval_secs: f64,
    /// The SLA on p95 latency, ms. Default 250.
    pub sla_p95_ms: f64,
    /// Label horizon, polls. Default 2.
    pub horizon: usize,
    /// Most replicas the simulated policy may ask for. Default 12.
    pub max_replicas: u32,
    /// Seed of everything random. Default 42.
    pub seed: u64,
    /// Service name written into the rows. Default `simulated-service`.
    pub service: String,
    /// The simulated service.
    pub params: ServiceParams,
}

/// Default simulated training runs (shapes diurnal, spiky, ramp, step in turn).
pub const DEFAULT_TRAINING_RUNS: usize = 8;
/// Default days per simulated training run.
pub const DEFAULT_TRAINING_DAYS: u32 = 2;

impl Default for TrainingDataConfig {
    fn default() -> Self {
        TrainingDataConfig {
            runs: DEFAULT_TRAINING_RUNS,
            days_per_run: DEFAULT_TRAINING_DAYS,
            poll_interval_secs: 30.0,
            sla_p95_ms: autoscaler_contract::DEFAULT_SLA_P95_MS,
            horizon: 2,
            max_replicas: 12,
            seed: crate::DEFAULT_SEED,
            service: "simulated-service".to_string(),
            params: ServiceParams::default(),
        }
    }
}

/// One simulated run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingRun {
    /// `run<k>-<shape>`, unique within one generation.
    pub name: String,
    /// The synthetic shape of its trace.
    pub pattern: SyntheticShape,
    /// One row per poll, in time order.
    pub rows: Vec<TrainingRow>,
}

/// One poll of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingRow {
    /// Simulation time of the poll, seconds from the run start.
    pub t_secs: f64,
    /// The service.
    pub service: String,
    /// Replicas ready at the poll.
    pub replicas: u32,
    /// The features the aggregator would have published.
    pub features: Features,
    /// p95 latency at this poll (same as `features.p95_latency_ms`).
    pub p95_ms: Option<f64>,
    /// Error percentage at this poll (same as `features.error_rate_pct`).
    pub error_pct: Option<f64>,
    /// The label from [`label_violations`]: is the SLA violated in the next `horizon` polls?
    /// `None` when unknown (the end of the run).
    pub sla_violated: Option<bool>,
}

/// A noisy, lagging threshold policy on utilisation, with random settings per run, standing in
/// for the mix of operators and autoscalers whose decisions the models will see.
#[derive(Debug)]
struct RandomPolicy {
    up_at: f64,
    down_at: f64,
    step_up: u32,
    cooldown_up_secs: f64,
    cooldown_down_secs: f64,
    lag_polls: usize,
    skip_prob: f64,
    noise: f64,
    max_replicas: u32,
    observed: VecDeque<f64>,
    last_change: f64,
}

impl RandomPolicy {
    fn sample(rng: &mut ChaCha8Rng, max_replicas: u32) -> Self {
        let max_replicas = max_replicas.max(1);
        // One run in four is capped below what peaks need: sustained violations.
        let cap = if rng.random_bool(0.25) && max_replicas > 2 {
            rng.random_range(2..=(max_replicas / 2).max(2))
        } else {
            max_replicas
        };
        let up_at = rng.random_range(0.55..0.9);
        RandomPolicy {
            up_at,
            down_at: rng.random_range(0.2..(up_at - 0.2)),
            step_up: rng.random_range(1..=2),
            cooldown_up_secs: rng.random_range(30.0..300.0),
            cooldown_down_secs: rng.random_range(120.0..600.0),
            lag_polls: rng.random_range(0..=2),
            skip_prob: rng.random_range(0.0..0.2),
            noise: rng.random_range(0.0..0.15),
            max_replicas: cap,
            observed: VecDeque::new(),
            last_change: f64::NEG_INFINITY,
        }
    }

    /// The desired replicas after seeing the arrival rate at `t`.
    fn decide(
        &mut self,
        rng: &mut ChaCha8Rng,
        t: f64,
        rate_rps: Option<f64>,
        desired: u32,
        capacity_rps: f64,
    ) -> u32 {
        let Some(rate) = rate_rps else {
            return desired;
        };
        let z: f64 = rng.sample(StandardNormal);
        self.observed
            .push_back(rate * (1.0 + self.noise * z).max(0.0));
        if self.observed.len() <= self.lag_polls {
            return desired;
        }
        let Some(seen) = self.observed.pop_front() else {
            return desired;
        };
        if rng.random_bool(self.skip_prob) {
            return desired;
        }
        let utilisation = seen / (desired.max(1) as f64 * capacity_rps);
        let since = t - self.last_change;
        let next = if utilisation > self.up_at && since >= self.cooldown_up_secs {
            desired + self.step_up
        } else if utilisation < self.down_at && since >= self.cooldown_down_secs {
            desired.saturating_sub(1)
        } else {
            desired
        };
        let next = next.clamp(1, self.max_replicas);
        if next != desired {
            self.last_change = t;
        }
        next
    }
}

/// Simulate `cfg.runs` runs, each on its own seeded synthetic trace with a random replica
/// policy acting through a [`SimulatedCluster`] (so start-up delays apply), polled through a
/// [`ReplayFeed`], and labelled with [`label_violations`].
///
/// Deterministic in `cfg.seed`. Invalid `cfg.params` or a non-positive poll interval give no
/// runs.
pub fn generate_training_runs(cfg: &TrainingDataConfig) -> Vec<TrainingRun> {
    let interval = cfg.poll_interval_secs;
    if cfg.params.validate().is_err() || !(interval.is_finite() && interval > 0.0) {
        return Vec::new();
    }
    let mut master = ChaCha8Rng::seed_from_u64(cfg.seed);
    (0..cfg.runs)
        .map(|k| {
            let pattern = SyntheticShape::ALL[k % SyntheticShape::ALL.len()];
            let trace_seed: u64 = master.random();
            let feed_seed: u64 = master.random();
            let mut rng = ChaCha8Rng::seed_from_u64(master.random());
            simulate_run(cfg, k, pattern, trace_seed, feed_seed, &mut rng)
        })
        .collect()
}

fn simulate_run(
    cfg: &TrainingDataConfig,
    k: usize,
    pattern: SyntheticShape,
    trace_seed: u64,
    feed_seed: u64,
    rng: &mut ChaCha8Rng,
) -> TrainingRun {
    let service = cfg.service.as_str();
    let interval = cfg.poll_interval_secs;
    let capacity = cfg.params.capacity_rps_per_replica;
    let trace = Trace::synthetic(pattern, cfg.days_per_run, trace_seed);
    let duration = trace.duration_secs();
    let mut policy = RandomPolicy::sample(rng, cfg.max_replicas);

    // Start roughly provisioned for the opening load (the policy takes it from there).
    let opening_rps = trace.rate_rps(0.0) * cfg.params.trace_scale;
    let initial = ((opening_rps / (capacity * 0.6)).ceil() as u32).clamp(1, policy.max_replicas);
    let cluster = SimulatedCluster::new(cfg.params.startup_delay_secs);
    cluster.register(service, initial, 0.0);
    let mut feed = match ReplayFeed::new(service, trace, cfg.params.clone(), 0.0, feed_seed) {
        Ok(f) => f,
        Err(_) => unreachable!("params were validated by the caller"),
    };

    let polls = (duration / interval).floor() as usize;
    let mut rows = Vec::with_capacity(polls);
    let mut desired = initial;
    for n in 1..=polls {
        let t = n as f64 * interval;
        let poll = feed.poll_with(t, interval, |s| cluster.ready(service, s).unwrap_or(0));
        let next = policy.decide(rng, t, poll.features.request_rate_rps, desired, capacity);
        if next != desired && cluster.set_replicas(service, next, t).is_ok() {
            desired = next;
        }
        rows.push(TrainingRow {
            t_secs: t,
            service: service.to_string(),
            replicas: poll.ready_replicas,
            p95_ms: poll.p95_ms,
            error_pct: poll.error_pct,
            features: poll.features,
            sla_violated: None,
        });
    }
    let p95: Vec<Option<f64>> = rows.iter().map(|r| r.p95_ms).collect();
    let errors: Vec<Option<f64>> = rows.iter().map(|r| r.error_pct).collect();
    for (row, label) in
        rows.iter_mut()
            .zip(label_violations(&p95, &errors, cfg.sla_p95_ms, cfg.horizon))
    {
        row.sla_violated = label;
    }
    TrainingRun {
        name: format!("run{k:02}-{pattern}"),
        pattern,
        rows,
    }
}

/// Write `runs` as CSV with [`training_csv_header`]. `timestamp` is RFC 3339 (UTC) of
/// `base_time + t_secs`; a missing value is an empty field (never 0); `sla_violated` is `1`,
/// `0`, or empty when unknown.
pub fn write_training_csv<W: Write>(
    runs: &[TrainingRun],
    base_time: DateTime<Utc>,
    writer: W,
) -> Result<(), SimError> {
    let mut w = csv::Writer::from_writer(writer);
    w.write_record(training_csv_header())?;
    let num = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{}", round4(v)));
    for run in runs {
        for row in &run.rows {
            let at = base_time + Duration::milliseconds((row.t_secs * 1000.0).round() as i64);
            let f = &row.features;
            let label = match row.sla_violated {
                Some(true) => "1",
                Some(false) => "0",
                None => "",
            };
            w.write_record([
                at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                row.service.clone(),
                num(f.request_rate_rps),
                num(f.error_rate_pct),
                num(f.p50_latency_ms),
                num(f.p95_latency_ms),
                num(f.p99_latency_ms),
                num(f.cpu_usage_pct),
                num(f.memory_usage_mb),
                num(f.delta_rps),
                num(f.delta_p95_latency_ms),
                num(f.delta_cpu_usage_pct),
                label.to_string(),
                row.replicas.to_string(),
                run.name.clone(),
                run.pattern.to_string(),
            ])?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Four decimals are far below the simulation's noise and keep the CSV readable.
fn round4(v: f64) -> f64 {
    let r = (v * 1e4).round() / 1e4;
    if r == 0.0 {
        0.0 // no "-0"
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> TrainingDataConfig {
        TrainingDataConfig {
            runs: 4,
            days_per_run: 1,
            ..TrainingDataConfig::default()
        }
    }

    #[test]
    fn default_runs_have_a_sane_positive_rate() {
        let runs = generate_training_runs(&TrainingDataConfig::default());
        assert_eq!(runs.len(), 8);
        let mut positives = 0usize;
        let mut labelled = 0usize;
        for run in &runs {
            assert_eq!(run.rows.len(), 2 * 86400 / 30);
            let pos = run
                .rows
                .iter()
                .filter(|r| r.sla_violated == Some(true))
                .count();
            let lab = run.rows.iter().filter(|r| r.sla_violated.is_some()).count();
            let max_replicas = run.rows.iter().map(|r| r.replicas).max().unwrap_or(0);
            println!(
                "{}: {pos}/{lab} positive ({:.1} %), max replicas {max_replicas}",
                run.name,
                100.0 * pos as f64 / lab as f64
            );
            positives += pos;
            labelled += lab;
            for r in &run.rows {
                assert!(r.features.validate().is_ok(), "{:?}", r.features);
                assert!((1..=12).contains(&r.replicas) || r.t_secs < 120.0);
            }
        }
        let rate = positives as f64 / labelled as f64;
        println!(
            "overall: {positives}/{labelled} positive ({:.1} %)",
            100.0 * rate
        );
        assert!((0.03..=0.60).contains(&rate), "positive rate {rate}");
    }

    #[test]
    fn generation_is_deterministic_in_the_seed() {
        let a = generate_training_runs(&small());
        assert_eq!(a, generate_training_runs(&small()));
        let b = generate_training_runs(&TrainingDataConfig { seed: 7, ..small() });
        assert_ne!(a, b);
        let names: Vec<&str> = a.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["run00-diurnal", "run01-spiky", "run02-ramp", "run03-step"]
        );
    }

    #[test]
    fn labels_follow_the_rows_p95() {
        let cfg = small();
        for run in generate_training_runs(&cfg) {
            let p95: Vec<_> = run.rows.iter().map(|r| r.p95_ms).collect();
            let err: Vec<_> = run.rows.iter().map(|r| r.error_pct).collect();
            let labels: Vec<_> = run.rows.iter().map(|r| r.sla_violated).collect();
            assert_eq!(
                labels,
                label_violations(&p95, &err, cfg.sla_p95_ms, cfg.horizon)
            );
            assert_eq!(labels[labels.len() - 1], None);
        }
    }

    #[test]
    fn invalid_config_gives_no_runs() {
        let mut cfg = small();
        cfg.poll_interval_secs = 0.0;
        assert!(generate_training_runs(&cfg).is_empty());
        cfg = small();
        cfg.params.capacity_rps_per_replica = -1.0;
        assert!(generate_training_runs(&cfg).is_empty());
    }

    #[test]
    fn csv_has_the_sock_shop_columns_and_empty_missing_values() {
        let row = |t: f64, p95: Option<f64>, label: Option<bool>| TrainingRow {
            t_secs: t,
            service: "web".into(),
            replicas: 2,
            features: Features {
                request_rate_rps: Some(12.5),
                error_rate_pct: Some(0.0),
                p95_latency_ms: p95,
                ..Features::default()
            },
            p95_ms: p95,
            error_pct: Some(0.0),
            sla_violated: label,
        };
        let runs = [TrainingRun {
            name: "run00-step".into(),
            pattern: SyntheticShape::Step,
            rows: vec![
                row(30.0, Some(123.45678), Some(true)),
                row(60.0, None, None),
            ],
        }];
        let base = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut out = Vec::new();
        write_training_csv(&runs, base, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], training_csv_header().join(","));
        assert_eq!(
            lines[1],
            "2024-01-01T00:00:30Z,web,12.5,0,,123.4568,,,,,,,1,2,run00-step,step"
        );
        assert_eq!(
            lines[2],
            "2024-01-01T00:01:00Z,web,12.5,0,,,,,,,,,,2,run00-step,step"
        );
        assert_eq!(lines.len(), 3);
    }
}
