//! Per-poll log of one policy on one service (for looking at why it over- or under-provisions):
//! `cargo run --release -p autoscaler-lab --example diag -- TRACE SCALE SERVICE_INDEX SPEC`.
//! Prints `t desired ready rps p95 errors backlog demand plan violated` per 30 s poll (TSV).

use std::path::Path;
use std::sync::Arc;

use autoscaler_lab::{default_services, oracle, Replicas, EVAL_SECS};
use autoscaler_policy::{Bounds, Observation, PolicyContext, PolicySpec};
use autoscaler_simulator::{FastFeed, LoadProfile, Trace};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let trace = Trace::from_csv_path(Path::new(&args[0]))?;
    let scale: f64 = args[1].parse()?;
    let i: usize = args[2].parse()?;
    let spec = PolicySpec::parse(&args[3])?;
    let names: Vec<String> = autoscaler_lab::DEFAULT_SERVICES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let setup = &default_services(&names, scale)[i];
    let params = setup.params.clone();
    let slots = (trace.duration_secs() / EVAL_SECS).floor() as usize;
    let duration = slots as f64 * EVAL_SECS;
    let seed = autoscaler_lab::DEFAULT_SEED ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let profile = Arc::new(LoadProfile::new(&trace, &params, 0.0, duration, seed)?);
    let sla = autoscaler_policy::DEFAULT_SLA_P95_MS;
    let bounds = Bounds { min: 1, max: 10 };
    let demand = oracle::demand(&profile, &params, EVAL_SECS, sla);
    let look = oracle::lookahead_slots(params.startup_delay_secs, EVAL_SECS);
    let plan = oracle::plan(&demand, look, bounds, 2);
    let mut policy = spec.build(&PolicyContext::default())?;
    let mut replicas = Replicas::new(2, params.startup_delay_secs);
    let mut feed = FastFeed::new(profile, params)?;
    println!("t\tdesired\tready\trps\tp95\terr\tbacklog\tdemand\tplan\tviol\treason");
    for j in 1..slots {
        let t = j as f64 * EVAL_SECS;
        feed.advance(t, |s| replicas.ready(s));
        let poll = feed.report();
        let desired = replicas.desired();
        let viol =
            poll.p95_ms.is_some_and(|p| p > sla) || poll.error_pct.is_some_and(|e| e >= 50.0);
        let obs = Observation {
            t_secs: t,
            features: &poll.features,
            replicas: desired,
            ready_replicas: replicas.ready(t),
            bounds,
            sla_p95_ms: sla,
        };
        let rec = policy.recommend(&obs);
        println!(
            "{t}\t{desired}\t{}\t{:.2}\t{:.0}\t{:.1}\t{:.1}\t{}\t{}\t{}\t{}",
            replicas.ready(t),
            poll.features.request_rate_rps.unwrap_or(f64::NAN),
            poll.p95_ms.unwrap_or(0.0),
            poll.error_pct.unwrap_or(0.0),
            poll.backlog,
            demand[j - 1],
            plan[j],
            viol as u8,
            rec.reason
        );
        if rec.replicas != desired {
            replicas.set(rec.replicas, t);
        }
    }
    Ok(())
}
