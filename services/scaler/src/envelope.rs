//! The safety envelope: what a trusted autoscaler always does, as a pure function.
//!
//! Time is the vectors' *metric time*, so cooldowns mean the same in a replay at any speed and
//! in production.
//!
//! Rules, in the order they apply:
//! 1. replicas unknown → hold (fail closed), never assume a number;
//! 2. no model could vote (stale or incomplete inputs) → hold;
//! 3. outside `[min, max]` → brought back inside, whatever the vote;
//! 4. scale up by a step that grows with the urgency ([`step_for`]) up to `max_step`, clamped to
//!    `max`; not within `cooldown_up_secs` of the last scale-up (a scale-down never delays a
//!    scale-up: adding capacity is the safe direction);
//! 5. scale down by one, never below `min`; not within `cooldown_up_secs` of the last scale-up nor
//!    `cooldown_down_secs` of the last scale-down, and only to the *highest* replica count
//!    recommended over the last `stabilization_secs` (Kubernetes HPA's scale-down stabilization:
//!    every decision recommends a count — current + step for an "up", current for "no action",
//!    current − 1 for a "down" — so one "up" or "no action" in the window holds the count).
//!
//! Per-service bounds (Swarm labels, a policy file) replace the global ones through
//! [`EnvelopeConfig::with_policy`]; the state a restart must not forget is persisted by
//! [`crate::store`].

use std::collections::VecDeque;

use autoscaler_contract::Verdict;

use crate::policy::ServicePolicy;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Default cooldown after a scale-up, seconds (the Sock Shop seed's value).
pub const DEFAULT_COOLDOWN_UP_SECS: u64 = 300;
/// Default cooldown after a scale-down, seconds (the Sock Shop seed's value).
pub const DEFAULT_COOLDOWN_DOWN_SECS: u64 = 240;
/// Default scale-down stabilization window, seconds (Kubernetes HPA's default).
pub const DEFAULT_STABILIZATION_SECS: u64 = 300;
/// Longest cooldown or stabilization window accepted, seconds (one day).
pub const MAX_DURATION_SECS: u64 = 86_400;
/// Most entries of a service's stabilization history (a day of 10-second polls is 8,640; a
/// replay flood keeps the highest recommendations, so a cut never allows a scale-down).
pub const MAX_RECENT: usize = 10_000;
/// Most replicas the envelope manages per service (and largest step).
pub const MAX_REPLICAS_LIMIT: u32 = 10_000;

/// Default fewest replicas of a managed service.
pub const DEFAULT_MIN_REPLICAS: u32 = 1;
/// Default most replicas of a managed service.
pub const DEFAULT_MAX_REPLICAS: u32 = 10;
/// Default most replicas added per decision.
pub const DEFAULT_MAX_STEP: u32 = 1;

/// Bounds and timings of the envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeConfig {
    /// Never fewer replicas than this.
    pub min_replicas: u32,
    /// Never more replicas than this.
    pub max_replicas: u32,
    /// No scaling up within this many seconds of the last scale-up.
    pub cooldown_up_secs: u64,
    /// No scaling down within this many seconds of the last scale-down.
    pub cooldown_down_secs: u64,
    /// No scaling down while an "up" was recommended within this many seconds.
    pub stabilization_secs: u64,
    /// At most this many replicas added per decision.
    pub max_step: u32,
}

impl Default for EnvelopeConfig {
    fn default() -> Self {
        EnvelopeConfig {
            min_replicas: DEFAULT_MIN_REPLICAS,
            max_replicas: DEFAULT_MAX_REPLICAS,
            cooldown_up_secs: DEFAULT_COOLDOWN_UP_SECS,
            cooldown_down_secs: DEFAULT_COOLDOWN_DOWN_SECS,
            stabilization_secs: DEFAULT_STABILIZATION_SECS,
            max_step: DEFAULT_MAX_STEP,
        }
    }
}

