//! Optimizer requests per second (a benchmark, not a test).
//!
//! `cargo bench -p autoscaler-optimizer --bench requests [-- --clients 1,8,32 --secs 10]`
//!
//! Starts the optimizer's axum app in-process on `127.0.0.1` (port 0), its history a synthetic
//! 8-day trace replayed by [`TraceSource`] (the constructor the crate's own tests use), waits
//! until the app's SARIMAX is fitted, then, for each client count N, drives `POST /optimize`
//! with the seed's payload from N concurrent keep-alive clients for a fixed duration, and right
//! after it `GET /health` (the server's own ceiling: routing, HTTP and the client, no plan).
//! Prints requests/s and p50/p99 latency of each, the answers' `solver_status` counts (the
//! solver's limit is wall time, so on an oversubscribed machine more plans stop at
//! `time_limit`), and the 1-minute load average before each run (`/proc/loadavg`).
//!
//! The clients run in this process, on their own runtime, so they share the machine's cores
//! with the server: the figures are a floor for a server on its own host. `cargo test
//! --all-targets` runs it once in test mode (no `--bench`): one client for a moment each.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use autoscaler_optimizer::{run, Optimizer, Settings, Token, TraceSource};
use autoscaler_simulator::Trace;

/// The token the bench's server expects.
const BENCH_TOKEN: &str = "bench-token";
/// The app asked for (the seed's `check.metric_app_name`).
const APP: &str = "web";
/// Replicas now, fewest and most, and values wanted (the seed's payload).
const CURRENT_REPLICAS: u32 = 3;
/// Fewest replicas in the payload.
const MIN_REPLICAS: u32 = 1;
/// Most replicas in the payload.
const MAX_REPLICAS: u32 = 10;
/// Values wanted in the payload (one per second).
const CACHE_SIZE: u32 = 10;
/// Days of the synthetic per-minute trace (7 days of history plus one to replay).
const TRACE_DAYS: usize = 8;
/// Mean of the trace (requests per minute).
const TRACE_BASE_PER_MIN: f64 = 600.0;
/// Amplitude of its daily cycle (requests per minute).
const TRACE_AMPLITUDE_PER_MIN: f64 = 400.0;
/// Concurrent clients measured by default (one run each).
const DEFAULT_CLIENTS: [usize; 3] = [1, 8, 32];
/// Seconds each endpoint is driven per client count by default.
const DEFAULT_SECS: f64 = 10.0;
/// Seconds each endpoint is driven in test mode.
const TEST_MODE_SECS: f64 = 0.2;
/// Longest wait for the first fit.
const FIT_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest wait for the listener.
const BIND_TIMEOUT: Duration = Duration::from_secs(5);

/// The seed's trace shape (as `src/tests.rs`): a daily sine per minute with a little
/// deterministic jitter.
fn daily_trace(days: usize) -> Trace {
    let req: Vec<f64> = (0..days * 1440)
        .map(|m| {
            let a = 2.0 * std::f64::consts::PI * (m % 1440) as f64 / 1440.0;
            TRACE_BASE_PER_MIN + TRACE_AMPLITUDE_PER_MIN * a.sin() + ((m * 7919) % 37) as f64
        })
        .collect();
    Trace::from_requests(60.0, req).expect("a valid trace")
}

/// One endpoint's run.
struct Outcome {
    requests: usize,
    errors: usize,
    statuses: BTreeMap<String, usize>,
    secs: f64,
    latencies_ms: Vec<f64>,
}

/// The `q` quantile (nearest rank) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Clone, Copy)]
enum Endpoint {
    Optimize,
    Health,
}

async fn drive(
    client: reqwest::Client,
    base: String,
    endpoint: Endpoint,
    clients: usize,
    secs: f64,
) -> Outcome {
    let body = serde_json::json!({
        "token": BENCH_TOKEN,
        "check": {"metric_app_name": APP},
        "current_replicas": CURRENT_REPLICAS,
        "min_replicas": MIN_REPLICAS,
        "max_replicas": MAX_REPLICAS,
        "cache_size": CACHE_SIZE,
    })
    .to_string();
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, base, body) = (client.clone(), base.clone(), body.clone());
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                let mut statuses = BTreeMap::new();
                while Instant::now() < until {
                    let t = Instant::now();
                    let req = match endpoint {
                        Endpoint::Optimize => client
                            .post(format!("{base}/optimize"))
                            .header("content-type", "application/json")
                            .body(body.clone()),
                        Endpoint::Health => client.get(format!("{base}/health")),
                    };
                    let ok = match req.send().await {
                        Ok(r) if r.status().is_success() => match r.bytes().await {
                            Ok(b) => {
                                if matches!(endpoint, Endpoint::Optimize) {
                                    *statuses.entry(solver_status(&b)).or_insert(0) += 1;
                                }
                                true
                            }
                            Err(_) => false,
                        },
                        _ => false,
                    };
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    if !ok {
                        errors += 1;
                    }
                }
                (lat, errors, statuses)
            })
        })
        .collect();
    let mut out = Outcome {
        requests: 0,
        errors: 0,
        statuses: BTreeMap::new(),
        secs: 0.0,
        latencies_ms: Vec::new(),
    };
    for t in tasks {
        let (lat, errors, statuses) = t.await.expect("client task");
        out.requests += lat.len();
        out.errors += errors;
        for (k, v) in statuses {
            *out.statuses.entry(k).or_insert(0) += v;
        }
        out.latencies_ms.extend(lat);
    }
    out.secs = started.elapsed().as_secs_f64();
    out.latencies_ms.sort_by(f64::total_cmp);
    out
}

