//! The clairvoyant oracle: the fewest replica-hours with no violation the simulator can avoid.
//!
//! **Demand.** Time is cut into slots of one evaluation interval (30 s). The demand `D[j]` of
//! slot `j` is the fewest ready replicas that keep that slot within the SLA *by itself*: from an
//! empty queue, nothing rejected, no backlog left at its end, and the p95 of the slot's
//! sub-steps times the largest latency noise of the two reports whose window holds it at or
//! below the SLA ([`autoscaler_simulator::slot_within_sla`]). It is computed from the noisy
//! arrivals the runs will see (the oracle knows the future, noise included). Because the p95 of
//! a mixture is at most the largest p95 of its parts, a window made of slots that meet their
//! demand is within the SLA, and because each such slot ends with an empty queue the next one
//! starts from one: meeting the demand of every slot is sufficient for no violation.
//!
//! **Plan.** A replica asked for at decision time `t_j = j·P` serves from `t_j + d` (the same
//! start-up delay as every policy); a scale-down is immediate and removes the newest replicas
//! first. So the replicas ready at time `t` are the minimum of the desired counts set over
//! `[t − d, t]`, and "ready ≥ D in every slot" is equivalent to, for every decision `j`,
//! `desired_j ≥ max D[s]` over the slots `s` that intersect `[t_j, t_{j+1} + d)`: slots
//! `j ..= j + ⌈d/P⌉`. That is a pointwise lower bound on each decision separately, so setting
//! every decision to it (clamped into the bounds) is the exact optimum: no dynamic programme is
//! needed, and [`plan`] is checked against an exhaustive search in the tests. Slots where no
//! plan can meet the demand (more than the maximum, or before the first scale-up can be ready)
//! are the unavoidable violations ([`unavoidable`]).

use std::sync::Arc;

use autoscaler_policy::{Bounds, Observation, Policy, Recommendation};
use autoscaler_simulator::{report_noise, slot_within_sla, LoadProfile, ServiceParams};

/// The demand of every slot of `slot_secs` (a multiple of the profile's sub-step) over the
/// profile, each at least 1 (see the module docs).
pub fn demand(
    profile: &LoadProfile,
    params: &ServiceParams,
    slot_secs: f64,
    sla_ms: f64,
) -> Vec<u32> {
    let per = (slot_secs / profile.substep_secs()).round().max(1.0) as usize;
    let slots = profile.len() / per;
    (0..slots)
        .map(|j| {
            let (from, to) = (j * per, (j + 1) * per);
            let end = (j + 1) as f64 * slot_secs;
            let noise_a = report_noise(profile.seed(), end, params.noise).0;
            let noise_b = report_noise(profile.seed(), end + slot_secs, params.noise).0;
            let noise = noise_a.max(noise_b);
            let ok = |n: u32| slot_within_sla(profile, params, from, to, n, sla_ms, noise);
            if ok(1) {
                return 1;
            }
            let mut hi = 2u32;
            while !ok(hi) {
                if hi >= 1 << 20 {
                    return hi;
                }
                hi *= 2;
            }
            let mut lo = hi / 2; // not ok
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if ok(mid) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            hi
        })
        .collect()
}

/// Slots from decision `j` on that a replica asked for at `t_j` must cover (see the module
/// docs): `⌈delay / slot⌉`.
pub fn lookahead_slots(startup_delay_secs: f64, slot_secs: f64) -> usize {
    (startup_delay_secs / slot_secs - 1e-9).ceil().max(0.0) as usize
}

/// The demand a plan can meet: `min(D, max)`, and before the first scale-up can be ready
/// (slots `0 ..= lookahead`) at most the initial count. Where it is below the demand, the
/// violation is unavoidable ([`unavoidable`]); the oracle still does its best there (it runs
/// the maximum rather than giving up on the slot).
pub fn achievable(demand: &[u32], lookahead: usize, bounds: Bounds, initial: u32) -> Vec<u32> {
    demand
        .iter()
        .enumerate()
        .map(|(s, &d)| {
            let d = d.min(bounds.max);
            if s <= lookahead {
                d.min(initial.max(bounds.min))
            } else {
                d
            }
        })
        .collect()
}

