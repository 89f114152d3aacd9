use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use autoscaler_simulator::Trace;

use super::*;

const TOKEN: &str = "s3cret-token";

fn daily_trace(days: usize, flat: bool) -> Trace {
    let req: Vec<f64> = (0..days * 1440)
        .map(|m| {
            if flat {
                600.0
            } else {
                let a = 2.0 * std::f64::consts::PI * (m % 1440) as f64 / 1440.0;
                600.0 + 400.0 * a.sin() + ((m * 7919) % 37) as f64
            }
        })
        .collect();
    Trace::from_requests(60.0, req).unwrap()
}

fn optimizer(flat: bool) -> Arc<Optimizer> {
    let src = TraceSource::new(&daily_trace(8, flat), 1.0, 1.0).unwrap();
    Optimizer::new(
        Token::new(TOKEN).unwrap(),
        Arc::new(src),
        Settings::default(),
    )
}

fn payload(token: Option<&str>, min: u32, max: u32, cache: u32) -> String {
    let mut v = serde_json::json!({
        "check": {"metric_app_name": "web"},
        "current_replicas": 3, "min_replicas": min, "max_replicas": max, "cache_size": cache
    });
    if let Some(t) = token {
        v["token"] = serde_json::json!(t);
    }
    v.to_string()
}

async fn post(o: &Arc<Optimizer>, body: String) -> (StatusCode, serde_json::Value) {
    let resp = router(o.clone())
        .oneshot(
            Request::post("/optimize")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test]
async fn wrong_or_missing_token_is_401_before_the_payload_is_read() {
    let o = optimizer(false);
    for body in [
        payload(None, 1, 10, 10),
        payload(Some("wrong"), 1, 10, 10),
        payload(Some("s3cret-token-but-longer"), 1, 10, 10),
        // An invalid payload with a wrong token is still a 401, not a 400.
        payload(Some("wrong"), 9, 1, 0),
        "not json".to_string(),
    ] {
        let (status, v) = post(&o, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(v["error"], "unauthorized");
    }
}

#[tokio::test]
async fn bad_payloads_are_400_with_every_reason() {
    let o = optimizer(false);
    let (status, v) = post(&o, payload(Some(TOKEN), 9, 1, 0)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let reasons = v["reasons"].to_string();
    assert!(
        reasons.contains("min_replicas 9 > max_replicas 1"),
        "{reasons}"
    );
    assert!(reasons.contains("cache_size"), "{reasons}");
    let (status, v) = post(&o, payload(Some(TOKEN), 1, 10, 1_000_000)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["reasons"].to_string().contains("cache_size"));
    let (status, v) = post(
        &o,
        serde_json::json!({"token": TOKEN, "check": {}}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["reasons"].to_string().contains("metric_app_name"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_the_first_fit_the_fallback_plan_is_marked_then_the_solver_plans() {
    let o = optimizer(false);
    let (status, v) = post(&o, payload(Some(TOKEN), 1, 10, 10)).await;
    assert_eq!(status, StatusCode::OK);
    let r: OptimizeResponse = serde_json::from_value(v).unwrap();
    assert_eq!(r.desired.len(), 10);
    assert!(
        r.fallback.as_deref().unwrap().contains("not fitted yet"),
        "{r:?}"
    );
    assert_eq!(r.solver_status, SolverStatus::NotRun);
    assert_eq!(r.desired, vec![3; 10], "holds the current count");

    assert!(o.wait_fitted("web", Duration::from_secs(120)).await);
    let (status, v) = post(&o, payload(Some(TOKEN), 2, 7, 300)).await;
    assert_eq!(status, StatusCode::OK);
    let r: OptimizeResponse = serde_json::from_value(v).unwrap();
    assert_eq!(r.desired.len(), 300);
    assert!(
        r.desired.iter().all(|d| (2..=7).contains(d)),
        "{:?}",
        r.desired
    );
    assert_eq!(r.fallback, None);
    assert_eq!(r.solver_status, SolverStatus::Optimal);
    assert_eq!(r.model, "sarimax");
    assert!(r.order.is_some() && r.aic.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fit_gives_the_marked_fallback() {
    let o = optimizer(true);
    assert!(!o.wait_fitted("web", Duration::from_secs(60)).await);
    let (status, v) = post(&o, payload(Some(TOKEN), 1, 10, 5)).await;
    assert_eq!(status, StatusCode::OK);
    let r: OptimizeResponse = serde_json::from_value(v).unwrap();
    assert!(r.fallback.as_deref().unwrap().contains("constant"), "{r:?}");
    assert_eq!(r.desired, vec![3; 5]);
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let o = optimizer(false);
    let _ = post(&o, payload(Some("nope"), 1, 2, 1)).await;
    for (path, want) in [("/health", "ok"), ("/metrics", "optimizer_requests_total")] {
        let resp = router(o.clone())
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let text = String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        assert!(text.contains(want), "{path}: {text}");
        if path == "/metrics" {
            assert!(text.contains("outcome=\"unauthorized\""), "{text}");
        }
    }
}

#[test]
fn the_token_comes_from_a_file_trimmed_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("  {TOKEN}\n")).unwrap();
    let mut env = HashMap::new();
    env.insert(TOKEN_FILE_ENV.to_string(), file.display().to_string());
    env.insert(TOKEN_ENV.to_string(), "other".to_string());
    let t = Token::from_env(&env).unwrap();
    assert!(t.matches(TOKEN) && !t.matches("other"));
    assert!(!format!("{t:?}").contains(TOKEN));
    let mut env = HashMap::new();
    env.insert(TOKEN_ENV.to_string(), "abc".to_string());
    assert!(Token::from_env(&env).unwrap().matches("abc"));
    assert!(matches!(
        Token::from_env(&HashMap::new()),
        Err(OptimizerError::NoToken)
    ));
    env.insert(TOKEN_ENV.to_string(), "   ".to_string());
    assert!(matches!(
        Token::from_env(&env),
        Err(OptimizerError::EmptyToken)
    ));
    let mut env = HashMap::new();
    env.insert(TOKEN_FILE_ENV.to_string(), "/nonexistent/token".to_string());
    assert!(matches!(
        Token::from_env(&env),
        Err(OptimizerError::TokenFile { .. })
    ));
}

#[tokio::test]
async fn serves_on_a_socket_and_health_answers_at_once() {
    let o = optimizer(false);
    let stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(run(
        "127.0.0.1:0".parse().unwrap(),
        o,
        stop.clone(),
        Some(tx),
    ));
    let addr = tokio::time::timeout(Duration::from_secs(1), rx)
        .await
        .expect("bound within a second")
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = String::new();
    tokio::time::timeout(Duration::from_secs(1), s.read_to_string(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf.starts_with("HTTP/1.1 200"), "{buf}");
    stop.cancel();
    task.await.unwrap().unwrap();
}
