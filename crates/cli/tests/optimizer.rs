//! `autoscaler optimizer` as a user runs it: the seed's payload over HTTP, the token, the
//! closing line; and `forecast-eval` on a generated trace.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod common;
use common::{bin, run, text, Proc};

/// Two days of a daily sine at one-minute steps, in the trace format.
fn write_trace(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("trace.csv");
    let mut s = String::from("timestamp_s,requests\n");
    for m in 0..(3 * 1440) {
        let day = (m as f64 / 1440.0 * std::f64::consts::TAU).sin();
        let wobble = ((m * 7919) % 13) as f64;
        s.push_str(&format!(
            "{},{}\n",
            m * 60,
            (300.0 + 200.0 * day + wobble) as u64
        ));
    }
    std::fs::write(&path, s).unwrap();
    path
}

/// One HTTP/1.1 request; returns (status, body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn optimizer_answers_the_seed_payload_and_refuses_a_wrong_token() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write_trace(dir.path());
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "  s3cret-token\n").unwrap();
    let mut cmd = bin();
    cmd.args(["optimizer", "--listen", "127.0.0.1:0", "--trace"])
        .arg(&trace)
        .env("OPTIMIZER_TOKEN_FILE", &token_file)
        .env("RUST_LOG", "info");
    let p = Proc::start("optimizer".into(), cmd);
    let start = Instant::now();
    let addr = loop {
        let err = p.stderr();
        if let Some(rest) = err.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no listen line:\n{err}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // /health answers within a second of start.
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(http(&addr, "GET", "/health", "").0, 200);
    let payload = |token: Option<&str>, cache: u32| {
        let mut v = serde_json::json!({
            "check": {"metric_app_name": "web"},
            "current_replicas": 3, "min_replicas": 1, "max_replicas": 10, "cache_size": cache
        });
        if let Some(t) = token {
            v["token"] = serde_json::json!(t);
        }
        v.to_string()
    };
    assert_eq!(http(&addr, "POST", "/optimize", &payload(None, 10)).0, 401);
    assert_eq!(
        http(&addr, "POST", "/optimize", &payload(Some("wrong"), 10)).0,
        401
    );
    let (status, body) = http(
        &addr,
        "POST",
        "/optimize",
        &payload(Some("s3cret-token"), 0),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("cache_size"), "{body}");
    // Until the first fit the answer is the marked fallback; then a solved plan.
    let until = Instant::now() + Duration::from_secs(60);
    let v = loop {
        let (status, body) = http(
            &addr,
            "POST",
            "/optimize",
            &payload(Some("s3cret-token"), 10),
        );
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let desired = v["desired"].as_array().unwrap();
        assert_eq!(desired.len(), 10, "{body}");
        assert!(
            desired
                .iter()
                .all(|d| (1..=10).contains(&d.as_u64().unwrap())),
            "{body}"
        );
        if v["fallback"].is_null() || Instant::now() > until {
            break v;
        }
        assert!(
            v["fallback"].as_str().unwrap().contains("not fitted"),
            "{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        v["fallback"].is_null(),
        "still the fallback after 60 s: {v}"
    );
    assert_eq!(v["model"], "sarimax", "{v}");
    assert!(v["aic"].is_number() && v["order"].is_string(), "{v}");
    let err = p.stop();
    assert!(
        !err.contains("s3cret-token"),
        "the token reached the log:\n{err}"
    );
    assert!(err.contains("optimizer: "), "{err}");
    assert!(err.contains(" plans, "), "no closing line:\n{err}");
}

#[test]
fn optimizer_without_a_token_or_history_exits_64() {
    let out = bin()
        .args(["optimizer", "--listen", "127.0.0.1:0"])
        .env_remove("OPTIMIZER_TOKEN")
        .env_remove("OPTIMIZER_TOKEN_FILE")
        .env_remove("PROMETHEUS_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = text(&out.stderr);
    assert!(
        err.contains("OPTIMIZER_TOKEN") && err.contains("--trace"),
        "{err}"
    );
}

#[test]
fn forecast_eval_prints_the_table_the_order_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write_trace(dir.path());
    let json = dir.path().join("fe.json");
    let plot = dir.path().join("fe.svg");
    let out = run(&[
        "forecast-eval",
        "--trace",
        trace.to_str().unwrap(),
        "--models",
        "naive,seasonal_naive,sarimax",
        "--warmup-hours",
        "60",
        "--interval-min",
        "60",
        "--json-out",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for m in ["naive", "seasonal_naive", "sarimax", "MAPE"] {
        assert!(stdout.contains(m), "{m} missing:\n{stdout}");
    }
    assert!(stdout.contains("sarimax order ("), "{stdout}");
    assert!(stdout.contains("AIC"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = v["models"].as_array().unwrap();
    assert_eq!(rows.len(), 9, "{v}");
    for r in rows {
        for k in ["name", "horizon_min", "mae", "rmse", "mape"] {
            assert!(!r[k].is_null(), "{k} missing in {r}");
        }
    }
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));
    let out = run(&["forecast-eval", "--trace", "/nonexistent.csv"]);
    assert!(!out.status.success());
}