impl EnvelopeConfig {
    /// Every problem with this configuration, all at once (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.min_replicas > self.max_replicas {
            p.push(format!(
                "min replicas ({}) is greater than max replicas ({})",
                self.min_replicas, self.max_replicas
            ));
        }
        if self.max_replicas == 0 {
            p.push("max replicas must be at least 1".into());
        }
        if self.max_step == 0 {
            p.push("max step must be at least 1".into());
        }
        if self.max_replicas > MAX_REPLICAS_LIMIT || self.max_step > MAX_REPLICAS_LIMIT {
            p.push(format!(
                "max replicas and max step must be at most {MAX_REPLICAS_LIMIT}"
            ));
        }
        for (name, v) in [
            ("cooldown up", self.cooldown_up_secs),
            ("cooldown down", self.cooldown_down_secs),
            ("stabilization", self.stabilization_secs),
        ] {
            if v > MAX_DURATION_SECS {
                p.push(format!(
                    "{name} must be at most {MAX_DURATION_SECS} s, got {v}"
                ));
            }
        }
        p
    }
}

impl EnvelopeConfig {
    /// This configuration with a service's own bounds in place of the global ones, or every
    /// problem with the result (e.g. a label `autoscaler.min` above the global max).
    pub fn with_policy(&self, p: &ServicePolicy) -> Result<EnvelopeConfig, Vec<String>> {
        let mut cfg = self.clone();
        if let Some(min) = p.min_replicas {
            cfg.min_replicas = min;
        }
        if let Some(max) = p.max_replicas {
            cfg.max_replicas = max;
        }
        let problems = cfg.problems();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(problems)
        }
    }
}

/// How far a service is from its SLA, as the ensemble and the metrics see it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Severity {
    /// The ensemble's P(violation): the weighted score, or the mean probability of the
    /// non-abstaining votes.
    pub probability: Option<f64>,
    /// p95 latency over the service's SLA (1.0 = at the SLA).
    pub p95_over_sla: Option<f64>,
}

impl Severity {
    /// Urgency in [0, 1]: the larger of `(p − 0.5) / 0.5` (0 at an even bet, 1 at certainty) and
    /// `p95/SLA − 1` (0 at the SLA, 1 at twice the SLA); `None` when neither is known.
    pub fn urgency(&self) -> Option<f64> {
        let from_p = self
            .probability
            .filter(|p| p.is_finite())
            .map(|p| ((p - 0.5) / 0.5).clamp(0.0, 1.0));
        let from_r = self
            .p95_over_sla
            .filter(|r| r.is_finite())
            .map(|r| (r - 1.0).clamp(0.0, 1.0));
        match (from_p, from_r) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Replicas to add for a scale-up: `1 + floor(urgency · (max_step − 1))`, so between 1 and
/// `max_step`. With `max_step` 1 the step is always 1; with nothing known about the urgency it
/// is `max_step` (the behaviour before the step grew with the urgency).
///
/// Example with `max_step` 3: P(violation) 0.7 → urgency 0.4 → step 1; 0.8 → 0.6 → 2;
/// p95 at 2× the SLA → 1 → 3.
pub fn step_for(max_step: u32, s: &Severity) -> u32 {
    let max_step = max_step.max(1);
    match s.urgency() {
        None => max_step,
        Some(u) => (1 + (u * f64::from(max_step - 1)).floor() as u32).min(max_step),
    }
}

/// What the envelope remembers about one service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceState {
    /// Metric time of the last scale-up.
    pub last_scale_up: Option<DateTime<Utc>>,
    /// Metric time of the last scale-down.
    pub last_scale_down: Option<DateTime<Utc>>,
    /// Recent recommendations: (metric time, recommended replicas), within the stabilization
    /// window.
    pub recent: VecDeque<(DateTime<Utc>, u32)>,
}

/// What the ensemble proposes for one vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The ensemble's verdict.
    pub verdict: Verdict,
    /// Replicas now, if they could be read.
    pub current: Option<u32>,
    /// True when no model could vote on fresh inputs.
    pub stale: bool,
    /// The vector's metric time.
    pub at: DateTime<Utc>,
    /// The clock's reading (wall clock; a replay's latest metric time). No time after it is
    /// ever stored: a metric time ahead of it is recorded as `now`.
    pub now: DateTime<Utc>,
    /// How urgent a scale-up is (sizes the step).
    pub severity: Severity,
}

/// What the envelope lets happen.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The desired replica count (`None`: held with replicas unknown).
    pub to: Option<u32>,
    /// Every rule that changed or blocked the proposal, in words.
    pub adjustments: Vec<String>,
}

