//! What an SLA violation is: one rule for the reports, the training labels and the policies.

/// Default SLA on a service's p95 latency, milliseconds: what the reports count as a violation
/// and what the models are trained to foresee, unless configured otherwise.
pub const DEFAULT_SLA_P95_MS: f64 = 250.0;

/// An error rate at or above this percentage counts as an SLA violation, whatever the latency
/// (a service that fails most requests has no meaningful p95, often none at all).
pub const ERROR_VIOLATION_PCT: f64 = 50.0;

/// Whether one poll of a service violates its SLA: its p95 latency is above `sla_p95_ms`, or its
/// error rate is at least [`ERROR_VIOLATION_PCT`]. A missing (or NaN) value never violates —
/// nothing is read as 0 — so a poll with neither known does not violate, and is not known to
/// be fine either (see [`within_sla`]).
pub fn violates_sla(p95_ms: Option<f64>, error_pct: Option<f64>, sla_p95_ms: f64) -> bool {
    p95_ms.is_some_and(|p| p > sla_p95_ms) || error_pct.is_some_and(|e| e >= ERROR_VIOLATION_PCT)
}

/// Whether the poll is within its SLA: `Some(false)` violates ([`violates_sla`]), `Some(true)` is
/// known to be fine (its p95 is known and it does not violate), `None` unknown (no p95 and no
/// high error rate). NaN counts as missing.
pub fn within_sla(p95_ms: Option<f64>, error_pct: Option<f64>, sla_p95_ms: f64) -> Option<bool> {
    let p = p95_ms.filter(|v| !v.is_nan());
    let e = error_pct.filter(|v| !v.is_nan());
    if violates_sla(p, e, sla_p95_ms) {
        Some(false)
    } else {
        p.map(|_| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_above_the_sla_or_half_the_requests_failing_violates() {
        assert!(violates_sla(Some(250.1), None, 250.0));
        assert!(
            !violates_sla(Some(250.0), None, 250.0),
            "at the SLA is within it"
        );
        assert!(violates_sla(None, Some(50.0), 250.0));
        assert!(violates_sla(Some(10.0), Some(75.0), 250.0));
        assert!(!violates_sla(Some(10.0), Some(49.9), 250.0));
        assert!(
            !violates_sla(None, None, 250.0),
            "missing is not a violation"
        );
        assert!(!violates_sla(Some(f64::NAN), Some(f64::NAN), 250.0));
    }

    #[test]
    fn missing_latency_is_unknown_not_fine() {
        assert_eq!(within_sla(Some(100.0), Some(1.0), 250.0), Some(true));
        assert_eq!(within_sla(Some(300.0), None, 250.0), Some(false));
        assert_eq!(within_sla(None, Some(60.0), 250.0), Some(false));
        assert_eq!(within_sla(None, Some(1.0), 250.0), None);
        assert_eq!(within_sla(Some(f64::NAN), None, 250.0), None);
    }
}
