//! The Kubernetes Horizontal Pod Autoscaler's algorithm on CPU utilisation, faithfully.
//!
//! Every rule cites the Kubernetes documentation, "Horizontal Pod Autoscaling"
//! (<https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/>, "the docs"
//! below), and where the docs leave a detail open, the controller's source
//! (`pkg/controller/podautoscaler/{replica_calculator,horizontal}.go`, "the controller").

use std::collections::VecDeque;

use crate::{fmt_num, params_json, Observation, Policy, PolicyContext, PolicySpec, Recommendation};

/// Default CPU target, percent of the request (the peer's baseline: 70 %).
pub const DEFAULT_TARGET_PCT: f64 = 70.0;
/// The docs, "Algorithm details": "the control plane skips any scaling action if the ratio is
/// sufficiently close to 1.0 (within a configurable tolerance, 0.1 by default)".
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// The docs, "How does a HorizontalPodAutoscaler work?": the controller runs "intermittently
/// … the interval is set by the `--horizontal-pod-autoscaler-sync-period` parameter … (and the
/// default interval is 15 seconds)".
pub const SYNC_PERIOD_SECS: f64 = 15.0;
/// The docs, "Default Behavior": `scaleDown.stabilizationWindowSeconds: 300`.
pub const SCALE_DOWN_STABILIZATION_SECS: f64 = 300.0;
/// The docs, "Default Behavior": scale-up policies `Percent 100` and `Pods 4`, each with
/// `periodSeconds: 15`, `selectPolicy: Max`.
pub const SCALE_UP_PERCENT: f64 = 100.0;
/// See [`SCALE_UP_PERCENT`].
pub const SCALE_UP_PODS: u32 = 4;
/// See [`SCALE_UP_PERCENT`].
pub const SCALING_POLICY_PERIOD_SECS: f64 = 15.0;
/// The docs, "Default Behavior": scale-down policy `Percent 100`, `periodSeconds: 15`.
pub const SCALE_DOWN_PERCENT: f64 = 100.0;
/// CPU request of one replica, percent of one core, when the context does not give one: what a
/// replica of the simulated service uses at its capacity (1 % idle + 6 % per request/s × 10
/// requests/s), the way a deployment's request is usually sized.
pub const DEFAULT_CPU_REQUEST_PCT: f64 = 61.0;

/// Parameters of `hpa` (`target` in percent of the CPU request).
pub const PARAMETERS: &[&str] = &[
    "target",
    "tolerance",
    "stabilization_secs",
    "cpu_request_pct",
];

/// The HPA of one service.
#[derive(Debug, Clone)]
pub struct Hpa {
    target_pct: f64,
    tolerance: f64,
    stabilization_secs: f64,
    cpu_request_pct: f64,
    /// (time, recommendation) of the last `stabilization_secs`.
    recommendations: VecDeque<(f64, u32)>,
    /// (time, replicas added (+) or removed (−)) of changes this HPA made.
    events: VecDeque<(f64, i64)>,
    spec: PolicySpec,
}

impl Hpa {
    /// An HPA with `target_pct`, the default tolerance and stabilization, and a CPU request of
    /// `cpu_request_pct` percent of one core per replica.
    pub fn new(target_pct: f64, cpu_request_pct: f64) -> Self {
        Hpa::from_spec(
            &PolicySpec::new(crate::PolicyKind::Hpa)
                .with("target", target_pct)
                .with("cpu_request_pct", cpu_request_pct),
            &PolicyContext::default(),
        )
        .expect("valid parameters")
    }

    /// From a spec (`target`, `tolerance`, `stabilization_secs`, `cpu_request_pct`).
    pub fn from_spec(spec: &PolicySpec, ctx: &PolicyContext) -> Result<Self, String> {
        let request = spec.get(
            "cpu_request_pct",
            ctx.cpu_request_pct.unwrap_or(DEFAULT_CPU_REQUEST_PCT),
        );
        let hpa = Hpa {
            target_pct: spec.get("target", DEFAULT_TARGET_PCT),
            tolerance: spec.get("tolerance", DEFAULT_TOLERANCE),
            stabilization_secs: spec.get("stabilization_secs", SCALE_DOWN_STABILIZATION_SECS),
            cpu_request_pct: request,
            recommendations: VecDeque::new(),
            events: VecDeque::new(),
            spec: spec.clone().with("cpu_request_pct", request),
        };
        if !(hpa.target_pct.is_finite() && hpa.target_pct > 0.0) {
            return Err(format!("target = {} must be > 0", hpa.target_pct));
        }
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !(non_negative(hpa.tolerance) && non_negative(hpa.stabilization_secs)) {
            return Err("tolerance and stabilization_secs must be >= 0".into());
        }
        if !(hpa.cpu_request_pct.is_finite() && hpa.cpu_request_pct > 0.0) {
            return Err(format!("cpu_request_pct = {request} must be > 0"));
        }
        Ok(hpa)
    }

