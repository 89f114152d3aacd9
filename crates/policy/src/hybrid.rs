//! `hybrid`: the product's default composition.
//!
//! 1. **Predictive first:** the `capacity` sizer (and the `ensemble` when `predictive` asks for
//!    it) recommends a count for the load expected when a new replica would be ready.
//! 2. **Reactive emergency fallback** (the seed: "real-time metrics can trigger emergency
//!    scaling"): when the measured p95 is over the SLA (or requests fail) and no predictive
//!    recommendation asked for at least as much, add half the ready replicas (rounded up, at
//!    least one): a service already over its SLA has a queue to drain that its request rate
//!    does not show, so a predictive `+1` is not enough. Replicas already starting count
//!    towards the step (the violation a step answers lasts until they are ready: stacking a
//!    step per poll on the desired count asked 2 → 3 → 5 → 8), and while over the SLA the
//!    service is never scaled in.
//! 3. **The safest recommendation wins** ([`crate::compose`], as in Nomad's autoscaler): out
//!    beats in, two outs → the larger.
//!
//! Why `capacity` and not the ensemble is the default predictive part: see
//! `docs/how-it-compares.md` (the lab's table: the ensemble's vote per candidate costs more
//! replica-hours *and* more violations than sizing from the fitted curve).

use crate::capacity::Capacity;
use crate::ensemble::Ensemble;
use crate::{compose, Observation, Policy, PolicyContext, PolicyKind, PolicySpec, Recommendation};

/// Which predictive policies the hybrid consults: 0 = `capacity`, 1 = `ensemble`, 2 = both.
pub const DEFAULT_PREDICTIVE: f64 = 0.0;
/// Parameters of `hybrid` (`predictive` plus the `capacity` sizer's).
pub const PARAMETERS: &[&str] = &[
    "predictive",
    "margin",
    "headroom",
    "horizon_secs",
    "down_window_secs",
    "extrapolate",
    "period_secs",
    "risk",
    "recent_secs",
    "phase",
];

/// The composition for one service.
pub struct Hybrid {
    capacity: Option<Capacity>,
    ensemble: Option<Ensemble>,
    spec: PolicySpec,
}

impl std::fmt::Debug for Hybrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hybrid").field("spec", &self.spec).finish()
    }
}

impl Hybrid {
    /// From a spec; `predictive` 1 or 2 needs the context's models.
    pub fn from_spec(spec: &PolicySpec, ctx: &PolicyContext) -> Result<Self, String> {
        let predictive = spec.get("predictive", DEFAULT_PREDICTIVE);
        let mut cap_spec = PolicySpec::new(PolicyKind::Capacity);
        for (k, v) in &spec.params {
            if k != "predictive" {
                cap_spec.params.insert(k.clone(), *v);
            }
        }
        let capacity = match predictive {
            0.0 | 2.0 => Some(Capacity::from_spec(&cap_spec)?),
            1.0 => None,
            v => return Err(format!("predictive = {v}: 0 capacity, 1 ensemble, 2 both")),
        };
        let ensemble = if predictive >= 1.0 {
            let models = ctx
                .models
                .clone()
                .ok_or_else(|| "predictive = 1 or 2 needs the models".to_string())?;
            Some(Ensemble::from_spec(
                &PolicySpec::new(PolicyKind::Ensemble),
                ctx,
                models,
            )?)
        } else {
            None
        };
        Ok(Hybrid {
            capacity,
            ensemble,
            spec: spec.clone(),
        })
    }
}

impl Policy for Hybrid {
    fn name(&self) -> String {
        "hybrid".into()
    }

    fn params(&self) -> serde_json::Value {
        let mut v = self
            .capacity
            .as_ref()
            .map_or_else(|| serde_json::json!({}), |c| c.params());
        v["predictive"] =
            serde_json::json!(match (self.capacity.is_some(), self.ensemble.is_some()) {
                (true, true) => "capacity+ensemble",
                (false, true) => "ensemble",
                _ => "capacity",
            });
        v
    }

    fn period_secs(&self) -> f64 {
        self.capacity
            .as_ref()
            .map_or(crate::DEFAULT_POLL_SECS, |c| c.period_secs())
    }

    fn recommend(&mut self, obs: &Observation<'_>) -> Recommendation {
        let current = obs.replicas;
        let mut recs = Vec::with_capacity(3);
        if let Some(c) = self.capacity.as_mut() {
            let mut r = c.recommend(obs);
            r.reason = format!("capacity: {}", r.reason);
            recs.push(r);
        }
        if let Some(e) = self.ensemble.as_mut() {
            let mut r = e.decide(obs);
            r.reason = format!("ensemble: {}", r.reason);
            recs.push(r);
        }
        let f = obs.features;
        let over_sla = f.p95_latency_ms.is_some_and(|p| p > obs.sla_p95_ms)
            || f.error_rate_pct.is_some_and(|e| e > 0.0);
        // Half of the *ready* replicas more (at least one): replicas already starting count
        // towards the step, so a violation that lasts until they are ready does not stack a
        // second step on the first (2 → 3 → 5 → 8 while the first is still starting). While
        // over the SLA it never asks for fewer than now.
        let ready = obs.ready_replicas.min(current);
        let emergency = obs
            .bounds
            .clamp((ready + ready.div_ceil(2).max(1)).max(current));
        let predictive_asked_enough = recs.iter().any(|r| r.replicas >= emergency);
        if over_sla && !predictive_asked_enough {
            recs.push(Recommendation::new(
                emergency,
                "emergency: p95 over the SLA and the predictive policy did not ask for as much",
            ));
        }
        let mut best = compose(&recs)
            .cloned()
            .unwrap_or_else(|| Recommendation::new(current, "no recommendation"));
        // The decision carries the ensemble's candidates whichever recommendation won.
        if best.candidates.is_empty() {
            if let Some(r) = recs.iter().find(|r| !r.candidates.is_empty()) {
                best.candidates = r.candidates.clone();
            }
        }
        best.replicas = obs.bounds.clamp(best.replicas);
        best
    }
}
