//! `static`: a fixed replica count — what over-provisioning costs.

use crate::{params_json, Observation, Policy, PolicySpec, Recommendation};

/// Default count of `static`.
pub const DEFAULT_REPLICAS: f64 = 4.0;
/// Parameters of `static`.
pub const PARAMETERS: &[&str] = &["replicas"];

/// Always the same count (clamped into the bounds, and saying so).
#[derive(Debug, Clone)]
pub struct Fixed {
    replicas: u32,
    spec: PolicySpec,
}

impl Fixed {
    /// From a spec (`replicas`, default [`DEFAULT_REPLICAS`]).
    pub fn from_spec(spec: &PolicySpec) -> Result<Self, String> {
        let n = spec.get("replicas", DEFAULT_REPLICAS);
        if !(n >= 0.0 && n.fract() == 0.0 && n <= u32::MAX as f64) {
            return Err(format!("replicas = {n} must be a whole number >= 0"));
        }
        Ok(Fixed {
            replicas: n as u32,
            spec: spec.clone(),
        })
    }
}

impl Policy for Fixed {
    fn name(&self) -> String {
        "static".into()
    }

    fn params(&self) -> serde_json::Value {
        params_json(&self.spec, &[("replicas", DEFAULT_REPLICAS)])
    }

    fn recommend(&mut self, obs: &Observation<'_>) -> Recommendation {
        let n = obs.bounds.clamp(self.replicas);
        if n == self.replicas {
            Recommendation::new(n, "fixed count")
        } else {
            Recommendation::new(
                n,
                format!("fixed count {} outside the bounds", self.replicas),
            )
        }
    }
}
