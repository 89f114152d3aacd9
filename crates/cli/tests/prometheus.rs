//! The aggregator against a real Prometheus (Debian's `prometheus`) scraping real demo-service
//! processes under a load this test generates and measures itself.
//!
//! * development mode (`autoscaler aggregator` as a process) writes CSV rows, production mode
//!   (the same aggregator, in-process on the memory bus) publishes vectors: both match the load
//!   — request rate within 10 %, error rate, latency quantiles consistent with the latencies the
//!   load generator measured, CPU consistent with the work done, replicas = targets up;
//! * Prometheus stopped mid-run: vectors are stale with every feature missing (nothing reads 0);
//!   restarted: vectors recover, and the first one after the outage has no deltas.
//!
//! Needs `prometheus` on the PATH (scripts/install-deps.sh installs Debian's). Without it the
//! test fails in CI (`CI` or `REQUIRE_INTEGRATION` set) and otherwise says why it skips.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autoscaler_aggregator::prometheus::{Preset, PrometheusSource};
use autoscaler_aggregator::{run, AggregatorConfig, AggregatorDeps, Mode, Source};
use autoscaler_bus::{Bus, MemoryBus, Overflow};
use autoscaler_contract::{decode, FeatureVector, METRICS_TOPIC};
use tokio_util::sync::CancellationToken;

mod common;
use common::{bin, Proc};

fn prometheus_bin() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("prometheus"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() || std::env::var_os("REQUIRE_INTEGRATION").is_some() {
            panic!("`prometheus` is not installed but CI/REQUIRE_INTEGRATION requires this test (scripts/install-deps.sh installs it)");
        }
        eprintln!("SKIPPED: `prometheus` is not on the PATH (apt-get install prometheus)");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One demo-service process (one replica).
struct Replica {
    service: &'static str,
    port: u16,
    _proc: Proc,
}

fn start_replica(service: &'static str, work_ms: u32, error_pct: u32) -> Replica {
    let port = free_port();
    let mut cmd = bin();
    cmd.args([
        "demo-service",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--service",
        service,
        "--work-ms",
        &work_ms.to_string(),
        "--workers",
        "2",
        "--error-pct",
        &error_pct.to_string(),
    ]);
    let proc = Proc::start(format!("{service}@{port}"), cmd);
    let start = Instant::now();
    while !proc.stderr().contains("listening on http://") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "demo service did not start:\n{}",
            proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Replica {
        service,
        port,
        _proc: proc,
    }
}

struct Prometheus {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    proc: Option<Proc>,
}

impl Prometheus {
    fn new(bin: PathBuf, replicas: &[Replica]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let mut jobs: Vec<&str> = replicas.iter().map(|r| r.service).collect();
        jobs.dedup();
        let mut cfg = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for job in jobs {
            let targets: Vec<String> = replicas
                .iter()
                .filter(|r| r.service == job)
                .map(|r| format!("'127.0.0.1:{}'", r.port))
                .collect();
            cfg.push_str(&format!(
                "  - job_name: '{job}'\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ));
        }
        std::fs::write(dir.path().join("prometheus.yml"), cfg).unwrap();
        Prometheus {
            bin,
            dir,
            port: free_port(),
            proc: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn start(&mut self) {
        let mut cmd = Command::new(&self.bin);
        cmd.arg(format!(
            "--config.file={}",
            self.dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            self.dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
        .stdin(Stdio::null());
        self.proc = Some(Proc::start("prometheus".into(), cmd));
        let client = reqwest::Client::new();
        let ready = format!("{}/-/ready", self.url());
        let start = Instant::now();
        loop {
            if let Ok(r) = client.get(&ready).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "Prometheus not ready:\n{}",
                self.proc.as_ref().unwrap().stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.stop();
        }
    }
}

/// What the load generator sent to one service and saw come back.
#[derive(Default)]
struct Sent {
    /// (when sent, latency, status)
    requests: Vec<(Instant, Duration, u16)>,
}

impl Sent {
    /// Requests per second sent over the `window` before `now`.
    fn rate(&self, now: Instant, window: Duration) -> f64 {
        let n = self
            .requests
            .iter()
            .filter(|(t, _, _)| *t <= now && now.duration_since(*t) <= window)
            .count();
        n as f64 / window.as_secs_f64()
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        let mut l: Vec<f64> = self
            .requests
            .iter()
            .map(|(_, d, _)| d.as_secs_f64() * 1000.0)
            .collect();
        l.sort_by(f64::total_cmp);
        l[((l.len() - 1) as f64 * q).round() as usize]
    }

    fn error_pct(&self) -> f64 {
        let bad = self.requests.iter().filter(|r| r.2 >= 500).count();
        100.0 * bad as f64 / self.requests.len() as f64
    }
}

/// Open-loop load: `rps` requests per second, round-robin over the replicas' ports.
fn drive(
    ports: Vec<u16>,
    rps: f64,
    sent: Arc<Mutex<Sent>>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rps));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let routes = ["/", "/catalogue", "/cart", "/orders"];
        let mut i = 0usize;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let url = format!(
                "http://127.0.0.1:{}{}",
                ports[i % ports.len()],
                routes[i % routes.len()]
            );
            i += 1;
            let client = client.clone();
            let sent = sent.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let status = match client.get(&url).send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 599,
                };
                sent.lock().unwrap().requests.push((t, t.elapsed(), status));
            });
        }
    })
}

