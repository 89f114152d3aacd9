//! The Prometheus source's poll loop against a stand-in Prometheus HTTP API on 127.0.0.1 (the
//! real Prometheus is exercised by `crates/cli/tests/prometheus.rs`). The stand-in answers each
//! PromQL query by what it measures, so every honesty rule is checked through real HTTP.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use autoscaler_bus::{MemoryBus, Overflow};
use prometheus::{Preset, PrometheusSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers a PromQL query, given the request's head (method, path, headers).
type Answerer = Arc<dyn Fn(&str, &str) -> (u16, String) + Send + Sync>;

fn vector(v: &str) -> (u16, String) {
    (
        200,
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000,"{v}"]}}]}}}}"#
        ),
    )
}

fn empty() -> (u16, String) {
    (
        200,
        r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.into(),
    )
}

/// Serve the Prometheus query API on `listener`; counts requests.
async fn serve(listener: TcpListener, answer: Answerer, hits: Arc<AtomicUsize>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let answer = answer.clone();
        let hits = hits.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            hits.fetch_add(1, Ordering::SeqCst);
            let head = String::from_utf8_lossy(&buf);
            let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let url = reqwest::Url::parse(&format!("http://x{target}")).unwrap();
            let query = url
                .query_pairs()
                .find(|(k, _)| k == "query")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let (status, body) = answer(&query, &head);
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(reply.as_bytes()).await;
        });
    }
}

/// A Prometheus stand-in: orders is busy, carts is idle (NaN quantiles, 0/0 error rate),
/// the memory query is a PromQL error, and catalogue has no series at all.
fn sock_shop() -> Answerer {
    Arc::new(|q: &str, _head: &str| {
        let svc = if q.contains("\"orders\"") {
            "orders"
        } else if q.contains("\"carts\"") {
            "carts"
        } else {
            return empty();
        };
        if q.contains("process_resident_memory_bytes") {
            return (
                400,
                r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#
                    .into(),
            );
        }
        let busy = svc == "orders";
        if q.starts_with("sum(rate(request_duration_seconds_count") {
            vector(if busy { "20" } else { "0" })
        } else if q.starts_with("100 * (sum(rate(") {
            vector(if busy { "2.5" } else { "NaN" })
        } else if q.contains("histogram_quantile(0.95") {
            vector(if busy { "48" } else { "NaN" })
        } else if q.contains("histogram_quantile") {
            vector(if busy { "+Inf" } else { "NaN" })
        } else if q.contains("process_cpu_seconds_total") {
            vector(if busy { "35" } else { "1" })
        } else if q.contains("up{") {
            vector("2")
        } else {
            empty()
        }
    })
}

fn source(port: u16, services: &[&str], polls: u64) -> PrometheusSource {
    let mut s = PrometheusSource::new(
        format!("http://127.0.0.1:{port}"),
        services.iter().map(|s| s.to_string()).collect(),
        Preset::Sockshop,
    );
    s.query_timeout = Duration::from_millis(500);
    s.polls = Some(polls);
    s
}

async fn collect(bus: &MemoryBus, n: usize) -> Vec<FeatureVector> {
    let mut sub = bus.subscribe(METRICS_TOPIC, "test").await.unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        let d = tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .expect("a vector in time")
            .expect("bus open")
            .unwrap();
        out.push(decode::<FeatureVector>(&d.payload).unwrap());
    }
    out
}

/// Run the aggregator in production mode on the memory bus; returns its report and the first
/// `want` vectors.
async fn run_on_bus(
    src: PrometheusSource,
    interval: u64,
    want: usize,
) -> (AggregatorReport, Vec<FeatureVector>) {
    let bus = MemoryBus::new(64, Overflow::Block);
    let reader = collect(&bus, want);
    let mut cfg = AggregatorConfig::new(Source::Prometheus(Box::new(src)));
    cfg.poll_interval_secs = interval;
    let deps = AggregatorDeps {
        bus: Arc::new(bus.clone()),
        progress: None,
    };
    let (report, vectors) = tokio::join!(run(cfg, deps, CancellationToken::new()), reader);
    (report.unwrap(), vectors)
}

