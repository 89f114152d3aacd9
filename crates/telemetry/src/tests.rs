use super::*;
use autoscaler_contract::fixtures::{self, DecisionBuilder};
use autoscaler_contract::predictions::PREDICTION_COLUMNS;
use chrono::{DateTime, Utc};

use crate::block::{changes_something, decision_block, decision_line};
use crate::predictions::PredictionLog;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_720_000_000, 0).unwrap()
}

fn vector(service: &str, poll: u64) -> FeatureVector {
    fixtures::vector(service, poll)
        .at(t0())
        .replicas(2)
        .with(|f| f.request_rate_rps = Some(12.5))
        .build()
}

fn vote(v: &FeatureVector, model: ModelKind, p: Option<f64>) -> Vote {
    let b = fixtures::vote(&v.vector_id.0, model)
        .service(&v.service)
        .at(v.metric_time)
        .version(&format!("{model}-1"))
        .replicas(v.replicas);
    let mut vote = match p {
        Some(p) => b.ballot(p > 0.5).build(),
        None => b.abstain("stale input").build(),
    };
    if let Some(p) = p {
        vote.probability = Some(p);
        vote.confidence = Some(p.max(1.0 - p));
    }
    vote
}

fn decision(service: &str, from: u32, to: u32) -> Decision {
    let v = vector(service, 1);
    let votes: Vec<Vote> = ModelKind::ALL
        .into_iter()
        .map(|m| vote(&v, m, Some(0.9)))
        .collect();
    let mut d = DecisionBuilder::of(&v)
        .decided_at(t0() + chrono::Duration::milliseconds(250))
        .replicas(Some(from), Some(to))
        .verdict(if to > from {
            Verdict::ScaleUp
        } else {
            Verdict::NoAction
        })
        .votes(&votes)
        .build();
    d.reason = "3 of 3 expected models vote SCALE UP".into();
    if to == from {
        d.adjustments = vec!["cooldown: 120 s left".into()];
    }
    d.acted = to != from;
    d
}

