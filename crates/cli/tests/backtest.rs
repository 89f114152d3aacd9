//! `autoscaler backtest` as a user runs it: the table, the JSON fields the issue names, the plot,
//! and clear errors for bad input.

use std::path::{Path, PathBuf};

mod common;
use common::{run, text};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn shipped_trace() -> PathBuf {
    repo("crates/simulator/data/nasa_http_1995_07_12to14_60s.csv")
}

#[test]
fn every_policy_on_the_shipped_trace_prints_the_table_and_writes_json_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let (json, svg) = (dir.path().join("out.json"), dir.path().join("out.svg"));
    let out = run(&[
        "backtest",
        "--trace",
        shipped_trace().to_str().unwrap(),
        "--hours",
        "6",
        "--policies",
        "all",
        "--json-out",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
        "--models-dir",
        repo("models").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for section in [
        "service front-end",
        "service orders",
        "overall (2 services)",
    ] {
        assert!(stdout.contains(section), "{section} missing:\n{stdout}");
    }
    for policy in [
        "hybrid",
        "oracle",
        "hpa-50",
        "hpa-90",
        "threshold",
        "ensemble",
    ] {
        assert!(stdout.contains(policy), "{policy} missing:\n{stdout}");
    }

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(doc["trace"].as_str().unwrap().contains("nasa_http"));
    assert_eq!(doc["hours"], 6.0);
    let policies = doc["policies"].as_array().unwrap();
    // hybrid, ensemble, capacity, threshold, triggers, static, oracle + the sweep of 5.
    assert_eq!(policies.len(), 12, "{policies:?}");
    for p in policies {
        for field in [
            "name",
            "params",
            "sla_violation_minutes",
            "replica_hours",
            "scale_events",
            "per_service",
        ] {
            assert!(!p[field].is_null(), "{field} missing in {p}");
        }
        let per: Vec<&serde_json::Value> = p["per_service"].as_array().unwrap().iter().collect();
        assert_eq!(per.len(), 2);
        let sum: f64 = per
            .iter()
            .map(|s| s["replica_hours"].as_f64().unwrap())
            .sum();
        assert!((sum - p["replica_hours"].as_f64().unwrap()).abs() < 1e-6);
    }
    let names: Vec<&str> = policies
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"hybrid") && names.contains(&"oracle"));
    let hpa70 = policies.iter().find(|p| p["name"] == "hpa-70").unwrap();
    assert_eq!(hpa70["params"]["target"], 70.0);
    let oracle = policies.iter().find(|p| p["name"] == "oracle").unwrap();
    for p in policies {
        assert!(
            p["replica_hours"].as_f64().unwrap() >= 0.0
                && oracle["sla_violation_minutes"].as_f64().unwrap()
                    <= p["sla_violation_minutes"].as_f64().unwrap(),
            "the oracle has the fewest violations: {p}"
        );
    }

    let body = std::fs::read_to_string(&svg).unwrap();
    assert!(body.trim_start().starts_with("<svg") && body.trim_end().ends_with("</svg>"));
    let mut reader = quick_xml::Reader::from_str(&body);
    let mut elements = 0;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Start(_) | quick_xml::events::Event::Empty(_)) => {
                elements += 1
            }
            Ok(_) => {}
            Err(e) => panic!(
                "the SVG does not parse at {}: {e}",
                reader.buffer_position()
            ),
        }
    }
    assert!(elements > 100, "{elements} elements");
    for name in names {
        assert!(body.contains(name), "{name} missing from the plot");
    }
}

#[test]
fn bad_input_is_named() {
    // An unknown policy or parameter: exit 2 naming the valid ones.
    let out = run(&["backtest", "--policies", "hpa,bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("bogus") && err.contains("hybrid") && err.contains("threshold"),
        "{err}"
    );
    let out = run(&["backtest", "--policies", "threshold:upper=x"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["backtest", "--policies", "static:bogus=1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("valid: replicas"));

    // A negative count: the file and the line.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "timestamp_s,requests\n0,5\n60,-3\n120,4\n").unwrap();
    let out = run(&[
        "backtest",
        "--trace",
        bad.to_str().unwrap(),
        "--policies",
        "static",
    ]);
    assert_eq!(out.status.code(), Some(64));
    let err = text(&out.stderr);
    assert!(err.contains("bad.csv") && err.contains("line 3"), "{err}");

    // More hours than the trace holds (the shipped one is 72 h); exactly as many is fine.
    let trace = shipped_trace();
    let out = run(&[
        "backtest",
        "--trace",
        trace.to_str().unwrap(),
        "--hours",
        "73",
        "--policies",
        "static",
    ]);
    assert_eq!(out.status.code(), Some(64));
    let err = text(&out.stderr);
    assert!(
        err.contains("nasa_http_1995_07_12to14_60s.csv") && err.contains("line"),
        "{err}"
    );
    let out = run(&[
        "backtest",
        "--trace",
        trace.to_str().unwrap(),
        "--hours",
        "72",
        "--policies",
        "static,hpa-70",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