    /// The replica calculator: the count the metric asks for before stabilization and rate
    /// limits, or `None` when it cannot compute one (then the HPA does not scale).
    fn calculate(&self, obs: &Observation<'_>) -> Result<u32, &'static str> {
        let current = obs.replicas;
        // The docs: "If a metric is missing … the HPA … doesn't take scaling action" for that
        // metric; with CPU the only metric there is no recommendation, so a missing metric never
        // scales down (nor up). CPU is reported only by ready replicas.
        let Some(cpu) = obs.features.cpu_usage_pct.filter(|v| v.is_finite()) else {
            return Err("CPU metric missing: no scaling (a missing metric never scales down)");
        };
        let ready = obs.ready_replicas.min(current);
        if ready == 0 {
            return Err("no ready pod reports CPU: no scaling");
        }
        // The docs, "Algorithm details": "desiredReplicas = ceil[currentReplicas ×
        // (currentMetricValue / desiredMetricValue)]", where the metric is the mean utilisation
        // of the ready pods relative to their request.
        let utilisation = 100.0 * cpu / ready as f64 / self.cpu_request_pct;
        let ratio = utilisation / self.target_pct;
        // Tolerance (the docs, "Algorithm details"; 0.1 by default).
        if (1.0 - ratio).abs() <= self.tolerance {
            return Ok(current);
        }
        let unready = current - ready;
        if ratio > 1.0 && unready > 0 {
            // The docs: "if any not-yet-ready pods were present, and the workload would have
            // scaled up without factoring in missing metrics or not-yet-ready pods, the
            // controller conservatively assumes that the not-yet-ready pods are consuming 0% of
            // the desired metric … After factoring in the not-yet-ready pods and missing metrics,
            // the controller recalculates the usage ratio. If the new ratio reverses the scale
            // direction, or is within the tolerance, the controller doesn't take any scaling
            // action."
            let new_ratio = ratio * ready as f64 / current as f64;
            if new_ratio <= 1.0 || (1.0 - new_ratio).abs() <= self.tolerance {
                return Ok(current);
            }
            // The controller: `ceil(newUsageRatio × len(metrics))`, every pod counted.
            return Ok((new_ratio * current as f64 - 1e-9).ceil() as u32);
        }
        // The docs: not-yet-ready pods are "set aside"; the controller multiplies by the ready
        // pod count (`ceil(usageRatio × readyPodCount)`).
        Ok((ratio * ready as f64 - 1e-9).ceil().max(0.0) as u32)
    }

    /// Replicas changed within the policy period before `now` (the controller counts an event
    /// when `timestamp + periodSeconds` is after `now`).
    fn changed_in_period(&self, now: f64, up: bool) -> i64 {
        self.events
            .iter()
            .filter(|(t, _)| t + SCALING_POLICY_PERIOD_SECS > now)
            .map(|(_, d)| *d)
            .filter(|d| if up { *d > 0 } else { *d < 0 })
            .sum()
    }
}

impl Policy for Hpa {
    fn name(&self) -> String {
        format!("hpa-{}", fmt_num(self.target_pct))
    }

    fn params(&self) -> serde_json::Value {
        params_json(
            &self.spec,
            &[
                ("target", DEFAULT_TARGET_PCT),
                ("tolerance", DEFAULT_TOLERANCE),
                ("stabilization_secs", SCALE_DOWN_STABILIZATION_SECS),
            ],
        )
    }

    fn period_secs(&self) -> f64 {
        SYNC_PERIOD_SECS
    }

