//! Desired and ready replicas of one service in one run, with start-up delays.
//!
//! The same rules as [`autoscaler_simulator::SimulatedCluster`] (new replicas are ready
//! `startup_delay` after they were asked for; a scale-down removes not-yet-ready replicas first,
//! newest first, then ready ones, at once), without its lock and map: one run owns its replicas.

/// The replicas of one service.
#[derive(Debug, Clone)]
pub struct Replicas {
    delay: f64,
    /// When each replica is (or was) ready, sorted ascending.
    ready_at: Vec<f64>,
}

impl Replicas {
    /// `initial` replicas ready at time 0 (and before); new ones take `startup_delay_secs`.
    pub fn new(initial: u32, startup_delay_secs: f64) -> Self {
        Replicas {
            delay: startup_delay_secs.max(0.0),
            ready_at: vec![f64::NEG_INFINITY; initial as usize],
        }
    }

    /// Desired replicas.
    pub fn desired(&self) -> u32 {
        self.ready_at.len() as u32
    }

    /// Replicas ready at `t`.
    pub fn ready(&self, t: f64) -> u32 {
        // Sorted: count the prefix ready by `t`.
        self.ready_at.partition_point(|&r| r <= t) as u32
    }

    /// Set the desired count at `t`.
    pub fn set(&mut self, n: u32, t: f64) {
        let n = n as usize;
        if n > self.ready_at.len() {
            self.ready_at.resize(n, t + self.delay);
        } else {
            // Latest-ready last: truncating removes pending ones (newest first), then ready ones.
            self.ready_at.truncate(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoscaler_simulator::SimulatedCluster;

    #[test]
    fn behaves_like_the_simulated_cluster() {
        let c = SimulatedCluster::new(60.0);
        c.register("web", 3, 0.0);
        let mut r = Replicas::new(3, 60.0);
        let steps = [
            (10.0, 5),
            (20.0, 4),
            (30.0, 2),
            (35.0, 6),
            (50.0, 7),
            (100.0, 3),
            (120.0, 8),
        ];
        for (t, n) in steps {
            c.set_replicas("web", n, t).unwrap();
            r.set(n, t);
            for probe in [t, t + 10.0, t + 59.9, t + 60.0, t + 200.0] {
                assert_eq!(
                    r.ready(probe),
                    c.ready("web", probe).unwrap(),
                    "t {t} probe {probe}"
                );
            }
            assert_eq!(r.desired(), c.desired("web").unwrap());
        }
    }
}
