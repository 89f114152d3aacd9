//! Drop-in with the Python Sock Shop autoscaler: its aggregator's vectors
//! (`{"timestamp","service","features"}`, no `schema_version`, no `vector_id`) go in, and our
//! votes come out readable by its scaler — `service`, `model`, `prediction`, `probability`,
//! `confidence` — read here with a plain JSON consumer (serde_json::Value, no contract types).
//! The shipped models vote; every vote also lands in the prediction log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autoscaler_bus::{Bus, MemoryBus, Outgoing, Overflow};
use autoscaler_contract::predictions::PREDICTION_COLUMNS;
use autoscaler_contract::{ModelKind, METRICS_TOPIC, VOTES_TOPIC};
use autoscaler_inference::{run, InferenceConfig, InferenceDeps};
use tokio_util::sync::CancellationToken;

fn seed_vector(service: &str, rps: f64, p95: f64, replicas: Option<u32>) -> String {
    // The seed writes `datetime.now().isoformat()`: local time without an offset (UTC here).
    let now = chrono::Utc::now()
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.6f");
    let mut v = serde_json::json!({
        "timestamp": now.to_string(),
        "service": service,
        "features": {
            "request_rate_rps": rps, "error_rate_pct": 0.0, "p50_latency_ms": p95 / 3.0,
            "p95_latency_ms": p95, "p99_latency_ms": p95 * 1.5, "cpu_usage_pct": rps * 2.5,
            "memory_usage_mb": 120.0, "delta_rps": 0.0, "delta_p95_latency_ms": 0.0,
            "delta_cpu_usage_pct": 0.0
        }
    });
    if let Some(r) = replicas {
        v["replicas"] = r.into();
    }
    v.to_string()
}

#[tokio::test]
async fn legacy_vectors_in_plain_json_votes_out_for_every_model() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let out = tempfile::tempdir().unwrap();
    let bus = MemoryBus::new(64, Overflow::Block);
    let mut votes = bus.subscribe(VOTES_TOPIC, "seed-scaler").await.unwrap();
    let mut dlq = bus.subscribe("metrics.dlq", "t").await.unwrap();
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    for kind in ModelKind::ALL {
        let mut cfg = InferenceConfig::new(kind);
        cfg.predictions_dir = Some(out.path().to_path_buf());
        let model = autoscaler_models::load(kind, &models).unwrap();
        tasks.push(tokio::spawn(run(
            cfg,
            InferenceDeps {
                bus: Arc::new(bus.clone()),
                model: Arc::from(model),
            },
            shutdown.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let inputs = [
        seed_vector("orders", 5.0, 20.0, Some(2)),        // quiet
        seed_vector("front-end", 400.0, 2500.0, Some(1)), // overloaded
        seed_vector("carts", 10.0, 30.0, None),           // the seed sends no replicas
    ];
    for p in &inputs {
        bus.publish(Outgoing::new(METRICS_TOPIC, "k", p.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    // A legacy message that breaks the contract is still dead-lettered.
    let bad =
        r#"{"timestamp":"2024-07-03T09:46:40","service":"orders","features":{"cpu_usage_pct":-3}}"#;
    bus.publish(Outgoing::new(METRICS_TOPIC, "k", bad.as_bytes().to_vec()))
        .await
        .unwrap();

    let mut seen = Vec::new();
    for _ in 0..inputs.len() * ModelKind::ALL.len() {
        let d = tokio::time::timeout(Duration::from_secs(10), votes.recv())
            .await
            .expect("a vote")
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&d.payload).unwrap();
        for field in [
            "service",
            "model",
            "prediction",
            "probability",
            "confidence",
        ] {
            assert!(
                v.get(field).is_some(),
                "the seed's scaler reads `{field}`: {v}"
            );
        }
        seen.push(v);
    }
    let dl = tokio::time::timeout(Duration::from_secs(5), dlq.recv())
        .await
        .expect("a dead letter")
        .unwrap()
        .unwrap();
    assert!(
        dl.headers[0].1.contains("cpu_usage_pct"),
        "{:?}",
        dl.headers
    );
    shutdown.cancel();
    for t in tasks {
        t.await.unwrap().unwrap();
    }

    for service in ["orders", "front-end"] {
        let mine: Vec<_> = seen.iter().filter(|v| v["service"] == service).collect();
        assert_eq!(mine.len(), 3, "one vote per model for {service}");
        for v in &mine {
            let p = v["probability"].as_f64().expect("a probability");
            assert!((0.0..=1.0).contains(&p));
            assert!(matches!(v["prediction"].as_u64(), Some(0 | 1)), "{v}");
            let c = v["confidence"].as_f64().unwrap();
            assert!((c - p.max(1.0 - p)).abs() < 1e-12);
            assert!(v["vector_id"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{service}@0@")));
        }
    }
    // The overloaded service looks worse to every model than the quiet one.
    for m in ModelKind::ALL {
        let p = |s: &str| {
            seen.iter()
                .find(|v| v["service"] == s && v["model"] == m.as_str())
                .unwrap()["probability"]
                .as_f64()
                .unwrap()
        };
        assert!(
            p("front-end") > p("orders"),
            "{m}: {} vs {}",
            p("front-end"),
            p("orders")
        );
    }
    // Without replicas the per-replica features cannot be computed: an explicit abstention.
    for v in seen.iter().filter(|v| v["service"] == "carts") {
        assert!(
            v["prediction"].is_null() && v["probability"].is_null(),
            "{v}"
        );
        assert!(
            v["abstain_reason"].as_str().unwrap().contains("replicas"),
            "{v}"
        );
    }

    // Every vote is in its model's prediction log.
    for m in ModelKind::ALL {
        let path = out.path().join(format!("predictions_{m}.csv"));
        let mut r = csv::Reader::from_path(&path).unwrap();
        assert_eq!(
            r.headers().unwrap().iter().collect::<Vec<_>>(),
            PREDICTION_COLUMNS
        );
        let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 3, "{}", path.display());
        assert!(rows.iter().all(|r| &r[4] == m.as_str()));
    }
}
