//! The work a request does: a bounded pool of CPU workers, and the deterministic error share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// Burns `d` of CPU time on the calling thread — an FNV-1a-style hash loop, checked against the
/// thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`) every 4096 rounds, a few microseconds — and
/// returns the hash so the loop cannot be optimised away.
///
/// CPU time, not wall time: `d` is the work, whatever the host does. When the thread is starved
/// (more busy threads than cores, a container CPU quota) the call takes longer in wall time, as a
/// real service on a busy host would.
pub fn burn_cpu(d: Duration) -> u64 {
    let start = thread_cpu_time();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i: u64 = 0;
    loop {
        for _ in 0..4096 {
            h = (h ^ i).wrapping_mul(0x0000_0100_0000_01b3);
            i = i.wrapping_add(1);
        }
        h = std::hint::black_box(h);
        if thread_cpu_time().saturating_sub(start) >= d {
            return h;
        }
    }
}

/// CPU time of the calling thread (user + system).
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// At most `n` requests burn CPU at once; the others wait (in the caller's future, so the wait
/// counts in the request's duration).
pub(crate) struct Workers {
    permits: Arc<Semaphore>,
}

impl Workers {
    pub(crate) fn new(n: usize) -> Workers {
        Workers {
            permits: Arc::new(Semaphore::new(n)),
        }
    }

    /// Waits for a worker and burns `work` of CPU on a blocking thread. No work, no worker.
    pub(crate) async fn run(&self, work: Duration) -> Result<(), &'static str> {
        if work.is_zero() {
            return Ok(());
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "worker pool closed")?;
        // The permit moves into the blocking task: if the client goes away mid-request, the
        // worker stays busy until the work is done, as a real one would.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            burn_cpu(work);
        })
        .await
        .map_err(|_| "worker failed")
    }
}

/// Decides, by arrival order, which requests fail: exactly `bp` in 10 000, spread evenly.
pub(crate) struct ErrorInjector {
    /// The error share in hundredths of a percent, 0..=10 000.
    basis_points: u64,
    next: AtomicU64,
}

impl ErrorInjector {
    /// `pct` must be in [0, 100] (validated by the config).
    pub(crate) fn from_pct(pct: f64) -> ErrorInjector {
        ErrorInjector {
            basis_points: (pct * 100.0).round().clamp(0.0, 10_000.0) as u64,
            next: AtomicU64::new(0),
        }
    }

    /// Whether the next request fails: the n-th fails when ⌊(n+1)·bp/10⁴⌋ > ⌊n·bp/10⁴⌋. The
    /// pattern repeats every 10 000 requests, so n is taken modulo 10 000 (no overflow).
    pub(crate) fn fail_next(&self) -> bool {
        if self.basis_points == 0 {
            return false;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) % 10_000;
        (n + 1) * self.basis_points / 10_000 > n * self.basis_points / 10_000
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn failures(pct: f64, n: usize) -> usize {
        let e = ErrorInjector::from_pct(pct);
        (0..n).filter(|_| e.fail_next()).count()
    }

    #[test]
    fn error_share_is_exact_and_even() {
        assert_eq!(failures(0.0, 1000), 0);
        assert_eq!(failures(100.0, 1000), 1000);
        assert_eq!(failures(10.0, 1000), 100);
        assert_eq!(failures(33.33, 10_000), 3333);
        assert_eq!(failures(0.5, 20_000), 100);
        // Evenly: 25 % fails every 4th request, never two in a row.
        let e = ErrorInjector::from_pct(25.0);
        let pattern: Vec<bool> = (0..8).map(|_| e.fail_next()).collect();
        assert_eq!(
            pattern,
            [false, false, false, true, false, false, false, true]
        );
    }

    #[test]
    fn burn_takes_at_least_the_cpu_time() {
        let (wall, cpu) = (Instant::now(), thread_cpu_time());
        burn_cpu(Duration::from_millis(5));
        assert!(thread_cpu_time() - cpu >= Duration::from_millis(5));
        assert!(wall.elapsed() >= Duration::from_millis(5));
    }
}