/// The optimal plan: `plan[j]` is the desired count set at decision `j` (time `j · slot`);
/// entry 0 is the initial count (no decision is made at time 0). Each decision is the largest
/// [`achievable`] demand of the slots it must cover, clamped into the bounds.
pub fn plan(demand: &[u32], lookahead: usize, bounds: Bounds, initial: u32) -> Vec<u32> {
    let need = achievable(demand, lookahead, bounds, initial);
    let mut out = Vec::with_capacity(need.len());
    out.push(initial);
    for j in 1..need.len() {
        let end = (j + lookahead).min(need.len() - 1);
        let n = need[j..=end].iter().copied().max().unwrap_or(1);
        out.push(bounds.clamp(n));
    }
    out
}

/// Slots where no plan meets the demand (it is above [`achievable`]).
pub fn unavoidable(demand: &[u32], lookahead: usize, bounds: Bounds, initial: u32) -> Vec<bool> {
    let need = achievable(demand, lookahead, bounds, initial);
    demand.iter().zip(&need).map(|(d, a)| d > a).collect()
}

/// The oracle as a policy: it replays a precomputed [`plan`] by time.
#[derive(Debug, Clone)]
pub struct PlanPolicy {
    plan: Arc<Vec<u32>>,
    slot_secs: f64,
}

impl PlanPolicy {
    /// Replay `plan` (one entry per slot of `slot_secs`).
    pub fn new(plan: Arc<Vec<u32>>, slot_secs: f64) -> Self {
        PlanPolicy { plan, slot_secs }
    }
}

impl Policy for PlanPolicy {
    fn name(&self) -> String {
        "oracle".into()
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "clairvoyant": true })
    }

    fn period_secs(&self) -> f64 {
        self.slot_secs
    }

    fn recommend(&mut self, obs: &Observation<'_>) -> Recommendation {
        let j = (obs.t_secs / self.slot_secs).round() as usize;
        let n = self.plan.get(j).copied().unwrap_or(obs.replicas);
        Recommendation::new(obs.bounds.clamp(n), "clairvoyant plan")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicas::Replicas;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Ready replicas in each slot when `plan[j]` is set at `j · slot` (j ≥ 1), through the
    /// same replica bookkeeping the runner uses.
    fn ready_per_slot(plan: &[u32], initial: u32, slot: f64, delay: f64) -> Vec<u32> {
        let mut r = Replicas::new(initial, delay);
        let mut out = Vec::new();
        for (j, &p) in plan.iter().enumerate() {
            let t = j as f64 * slot;
            if j > 0 {
                r.set(p, t);
            }
            // Ready changes only at slot boundaries here; take the minimum over the slot anyway.
            let steps = 6;
            let ready = (0..steps)
                .map(|k| r.ready(t + k as f64 * slot / steps as f64))
                .min()
                .unwrap();
            out.push(ready);
        }
        out
    }

    #[test]
    fn plan_equals_an_exhaustive_search_on_20_random_traces() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (slot, bounds) = (30.0, Bounds { min: 1, max: 4 });
        for case in 0..20 {
            let slots = rng.random_range(5..=8);
            let delay = [30.0, 60.0, 90.0][case % 3];
            let initial = rng.random_range(1..=4);
            let demand: Vec<u32> = (0..slots).map(|_| rng.random_range(1..=5)).collect();
            let look = lookahead_slots(delay, slot);
            let need = achievable(&demand, look, bounds, initial);
            // Lexicographic: misses of the achievable demand, then replica-slots.
            let score = |p: &[u32]| {
                let ready = ready_per_slot(p, initial, slot, delay);
                let violations = ready.iter().zip(&need).filter(|(r, d)| r < d).count();
                let cost: u32 = p.iter().sum();
                (violations, cost)
            };
            // Every plan: decisions 1.. take every value in the bounds.
            let mut best = (usize::MAX, u32::MAX);
            let choices = (bounds.max - bounds.min + 1) as usize;
            let total = choices.pow(slots as u32 - 1);
            for code in 0..total {
                let mut p = vec![initial];
                let mut c = code;
                for _ in 1..slots {
                    p.push(bounds.min + (c % choices) as u32);
                    c /= choices;
                }
                best = best.min(score(&p));
            }
            let ours = plan(&demand, look, bounds, initial);
            assert_eq!(
                score(&ours),
                best,
                "case {case}: demand {demand:?} delay {delay}"
            );
            assert_eq!(best.0, 0, "the achievable demand can always be met");
            // Its violations are exactly the unavoidable slots.
            let ready = ready_per_slot(&ours, initial, slot, delay);
            let un = unavoidable(&demand, look, bounds, initial);
            for s in 0..slots {
                assert_eq!(ready[s] < demand[s], un[s], "case {case} slot {s}");
            }
        }
    }
}