/// Production mode in-process: `polls` vectors per service on the memory bus.
async fn aggregate(
    url: &str,
    services: &[&str],
    interval: u64,
    polls: u64,
    on_vector: impl FnMut(&FeatureVector),
) -> Vec<FeatureVector> {
    let mut src = PrometheusSource::new(
        url,
        services.iter().map(|s| s.to_string()).collect(),
        Preset::Demo,
    );
    src.polls = Some(polls);
    src.query_timeout = Duration::from_millis(800);
    let mut cfg = AggregatorConfig::new(Source::Prometheus(Box::new(src)));
    cfg.poll_interval_secs = interval;
    cfg.mode = Mode::Production;
    let bus = MemoryBus::new(1024, Overflow::Block);
    let mut sub = bus.subscribe(METRICS_TOPIC, "test").await.unwrap();
    let deps = AggregatorDeps {
        bus: Arc::new(bus.clone()),
        progress: None,
    };
    let want = services.len() * polls as usize;
    let mut on_vector = on_vector;
    let reader = async {
        let mut out = Vec::new();
        while out.len() < want {
            let d = sub.recv().await.unwrap().unwrap();
            let v: FeatureVector = decode(&d.payload).unwrap();
            on_vector(&v);
            out.push(v);
        }
        out
    };
    let (report, vectors) = tokio::join!(run(cfg, deps, CancellationToken::new()), reader);
    report.expect("aggregator ran");
    vectors
}

struct Expect {
    service: &'static str,
    rps: f64,
    client_p95_ms: f64,
    error_pct: f64,
    work_ms: f64,
    replicas: u32,
}

