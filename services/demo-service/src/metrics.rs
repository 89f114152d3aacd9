//! The service's registry: Sock Shop's request histogram and the process metrics.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds of the `request_duration_seconds` buckets: fine enough for p50/p95/p99 from
/// 1 ms to 10 s (`histogram_quantile` interpolates linearly inside a bucket).
pub const DURATION_BUCKETS_SECONDS: [f64; 22] = [
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
    0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
];

/// `USER_HZ`, the unit of the times in `/proc/<pid>/stat`: `sysconf(_SC_CLK_TCK)`, which the
/// kernel passes in the auxiliary vector (100 on every mainstream Linux architecture).
fn clock_ticks_per_second() -> f64 {
    match rustix::param::clock_ticks_per_second() {
        0 => 100.0,
        n => n as f64,
    }
}

/// Sock Shop's label names, exactly.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: String,
    method: String,
    route: String,
    status_code: String,
}

fn new_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS_SECONDS)
}

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests: Family<RequestLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(new_histogram);
        registry.register_with_unit(
            "request_duration",
            // No final period: the registry adds one.
            "Time spent serving HTTP requests, including the wait for a worker",
            Unit::Seconds,
            requests.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Metrics { registry, requests }
    }

    pub(crate) fn observe(
        &self,
        service: &str,
        method: &Method,
        route: &str,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let labels = RequestLabels {
            service: service.to_owned(),
            method: method.as_str().to_owned(),
            route: route.to_owned(),
            status_code: status.as_u16().to_string(),
        };
        self.requests
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The registry in OpenMetrics text (ends with `# EOF`).
    pub(crate) fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// `process_cpu_seconds_total` and `process_resident_memory_bytes`, read from `/proc` at each
/// scrape. Unlabelled, as client_golang's process collector: the scrape adds `job`/`instance`.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let cpu = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| cpu_ticks_from_stat(&s));
        if let Some(ticks) = cpu {
            let c = ConstCounter::new(ticks as f64 / clock_ticks_per_second());
            let m = encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent in seconds.",
                Some(&Unit::Seconds),
                c.metric_type(),
            )?;
            c.encode(m)?;
        }
        let rss = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| rss_bytes_from_status(&s));
        if let Some(bytes) = rss {
            let g = ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX));
            let m = encoder.encode_descriptor(
                "process_resident_memory",
                "Resident memory size in bytes.",
                Some(&Unit::Bytes),
                g.metric_type(),
            )?;
            g.encode(m)?;
        }
        Ok(())
    }
}

/// utime + stime (fields 14 and 15) of `/proc/<pid>/stat`, in clock ticks. Field 2, the command
/// name in parentheses, may hold spaces and parentheses: split after its *last* `)`.
fn cpu_ticks_from_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state): utime is field 14, the 12th of `rest`.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` of `/proc/<pid>/status` in bytes (the file says kB; no page size needed).
fn rss_bytes_from_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next()? {
        "kB" => Some(value * 1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_name() {
        let stat = "4242 (my (odd) svc) R 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 \
                    3 0 12345 1000000 500 18446744073709551615";
        assert_eq!(cpu_ticks_from_stat(stat), Some(287));
        assert_eq!(cpu_ticks_from_stat("garbage"), None);
        assert_eq!(cpu_ticks_from_stat("1 (x) R 1 2"), None);
    }

    #[test]
    fn parses_status_rss() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t3\n";
        assert_eq!(rss_bytes_from_status(status), Some(2048 * 1024));
        assert_eq!(rss_bytes_from_status("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_has_cpu_and_memory() {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("Linux /proc");
        assert!(cpu_ticks_from_stat(&stat).is_some());
        let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
        assert!(rss_bytes_from_status(&status).unwrap() > 0);
    }

    #[test]
    fn exposition_has_sock_shop_names() {
        let m = Metrics::new();
        m.observe(
            "front-end",
            &Method::GET,
            "/catalogue",
            StatusCode::OK,
            Duration::from_millis(12),
        );
        let text = m.encode().unwrap();
        assert!(
            text.contains("# TYPE request_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"request_duration_seconds_bucket{le="0.015",service="front-end",method="GET",route="/catalogue",status_code="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        assert!(text.ends_with("# EOF\n"));
        assert!(
            !text.contains(".."),
            "help texts end with one period: {text}"
        );
    }
}
