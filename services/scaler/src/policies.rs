//! Which scaling policy decides a service, and how the scaler runs it.
//!
//! The scaler's decision is: policies recommend → a composition rule combines → the safety
//! envelope bounds → the actuator acts. The policies are `crates/policy`'s, the same code the
//! lab (`autoscaler backtest`) runs. Three ways to decide, by policy:
//!
//! | policy | decides on | bounded by |
//! |---|---|---|
//! | `ensemble` (the default, [`DEFAULT_POLICY`]) | the three models' votes: tally, then "one replica fewer is safe" | the full envelope |
//! | `hybrid` | the votes' count and the `hybrid` policy's recommendation on the vector, composed ([`autoscaler_policy::compose`]: the safest wins) | the full envelope |
//! | a baseline (`hpa-70`, `threshold`, `triggers`, `static`, `capacity`) | its own recommendation on the vector, at once (no ballot) | min/max only: it runs under its own rules |
//!
//! A policy other than `ensemble` reads the `metrics` topic ([`METRICS_GROUP`]); one instance per
//! service keeps that service's state. The global policy is `--policy`; a service's
//! `autoscaler.policy` label (or the policy file's `policy` field) replaces it.

use autoscaler_policy::{PolicyContext, PolicyKind, PolicySpec, SpecError};

/// The policy of a service that sets none: the models' votes decide, as before policies came to
/// the scaler. `hybrid` is the lab's product default, but in the scaler it composes the votes with
/// the lab's `hybrid`, a composition the lab has not measured; it stays opt-in until it is.
pub const DEFAULT_POLICY: &str = "ensemble";

/// The scaler's consumer group on the metrics topic (read when some service's policy needs the
/// measurements).
pub const METRICS_GROUP: &str = "scaler-metrics";

/// The policies the scaler runs (`hpa` also as `hpa-<target>`, each with `:key=value`
/// parameters as in the lab).
pub const SCALER_POLICY_NAMES: [&str; 7] = [
    "ensemble",
    "hybrid",
    "hpa",
    "threshold",
    "triggers",
    "static",
    "capacity",
];

/// How a policy decides in the scaler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The models' votes decide (`ensemble`).
    Votes,
    /// The votes' count composed with the policy's recommendation (`hybrid`).
    Hybrid,
    /// The policy alone, on each vector, within min/max only.
    Baseline,
}

/// How `spec` decides.
pub fn mode_of(spec: &PolicySpec) -> Mode {
    match spec.kind {
        PolicyKind::Ensemble => Mode::Votes,
        PolicyKind::Hybrid => Mode::Hybrid,
        _ => Mode::Baseline,
    }
}

/// Whether `spec` needs the measurements of the metrics topic.
pub fn needs_metrics(spec: &PolicySpec) -> bool {
    mode_of(spec) != Mode::Votes
}

/// A policy the scaler can run, from its spec text (what [`PolicySpec::parse`] accepts, less the
/// lab-only `oracle` and `all`, and less what the scaler cannot build without the models, such
/// as `hybrid:predictive=1`). The error names the valid policies.
pub fn parse_policy(text: &str) -> Result<PolicySpec, String> {
    let valid = || SCALER_POLICY_NAMES.join(", ");
    let spec = PolicySpec::parse(text).map_err(|e| match e {
        SpecError::UnknownPolicy(name) => {
            format!("unknown policy `{name}` (valid: {})", valid())
        }
        e => e.to_string(),
    })?;
    check(&spec, &PolicyContext::default())?;
    Ok(spec)
}

/// Whether the scaler can run `spec`: not the lab-only oracle, and buildable with `ctx` (the
/// scaler has no models in process: the ensemble's part is the votes).
pub fn check(spec: &PolicySpec, ctx: &PolicyContext) -> Result<(), String> {
    if spec.kind == PolicyKind::Oracle {
        return Err(format!(
            "policy `oracle` runs only in backtests (it needs the future); valid: {}",
            SCALER_POLICY_NAMES.join(", ")
        ));
    }
    if spec.kind != PolicyKind::Ensemble {
        spec.build(ctx).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The default policy, parsed.
pub fn default_policy() -> PolicySpec {
    parse_policy(DEFAULT_POLICY).expect("the default policy parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_lab_parses_and_names_the_valid_ones() {
        for ok in [
            "ensemble",
            "hybrid",
            "hpa-70",
            "hpa",
            "threshold",
            "triggers",
            "static",
            "static:replicas=3",
            "capacity",
        ] {
            assert!(parse_policy(ok).is_ok(), "{ok}");
        }
        let e = parse_policy("bogus").unwrap_err();
        assert!(e.contains("valid: ensemble, hybrid, hpa"), "{e}");
        assert!(parse_policy("oracle").unwrap_err().contains("backtests"));
        assert!(parse_policy("hybrid:predictive=1").is_err());
        assert!(parse_policy("hpa-x").is_err());
        assert_eq!(mode_of(&default_policy()), Mode::Votes);
        assert_eq!(mode_of(&parse_policy("hybrid").unwrap()), Mode::Hybrid);
        assert_eq!(mode_of(&parse_policy("hpa-70").unwrap()), Mode::Baseline);
    }
}
