//! The demo service over real HTTP on port 0: answers, histogram counts and labels, the error
//! share, latency buckets, CPU accounting, queueing for workers, shutdown.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use autoscaler_demo_service::{bind, DemoServiceConfig, DemoServiceError};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Svc {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), DemoServiceError>>,
}

async fn start(cfg: DemoServiceConfig) -> Svc {
    let bound = bind(DemoServiceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..cfg
    })
    .await
    .expect("bind");
    let addr = bound.local_addr();
    assert_ne!(addr.port(), 0);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(bound.serve(shutdown.clone()));
    Svc {
        addr,
        shutdown,
        task,
    }
}

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

/// One request on its own connection.
async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path).await
}

async fn scrape(addr: SocketAddr) -> String {
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("application/openmetrics-text"),
        "{}",
        r.content_type
    );
    r.body
}

/// The sum of the samples named `name` whose labels include every pair of `labels`.
fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    let mut found = false;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let (n, l) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| l.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
        {
            total += value.parse::<f64>().expect("number");
            found = true;
        }
    }
    assert!(found, "no sample {name}{labels:?} in\n{text}");
    total
}

fn cfg(work_ms: u64, workers: usize) -> DemoServiceConfig {
    DemoServiceConfig {
        work_ms,
        workers,
        ..Default::default()
    }
}