/// Check one vector's features against what the load generator did.
fn check(f: &[(&str, Option<f64>)], replicas: Option<u32>, e: &Expect, what: &str) {
    let get = |n: &str| {
        f.iter()
            .find(|(k, _)| *k == n)
            .and_then(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{what}: {} {n} missing: {f:?}", e.service))
    };
    let rps = get("request_rate_rps");
    assert!(
        (rps - e.rps).abs() <= 0.10 * e.rps,
        "{what}: {} rate {rps:.2} rps vs {:.2} sent (must be within 10 %)",
        e.service,
        e.rps
    );
    let err = get("error_rate_pct");
    assert!(
        (err - e.error_pct).abs() <= 4.0,
        "{what}: {} error rate {err:.1} % vs {:.1} % seen by the client",
        e.service,
        e.error_pct
    );
    let (p50, p95, p99) = (
        get("p50_latency_ms"),
        get("p95_latency_ms"),
        get("p99_latency_ms"),
    );
    assert!(p50 <= p95 && p95 <= p99, "{what}: quantiles out of order");
    // The service spins `work_ms` of CPU per request: histogram interpolation can place the
    // median somewhat below it, never far; and the server-side p95 cannot exceed what the client
    // saw by more than the histogram bucket it falls in (buckets are ≤ 50 % wide here).
    assert!(
        p50 >= 0.7 * e.work_ms,
        "{what}: {} p50 {p50:.2} ms below the {} ms of work per request",
        e.service,
        e.work_ms
    );
    assert!(
        p95 <= 1.5 * e.client_p95_ms + 1.0,
        "{what}: {} p95 {p95:.2} ms vs client p95 {:.2} ms",
        e.service,
        e.client_p95_ms
    );
    let cpu = get("cpu_usage_pct");
    let work_pct = e.rps * e.work_ms / 10.0; // rps × ms / 1000 × 100
    assert!(
        cpu >= 0.6 * work_pct && cpu <= 3.0 * work_pct + 15.0,
        "{what}: {} CPU {cpu:.1} % vs {work_pct:.1} % of work",
        e.service
    );
    assert!(get("memory_usage_mb") > 1.0, "{what}: memory");
    assert_eq!(replicas, Some(e.replicas), "{what}: {} replicas", e.service);
}

async fn wait_for(seen: &Mutex<Vec<(u64, bool)>>, cond: impl Fn(&[(u64, bool)]) -> bool) {
    let start = Instant::now();
    while !cond(&seen.lock().unwrap()) {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "outage timeline stalled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `prometheus` on the PATH (scripts/install-deps.sh)"]
async fn aggregator_on_real_prometheus_matches_the_load_and_survives_an_outage() {
    let Some(prom_bin) = prometheus_bin() else {
        return;
    };
    // front-end: two replicas, light work; orders: one replica, heavier work, 10 % errors.
    let replicas = vec![
        start_replica("front-end", 3, 0),
        start_replica("front-end", 3, 0),
        start_replica("orders", 8, 10),
    ];
    let mut prom = Prometheus::new(prom_bin, &replicas);
    prom.start().await;
    let url = prom.url();

    let stop_load = CancellationToken::new();
    let fe_sent = Arc::new(Mutex::new(Sent::default()));
    let orders_sent = Arc::new(Mutex::new(Sent::default()));
    let fe_ports: Vec<u16> = replicas[..2].iter().map(|r| r.port).collect();
    let load = [
        drive(fe_ports, 30.0, fe_sent.clone(), stop_load.clone()),
        drive(
            vec![replicas[2].port],
            12.0,
            orders_sent.clone(),
            stop_load.clone(),
        ),
    ];
    // `rate(...[1m])` needs a full minute of steady load (plus a scrape) to be the load's rate.
    tokio::time::sleep(Duration::from_secs(66)).await;

    let expect = |now: Instant| {
        let window = Duration::from_secs(60);
        let fe = fe_sent.lock().unwrap();
        let or = orders_sent.lock().unwrap();
        [
            Expect {
                service: "front-end",
                rps: fe.rate(now, window),
                client_p95_ms: fe.quantile_ms(0.95),
                error_pct: fe.error_pct(),
                work_ms: 3.0,
                replicas: 2,
            },
            Expect {
                service: "orders",
                rps: or.rate(now, window),
                client_p95_ms: or.quantile_ms(0.95),
                error_pct: or.error_pct(),
                work_ms: 8.0,
                replicas: 1,
            },
        ]
    };

    // Development mode, as a process: CSV rows.
    let out_dir = tempfile::tempdir().unwrap();
    let csv = out_dir.path().join("sockshop_metrics.csv");
    let mut cmd = bin();
    cmd.args([
        "aggregator",
        "--source",
        "prometheus",
        "--mode",
        "development",
        "--preset",
        "demo",
        "--services",
        "front-end,orders",
        "--prometheus-url",
        &url,
        "--poll-interval-sec",
        "2",
        "--polls",
        "2",
        "--csv-path",
        csv.to_str().unwrap(),
    ]);
    let dev = Proc::start("aggregator (development)".into(), cmd);
    let (ok, err) = tokio::task::block_in_place(|| dev.wait(Duration::from_secs(30)));
    assert!(ok, "development-mode aggregator failed:\n{err}");
    let expected = expect(Instant::now());
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header.len(),
        14,
        "13 Sock Shop columns + replicas: {header:?}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "two polls × two services:\n{text}");
    for row in &rows {
        let e = expected.iter().find(|e| e.service == row[1]).unwrap();
        let feats: Vec<(&str, Option<f64>)> = header[2..12]
            .iter()
            .zip(&row[2..12])
            .map(|(h, v)| (*h, v.parse::<f64>().ok()))
            .collect();
        assert_eq!(row[12], "", "sla_violated is left to `train`");
        check(&feats, row[13].parse().ok(), e, "CSV");
    }

    // Production mode: the same vectors on the bus.
    let vectors = aggregate(&url, &["front-end", "orders"], 2, 2, |_| {}).await;
    let expected = expect(Instant::now());
    for v in &vectors {
        assert!(!v.stale, "{v:?}");
        let e = expected.iter().find(|e| e.service == v.service).unwrap();
        check(&v.features.named(), v.replicas, e, "bus");
        if v.poll == 1 {
            assert!(v.features.delta_rps.is_some(), "second poll has deltas");
        }
    }

    // Outage: stop Prometheus after the second poll, start it again two polls later.
    let polls_seen = Arc::new(Mutex::new(Vec::<(u64, bool)>::new()));
    let seen = polls_seen.clone();
    let url2 = url.clone();
    let outage = tokio::spawn(async move {
        aggregate(&url2, &["front-end", "orders"], 3, 9, move |v| {
            seen.lock().unwrap().push((v.poll, v.stale));
        })
        .await
    });
    wait_for(&polls_seen, |s| {
        s.iter().filter(|(p, _)| *p == 1).count() == 2
    })
    .await;
    tokio::task::block_in_place(|| prom.stop());
    wait_for(&polls_seen, |s| {
        s.iter().filter(|(_, stale)| *stale).count() >= 4
    })
    .await;
    prom.start().await;
    let vectors = outage.await.unwrap();
    stop_load.cancel();
    for l in load {
        let _ = l.await;
    }

    let stale: Vec<&FeatureVector> = vectors.iter().filter(|v| v.stale).collect();
    assert!(stale.len() >= 4, "two polls while Prometheus was down");
    for v in &stale {
        assert_eq!(v.features.missing().len(), 10, "nothing read as 0: {v:?}");
        assert_eq!(v.replicas, None);
        assert!(v
            .stale_reason
            .as_deref()
            .unwrap()
            .contains("Prometheus unreachable"));
    }
    let last_stale = stale.iter().map(|v| v.poll).max().unwrap();
    let recovered: Vec<&FeatureVector> = vectors.iter().filter(|v| v.poll > last_stale).collect();
    assert!(
        recovered.len() >= 2,
        "vectors recover after the restart: {:?}",
        vectors
            .iter()
            .map(|v| (v.poll, v.stale))
            .collect::<Vec<_>>()
    );
    // Right after the restart `rate(...[1m])` under-counts for a poll or two (measured here: 25.6
    // and 24.1 rps for 30 sent): the newest sample lags the evaluation time and Prometheus does
    // not extrapolate across the scrape gap. So: every recovered vector is fresh and complete,
    // and the last one matches the load again.
    let expected = expect(Instant::now());
    let last_poll = vectors.iter().map(|v| v.poll).max().unwrap();
    for v in &recovered {
        assert!(!v.stale);
        let missing = v.features.missing();
        assert!(
            missing.iter().all(|m| m.starts_with("delta_")),
            "recovered vector lacks {missing:?}"
        );
        if v.poll == last_stale + 1 {
            assert_eq!(
                (v.features.delta_rps, v.features.delta_p95_latency_ms),
                (None, None),
                "no deltas against the outage"
            );
        }
        if v.poll == last_poll {
            let e = expected.iter().find(|e| e.service == v.service).unwrap();
            check(&v.features.named(), v.replicas, e, "after the outage");
        }
    }
    prom.stop();
}