/// The value of the one sample `name{labels…}` in OpenMetrics text that carries every label
/// given (as substrings). Several series may share a name and a label (a service's stale and
/// fresh vector counts), and the exposition's order is not fixed: a sample that matches more
/// than one line is a test error, not a pick.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let hits: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|x| l.contains(x))
        })
        .collect();
    assert!(hits.len() <= 1, "{name} {labels:?} matches {hits:?}");
    hits.first()
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn recorded_metrics_appear_in_the_exposition() {
    let v = vector("telemetry-test-svc", 1);
    record_vector(&v);
    record_vote(&vote(&v, ModelKind::Xgboost, Some(0.8)));
    record_vote(&vote(&v, ModelKind::RandomForest, None));
    set_model_version(ModelKind::LogisticRegression, "lr-old");
    set_model_version(ModelKind::LogisticRegression, "lr-new");
    record_decision(&decision("telemetry-test-svc", 1, 2), t0());
    record_actuator_error("telemetry-test-svc");
    record_dead_letter("telemetry-test-topic");
    set_consumer_lag("telemetry-group", "metrics", 2, 7);
    let text = metrics().encode();
    let svc = "service=\"telemetry-test-svc\"";
    assert_eq!(
        sample(&text, "autoscaler_vectors_total", &[svc, "stale=\"false\""]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "autoscaler_votes_total", &[svc, "vote=\"up\""]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "autoscaler_abstentions_total", &["random_forest"]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "autoscaler_vote_probability", &[svc, "xgboost"]),
        Some(0.8)
    );
    assert!(text.contains("version=\"lr-new\""));
    assert!(!text.contains("lr-old"), "a replaced version is removed");
    assert_eq!(
        sample(
            &text,
            "autoscaler_decisions_total",
            &[svc, "verdict=\"SCALE_UP\""]
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "autoscaler_replicas", &[svc]), Some(2.0));
    assert_eq!(
        sample(&text, "autoscaler_decision_latency_seconds_count", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "autoscaler_decision_latency_seconds_sum", &[]),
        Some(0.25)
    );
    assert_eq!(
        sample(&text, "autoscaler_actuator_errors_total", &[svc]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "autoscaler_dead_letters_total",
            &["telemetry-test-topic"]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "autoscaler_consumer_lag", &["telemetry-group"]),
        Some(7.0)
    );
    assert!(text.ends_with("# EOF\n"));
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", "localhost")
        .body(http_body_util::Empty::<axum::body::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn serves_metrics_and_a_taken_port_is_not_fatal() {
    let shutdown = CancellationToken::new();
    record_dead_letter("served-topic");
    let addr = start_metrics_server("127.0.0.1:0".parse().unwrap(), shutdown.clone())
        .await
        .expect("binds");
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("autoscaler_dead_letters_total{topic=\"served-topic\"}"));
    assert_eq!(get(addr, "/nope").await.0, 404);
    // The same port again: logged, `None`, no panic.
    assert_eq!(start_metrics_server(addr, shutdown.clone()).await, None);
    shutdown.cancel();
}

#[test]
fn block_for_a_change_line_otherwise() {
    let up = decision("orders", 1, 2);
    assert!(changes_something(&up));
    let block = decision_block(2, &up);
    assert!(block.starts_with(&format!(
        "{}\nSCALING DECISION #2 @ 2024-07-03 09:46:40 UTC\n",
        block::WIDE
    )));
    assert!(block.contains("  xgboost              -> SCALE UP   (confidence: 90.00%)"));
    assert!(block.contains("  Replicas: 1 -> 2\n"));
    let held = decision("orders", 2, 2);
    assert!(!changes_something(&held));
    assert_eq!(
        decision_line(3, &held),
        "decision #3 orders NO ACTION @ 2024-07-03 09:46:40 UTC: replicas 2 -> 2; 3 up, 0 no \
         action, 0 abstain of 3 (majority); 3 of 3 expected models vote SCALE UP; cooldown: 120 s left"
    );
}

#[test]
fn prediction_log_rotates_by_size_and_keeps_every_row_across_writers() {
    let dir = tempfile::tempdir().unwrap();
    // Four writers (as four replicas of one model would be) sharing one small file.
    let max = 2_000;
    let writers = 4;
    let per_writer = 50;
    std::thread::scope(|s| {
        for w in 0..writers {
            let dir = dir.path().to_path_buf();
            s.spawn(move || {
                let log = PredictionLog::new(&dir, ModelKind::Xgboost, max).unwrap();
                for i in 0..per_writer {
                    let v = vector(&format!("svc{w}"), i);
                    log.append(&v, &vote(&v, ModelKind::Xgboost, Some(0.25)))
                        .unwrap();
                }
            });
        }
    });
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() > 2, "rotated: {files:?}");
    assert!(files.iter().any(|f| f.ends_with("predictions_xgboost.csv")));
    let mut ids = std::collections::BTreeSet::new();
    let mut rows = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("predictions_xgboost") && name.ends_with(".csv"),
            "{name}"
        );
        let meta = std::fs::metadata(f).unwrap();
        assert!(meta.len() <= max, "{name} is {} bytes", meta.len());
        let mut r = csv::Reader::from_path(f).unwrap();
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, PREDICTION_COLUMNS);
        for rec in r.records() {
            let rec = rec.unwrap();
            assert_eq!(rec.len(), PREDICTION_COLUMNS.len());
            assert_eq!(
                &rec[PREDICTION_COLUMNS
                    .iter()
                    .position(|c| *c == "probability")
                    .unwrap()],
                "0.25"
            );
            ids.insert(rec[0].to_string());
            rows += 1;
        }
    }
    assert_eq!(
        rows,
        writers * per_writer as usize,
        "every row exactly once"
    );
    assert_eq!(ids.len(), rows);
}