/// The answer's `solver_status` (without parsing the whole answer).
fn solver_status(body: &[u8]) -> String {
    const KEY: &str = "\"solver_status\":\"";
    let text = String::from_utf8_lossy(body);
    text.find(KEY)
        .and_then(|i| {
            let rest = &text[i + KEY.len()..];
            rest.find('"').map(|j| rest[..j].to_string())
        })
        .unwrap_or_else(|| "missing".into())
}

/// The 1-minute load average (`/proc/loadavg`), `?` where there is none.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn report(name: &str, clients: usize, load: &str, o: &Outcome) {
    println!(
        "{name:<14} {clients:>3} clients: {:>8.1} req/s, p50 {:>7.2} ms, p99 {:>7.2} ms \
         ({} requests in {:.1} s, {} errors, load {load} before){}",
        o.requests as f64 / o.secs,
        quantile(&o.latencies_ms, 0.5),
        quantile(&o.latencies_ms, 0.99),
        o.requests,
        o.secs,
        o.errors,
        if o.statuses.is_empty() {
            String::new()
        } else {
            format!(", solver_status {:?}", o.statuses)
        }
    );
}

/// `--clients 1,8,32` and `--secs 10` from the command line (cargo adds `--bench`).
fn options() -> (Vec<usize>, f64, bool) {
    let args: Vec<String> = std::env::args().collect();
    let measuring = args.iter().any(|a| a == "--bench");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let clients = value("--clients").map_or_else(
        || DEFAULT_CLIENTS.to_vec(),
        |v| {
            v.split(',')
                .map(|c| {
                    c.trim()
                        .parse()
                        .expect("--clients: numbers, comma-separated")
                })
                .collect()
        },
    );
    let secs = value("--secs").map_or(DEFAULT_SECS, |v| v.parse().expect("--secs: a number"));
    if measuring {
        (clients, secs, true)
    } else {
        (vec![1], TEST_MODE_SECS, false)
    }
}

fn main() {
    let (client_counts, secs, measuring) = options();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("optimizer")
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-client")
        .build()
        .expect("client runtime");

    let source = TraceSource::new(&daily_trace(TRACE_DAYS), 1.0, 1.0).expect("trace source");
    let optimizer = Optimizer::new(
        Token::new(BENCH_TOKEN).expect("token"),
        Arc::new(source),
        Settings::default(),
    );
    let stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = server_rt.spawn(run(
        "127.0.0.1:0".parse().expect("loopback address"),
        optimizer.clone(),
        stop.clone(),
        Some(tx),
    ));
    let addr = server_rt
        .block_on(async { tokio::time::timeout(BIND_TIMEOUT, rx).await })
        .expect("bound in time")
        .expect("bound");
    let base = format!("http://{addr}");

    let t = Instant::now();
    let fitted = server_rt.block_on(optimizer.wait_fitted(APP, FIT_TIMEOUT));
    assert!(fitted, "the first fit did not finish");
    println!(
        "optimizer on {addr}: first fit (SARIMAX, order by AIC, 7 days) in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let _in_client_rt = client_rt.enter();
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .expect("client");
    for clients in client_counts {
        for (name, endpoint) in [
            ("POST /optimize", Endpoint::Optimize),
            ("GET /health", Endpoint::Health),
        ] {
            let load = load_average();
            let o =
                client_rt.block_on(drive(client.clone(), base.clone(), endpoint, clients, secs));
            report(name, clients, &load, &o);
            assert!(o.requests > 0, "{name}: no request answered");
            if !measuring {
                assert_eq!(o.errors, 0, "{name}: errors in test mode");
            }
        }
    }
    let (plans, fallback) = optimizer.totals();
    println!("server: {plans} plans answered, {fallback} of them fallback plans");

    stop.cancel();
    server_rt
        .block_on(server)
        .expect("server task")
        .expect("server");
}
