//! Exit codes, and the error that means "this configuration cannot run".
//!
//! 0 done; 1 failed while running; 2 bad command line (clap's own); [`EXIT_CONFIG`] (64) bad
//! configuration, every problem listed; [`EXIT_FORCED`] (130) stopped by a second signal.

/// Exit code for a configuration that cannot run (BSD sysexits' EX_CONFIG is 78; EX_USAGE, 64,
/// is what the seed and our docs promise).
pub const EXIT_CONFIG: i32 = 64;

/// Exit code for a failure while running.
pub const EXIT_FAILED: i32 = 1;

/// Exit code when a second SIGINT/SIGTERM forces the process out.
pub const EXIT_FORCED: i32 = 130;

/// A configuration that cannot run: every problem, listed at once (exit code 64).
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl ConfigError {
    /// `Ok(())` when there is no problem, the whole list otherwise.
    pub fn check(problems: Vec<String>) -> Result<(), ConfigError> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems))
        }
    }

    /// One problem.
    pub fn one(problem: impl Into<String>) -> ConfigError {
        ConfigError(vec![problem.into()])
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Print a command's outcome on stderr the way operators and scripts expect, and return the
/// process's exit code.
pub fn report(outcome: anyhow::Result<()>) -> i32 {
    match outcome {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<ConfigError>() {
            Some(c) => {
                eprint!("autoscaler: {c}");
                EXIT_CONFIG
            }
            None => {
                eprintln!("autoscaler: error: {}", chain(e.as_ref()));
                EXIT_FAILED
            }
        },
    }
}

/// `e` and its causes, `: `-separated, each said once: a cause whose text the message so far
/// already contains (an error that quotes its source, as `BusError::Kafka` does) is skipped.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the votes: {0}")]
    struct Quoting(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("scaler stopped")]
    struct Outer(#[source] Quoting);

    /// Issue 17, item 4: a cause is printed once, whether or not its parent quotes it.
    #[test]
    fn every_cause_is_printed_once() {
        let io = || std::io::Error::other("broker down");
        let e = Outer(Quoting(io()));
        assert_eq!(chain(&e), "scaler stopped: reading the votes: broker down");
        let any = anyhow::Error::new(Outer(Quoting(io()))).context("autoscaler scaler");
        assert_eq!(
            chain(any.as_ref()),
            "autoscaler scaler: scaler stopped: reading the votes: broker down"
        );
        // `{:#}` (what was printed before) says it twice.
        assert_eq!(format!("{any:#}").matches("broker down").count(), 2);
    }
}