#[tokio::test]
async fn failed_empty_and_nan_answers_are_missing_never_zero() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    tokio::spawn(serve(listener, sock_shop(), hits.clone()));
    let src = source(port, &["orders", "carts", "catalogue"], 2);
    let (report, vectors) = run_on_bus(src, 1, 6).await;
    assert_eq!(report.ticks, 2);
    assert_eq!(report.vectors, 6);
    assert_eq!(report.stale_vectors, 0, "Prometheus answered");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2 * 3 * 8,
        "8 queries per service and poll"
    );

    let get = |svc: &str, poll: u64| {
        vectors
            .iter()
            .find(|v| v.service == svc && v.poll == poll)
            .unwrap_or_else(|| panic!("{svc} poll {poll}"))
            .clone()
    };
    let orders = get("orders", 1);
    assert!(!orders.stale);
    let f = &orders.features;
    assert_eq!(f.request_rate_rps, Some(20.0));
    assert_eq!(f.error_rate_pct, Some(2.5));
    assert_eq!(f.p95_latency_ms, Some(48.0));
    assert_eq!(f.p50_latency_ms, None, "+Inf is not a latency");
    assert_eq!(f.memory_usage_mb, None, "a PromQL error is missing, not 0");
    assert_eq!(f.cpu_usage_pct, Some(35.0));
    assert_eq!(f.delta_rps, Some(0.0), "second poll: a real delta");
    assert_eq!(orders.replicas, Some(2));
    assert_eq!(
        get("orders", 0).features.delta_rps,
        None,
        "first poll: no delta"
    );
    // The same evaluation time for every service of a poll, and ids unique per (service, poll).
    assert_eq!(get("orders", 1).metric_time, get("carts", 1).metric_time);
    assert_ne!(get("orders", 0).vector_id, get("orders", 1).vector_id);

    let carts = get("carts", 1).features;
    assert_eq!(
        carts.request_rate_rps,
        Some(0.0),
        "a measured idle minute is 0 rps"
    );
    assert_eq!(
        (carts.error_rate_pct, carts.p95_latency_ms),
        (None, None),
        "no traffic: NaN quantiles and 0/0 errors are missing"
    );
    let catalogue = get("catalogue", 1);
    assert!(!catalogue.stale);
    assert_eq!(
        catalogue.features.missing().len(),
        10,
        "no series: all missing"
    );
    assert_eq!(catalogue.replicas, None);
    for v in &vectors {
        v.validate(Some(Utc::now()), 60).unwrap();
    }
}

#[tokio::test]
async fn unreachable_prometheus_gives_stale_vectors_then_recovers_without_bogus_deltas() {
    // Reserve a port, then leave it closed: connection refused until the stand-in starts.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    // Prometheus comes back after the second poll's retries have run out (poll 1 at ~2 s,
    // retry budget 1.2 s).
    let starter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(3600)).await;
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        serve(listener, sock_shop(), h).await;
    });
    let (report, vectors) = run_on_bus(source(port, &["orders", "carts"], 4), 2, 8).await;
    starter.abort();
    assert_eq!(report.ticks, 4);
    assert_eq!(
        report.stale_vectors, 4,
        "two polls × two services while down"
    );
    assert!(report.retries >= 2, "retried inside each poll: {report:?}");
    for v in vectors.iter().filter(|v| v.poll < 2) {
        assert!(v.stale, "{v:?}");
        let reason = v.stale_reason.as_deref().unwrap();
        assert!(reason.contains("Prometheus unreachable"), "{reason}");
        assert_eq!(v.features.missing().len(), 10, "nothing read as 0");
        assert_eq!(v.replicas, None);
        v.validate(Some(Utc::now()), 60).unwrap();
    }
    let first_back = vectors
        .iter()
        .find(|v| v.service == "orders" && v.poll == 2)
        .unwrap();
    assert!(!first_back.stale);
    assert_eq!(first_back.features.request_rate_rps, Some(20.0));
    assert_eq!(
        first_back.features.delta_rps, None,
        "no delta against the outage"
    );
    let next = vectors
        .iter()
        .find(|v| v.service == "orders" && v.poll == 3)
        .unwrap();
    assert_eq!(next.features.delta_rps, Some(0.0));
}

