//! The Sock Shop seed's decision block (what `docker compose logs -f authoritative-scaler` and
//! the demo show), and a one-line summary for a decision that changes nothing.

use std::fmt::Write as _;
use std::io::Write as _;

use autoscaler_contract::{Decision, ModelKind};

/// The block's outer rule (80 `=`).
pub const WIDE: &str =
    "================================================================================";
/// The block's inner rule (60 `-`).
pub const NARROW: &str = "------------------------------------------------------------";

/// Whether a decision changes (or, in dry-run, would change) the replica count.
pub fn changes_something(d: &Decision) -> bool {
    matches!((d.from_replicas, d.to_replicas), (Some(a), Some(b)) if a != b)
}

/// One decision in the seed's block format, with replicas from → to, the reason and every
/// envelope adjustment added.
pub fn decision_block(n: u64, d: &Decision) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{WIDE}");
    let _ = writeln!(
        s,
        "SCALING DECISION #{n} @ {}",
        d.metric_time.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let _ = writeln!(s, "{WIDE}");
    let _ = writeln!(s, "Service: {}", d.service);
    let _ = writeln!(s, "{NARROW}");
    for m in ModelKind::ALL {
        match d.votes.iter().find(|v| v.model == m) {
            Some(v) => match (v.prediction, v.confidence) {
                (Some(p), Some(c)) => {
                    let what = if p == 1 { "SCALE UP " } else { "NO ACTION" };
                    let _ = writeln!(
                        s,
                        "  {:<20} -> {what}  (confidence: {:.2}%)",
                        m.as_str(),
                        c * 100.0
                    );
                }
                _ => {
                    let _ = writeln!(
                        s,
                        "  {:<20} -> ABSTAIN    ({})",
                        m.as_str(),
                        v.abstain_reason.as_deref().unwrap_or("no reason")
                    );
                }
            },
            None if d.missing_models.contains(&m) => {
                let _ = writeln!(
                    s,
                    "  {:<20} -> NO VOTE    (not received in the window)",
                    m.as_str()
                );
            }
            None => {}
        }
    }
    let _ = writeln!(s, "{NARROW}");
    let _ = writeln!(s, "  DECISION: {}", d.decision);
    let mut count = format!(
        "{} SCALE UP, {} NO ACTION",
        d.scale_up_votes, d.no_action_votes
    );
    if d.abstentions > 0 {
        let _ = write!(count, ", {} ABSTAIN", d.abstentions);
    }
    let _ = writeln!(s, "  Vote Count: {count} ({} total)", d.total_votes);
    let _ = writeln!(s, "  Average Confidence: {:.2}%", d.confidence * 100.0);
    let replicas = |r: Option<u32>| r.map_or("unknown".to_string(), |r| r.to_string());
    let _ = writeln!(
        s,
        "  Replicas: {} -> {}{}",
        replicas(d.from_replicas),
        replicas(d.to_replicas),
        if d.dry_run {
            " (dry-run: would scale)"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "  Reason: {}", d.reason);
    for a in &d.adjustments {
        let _ = writeln!(s, "  Envelope: {a}");
    }
    let _ = write!(s, "{WIDE}");
    s
}

/// One line for a decision that changes nothing:
/// `decision #7 orders NO ACTION @ 2024-07-03 09:46:40 UTC: replicas 2 -> 2; 0 up, 3 no action, 0 abstain of 3 (majority); <reason>[; <envelope adjustments>]`.
pub fn decision_line(n: u64, d: &Decision) -> String {
    let replicas = |r: Option<u32>| r.map_or("unknown".to_string(), |r| r.to_string());
    let mut s = format!(
        "decision #{n} {} {} @ {}: replicas {} -> {}; {} up, {} no action, {} abstain of {} ({}); {}",
        d.service,
        d.decision,
        d.metric_time.format("%Y-%m-%d %H:%M:%S UTC"),
        replicas(d.from_replicas),
        replicas(d.to_replicas),
        d.scale_up_votes,
        d.no_action_votes,
        d.abstentions,
        d.total_votes,
        d.strategy,
        d.reason
    );
    for a in &d.adjustments {
        let _ = write!(s, "; {a}");
    }
    s
}

/// Print decision number `n` on stdout, as the standalone scaler does: the block when it changes
/// (or in dry-run would change) the replica count, one line otherwise. One write per decision,
/// so lines of concurrent writers never interleave inside a block.
pub fn print_decision(n: u64, d: &Decision) {
    let text = if changes_something(d) {
        decision_block(n, d)
    } else {
        decision_line(n, d)
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}