impl Outcome {
    /// Whether the outcome changes the replica count.
    pub fn changes(&self, current: Option<u32>) -> bool {
        matches!((current, self.to), (Some(c), Some(t)) if c != t)
    }
}

fn secs_since(now: DateTime<Utc>, then: Option<DateTime<Utc>>) -> Option<i64> {
    // Two valid `DateTime`s always have a difference `TimeDelta` can hold.
    then.map(|t| (now - t).num_seconds())
}

fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Bring every time of `state` that is after `now` back to `now` (a state poisoned by a
/// far-future message, or a clock set back); drop stabilization entries that were after it.
/// Returns whether anything changed.
pub fn repair(state: &mut ServiceState, now: DateTime<Utc>) -> bool {
    let mut changed = false;
    for t in [&mut state.last_scale_up, &mut state.last_scale_down]
        .into_iter()
        .flatten()
    {
        if *t > now {
            *t = now;
            changed = true;
        }
    }
    let before = state.recent.len();
    state.recent.retain(|(t, _)| *t <= now);
    changed || state.recent.len() != before
}

/// Apply the envelope to a proposal and update the service's state as if the outcome is carried
/// out (the caller calls [`record_failure`] if actuation then fails).
///
/// Total: no input panics (checked time arithmetic, saturating counts), and no time after
/// `p.now` is stored.
pub fn apply(cfg: &EnvelopeConfig, state: &mut ServiceState, p: &Proposal) -> Outcome {
    repair(state, p.now);
    let at = p.at.min(p.now);
    let window = chrono::Duration::try_seconds(secs(cfg.stabilization_secs))
        .unwrap_or(chrono::TimeDelta::MAX);
    // An entry whose expiry cannot be computed is at the far end of time: dropped.
    while state
        .recent
        .front()
        .is_some_and(|(t, _)| t.checked_add_signed(window).is_none_or(|end| end <= at))
    {
        state.recent.pop_front();
    }
    let step = step_for(cfg.max_step, &p.severity);
    match p.current {
        Some(current) if !p.stale => {
            let recommended = match p.verdict {
                Verdict::ScaleUp => current.saturating_add(step),
                Verdict::NoAction => current,
                Verdict::ScaleDown => current.saturating_sub(1),
            };
            state.recent.push_back((at, recommended));
        }
        // A stale poll (e.g. Prometheus down) or unknown replicas recommend keeping what runs:
        // the window never empties during an outage, so no scale-down comes in the first
        // polls after it (while `rate()` still under-counts), only once a whole window of
        // fresh "down"s has passed.
        Some(current) => state.recent.push_back((at, current)),
        None => {
            if let Some(&(_, last)) = state.recent.back() {
                state.recent.push_back((at, last));
            }
        }
    }
    // Bounded: one entry per poll within the window; a flood of polls keeps the highest ones.
    while state.recent.len() > MAX_RECENT {
        let lowest = state
            .recent
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, r))| *r)
            .map(|(i, _)| i)
            .unwrap_or(0);
        state.recent.remove(lowest);
    }
    let mut adj = Vec::new();
    let Some(current) = p.current else {
        adj.push("held: replicas unknown".to_string());
        return Outcome {
            to: None,
            adjustments: adj,
        };
    };
    if p.stale {
        adj.push("held: no model could vote (stale or incomplete inputs)".to_string());
        return Outcome {
            to: Some(current),
            adjustments: adj,
        };
    }
    if current < cfg.min_replicas {
        adj.push(format!("raised to min {}", cfg.min_replicas));
        state.last_scale_up = Some(at);
        return Outcome {
            to: Some(cfg.min_replicas),
            adjustments: adj,
        };
    }
    if current > cfg.max_replicas {
        adj.push(format!("lowered to max {}", cfg.max_replicas));
        state.last_scale_down = Some(at);
        return Outcome {
            to: Some(cfg.max_replicas),
            adjustments: adj,
        };
    }
    let since_up = secs_since(at, state.last_scale_up);
    let since_down = secs_since(at, state.last_scale_down);
    let (cool_up, cool_down) = (secs(cfg.cooldown_up_secs), secs(cfg.cooldown_down_secs));
    let to = match p.verdict {
        Verdict::NoAction => current,
        Verdict::ScaleUp => {
            if current >= cfg.max_replicas {
                adj.push(format!("at max {}", cfg.max_replicas));
                current
            } else if let Some(s) = since_up.filter(|s| *s < cool_up) {
                adj.push(format!(
                    "cooldown: {} s left after scale-up",
                    cool_up.saturating_sub(s)
                ));
                current
            } else {
                let want = current.saturating_add(step);
                if let Some(u) = p.severity.urgency().filter(|_| step > 1) {
                    adj.push(format!(
                        "step {step} (urgency {u:.2}, max step {})",
                        cfg.max_step
                    ));
                }
                if want > cfg.max_replicas {
                    adj.push(format!("clamped to max {}", cfg.max_replicas));
                }
                state.last_scale_up = Some(at);
                want.min(cfg.max_replicas)
            }
        }
        Verdict::ScaleDown => {
            if current <= cfg.min_replicas {
                adj.push(format!("at min {}", cfg.min_replicas));
                current
            } else if let Some(s) = since_up.filter(|s| *s < cool_up) {
                adj.push(format!(
                    "cooldown: {} s left after scale-up",
                    cool_up.saturating_sub(s)
                ));
                current
            } else if let Some(s) = since_down.filter(|s| *s < cool_down) {
                adj.push(format!(
                    "cooldown: {} s left after scale-down",
                    cool_down.saturating_sub(s)
                ));
                current
            } else if let Some(highest) = state
                .recent
                .iter()
                .map(|(_, r)| *r)
                .max()
                .filter(|r| *r >= current)
            {
                adj.push(format!(
                    "stabilization: {highest} replicas recommended within the last {} s",
                    cfg.stabilization_secs
                ));
                current
            } else {
                state.last_scale_down = Some(at);
                current - 1
            }
        }
    };
    Outcome {
        to: Some(to),
        adjustments: adj,
    }
}

