//! Where the time goes: the wall time of each step a `progress` callback reports.

use std::time::{Duration, Instant};

/// Steps in the order reported, each with the time it started.
#[derive(Debug, Clone, Default)]
pub struct StepTimes {
    steps: Vec<(String, Instant)>,
}

impl StepTimes {
    /// No step yet.
    pub fn new() -> StepTimes {
        StepTimes::default()
    }

    /// Step `name` starts now (and the previous one ends).
    pub fn step(&mut self, name: &str) {
        self.steps.push((name.to_string(), Instant::now()));
    }

    /// Each step and its duration, the last one up to `end`.
    pub fn durations_until(&self, end: Instant) -> Vec<(String, Duration)> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, (name, at))| {
                let next = self.steps.get(i + 1).map_or(end, |s| s.1);
                (name.clone(), next.saturating_duration_since(*at))
            })
            .collect()
    }

    /// Each step and its duration, the last one up to now.
    pub fn durations(&self) -> Vec<(String, Duration)> {
        self.durations_until(Instant::now())
    }

    /// `step 0.1s, step 2.0s, …` (what `retrain` prints after `time: `).
    pub fn line(&self) -> String {
        self.durations()
            .iter()
            .map(|(name, d)| format!("{name} {:.1}s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_lasts_until_the_next_one_starts() {
        let mut t = StepTimes::new();
        t.step("a");
        let a = t.steps[0].1;
        t.steps.push(("b".into(), a + Duration::from_millis(1500)));
        let d = t.durations_until(a + Duration::from_millis(1600));
        assert_eq!(d[0], ("a".to_string(), Duration::from_millis(1500)));
        assert_eq!(d[1], ("b".to_string(), Duration::from_millis(100)));
        assert!(t.line().starts_with("a 1.5s, b "), "{}", t.line());
        assert!(StepTimes::new().line().is_empty());
    }
}
