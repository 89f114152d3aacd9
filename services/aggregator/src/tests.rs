//! The replay source on the in-process bus.

use super::*;
use autoscaler_bus::{MemoryBus, Overflow};
use autoscaler_contract::fixtures::{self, DecisionBuilder};

fn replay(services: &[&str], minutes: f64, speed: Option<f64>) -> ReplayConfig {
    let trace = Trace::from_requests(60.0, vec![600.0; 60]).unwrap(); // 10 rps
    ReplayConfig {
        trace,
        services: services
            .iter()
            .map(|s| ReplayService {
                name: s.to_string(),
                params: ServiceParams::default(),
                trace_offset_secs: 0.0,
            })
            .collect(),
        start_time: DateTime::from_timestamp(1_000_000_000, 0).unwrap(),
        duration_secs: minutes * 60.0,
        speed,
        initial_replicas: 1,
        seed: 7,
        decision_wait: Duration::from_secs(5),
        sla_p95_ms: 250.0,
    }
}

/// A stand-in scaler: answers every vector with "scale to 3".
async fn answer_every_vector(bus: MemoryBus, shutdown: CancellationToken) -> Vec<FeatureVector> {
    let mut sub = bus.subscribe(METRICS_TOPIC, "fake-scaler").await.unwrap();
    let mut seen = Vec::new();
    loop {
        let d = tokio::select! {
            _ = shutdown.cancelled() => break,
            d = sub.recv() => d,
        };
        let Some(Ok(d)) = d else { break };
        let v: FeatureVector = decode(&d.payload).unwrap();
        let decision = DecisionBuilder::of(&v).confidence(1.0).build();
        bus.publish(Outgoing::new(
            DECISIONS_TOPIC,
            &v.service,
            encode(&decision),
        ))
        .await
        .unwrap();
        seen.push(v);
    }
    seen
}

#[tokio::test]
async fn lock_step_replay_learns_replicas_from_decisions() {
    let bus = MemoryBus::new(64, Overflow::Block);
    let shutdown = CancellationToken::new();
    let fake = tokio::spawn(answer_every_vector(bus.clone(), shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cfg = AggregatorConfig::new(Source::Replay(Box::new(replay(
        &["orders", "carts"],
        10.0,
        None,
    ))));
    let report = run(
        cfg,
        AggregatorDeps {
            bus: Arc::new(bus.clone()),
            progress: None,
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    shutdown.cancel();
    let seen = fake.await.unwrap();
    assert_eq!(report.ticks, 20, "10 minutes of 30 s polls");
    assert_eq!(seen.len(), 40, "one vector per service and poll");
    assert_eq!(report.decision_timeouts, 0);
    let ids: std::collections::HashSet<_> = seen.iter().map(|v| &v.vector_id).collect();
    assert_eq!(ids.len(), 40, "ids unique per (service, poll)");
    // Scaled to 3 after the first poll; the new replicas serve after the 60 s start-up delay.
    let orders: Vec<_> = seen.iter().filter(|v| v.service == "orders").collect();
    assert_eq!(orders[0].replicas, Some(1));
    assert_eq!(orders[1].replicas, Some(1), "still starting");
    assert_eq!(orders.last().unwrap().replicas, Some(3));
    assert_eq!(report.services["orders"].changes, 1);
    assert_eq!(report.services["orders"].max_replicas, 3);
    // Metric time advances by the poll interval.
    let dt = orders[1].metric_time - orders[0].metric_time;
    assert_eq!(dt.num_seconds(), 30);
}

#[tokio::test(start_paused = true)]
async fn lock_step_goes_on_without_a_decision_after_the_wait() {
    let bus = MemoryBus::new(64, Overflow::Block);
    let cfg = AggregatorConfig::new(Source::Replay(Box::new(replay(&["orders"], 1.0, None))));
    let report = run(
        cfg,
        AggregatorDeps {
            bus: Arc::new(bus),
            progress: None,
        },
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!((report.ticks, report.decision_timeouts), (2, 2));
}

#[tokio::test]
async fn development_mode_writes_csv_with_missing_values_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/sockshop_metrics.csv");
    // Zero traffic: latency quantiles are missing (no request), and must be written empty.
    let mut r = replay(&["orders"], 3.0, Some(1e6));
    r.trace = Trace::from_requests(60.0, vec![0.0; 10]).unwrap();
    let mut cfg = AggregatorConfig::new(Source::Replay(Box::new(r)));
    cfg.mode = Mode::Development;
    cfg.csv_path = path.clone();
    let bus = MemoryBus::new(4, Overflow::Block);
    let report = run(
        cfg,
        AggregatorDeps {
            bus: Arc::new(bus.clone()),
            progress: None,
        },
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.vectors, 6);
    assert!(
        bus.stats().published.is_empty(),
        "development mode publishes nothing"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], csv_sink::header().join(","));
    assert_eq!(lines.len(), 7);
    let fields: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(fields.len(), 14);
    assert_eq!(fields[1], "orders");
    assert_eq!(fields[2], "0", "zero traffic is a measured 0");
    assert_eq!(fields[5], "", "p95 with no traffic is missing, not 0");
    assert_eq!(fields[13], "1");
    // Appending again keeps one header.
    let mut sink = csv_sink::CsvSink::open(&path).unwrap();
    let v = fixtures::vector("carts", 0)
        .at(Utc::now())
        .id("x")
        .with(|f| f.cpu_usage_pct = Some(12.5))
        .build();
    sink.append(&v).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("timestamp,service").count(), 1);
    assert!(text.lines().last().unwrap().contains(",carts,,,,,,12.5,"));
}

#[tokio::test]
async fn bad_config_lists_every_problem() {
    let mut r = replay(&[], 0.0, Some(-1.0));
    r.initial_replicas = 0;
    let mut cfg = AggregatorConfig::new(Source::Replay(Box::new(r)));
    cfg.poll_interval_secs = 0;
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(4, Overflow::Block));
    let err = run(
        cfg,
        AggregatorDeps {
            bus: bus.clone(),
            progress: None,
        },
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    let AggregatorError::Config(p) = err else {
        panic!("{err}")
    };
    assert_eq!(p.len(), 5, "{p:?}");
    let src = prometheus::PrometheusSource::new("http://127.0.0.1:9", vec![], Default::default());
    let cfg = AggregatorConfig::new(Source::Prometheus(Box::new(src)));
    let err = run(
        cfg,
        AggregatorDeps {
            bus,
            progress: None,
        },
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no services to poll"), "{err}");
}