#[tokio::test]
async fn development_mode_writes_the_csv_and_publishes_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve(listener, sock_shop(), Arc::new(AtomicUsize::new(0))));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/sockshop_metrics.csv");
    let bus = MemoryBus::new(64, Overflow::Block);
    let mut sub = bus.subscribe(METRICS_TOPIC, "test").await.unwrap();
    let mut cfg = AggregatorConfig::new(Source::Prometheus(Box::new(source(port, &["orders"], 2))));
    cfg.poll_interval_secs = 1;
    cfg.mode = Mode::Development;
    cfg.csv_path = path.clone();
    let deps = AggregatorDeps {
        bus: Arc::new(bus.clone()),
        progress: None,
    };
    let report = run(cfg, deps, CancellationToken::new()).await.unwrap();
    assert_eq!(report.vectors, 2);
    let nothing = tokio::time::timeout(Duration::from_millis(100), sub.recv()).await;
    assert!(nothing.is_err(), "development mode publishes nothing");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], csv_sink::header().join(","));
    // request_rate, error, p50 (missing), p95, p99 (missing), cpu, memory (missing), deltas,
    // sla_violated (left to `train`), replicas.
    let row: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(row[1], "orders");
    assert_eq!(
        &row[2..],
        ["20", "2.5", "", "48", "", "35", "", "0", "0", "0", "", "2"]
    );
}

#[tokio::test]
async fn discovered_services_are_polled_and_a_failed_lookup_keeps_the_last_list() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve(listener, sock_shop(), Arc::new(AtomicUsize::new(0))));
    let answers: Vec<Result<Vec<String>, String>> = vec![
        Ok(vec!["orders".into()]),
        Err("docker daemon unreachable".into()),
        Ok(vec!["carts".into(), "orders".into()]),
        Ok(vec!["carts".into()]),
    ];
    let answers = Arc::new(std::sync::Mutex::new(answers.into_iter()));
    let mut src = source(port, &[], 4);
    src.discover = Some(prometheus::Discover {
        what: "a script".into(),
        lookup: Arc::new(move || {
            let next = answers.lock().unwrap().next().unwrap();
            Box::pin(async move { next })
        }),
    });
    let (report, vectors) = run_on_bus(src, 1, 5).await;
    assert_eq!(report.discovery_failures, 1);
    let mut seen: Vec<(u64, String)> = vectors
        .iter()
        .map(|v| (v.poll, v.service.clone()))
        .collect();
    seen.sort();
    let want: Vec<(u64, String)> = [
        (0, "orders"),
        (1, "orders"),
        (2, "carts"),
        (2, "orders"),
        (3, "carts"),
    ]
    .iter()
    .map(|(p, s)| (*p, s.to_string()))
    .collect();
    assert_eq!(seen, want);
}

/// The Sock Shop stand-in behind a proxy that wants `Authorization: Bearer <token>` (401 else).
fn sock_shop_behind_token(token: &'static str) -> Answerer {
    let shop = sock_shop();
    let want = format!("authorization: Bearer {token}");
    Arc::new(move |q: &str, head: &str| {
        if head.lines().any(|l| l.eq_ignore_ascii_case(&want)) {
            shop(q, head)
        } else {
            (
                401,
                r#"{"status":"error","errorType":"unauthorized","error":"no token"}"#.into(),
            )
        }
    })
}

#[tokio::test]
async fn a_bearer_token_is_sent_and_a_refusal_makes_stale_vectors_saying_why() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let guarded = sock_shop_behind_token("s3cret");
    tokio::spawn(serve(listener, guarded, Arc::new(AtomicUsize::new(0))));
    let mut src = source(port, &["orders"], 1);
    src.bearer_token = Some(prometheus::Secret("s3cret".into()));
    assert!(
        !format!("{src:?}").contains("s3cret"),
        "the token is never printed"
    );
    let (_, with) = run_on_bus(src, 1, 1).await;
    assert_eq!(with[0].features.request_rate_rps, Some(20.0));

    // Refused (401): no feature can be measured; the vector is stale and says why.
    let (report, without) = run_on_bus(source(port, &["orders"], 1), 1, 1).await;
    let reason = without[0].stale_reason.clone().unwrap_or_default();
    assert!(
        without[0].stale && reason.contains("401"),
        "{:?}",
        without[0]
    );
    assert_eq!(without[0].features.missing().len(), 10);
    assert_eq!(report.stale_vectors, 1);
    assert_eq!(report.retries, 0, "a refusal is not retried");
}

