//! Behaviour of loading, labels, splits, training and evaluation.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use autoscaler_contract::{Features, ModelKind};
use autoscaler_models::{read_metadata, TrainParams};
use autoscaler_simulator::TrainingDataConfig;
use autoscaler_training::{
    derive_labels, evaluate, label_window_end, load_csvs, simulated_csv, split, train_models,
    write_plot, BadRows, DataInput, EvalConfig, Record, SlaSpec, SplitConfig, SplitKind,
    TrainConfig, TrainingError,
};
use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;

fn rec(run: &str, service: &str, pattern: &str, t: i64, p95: Option<f64>) -> Record {
    Record {
        file: 0,
        line: 0,
        timestamp: DateTime::from_timestamp(1_700_000_000, 0).unwrap() + Duration::seconds(t),
        service: service.into(),
        run: run.into(),
        pattern: Some(pattern.into()),
        replicas: Some(2),
        features: Features {
            p95_latency_ms: p95,
            error_rate_pct: Some(0.0),
            ..Features::default()
        },
        csv_label: None,
    }
}

/// Records of a few runs and services, in a shuffled order, with random p95.
fn records() -> impl Strategy<Value = Vec<Record>> {
    let one = (
        0usize..3,
        0usize..2,
        0i64..60,
        prop_oneof![1 => Just(None), 5 => (0.0..500.0f64).prop_map(Some)],
    );
    prop::collection::vec(one, 1..120).prop_map(|v| {
        let mut seen = BTreeSet::new();
        v.into_iter()
            // one row per (run, service, poll)
            .filter(|(r, s, t, _)| seen.insert((*r, *s, *t)))
            .map(|(r, s, t, p)| {
                rec(
                    &format!("run{r}"),
                    ["a", "b"][s],
                    ["ramp", "spike", "step"][r],
                    t * 30,
                    p,
                )
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn a_label_never_depends_on_its_own_row(
        rs in records(), k in 0usize..120, new_p95 in prop::option::of(0.0..5000.0f64),
        new_err in prop::option::of(0.0..=100.0f64), horizon in 1usize..4,
    ) {
        prop_assume!(k < rs.len());
        let sla = SlaSpec::Global(250.0);
        let before = derive_labels(&rs, &sla, horizon).unwrap();
        let mut changed = rs.clone();
        changed[k].features.p95_latency_ms = new_p95;
        changed[k].features.error_rate_pct = new_err;
        let after = derive_labels(&changed, &sla, horizon).unwrap();
        prop_assert_eq!(before[k], after[k]);
        // And it depends on the future of the same run and service only: rows of other groups
        // and earlier rows keep their labels... except those whose window contains row k.
        for (i, r) in rs.iter().enumerate() {
            if r.run != rs[k].run || r.service != rs[k].service || r.timestamp >= rs[k].timestamp {
                prop_assert_eq!(before[i], after[i], "row {} changed", i);
            }
        }
    }

    #[test]
    fn time_split_never_leaks_across_time(rs in records(), horizon in 1usize..4) {
        let labels = derive_labels(&rs, &SlaSpec::Global(250.0), horizon).unwrap();
        prop_assume!(labels.iter().any(|l| l.is_some()));
        let s = split(&rs, &labels, horizon, &SplitConfig::default()).unwrap();
        let ends = label_window_end(&rs, horizon);
        let ts = |v: &[usize]| v.iter().map(|i| rs[*i].timestamp).collect::<Vec<_>>();
        let later: Vec<DateTime<Utc>> = ts(&s.val).into_iter().chain(ts(&s.test)).collect();
        for &i in &s.train {
            for t in &later {
                // Every training row, and every row its label looks at, is before every
                // validation and test row (across services, so also per service).
                prop_assert!(rs[i].timestamp < *t);
                prop_assert!(ends[i].unwrap() < *t);
            }
        }
        for &i in &s.val {
            for t in ts(&s.test) {
                prop_assert!(rs[i].timestamp < t);
                prop_assert!(ends[i].unwrap() < t);
            }
        }
        // Every labelled row is in exactly one part, or purged.
        let all: Vec<usize> = s.train.iter().chain(&s.val).chain(&s.test).copied().collect();
        let set: BTreeSet<usize> = all.iter().copied().collect();
        prop_assert_eq!(set.len(), all.len());
        prop_assert_eq!(all.len() + s.purged, labels.iter().filter(|l| l.is_some()).count());
    }

    #[test]
    fn group_splits_are_disjoint(rs in records(), seed in 0u64..1000, by_pattern in any::<bool>()) {
        let labels = derive_labels(&rs, &SlaSpec::Global(250.0), 1).unwrap();
        let kind = if by_pattern { SplitKind::ByPattern } else { SplitKind::ByRun };
        let cfg = SplitConfig { kind, seed, ..SplitConfig::default() };
        let Ok(s) = split(&rs, &labels, 1, &cfg) else {
            // fewer than two groups with labels: refused, never a silent row split
            let groups: BTreeSet<&str> = rs.iter().zip(&labels)
                .filter(|(_, l)| l.is_some()).map(|(r, _)| r.run.as_str()).collect();
            prop_assert!(groups.len() < 2);
            return Ok(());
        };
        let key = |i: &usize| if by_pattern { rs[*i].pattern.clone().unwrap() } else { rs[*i].run.clone() };
        let train: BTreeSet<String> = s.train.iter().map(key).collect();
        let test: BTreeSet<String> = s.test.iter().map(key).collect();
        prop_assert!(!test.is_empty());
        prop_assert!(train.is_disjoint(&test));
        let val: BTreeSet<String> = s.val.iter().map(key).collect();
        prop_assert!(val.is_disjoint(&test));
        // validation groups are disjoint from training groups unless validation is the
        // time-tail of the training groups (then it comes after them in time)
        if !val.is_disjoint(&train) {
            for &i in &s.train {
                for &j in &s.val {
                    if rs[i].run == rs[j].run && rs[i].service == rs[j].service {
                        prop_assert!(rs[i].timestamp < rs[j].timestamp);
                    }
                }
            }
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p
}

const HEADER: &str = "timestamp,service,request_rate_rps,error_rate_pct,p50_latency_ms,p95_latency_ms,p99_latency_ms,cpu_usage_pct,memory_usage_mb,delta_rps,delta_p95_latency_ms,delta_cpu_usage_pct,sla_violated";

#[test]
fn csv_missing_values_and_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "m.csv",
        &format!(
            "{HEADER}\n\
             2026-04-08T18:31:02.353836+00:00,orders,0.0,0.0,nan,nan,,0.2,316.1,0.0,0.0,0.0,0\n\
             2026-04-08T18:31:32+00:00,orders,abc,0.0,1,2,3,0.2,316.1,0.0,0.0,0.0,0\n\
             2026-04-08T18:32:02+00:00,orders,1.5,0.0,1,2,3,0.2,316.1,0.0,0.0,0.0,1\n"
        ),
    );
    let input = DataInput::parse(&format!("ramp={}", p.display()));
    assert_eq!(input.pattern.as_deref(), Some("ramp"));
    let loaded = load_csvs(std::slice::from_ref(&input), BadRows::Skip).unwrap();
    assert_eq!(loaded.records.len(), 2);
    let r = &loaded.records[0];
    assert_eq!(r.features.p95_latency_ms, None, "nan is missing, never 0");
    assert_eq!(r.features.p99_latency_ms, None, "empty is missing");
    assert_eq!(r.features.request_rate_rps, Some(0.0));
    assert_eq!(r.pattern.as_deref(), Some("ramp"));
    assert_eq!(r.run, p.display().to_string(), "one file = one run");
    assert_eq!(loaded.records[1].line, 4);
    assert_eq!(loaded.bad_rows.len(), 1);
    let bad = loaded.bad_rows[0].to_string();
    assert!(
        bad.contains("m.csv:3:") && bad.contains("request_rate_rps"),
        "{bad}"
    );
    let err = load_csvs(&[input], BadRows::Fail).unwrap_err();
    assert!(matches!(err, TrainingError::BadRow(_)), "{err}");
    assert!(err.to_string().contains("m.csv:3"), "{err}");

    let p = write(
        dir.path(),
        "short.csv",
        "timestamp,service,p95_latency_ms\n",
    );
    let err = load_csvs(&[DataInput::parse(&p.display().to_string())], BadRows::Skip).unwrap_err();
    assert!(err.to_string().contains("missing column"), "{err}");
}

#[test]
fn per_service_sla_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "sla.txt", "# ms\norders=100\n*=300\n");
    let sla = SlaSpec::from_file(&p).unwrap();
    assert_eq!(sla.for_service("orders").unwrap(), 100.0);
    assert_eq!(sla.for_service("carts").unwrap(), 300.0);
    let rs = vec![
        rec("r", "orders", "x", 0, Some(10.0)),
        rec("r", "orders", "x", 30, Some(150.0)),
        rec("r", "carts", "x", 0, Some(10.0)),
        rec("r", "carts", "x", 30, Some(150.0)),
    ];
    let l = derive_labels(&rs, &sla, 1).unwrap();
    assert_eq!(l, vec![Some(true), None, Some(false), None]);
}

fn quick_params() -> TrainParams {
    TrainParams {
        rf_trees: 15,
        xgb_rounds: 30,
        ..TrainParams::default()
    }
}

#[test]
fn train_then_evaluate_round_trip_on_simulated_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sim.csv");
    let sim = TrainingDataConfig {
        runs: 4,
        days_per_run: 1,
        seed: 5,
        ..TrainingDataConfig::default()
    };
    simulated_csv(&sim, &csv).unwrap();
    let loaded = load_csvs(
        &[DataInput::parse(&csv.display().to_string())],
        BadRows::Fail,
    )
    .unwrap();
    let models = dir.path().join("models");
    let cfg = TrainConfig {
        kinds: ModelKind::ALL.to_vec(),
        horizon: 2,
        sla: SlaSpec::Global(250.0),
        split: SplitConfig {
            kind: SplitKind::ByRun,
            seed: 1,
            ..SplitConfig::default()
        },
        params: quick_params(),
        target_recall: 0.8,
        features: None,
        use_csv_labels: false,
        created_at: "2025-01-01T00:00:00Z".into(),
        calibration: autoscaler_training::DEFAULT_CALIBRATION,
    };
    let mut steps = Vec::new();
    let report = train_models(&loaded, &cfg, &models, &mut |s: &str| {
        steps.push(s.to_string())
    })
    .unwrap();
    assert!(steps.iter().any(|s| s.contains("training random_forest")));
    // Calibration and the threshold are steps of their own (where the time goes), and the
    // progress bar's length is the number of steps reported.
    assert!(
        steps.iter().any(|s| s == "calibrating xgboost"),
        "{steps:?}"
    );
    assert!(steps
        .iter()
        .any(|s| s == "threshold and scores of logistic_regression"));
    assert_eq!(
        steps.len() as u64,
        autoscaler_training::train_steps(ModelKind::ALL.len()),
        "{steps:?}"
    );
    assert_eq!(
        report.feature_names,
        autoscaler_training::default_features(&loaded),
        "the default feature list"
    );
    assert!(
        report
            .feature_names
            .iter()
            .any(|n| n == "rps_per_replica_roll_mean"),
        "replicas column → per-replica features"
    );
    for kind in ModelKind::ALL {
        let meta = read_metadata(kind, &models).unwrap();
        assert_eq!(meta.feature_names, report.feature_names);
        assert_eq!(meta.horizon, 2);
        assert_eq!(
            meta.imputation.as_ref().map(Vec::len),
            Some(report.feature_names.len())
        );
        assert_eq!(
            meta.training_data["inputs"][0]["sha256"]
                .as_str()
                .unwrap()
                .len(),
            64
        );
        assert!(
            meta.scores["test"]["roc_auc"].as_f64().unwrap() > 0.8,
            "{kind}: {}",
            meta.scores
        );
        let m = report.models.iter().find(|m| m.kind == kind).unwrap();
        assert!(
            m.validation.unwrap().recall >= 0.8,
            "threshold meets the target on validation"
        );
        assert_eq!(meta.threshold, m.threshold);
    }
    // Same seed → identical artefacts.
    let again = dir.path().join("again");
    train_models(&loaded, &cfg, &again, &mut |_: &str| {}).unwrap();
    for kind in ModelKind::ALL {
        let f = |d: &Path, n: &str| std::fs::read(d.join(kind.as_str()).join(n)).unwrap();
        assert_eq!(f(&models, "model.json"), f(&again, "model.json"), "{kind}");
        assert_eq!(
            f(&models, "metadata.json"),
            f(&again, "metadata.json"),
            "{kind}"
        );
    }

    // Evaluate on other simulated runs.
    let held = dir.path().join("held.csv");
    simulated_csv(
        &TrainingDataConfig {
            seed: 99,
            runs: 2,
            ..sim
        },
        &held,
    )
    .unwrap();
    let loaded = load_csvs(
        &[DataInput::parse(&held.display().to_string())],
        BadRows::Fail,
    )
    .unwrap();
    let ev = evaluate(&loaded, &models, &EvalConfig::default()).unwrap();
    assert_eq!(ev.models.len(), 3);
    assert_eq!(ev.rules.len(), 3);
    assert!(ev.positives > 0 && ev.evaluated > ev.positives);
    for r in ev.models.iter().chain(&ev.rules) {
        let m = r.metrics;
        assert_eq!(m.tp + m.fp + m.tn + m.fn_, ev.evaluated, "{}", r.name);
        assert!(m.roc_auc.unwrap() > 0.8, "{}: {:?}", r.name, m.roc_auc);
    }
    // Unanimous never votes up more often than majority.
    let ups = |name: &str| {
        let m = ev
            .rules
            .iter()
            .find(|r| r.name.ends_with(name))
            .unwrap()
            .metrics;
        m.tp + m.fp
    };
    assert!(ups("unanimous") <= ups("majority"));
    let table = ev.table();
    assert!(
        table.contains("vote: weighted") && table.contains("ROC-AUC"),
        "{table}"
    );
    let plot = dir.path().join("plot.svg");
    write_plot(&ev, &plot).unwrap();
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("xgboost"),
        "an SVG naming the models"
    );

    // Data without a replicas column cannot feed models that need per-replica features.
    let csv_text = std::fs::read_to_string(&held).unwrap();
    let stripped: String = csv_text
        .lines()
        .map(|l| l.split(',').take(13).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    let p = write(dir.path(), "noreplicas.csv", &stripped);
    let loaded = load_csvs(&[DataInput::parse(&p.display().to_string())], BadRows::Fail).unwrap();
    let err = evaluate(&loaded, &models, &EvalConfig::default()).unwrap_err();
    assert!(err.to_string().contains("replicas"), "{err}");
}
