//! microlp against CBC (Debian's coinor-libcbc-dev, linked through good_lp's `coin_cbc`) on
//! random instances of the program: the same optimal cost, and microlp's plan passes
//! verification (Specy/microlp#15 reports an invalid integer solution).

use autoscaler_planner::cross_check::optimal_cost_with;
use autoscaler_planner::{plan_cost, solve, verify, PlanParams, SolverStatus};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    #[test]
    fn microlp_and_cbc_agree(
        current in 1u32..8,
        min in 1u32..3,
        span in 2u32..12,
        capacity in 2.0f64..20.0,
        demand in prop::collection::vec(0.0f64..150.0, 5..40),
        up in 1u32..5,
        down in 1u32..4,
    ) {
        let max = min + span;
        let mut p = PlanParams::new(current.clamp(min, max), min, max, capacity);
        p.max_scale_up = up;
        p.max_scale_down = down;
        p.timeout_ms = 10_000;
        let plan = solve(&p, &demand).unwrap();
        prop_assert_eq!(plan.status, SolverStatus::Optimal, "{:?}", plan.fallback);
        verify(&p, &demand, &plan.replicas).unwrap();
        let (cbc_cost, cbc_plan) = optimal_cost_with(&p, &demand, good_lp::coin_cbc).unwrap();
        verify(&p, &demand, &cbc_plan).unwrap();
        prop_assert!((plan.cost - cbc_cost).abs() <= 1e-6 * cbc_cost.abs().max(1.0),
            "microlp {} vs cbc {}", plan.cost, cbc_cost);
        prop_assert!((plan_cost(&p, &demand, &plan.replicas) - plan.cost).abs() < 1e-9);
    }
}