/// Undo the timing update of an outcome whose actuation failed.
pub fn record_failure(before: &ServiceState, state: &mut ServiceState) {
    state.last_scale_up = before.last_scale_up;
    state.last_scale_down = before.last_scale_down;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_720_000_000 + s, 0).unwrap()
    }

    fn prop(v: Verdict, current: Option<u32>, at: i64) -> Proposal {
        Proposal {
            verdict: v,
            current,
            stale: false,
            at: t(at),
            now: t(at),
            severity: Severity::default(),
        }
    }

    #[test]
    fn holds_when_replicas_unknown_or_inputs_stale() {
        let cfg = EnvelopeConfig::default();
        let mut st = ServiceState::default();
        let o = apply(&cfg, &mut st, &prop(Verdict::ScaleUp, None, 0));
        assert_eq!(o.to, None);
        assert_eq!(o.adjustments, vec!["held: replicas unknown"]);
        let mut p = prop(Verdict::ScaleUp, Some(2), 0);
        p.stale = true;
        assert_eq!(apply(&cfg, &mut st, &p).to, Some(2));
    }

    /// Medium 9: a Prometheus outage longer than the stabilization window no longer empties
    /// it: the first fresh "down" after the outage is held, the window runs from the outage's
    /// end.
    #[test]
    fn an_outage_holds_the_stabilization_window() {
        let cfg = EnvelopeConfig::default();
        let mut st = ServiceState::default();
        assert_eq!(
            apply(&cfg, &mut st, &prop(Verdict::NoAction, Some(4), 0)).to,
            Some(4)
        );
        for at in (10..=1_000).step_by(10) {
            let mut p = prop(Verdict::NoAction, Some(4), at);
            p.stale = true;
            apply(&cfg, &mut st, &p);
        }
        // replicas unknown for a while too
        apply(&cfg, &mut st, &prop(Verdict::NoAction, None, 1_010));
        let o = apply(&cfg, &mut st, &prop(Verdict::ScaleDown, Some(4), 1_020));
        assert_eq!(o.to, Some(4), "{o:?}");
        assert!(o.adjustments[0].starts_with("stabilization"), "{o:?}");
        let o = apply(&cfg, &mut st, &prop(Verdict::ScaleDown, Some(4), 1_200));
        assert_eq!(o.to, Some(4), "{o:?}");
        // A whole window of fresh "down"s after the last stale poll: now it may.
        let o = apply(&cfg, &mut st, &prop(Verdict::ScaleDown, Some(4), 1_311));
        assert_eq!(o.to, Some(3), "{o:?}");
    }

    #[test]
    fn the_stabilization_history_is_bounded() {
        let cfg = EnvelopeConfig {
            stabilization_secs: MAX_DURATION_SECS,
            ..EnvelopeConfig::default()
        };
        let mut st = ServiceState::default();
        for at in 0..(MAX_RECENT as i64 + 500) {
            apply(&cfg, &mut st, &prop(Verdict::NoAction, Some(3), at));
        }
        apply(&cfg, &mut st, &prop(Verdict::ScaleUp, Some(3), 20_000));
        assert_eq!(st.recent.len(), MAX_RECENT);
        assert!(
            st.recent.iter().any(|(_, r)| *r == 4),
            "the highest is kept"
        );
    }

    #[test]
    fn cooldowns_and_stabilization() {
        let cfg = EnvelopeConfig::default();
        let mut st = ServiceState::default();
        assert_eq!(
            apply(&cfg, &mut st, &prop(Verdict::ScaleUp, Some(2), 0)).to,
            Some(3)
        );
        let o = apply(&cfg, &mut st, &prop(Verdict::ScaleUp, Some(3), 180));
        assert_eq!(o.to, Some(3));
        assert_eq!(o.adjustments, vec!["cooldown: 120 s left after scale-up"]);
        assert_eq!(
            apply(&cfg, &mut st, &prop(Verdict::ScaleUp, Some(3), 300)).to,
            Some(4)
        );
        // Down is blocked by the up-cooldown...
        let o = apply(&cfg, &mut st, &prop(Verdict::ScaleDown, Some(4), 330));
        assert!(o.adjustments[0].starts_with("cooldown"), "{o:?}");
        // ...an "up" recommended at 450 is itself held by the cooldown, but still counts for
        // the stabilization window, which then blocks the down until 750 (the "down"s at 330
        // and 700 recommend 3, below the current 4).
        let o = apply(&cfg, &mut st, &prop(Verdict::ScaleUp, Some(4), 450));
        assert_eq!(o.to, Some(4));
        let o = apply(&cfg, &mut st, &prop(Verdict::ScaleDown, Some(4), 700));
        assert_eq!(
            o.adjustments,
            vec!["stabilization: 5 replicas recommended within the last 300 s"]
        );
        assert_eq!(
            apply(&cfg, &mut st, &prop(Verdict::ScaleDown, Some(4), 750)).to,
            Some(3)
        );
        let o = apply(&cfg, &mut st, &prop(Verdict::ScaleDown, Some(3), 849));
        assert_eq!(o.adjustments, vec!["cooldown: 141 s left after scale-down"]);
        // A scale-down never delays a scale-up.
        assert_eq!(
            apply(&cfg, &mut st, &prop(Verdict::ScaleUp, Some(3), 850)).to,
            Some(4)
        );
    }

    #[test]
    fn bounds_clamp_and_config_problems() {
        let cfg = EnvelopeConfig {
            min_replicas: 2,
            max_replicas: 4,
            max_step: 3,
            ..EnvelopeConfig::default()
        };
        let mut st = ServiceState::default();
        let o = apply(&cfg, &mut st, &prop(Verdict::ScaleUp, Some(3), 0));
        assert_eq!(o.to, Some(4));
        assert_eq!(o.adjustments, vec!["clamped to max 4"]);
        let o = apply(&cfg, &mut st, &prop(Verdict::NoAction, Some(1), 10));
        assert_eq!(o.to, Some(2));
        let bad = EnvelopeConfig {
            min_replicas: 5,
            max_replicas: 0,
            max_step: 0,
            ..EnvelopeConfig::default()
        };
        assert_eq!(bad.problems().len(), 3);
    }

    #[test]
    fn the_step_grows_with_urgency_up_to_max_step() {
        let sev = |p: Option<f64>, r: Option<f64>| Severity {
            probability: p,
            p95_over_sla: r,
        };
        // max_step 1: always 1, whatever the urgency.
        assert_eq!(step_for(1, &sev(Some(1.0), Some(5.0))), 1);
        // Nothing known: max_step, as before the step grew with urgency.
        assert_eq!(step_for(3, &sev(None, None)), 3);
        assert_eq!(step_for(3, &sev(Some(0.7), None)), 1);
        assert_eq!(step_for(3, &sev(Some(0.8), None)), 2);
        assert_eq!(step_for(3, &sev(Some(1.0), None)), 3);
        assert_eq!(
            step_for(3, &sev(Some(0.6), Some(2.0))),
            3,
            "p95 at 2x the SLA"
        );
        assert_eq!(step_for(3, &sev(Some(f64::NAN), None)), 3, "NaN is unknown");
        let cfg = EnvelopeConfig {
            max_step: 3,
            ..EnvelopeConfig::default()
        };
        let mut st = ServiceState::default();
        let mut p = prop(Verdict::ScaleUp, Some(2), 0);
        p.severity = sev(Some(0.8), None);
        let o = apply(&cfg, &mut st, &p);
        assert_eq!(o.to, Some(4));
        assert_eq!(o.adjustments, vec!["step 2 (urgency 0.60, max step 3)"]);
    }

    #[test]
    fn a_service_policy_replaces_the_global_bounds() {
        let cfg = EnvelopeConfig::default();
        let p = ServicePolicy {
            min_replicas: Some(2),
            max_replicas: Some(4),
            ..ServicePolicy::default()
        };
        let c = cfg.with_policy(&p).unwrap();
        assert_eq!((c.min_replicas, c.max_replicas), (2, 4));
        let only_min = ServicePolicy {
            min_replicas: Some(12),
            ..ServicePolicy::default()
        };
        assert_eq!(
            cfg.with_policy(&only_min).unwrap_err(),
            vec!["min replicas (12) is greater than max replicas (10)"]
        );
    }

    fn arb_verdict() -> impl proptest::strategy::Strategy<Value = Verdict> {
        prop_oneof![
            Just(Verdict::ScaleUp),
            Just(Verdict::ScaleDown),
            Just(Verdict::NoAction)
        ]
    }

    proptest! {
        /// Whatever the votes and their urgency, replicas that start inside the bounds stay
        /// inside; a scale-up adds at most `max_step`; no scale-down
        /// within the stabilization window after an "up" or a "no action"; no two scale-ups
        /// within the up-cooldown; no scale-down within either cooldown.
        #[test]
        fn envelope_invariants(
            min in 1u32..4, span in 0u32..6, step in 1u32..4, start in 0u32..10,
            steps in proptest::collection::vec(
                (arb_verdict(), 1i64..200, proptest::option::of(0.0f64..=1.0)), 1..80)
        ) {
            let cfg = EnvelopeConfig { min_replicas: min, max_replicas: min + span, max_step: step,
                ..EnvelopeConfig::default() };
            let mut st = ServiceState::default();
            let mut cur = start.clamp(min, min + span);
            let mut now = 0i64;
            let mut last_hold_rec: Option<i64> = None;
            let mut last_up_act: Option<i64> = None;
            let mut last_down_act: Option<i64> = None;
            for (v, dt, probability) in steps {
                now += dt;
                if v != Verdict::ScaleDown { last_hold_rec = Some(now); }
                let mut p = prop(v, Some(cur), now);
                p.severity = Severity { probability, p95_over_sla: None };
                let o = apply(&cfg, &mut st, &p);
                let to = o.to.unwrap();
                prop_assert!(to >= cfg.min_replicas && to <= cfg.max_replicas);
                if to < cur {
                    // Nothing but "down" recommended within the window.
                    prop_assert!(last_hold_rec.is_none_or(|u| now - u >= cfg.stabilization_secs as i64));
                    prop_assert_eq!(cur - to, 1);
                    // Neither cooldown is cut short by a scale-down.
                    prop_assert!(last_up_act.is_none_or(|u| now - u >= cfg.cooldown_up_secs as i64));
                    prop_assert!(last_down_act.is_none_or(|d| now - d >= cfg.cooldown_down_secs as i64));
                    last_down_act = Some(now);
                }
                if to > cur {
                    prop_assert!(last_up_act.is_none_or(|u| now - u >= cfg.cooldown_up_secs as i64));
                    prop_assert!(to - cur <= cfg.max_step);
                    last_up_act = Some(now);
                }
                cur = to;
            }
        }
    }
}
