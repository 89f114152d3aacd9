//! What people read: decision blocks in the Sock Shop seed's format, and the run summary.

use std::fmt::Write as _;

use autoscaler_aggregator::AggregatorReport;
use autoscaler_contract::{Decision, ModelKind, Verdict};
use autoscaler_inference::InferenceReport;
use autoscaler_scaler::ScalerReport;

// The block lives with the standalone scaler's (one format for the demo and the logs).
pub use autoscaler_telemetry::block::{changes_something, decision_block};
use autoscaler_telemetry::block::{NARROW, WIDE};

/// Orders decisions for printing: a poll's decisions can arrive in any order across services,
/// so they are held until a later poll's decision arrives, then released sorted by service.
/// The printed output is then the same on every run with the same seed.
#[derive(Default)]
pub struct Orderer {
    pending: Vec<Decision>,
}

impl Orderer {
    /// Add a decision; returns those now ready, in order.
    pub fn push(&mut self, d: Decision) -> Vec<Decision> {
        let ready = match self.pending.first() {
            Some(p) if d.metric_time > p.metric_time => self.flush(),
            _ => Vec::new(),
        };
        self.pending.push(d);
        ready
    }

    /// Release everything held.
    pub fn flush(&mut self) -> Vec<Decision> {
        let mut out = std::mem::take(&mut self.pending);
        out.sort_by(|a, b| (a.metric_time, &a.service).cmp(&(b.metric_time, &b.service)));
        out
    }
}

/// The end-of-run summary.
pub fn summary(
    agg: &AggregatorReport,
    scaler: &ScalerReport,
    inference: &[(ModelKind, InferenceReport)],
    poll_interval_secs: u64,
    verdicts: &VerdictCounts,
) -> String {
    let mut s = String::new();
    let hours = agg.simulated_secs / 3600.0;
    let minutes_per_poll = poll_interval_secs as f64 / 60.0;
    let _ = writeln!(s, "{WIDE}");
    let _ = writeln!(s, "SUMMARY");
    let _ = writeln!(s, "{WIDE}");
    // A replay knows simulated time, violations and replica-hours; a live source (Prometheus)
    // only what it polled.
    let replay = !agg.services.is_empty();
    if replay {
        let _ = writeln!(
            s,
            "Simulated time:        {:.1} h ({} polls of {} s)",
            hours, agg.ticks, poll_interval_secs
        );
    } else {
        let _ = writeln!(
            s,
            "Polls:                 {} of {} s ({} stale vectors, {} missing features)",
            agg.ticks, poll_interval_secs, agg.stale_vectors, agg.missing_features
        );
    }
    let _ = writeln!(s, "Feature vectors:       {}", agg.vectors);
    let _ = writeln!(
        s,
        "Decisions:             {} ({} SCALE UP, {} NO ACTION, {} SCALE DOWN verdicts)",
        scaler.decisions, verdicts.up, verdicts.no_action, verdicts.down
    );
    let _ = writeln!(s, "Scale-ups:             {}", scaler.scale_ups);
    let _ = writeln!(s, "Scale-downs:           {}", scaler.scale_downs);
    let _ = writeln!(
        s,
        "Held or clamped:       {} (safety envelope)",
        scaler.adjusted
    );
    if replay {
        let total_violation: f64 = agg
            .services
            .values()
            .map(|t| t.violation_polls as f64 * minutes_per_poll)
            .sum();
        let total_replica_hours: f64 = agg
            .services
            .values()
            .map(|t| t.replica_seconds / 3600.0)
            .sum();
        let _ = writeln!(s, "SLA-violation minutes: {total_violation:.1}");
        let _ = writeln!(s, "Replica-hours:         {total_replica_hours:.1}");
        let _ = writeln!(s, "{NARROW}");
        let _ = writeln!(
            s,
            "  {:<12} {:>8} {:>14} {:>14} {:>13}",
            "service", "changes", "max replicas", "SLA viol. min", "replica-hours"
        );
        for (name, t) in &agg.services {
            let _ = writeln!(
                s,
                "  {:<12} {:>8} {:>14} {:>14.1} {:>13.1}",
                name,
                t.changes,
                t.max_replicas,
                t.violation_polls as f64 * minutes_per_poll,
                t.replica_seconds / 3600.0
            );
        }
    }
    for (m, r) in inference {
        let _ = writeln!(
            s,
            "Model {:<20} {} votes, {} abstentions, {} dead letters",
            m.as_str(),
            r.votes,
            r.abstentions,
            r.dead_letters
        );
    }
    let b = &scaler.ballot;
    let _ = writeln!(
        s,
        "Votes: {} accepted, {} duplicate, {} late, {} unknown model; {} vectors decided in the window, {} at its end; {} dead letters",
        b.accepted, b.duplicate, b.late, b.unknown_model, b.decided_complete, b.decided_timeout,
        scaler.dead_letters
    );
    if agg.decision_timeouts > 0 {
        let _ = writeln!(
            s,
            "Replay waits that ended without a decision: {}",
            agg.decision_timeouts
        );
    }
    let _ = write!(s, "{WIDE}");
    s
}

/// How many decisions had each verdict.
#[derive(Debug, Default, Clone, Copy)]
pub struct VerdictCounts {
    /// SCALE UP verdicts.
    pub up: u64,
    /// NO ACTION verdicts.
    pub no_action: u64,
    /// SCALE DOWN verdicts.
    pub down: u64,
}

impl VerdictCounts {
    /// Count one decision.
    pub fn add(&mut self, d: &Decision) {
        match d.decision {
            Verdict::ScaleUp => self.up += 1,
            Verdict::NoAction => self.no_action += 1,
            Verdict::ScaleDown => self.down += 1,
        }
    }
}

/// A progress bar of `len` steps with the current step's name (training).
pub fn steps_bar(len: u64) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(len).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
        )
        .expect("valid template"),
    );
    b.enable_steady_tick(std::time::Duration::from_millis(200));
    b
}