#[tokio::test]
async fn answers_and_counts_exactly_the_requests_made() {
    let svc = start(DemoServiceConfig {
        service: "catalogue".into(),
        ..cfg(1, 1)
    })
    .await;
    for _ in 0..5 {
        let r = get(svc.addr, "/").await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains("catalogue /"), "{}", r.body);
    }
    for _ in 0..3 {
        assert_eq!(get(svc.addr, "/catalogue").await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(request(svc.addr, "POST", "/orders").await.status, 200);
    }
    assert_eq!(get(svc.addr, "/cart").await.status, 200);
    for _ in 0..4 {
        let r = get(svc.addr, "/health").await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    }
    assert_eq!(get(svc.addr, "/nope").await.status, 404);
    assert_eq!(get(svc.addr, "/cart?work_ms=abc").await.status, 400);

    let m = scrape(svc.addr).await;
    let count = "request_duration_seconds_count";
    let with = |method, route, code| {
        sum(
            &m,
            count,
            &[
                ("service", "catalogue"),
                ("method", method),
                ("route", route),
                ("status_code", code),
            ],
        )
    };
    assert_eq!(with("GET", "/", "200"), 5.0);
    assert_eq!(with("GET", "/catalogue", "200"), 3.0);
    assert_eq!(with("POST", "/orders", "200"), 2.0);
    assert_eq!(with("GET", "/cart", "200"), 1.0);
    assert_eq!(with("GET", "/cart", "400"), 1.0);
    assert_eq!(
        sum(&m, count, &[]),
        12.0,
        "health, metrics and 404 not counted"
    );
    assert_eq!(
        sum(&m, "request_duration_seconds_bucket", &[("le", "+Inf")]),
        12.0
    );
    assert!(!m.contains("/health") && !m.contains("/metrics") && !m.contains("/nope"));
    // Every bucket boundary, and the process metrics, unlabelled.
    assert!(
        m.contains(r#"request_duration_seconds_bucket{le="0.0075","#),
        "{m}"
    );
    assert!(
        m.contains(r#"request_duration_seconds_bucket{le="10.0","#),
        "{m}"
    );
    assert!(sum(&m, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(m.contains("\nprocess_cpu_seconds_total "), "{m}");
    assert!(m.ends_with("# EOF\n"));

    svc.shutdown.cancel();
    svc.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn error_pct_answers_500_for_exactly_that_share() {
    let svc = start(DemoServiceConfig {
        error_pct: 20.0,
        ..cfg(0, 1)
    })
    .await;
    let mut failed = 0;
    for _ in 0..50 {
        match get(svc.addr, "/orders").await.status {
            500 => failed += 1,
            200 => {}
            s => panic!("status {s}"),
        }
    }
    assert_eq!(failed, 10);
    let m = scrape(svc.addr).await;
    let c = "request_duration_seconds_count";
    assert_eq!(sum(&m, c, &[("status_code", "500")]), 10.0);
    assert_eq!(sum(&m, c, &[("status_code", "200")]), 40.0);
    svc.shutdown.cancel();
    svc.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn slow_requests_land_in_slow_buckets() {
    let svc = start(cfg(1, 2)).await;
    for _ in 0..10 {
        assert_eq!(get(svc.addr, "/cart?work_ms=20").await.status, 200);
    }
    for _ in 0..10 {
        assert_eq!(get(svc.addr, "/catalogue?work_ms=0").await.status, 200);
    }
    let m = scrape(svc.addr).await;
    let b = "request_duration_seconds_bucket";
    let cart = |le| sum(&m, b, &[("route", "/cart"), ("le", le)]);
    assert_eq!(cart("0.015"), 0.0, "a 20 ms request is never under 15 ms");
    assert_eq!(cart("+Inf"), 10.0);
    assert!(sum(&m, "request_duration_seconds_sum", &[("route", "/cart")]) >= 0.2);
    // No work, no wait: fast (the bound is loose, for a busy test machine).
    assert_eq!(sum(&m, b, &[("route", "/catalogue"), ("le", "0.1")]), 10.0);
    // `?sleep_ms=` adds latency without a worker.
    let t = Instant::now();
    assert_eq!(get(svc.addr, "/?work_ms=0&sleep_ms=30").await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(30));
    svc.shutdown.cancel();
    svc.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_seconds_grow_by_the_work_done() {
    let svc = start(cfg(10, 2)).await;
    let cpu = |m: &str| sum(m, "process_cpu_seconds_total", &[]);
    let before = cpu(&scrape(svc.addr).await);
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let addr = svc.addr;
            tokio::spawn(async move {
                for _ in 0..50 {
                    assert_eq!(get(addr, "/catalogue").await.status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let after = cpu(&scrape(svc.addr).await);
    // 100 × 10 ms = 1 s of spinning; other tests in this process only add to the counter.
    assert!(after - before >= 0.8, "cpu {before} -> {after}");
    svc.shutdown.cancel();
    svc.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_makes_concurrent_requests_queue() {
    let svc = start(cfg(50, 1)).await;
    let t = Instant::now();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let addr = svc.addr;
            tokio::spawn(async move { get(addr, "/orders").await.status })
        })
        .collect();
    for c in clients {
        assert_eq!(c.await.unwrap(), 200);
    }
    let wall = t.elapsed();
    assert!(
        wall >= Duration::from_millis(350),
        "8 × 50 ms took {wall:?}"
    );
    // The histogram includes the wait for the worker: 50 + 100 + … + 400 ms = 1.8 s in total,
    // and the last request took about 400 ms.
    let m = scrape(svc.addr).await;
    let total = sum(&m, "request_duration_seconds_sum", &[]);
    assert!(total >= 1.4, "sum of durations {total}");
    let b = "request_duration_seconds_bucket";
    assert!(
        sum(&m, b, &[("le", "0.3")]) < 8.0,
        "someone waited > 300 ms"
    );
    svc.shutdown.cancel();
    svc.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish() {
    let svc = start(cfg(0, 1)).await;
    let addr = svc.addr;
    let slow = tokio::spawn(async move { get(addr, "/?work_ms=200").await.status });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = Instant::now();
    svc.shutdown.cancel();
    assert_eq!(slow.await.unwrap(), 200);
    tokio::time::timeout(Duration::from_secs(5), svc.task)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn bad_configuration_and_busy_port_are_errors() {
    let bad = DemoServiceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 0,
        error_pct: 150.0,
        ..Default::default()
    };
    match bind(bad).await {
        Err(DemoServiceError::Config(p)) => assert_eq!(p.len(), 2, "{p:?}"),
        other => panic!("{other:?}"),
    }
    let svc = start(cfg(0, 1)).await;
    let busy = DemoServiceConfig {
        listen: svc.addr,
        ..Default::default()
    };
    let e = bind(busy).await.unwrap_err();
    assert!(matches!(e, DemoServiceError::Bind { .. }), "{e:?}");
    assert!(e.to_string().contains(&svc.addr.to_string()));
    svc.shutdown.cancel();
    svc.task.await.unwrap().unwrap();
}