/// A rotated token: the file is re-read before the next poll, without a restart; a changed
/// file that cannot be used (empty) keeps the last token.
#[tokio::test]
async fn a_changed_bearer_token_file_is_re_read_before_the_next_poll() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let guarded = sock_shop_behind_token("new-t0ken");
    tokio::spawn(serve(listener, guarded, Arc::new(AtomicUsize::new(0))));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "old\n").unwrap();
    let mut src = source(port, &["orders"], 1);
    src.bearer_token_file = Some(file.clone());
    let poller = prometheus::Poller::new(src).unwrap();
    let rate = |raw: &std::collections::BTreeMap<String, prometheus::Raw>| {
        raw["orders"]["request_rate_rps"].clone()
    };
    let at = Utc::now();
    let first = poller.poll_once(&["orders".to_string()], at).await;
    assert!(
        matches!(rate(&first), prometheus::Answer::Refused(_)),
        "{first:?}"
    );

    std::fs::write(&file, "new-t0ken\n").unwrap();
    let second = poller.poll_once(&["orders".to_string()], at).await;
    assert_eq!(
        rate(&second),
        prometheus::Answer::Value(20.0),
        "re-read without a restart"
    );

    // Emptied (a rotation caught mid-write): the last good token stays in use.
    std::fs::write(&file, "").unwrap();
    let third = poller.poll_once(&["orders".to_string()], at).await;
    assert_eq!(rate(&third), prometheus::Answer::Value(20.0));
}

#[tokio::test]
async fn a_slow_query_and_an_odd_answer_are_missing_features_not_an_outage() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shop = sock_shop();
    let answer: Answerer = Arc::new(move |q: &str, head: &str| {
        if q.contains("histogram_quantile(0.99") {
            // Prometheus's own query timeout.
            (
                503,
                r#"{"status":"error","errorType":"timeout","error":"query timed out"}"#.into(),
            )
        } else if q.contains("process_cpu_seconds_total") {
            // A 2xx answer of a kind we do not read.
            (
                200,
                r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#.into(),
            )
        } else {
            shop(q, head)
        }
    });
    tokio::spawn(serve(listener, answer, Arc::new(AtomicUsize::new(0))));
    let (report, v) = run_on_bus(source(port, &["orders"], 1), 1, 1).await;
    assert!(!v[0].stale, "{v:?}");
    assert_eq!(report.retries, 0);
    let f = &v[0].features;
    assert_eq!((f.p99_latency_ms, f.cpu_usage_pct), (None, None));
    assert_eq!(f.request_rate_rps, Some(20.0));
    // p50 is +Inf in the stand-in, memory a PromQL error, p99 and CPU as above: 4 of 7.
    assert_eq!(report.missing_features, 4);
}

/// Medium 10: a `PROMETHEUS_URL` with credentials never reaches a vector, an error or a
/// `Debug` print (reqwest's errors quote the URL they failed on).
#[tokio::test]
async fn credentials_in_the_url_never_reach_a_vector_or_a_debug_print() {
    let secret = "s3cr3t-pw-9431";
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // closed again: nothing listens there
    let mut src = source(port, &["orders"], 1);
    src.url = format!("http://scaler:{secret}@127.0.0.1:{port}/");
    assert!(!format!("{src:?}").contains(secret));
    assert_eq!(
        prometheus::redact_url(&src.url),
        format!("http://***@127.0.0.1:{port}/")
    );
    let poller = prometheus::Poller::new(src.clone()).unwrap();
    let raw = poller.poll_once(&src.services, chrono::Utc::now()).await;
    let text = format!("{raw:?}");
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(!text.contains(secret), "{text}");
    let bad = format!("htp:/scaler:{secret}@[::1");
    let mut broken = src.clone();
    broken.url = bad;
    assert!(!broken.problems(10).join(" ").contains(secret));
}
