//! The embedded pipeline called as a library: no process spawned.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use autoscaler_cli::embedded::{run_embedded, Embedded};
use autoscaler_cli::opts::aggregator::AggregatorOpts;
use autoscaler_cli::opts::models::{load_models, ModelsOpts};
use autoscaler_cli::opts::scaler::ScalerOpts;
use autoscaler_cli::pipeline::{self, Pipeline};
use autoscaler_contract::Decision;
use tokio_util::sync::CancellationToken;

fn decisions(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// 6 h of the NASA replay, seed 11, default models trained into a fresh directory.
fn six_hours(models_dir: PathBuf) -> Pipeline {
    let aggregator = AggregatorOpts {
        duration_hours: 6.0,
        seed: 11,
        ..AggregatorOpts::default()
    };
    Pipeline::from_opts(
        &aggregator,
        &ModelsOpts { models_dir },
        &ScalerOpts::default(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_pipeline_decides_every_vector_once_with_three_votes() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("d.jsonl");
    // Once through `run`'s body, writing the decisions as JSON lines …
    let mut p = six_hours(dir.path().join("models"));
    p.decisions_jsonl = Some(jsonl.clone());
    pipeline::run(p.clone(), CancellationToken::new())
        .await
        .unwrap();
    // … and once through the embedded pipeline itself, observing them.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let report = run_embedded(
        Embedded {
            aggregator: p.aggregator.clone(),
            scaler: p.scaler.clone(),
            models: load_models(&p.models_dir, p.sla_p95_ms, p.seed).unwrap(),
            initial_replicas: p.initial_replicas,
            bus_capacity: autoscaler_bus::DEFAULT_MEMORY_CAPACITY,
        },
        Box::new(move |d: &Decision| {
            seen2
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&autoscaler_contract::encode(d)).unwrap())
        }),
        None,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let runs = [decisions(&jsonl), seen.lock().unwrap().clone()];
    let d = &runs[0];
    // 6 h of 30 s polls, two services.
    assert_eq!(d.len(), 2 * 720);
    assert_eq!(report.aggregator.vectors, 2 * 720);
    assert_eq!(report.scaler.decisions, 2 * 720);
    let ids: std::collections::HashSet<&str> =
        d.iter().map(|x| x["vector_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), d.len(), "no vector decided twice");
    for x in d {
        assert_eq!(x["total_votes"], 3, "{x}");
        assert_eq!(x["votes"].as_array().unwrap().len(), 3);
        assert_eq!(x["missing_models"].as_array().unwrap().len(), 0);
        assert_eq!(x["schema_version"], 1);
        let (from, to) = (
            x["from_replicas"].as_u64().unwrap(),
            x["to_replicas"].as_u64().unwrap(),
        );
        assert!((1..=10).contains(&to), "within the envelope: {x}");
        assert!(to.abs_diff(from) <= 1, "one step at a time: {x}");
    }
    assert!(
        d.iter()
            .any(|x| x["decision"] == "SCALE_UP" && x["acted"] == true),
        "the afternoon peak needs more replicas than the 2 it starts with"
    );
    // Same seed, same decisions (wall-clock timestamps aside).
    let strip = |v: &Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        v.iter()
            .map(|x| {
                let mut x = x.clone();
                x.as_object_mut().unwrap().remove("timestamp");
                x
            })
            .collect()
    };
    assert_eq!(strip(&runs[0]), strip(&runs[1]));
}

/// The same pipeline with a policy in the scaler: a baseline decides every vector from the
/// metrics topic (no ballot), `hybrid` composes the votes with the hybrid policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_pipeline_runs_the_scalers_policy() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("d.jsonl");
    // Not the other test's seed: the default models' training file is named by process and seed.
    let aggregator = AggregatorOpts {
        duration_hours: 2.0,
        seed: 13,
        ..AggregatorOpts::default()
    };
    let with = |policy: &str| {
        Pipeline::from_opts(
            &aggregator,
            &ModelsOpts {
                models_dir: dir.path().join("models"),
            },
            &ScalerOpts {
                policy: autoscaler_scaler::policies::parse_policy(policy).unwrap(),
                ..ScalerOpts::default()
            },
        )
        .unwrap()
    };
    let mut p = with("hpa-70");
    p.decisions_jsonl = Some(jsonl.clone());
    pipeline::run(p, CancellationToken::new()).await.unwrap();
    let d = decisions(&jsonl);
    assert_eq!(d.len(), 2 * 240);
    let ids: std::collections::HashSet<&str> =
        d.iter().map(|x| x["vector_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), d.len(), "no vector decided twice");
    for x in &d {
        assert_eq!(x["total_votes"], 0, "{x}");
        assert!(
            x["reason"].as_str().unwrap().starts_with("policy hpa-70: "),
            "{x}"
        );
        assert!(
            (1..=10).contains(&x["to_replicas"].as_u64().unwrap()),
            "{x}"
        );
    }

    let p = with("hybrid");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let report = run_embedded(
        Embedded {
            aggregator: p.aggregator.clone(),
            scaler: p.scaler.clone(),
            models: load_models(&p.models_dir, p.sla_p95_ms, p.seed).unwrap(),
            initial_replicas: p.initial_replicas,
            bus_capacity: autoscaler_bus::DEFAULT_MEMORY_CAPACITY,
        },
        Box::new(move |d: &Decision| seen2.lock().unwrap().push(d.clone())),
        None,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let d = seen.lock().unwrap().clone();
    assert_eq!(report.scaler.decisions, 2 * 240);
    assert_eq!(report.scaler.vectors, 2 * 240);
    assert_eq!(d.len(), 2 * 240);
    for x in &d {
        assert_eq!(x.total_votes, 3, "{x:?}");
        assert!(x.reason.starts_with("policy hybrid: "), "{x:?}");
    }
    // The vector usually reaches the scaler before its votes, so the policy's recommendation is
    // there. Under load the votes can come first (the models abstain fast on a first poll); then
    // the votes decide alone, and the reason says so.
    let without: Vec<&Decision> = d
        .iter()
        .filter(|x| x.reason.contains("no recommendation"))
        .collect();
    assert!(
        without.len() * 50 <= d.len(),
        "{} of {} decisions without the policy's recommendation: {:?}",
        without.len(),
        d.len(),
        without
            .iter()
            .map(|x| x.vector_id.to_string())
            .collect::<Vec<_>>()
    );
    eprintln!(
        "without a recommendation: {:?}",
        without
            .iter()
            .map(|x| x.vector_id.to_string())
            .collect::<Vec<_>>()
    );
    for x in &without {
        assert!(x.reason.contains("the votes decide"), "{x:?}");
    }
    // Never below the votes: a scale-down only where the models found one fewer safe.
    for x in d.iter().filter(|x| x.to_replicas < x.from_replicas) {
        assert!(
            x.reason.contains("the models find one replica fewer safe"),
            "{x:?}"
        );
    }
}