    fn recommend(&mut self, obs: &Observation<'_>) -> Recommendation {
        let now = obs.t_secs;
        let current = obs.replicas;
        let raw = match self.calculate(obs) {
            Ok(n) => n,
            Err(why) => return Recommendation::new(obs.bounds.clamp(current), why),
        };
        // The docs, "Stabilization window": "the control plane … infers the highest
        // recommendation within the window" (scale-down, 300 s by default); the scale-up
        // window is 0. The controller: result = clamp(current, min of the up window, max of
        // the down window).
        self.recommendations.push_back((now, raw));
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| *t <= now - self.stabilization_secs)
        {
            self.recommendations.pop_front();
        }
        let down_max = self
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(raw);
        let up_min = raw;
        let stabilized = current.max(up_min).min(down_max);

        // The docs, "Scaling policies" / "Default Behavior": scale up by at most 100 % or 4 pods
        // per 15 s, whichever is more (`selectPolicy: Max`); scale down by at most 100 % per
        // 15 s. The limit is computed from the replicas at the start of the period.
        let mut desired = stabilized;
        let mut limited = false;
        if desired > current {
            let start = current as i64 - self.changed_in_period(now, true);
            let by_pods = start + SCALE_UP_PODS as i64;
            let by_percent = (start as f64 * (1.0 + SCALE_UP_PERCENT / 100.0)).ceil() as i64;
            let limit = by_pods.max(by_percent).max(0) as u32;
            if desired > limit {
                desired = limit;
                limited = true;
            }
        } else if desired < current {
            let start = current as i64 - self.changed_in_period(now, false);
            let floor = (start as f64 * (1.0 - SCALE_DOWN_PERCENT / 100.0))
                .floor()
                .max(0.0);
            desired = desired.max(floor as u32);
        }
        // The docs: the HPA keeps the count between minReplicas and maxReplicas.
        let desired = obs.bounds.clamp(desired);
        if desired != current {
            self.events
                .push_back((now, desired as i64 - current as i64));
        }
        while self
            .events
            .front()
            .is_some_and(|(t, _)| t + SCALING_POLICY_PERIOD_SECS <= now)
        {
            self.events.pop_front();
        }
        let reason = if desired == current {
            if raw < current {
                format!("recommends {raw}, held at {current} by the 300 s stabilization window")
            } else {
                "within tolerance".to_string()
            }
        } else {
            format!(
                "CPU recommends {raw}{}",
                if limited {
                    " (scale-up limited to max(+100 %, +4) per 15 s)"
                } else {
                    ""
                }
            )
        };
        Recommendation::new(desired, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bounds;
    use autoscaler_contract::Features;

    const B: Bounds = Bounds { min: 1, max: 100 };

    /// Ask `hpa` at `t` with `replicas` (all ready) whose mean utilisation is `util` % of the
    /// request.
    fn ask(hpa: &mut Hpa, t: f64, replicas: u32, ready: u32, util: f64) -> u32 {
        let f = Features {
            cpu_usage_pct: Some(util / 100.0 * 50.0 * ready as f64),
            ..Features::default()
        };
        let obs = Observation {
            t_secs: t,
            features: &f,
            replicas,
            ready_replicas: ready,
            bounds: B,
            sla_p95_ms: 250.0,
        };
        let r = hpa.recommend(&obs);
        assert!(B.contains(r.replicas));
        r.replicas
    }

    fn hpa(target: f64) -> Hpa {
        Hpa::new(target, 50.0)
    }

    #[test]
    fn ratio_examples_from_the_docs() {
        // The docs: "if the current metric value is 200m, and the desired value is 100m, the
        // number of replicas will be doubled … If the current value is instead 50m, you'll
        // halve the number of replicas".
        assert_eq!(ask(&mut hpa(50.0), 0.0, 4, 4, 100.0), 8);
        let mut h = hpa(50.0);
        // With no earlier recommendation in the window, the halving applies at once.
        assert_eq!(ask(&mut h, 0.0, 4, 4, 25.0), 2);
        // ceil: 3 replicas at 90 % of a 70 % target → ceil(3 × 1.2857) = 4.
        assert_eq!(ask(&mut hpa(70.0), 0.0, 3, 3, 90.0), 4);
    }

    #[test]
    fn tolerance_of_a_tenth() {
        // Ratios 1.09 and 0.91 are within the 0.1 tolerance: no change; 1.11 scales.
        assert_eq!(ask(&mut hpa(50.0), 0.0, 10, 10, 54.5), 10);
        assert_eq!(ask(&mut hpa(50.0), 0.0, 10, 10, 45.5), 10);
        assert_eq!(ask(&mut hpa(50.0), 0.0, 10, 10, 55.5), 12);
    }

    #[test]
    fn scale_down_stabilization_uses_the_highest_recommendation_of_300_s() {
        let mut h = hpa(50.0);
        assert_eq!(ask(&mut h, 0.0, 4, 4, 100.0), 8);
        // Load drops: the recommendation is 4 but 8 was recommended within 300 s.
        assert_eq!(ask(&mut h, 15.0, 8, 8, 25.0), 8);
        assert_eq!(ask(&mut h, 285.0, 8, 8, 25.0), 8);
        // 300 s after the recommendation of 8 it leaves the window: down to 4 at once (100 %
        // per 15 s allows it).
        assert_eq!(ask(&mut h, 300.0, 8, 8, 25.0), 4);
        // Scale-up is not stabilized: the next spike scales at once, asking for
        // ceil(4 × 3) = 12, limited to max(4 + 4, 2 × 4) = 8.
        assert_eq!(ask(&mut h, 315.0, 4, 4, 150.0), 8);
    }

    #[test]
    fn scale_up_is_limited_to_max_of_100_percent_and_4_pods_per_15_s() {
        // The docs' default behaviour: "double or add 4 pods every 15 s, whichever is higher".
        // 1 replica at 10× the target asks for 10: limited to max(1 + 4, 2) = 5.
        assert_eq!(ask(&mut hpa(10.0), 0.0, 1, 1, 100.0), 5);
        // 10 replicas asking for 100: max(14, 20) = 20.
        assert_eq!(ask(&mut hpa(10.0), 0.0, 10, 10, 100.0), 20);
        // Within the same 15 s period the start of the period counts: 5 pods added at t = 0 from
        // 1, asking again at t = 10 from 5 → limit max(1 + 4, 2) = 5: no more.
        let mut h = hpa(10.0);
        assert_eq!(ask(&mut h, 0.0, 1, 1, 100.0), 5);
        assert_eq!(ask(&mut h, 10.0, 5, 1, 500.0), 5);
        // At t = 15 the event is out of the period (timestamp + 15 is not after now).
        assert_eq!(ask(&mut h, 15.0, 5, 5, 100.0), 10);
    }

    #[test]
    fn not_yet_ready_pods_count_as_zero_on_scale_up() {
        // 4 replicas, 2 ready at 100 % of a 50 % target: ratio 2 over the ready pods, but with
        // the 2 unready at 0 % the ratio is 1.0: within tolerance, no action.
        assert_eq!(ask(&mut hpa(50.0), 0.0, 4, 2, 100.0), 4);
        // At 150 %: new ratio 1.5 → ceil(1.5 × 4) = 6.
        assert_eq!(ask(&mut hpa(50.0), 0.0, 4, 2, 150.0), 6);
        // A scale-down sets the unready aside: 2 ready at 10 % of 50 % → ceil(0.2 × 2) = 1.
        assert_eq!(ask(&mut hpa(50.0), 0.0, 4, 2, 10.0), 1);
    }

    #[test]
    fn a_missing_metric_never_scales() {
        let mut h = hpa(50.0);
        let f = Features::default();
        let obs = Observation {
            t_secs: 0.0,
            features: &f,
            replicas: 5,
            ready_replicas: 5,
            bounds: B,
            sla_p95_ms: 250.0,
        };
        let r = h.recommend(&obs);
        assert_eq!(r.replicas, 5);
        assert!(r.reason.contains("missing"), "{}", r.reason);
    }

    #[test]
    fn bounds_hold() {
        let b = Bounds { min: 2, max: 6 };
        let f = Features {
            cpu_usage_pct: Some(1000.0),
            ..Features::default()
        };
        let mut h = hpa(50.0);
        let obs = Observation {
            t_secs: 0.0,
            features: &f,
            replicas: 4,
            ready_replicas: 4,
            bounds: b,
            sla_p95_ms: 250.0,
        };
        assert_eq!(h.recommend(&obs).replicas, 6);
        let f = Features {
            cpu_usage_pct: Some(0.0),
            ..Features::default()
        };
        let mut h = hpa(50.0);
        assert_eq!(
            h.recommend(&Observation {
                features: &f,
                ..obs
            })
            .replicas,
            2
        );
    }
}
