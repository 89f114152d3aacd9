//! Labels for training: will the SLA be violated in the next polls?

use autoscaler_contract::within_sla;
pub use autoscaler_contract::ERROR_VIOLATION_PCT;

/// Label each poll with "the SLA is violated in one of the next `horizon` polls".
///
/// Poll `j` *violates* when `p95[j] > sla_ms` or `error_pct[j] >= 50` ([`ERROR_VIOLATION_PCT`];
/// the contract's [`autoscaler_contract::violates_sla`]), is *fine* when its p95 is known and
/// ≤ `sla_ms` and it does not violate, and is *unknown* otherwise (no p95 and no high error
/// rate; NaN counts as missing).
/// Then `label[i]` looks at the **future only**, `j` in `i+1 ..= i+horizon` (never `i` itself):
///
/// * `Some(true)` if any of them violates;
/// * `Some(false)` if none violates and at least one is fine;
/// * `None` if the window runs past the end of the series, if every poll in it is unknown, or
///   if `horizon` is 0.
///
/// `error_pct` is parallel to `p95`; it may be shorter (even empty), and entries past its end
/// are read as missing. The result has `p95.len()` entries.
pub fn label_violations(
    p95: &[Option<f64>],
    error_pct: &[Option<f64>],
    sla_ms: f64,
    horizon: usize,
) -> Vec<Option<bool>> {
    // Per poll: Some(true) violates, Some(false) fine, None unknown.
    let state: Vec<Option<bool>> = p95
        .iter()
        .enumerate()
        .map(|(j, p)| within_sla(*p, error_pct.get(j).copied().flatten(), sla_ms).map(|fine| !fine))
        .collect();
    (0..p95.len())
        .map(|i| {
            if horizon == 0 || i + horizon >= p95.len() {
                return None;
            }
            let window = &state[i + 1..=i + horizon];
            if window.contains(&Some(true)) {
                Some(true)
            } else if window.contains(&Some(false)) {
                Some(false)
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, written as plainly as possible.
    #[allow(clippy::needless_range_loop)] // indices mirror the definition's `j in i+1..=i+h`
    fn brute_force(
        p95: &[Option<f64>],
        err: &[Option<f64>],
        sla: f64,
        horizon: usize,
    ) -> Vec<Option<bool>> {
        let mut out = Vec::new();
        for i in 0..p95.len() {
            if horizon == 0 || i + horizon > p95.len() - 1 {
                out.push(None);
                continue;
            }
            let mut any_violation = false;
            let mut any_known = false;
            for j in i + 1..=i + horizon {
                let p = p95[j].filter(|v| !v.is_nan());
                let e = err.get(j).copied().flatten().filter(|v| !v.is_nan());
                let high_latency = matches!(p, Some(v) if v > sla);
                let high_errors = matches!(e, Some(v) if v >= 50.0);
                if high_latency || high_errors {
                    any_violation = true;
                }
                if p.is_some() {
                    any_known = true;
                }
            }
            out.push(if any_violation {
                Some(true)
            } else if any_known {
                Some(false)
            } else {
                None
            });
        }
        out
    }

    #[test]
    fn examples() {
        let p = [
            Some(100.0),
            Some(300.0),
            Some(100.0),
            None,
            None,
            Some(100.0),
        ];
        let e = [
            Some(0.0),
            Some(0.0),
            Some(0.0),
            None,
            Some(100.0),
            Some(0.0),
        ];
        assert_eq!(
            label_violations(&p, &e, 250.0, 1),
            vec![Some(true), Some(false), None, Some(true), Some(false), None]
        );
        assert_eq!(
            label_violations(&p, &e, 250.0, 2),
            vec![Some(true), Some(false), Some(true), Some(true), None, None]
        );
        // Without error rates, poll 4 (no p95) is unknown.
        assert_eq!(
            label_violations(&p, &[], 250.0, 1),
            vec![Some(true), Some(false), None, None, Some(false), None]
        );
        assert_eq!(label_violations(&p, &e, 250.0, 0), vec![None; 6]);
        assert!(label_violations(&[], &[], 250.0, 2).is_empty());
        // The current row never labels itself.
        assert_eq!(
            label_violations(&[Some(999.0), Some(1.0)], &[], 250.0, 1),
            vec![Some(false), None]
        );
    }

    fn series() -> impl Strategy<Value = Vec<(Option<f64>, Option<f64>)>> {
        let p95 = prop_oneof![
            1 => Just(None),
            1 => Just(Some(f64::NAN)),
            6 => (0.0..600.0f64).prop_map(Some),
        ];
        let err = prop_oneof![
            2 => Just(None),
            3 => Just(Some(0.0)),
            2 => (0.0..=100.0f64).prop_map(Some),
        ];
        prop::collection::vec((p95, err), 0..40)
    }

    proptest! {
        #[test]
        fn equals_the_brute_force_definition(
            s in series(), horizon in 0usize..6, sla in 50.0..500.0f64,
        ) {
            let (p, e): (Vec<_>, Vec<_>) = s.into_iter().unzip();
            prop_assert_eq!(
                label_violations(&p, &e, sla, horizon),
                brute_force(&p, &e, sla, horizon)
            );
        }

        #[test]
        fn never_looks_at_the_current_row(
            s in series(), horizon in 0usize..6, i in 0usize..40,
            new_p95 in prop::option::of(0.0..2000.0f64), new_err in prop::option::of(0.0..=100.0f64),
        ) {
            let (mut p, mut e): (Vec<_>, Vec<_>) = s.into_iter().unzip();
            prop_assume!(i < p.len());
            let before = label_violations(&p, &e, 250.0, horizon);
            p[i] = new_p95;
            e[i] = new_err;
            let after = label_violations(&p, &e, 250.0, horizon);
            prop_assert_eq!(before[i], after[i]);
            // Nor any row after it: a label depends only on the future of its row.
            prop_assert_eq!(&before[i..], &after[i..]);
        }
    }
}
