//! The feature function shared by training, evaluation and inference, and the learning loop end
//! to end on recorded data: predictions → outcomes → candidate → shadow votes → promotion or
//! refusal, with a drift alarm on a shifted feature and the bad inputs the issue names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use autoscaler_contract::ModelKind;
use autoscaler_models::history::{input_row_from_history, History, HistoryPoint};
use autoscaler_models::{load, ModelError, TrainParams};
use autoscaler_simulator::TrainingDataConfig;
use autoscaler_training::learning::{
    outcomes, prediction_files, promote, read_predictions, retrain, write_outcomes, RetrainConfig,
    DEFAULT_PSI_ALARM, DEFAULT_RECALL_DROP_ALARM, SHADOW_COLUMNS,
};
use autoscaler_training::{
    default_features, derive_labels, evaluate, feature_rows, groups, load_csvs, simulated_csv,
    train_models, BadRows, DataInput, EvalConfig, Loaded, SlaSpec, SplitConfig, SplitKind,
    TrainConfig,
};

fn quick_params() -> TrainParams {
    TrainParams {
        rf_trees: 15,
        xgb_rounds: 30,
        ..TrainParams::default()
    }
}

fn simulate(dir: &Path, name: &str, runs: usize, seed: u64) -> Loaded {
    simulate_days(dir, name, runs, 1, seed)
}

fn simulate_days(dir: &Path, name: &str, runs: usize, days: u32, seed: u64) -> Loaded {
    let csv = dir.join(name);
    let sim = TrainingDataConfig {
        runs,
        days_per_run: days,
        seed,
        ..TrainingDataConfig::default()
    };
    simulated_csv(&sim, &csv).unwrap();
    load_csvs(
        &[DataInput::parse(&csv.display().to_string())],
        BadRows::Fail,
    )
    .unwrap()
}

fn train_cfg() -> TrainConfig {
    TrainConfig {
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
    }
}

#[test]
fn train_evaluate_and_inference_compute_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = simulate(dir.path(), "sim.csv", 4, 5);
    let names = default_features(&loaded);
    assert!(
        names.iter().any(|n| n == "p95_latency_ms_lag5"),
        "{names:?}"
    );
    // Training's rows (evaluate calls the same function).
    let rows = feature_rows(&loaded.records, &names).unwrap();
    // The inference service's: one vector at a time through a History, per run.
    let mut compared = 0;
    let mut abstained = 0;
    for g in groups(&loaded.records) {
        let mut h = History::default();
        for i in g {
            let r = &loaded.records[i];
            let window = h.push(
                &r.service,
                HistoryPoint {
                    time: r.timestamp,
                    features: r.features.clone(),
                },
            );
            match (
                input_row_from_history(window, &r.service, r.replicas, &names),
                &rows[i],
            ) {
                (Ok(inf), Some(train)) => {
                    assert_eq!(&inf, train, "row {i}");
                    compared += 1;
                }
                (Err(ModelError::NotEnoughHistory { .. }), None) => abstained += 1,
                (Err(ModelError::MissingFeatures(_)), Some(train)) => {
                    assert!(train.iter().any(|v| v.is_nan()), "row {i}")
                }
                (a, b) => panic!("row {i}: inference {a:?}, training {b:?}"),
            }
        }
    }
    assert!(compared > 1000, "{compared}");
    assert_eq!(abstained, 4, "one abstention (first poll) per run");

    // Evaluate's probabilities are the inference service's on the same rows.
    let models = dir.path().join("models");
    train_models(&loaded, &train_cfg(), &models, &mut |_: &str| {}).unwrap();
    let heldout = simulate(dir.path(), "heldout.csv", 1, 77);
    let report = evaluate(&heldout, &models, &EvalConfig::default()).unwrap();
    let labels = derive_labels(&heldout.records, &SlaSpec::Global(250.0), 2).unwrap();
    for (k, kind) in ModelKind::ALL.into_iter().enumerate() {
        let model = load(kind, &models).unwrap();
        let mut h = History::default();
        let mut online = Vec::new();
        for g in groups(&heldout.records) {
            for i in g {
                let r = &heldout.records[i];
                let w = h.push(
                    &r.service,
                    HistoryPoint {
                        time: r.timestamp,
                        features: r.features.clone(),
                    },
                );
                let row = input_row_from_history(w, &r.service, r.replicas, model.feature_names());
                if let (Some(_), Ok(row)) = (labels[i], row) {
                    online.push((i, model.predict_proba(&row).unwrap()));
                }
            }
        }
        online.sort_by_key(|(i, _)| *i);
        let scores = &report.models[k].scores;
        assert_eq!(scores.len(), online.len(), "{kind}");
        for ((_, p), q) in online.iter().zip(scores) {
            assert!((p - q).abs() < 1e-12, "{kind}: inference {p}, evaluate {q}");
        }
    }
}

/// Write the live models' votes on `loaded` as the inference services log them: rotated
/// xgboost files, and the last file cut mid-row.
fn record_predictions(live: &Path, loaded: &Loaded, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    for kind in ModelKind::ALL {
        let model = load(kind, live).unwrap();
        let mut h = History::default();
        let mut lines = vec![SHADOW_COLUMNS.join(",")];
        for (n, g) in groups(&loaded.records).into_iter().enumerate() {
            for i in g {
                let r = &loaded.records[i];
                let w = h.push(
                    &r.service,
                    HistoryPoint {
                        time: r.timestamp,
                        features: r.features.clone(),
                    },
                );
                let (p, reason) =
                    match input_row_from_history(w, &r.service, r.replicas, model.feature_names())
                        .and_then(|row| model.predict_proba(&row))
                    {
                        Ok(p) => (p.to_string(), String::new()),
                        Err(e) => (String::new(), e.to_string().replace(',', ";")),
                    };
                let t = r.timestamp.to_rfc3339();
                let f: Vec<String> = r
                    .features
                    .named()
                    .iter()
                    .map(|(_, v)| v.map(|v| v.to_string()).unwrap_or_default())
                    .collect();
                let pred = p
                    .parse::<f64>()
                    .map(|p| u8::from(p > model.threshold()).to_string())
                    .unwrap_or_default();
                lines.push(format!(
                    "{}@{n}@{i},{},{t},{t},{},{},{},{},{p},{pred},{},,{reason}",
                    r.service,
                    r.service,
                    kind.as_str(),
                    model.version(),
                    r.replicas.map(|v| v.to_string()).unwrap_or_default(),
                    f.join(","),
                    model.threshold()
                ));
            }
        }
        let name = format!("predictions_{}.csv", kind.as_str());
        if kind == ModelKind::Xgboost {
            // Rotated: the older half in `.1`.
            let half = lines.len() / 2;
            let mut older = lines[..half].to_vec();
            older.push(String::new());
            std::fs::write(out.join(format!("{name}.1")), older.join("\n")).unwrap();
            let mut newer = vec![lines[0].clone()];
            newer.extend_from_slice(&lines[half..]);
            std::fs::write(out.join(&name), newer.join("\n") + "\n").unwrap();
        } else if kind == ModelKind::LogisticRegression {
            // Cut mid-row: the writer crashed.
            let mut text = lines.join("\n") + "\n";
            text.push_str("simulated-service@9@9,simulated-service,2024-01-09T00:00:00Z,2024");
            std::fs::write(out.join(&name), text).unwrap();
        } else {
            std::fs::write(out.join(&name), lines.join("\n") + "\n").unwrap();
        }
    }
}

fn retrain_cfg(data: Vec<PathBuf>, live: &Path, candidates: &Path, at: &str) -> RetrainConfig {
    RetrainConfig {
        data: data
            .iter()
            .map(|p| DataInput::parse(&p.display().to_string()))
            .collect(),
        live_dir: live.to_path_buf(),
        candidates_dir: candidates.to_path_buf(),
        window_rows: 100_000,
        min_rows: 200,
        holdout_fraction: 0.2,
        validation_fraction: 0.2,
        horizon: 2,
        sla: SlaSpec::Global(250.0),
        params: quick_params(),
        target_recall: 0.8,
        margin: 0.02,
        psi_alarm: DEFAULT_PSI_ALARM,
        recall_drop: DEFAULT_RECALL_DROP_ALARM,
        promote: true,
        created_at: at.into(),
    }
}

fn live_bytes(live: &Path) -> BTreeMap<String, Vec<u8>> {
    ModelKind::ALL
        .iter()
        .flat_map(|k| {
            ["model.json", "metadata.json"].map(|f| {
                let p = live.join(k.as_str()).join(f);
                (p.display().to_string(), std::fs::read(&p).unwrap())
            })
        })
        .collect()
}

#[test]
fn the_loop_end_to_end_on_recorded_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let live = d.join("live");
    let candidates = d.join("candidates");
    let history = simulate(d, "history.csv", 4, 5);
    train_models(&history, &train_cfg(), &live, &mut |_: &str| {}).unwrap();

    // 1. Recorded predictions of the live models on new traffic.
    let stream = simulate_days(d, "stream.csv", 1, 2, 11);
    let preds = d.join("predictions");
    record_predictions(&live, &stream, &preds);
    let files = prediction_files(&preds).unwrap();
    assert_eq!(files.len(), 4, "rotated files included: {files:?}");
    let log = read_predictions(&files).unwrap();
    assert_eq!(log.bad_rows.len(), 1, "{:?}", log.bad_rows);
    assert!(
        log.bad_rows[0].reason.contains("cut short"),
        "{}",
        log.bad_rows[0]
    );
    assert!(log.bad_rows[0]
        .file
        .ends_with("predictions_logistic_regression.csv"));

    // 2. Outcomes: future-only labels; the last polls have none yet.
    let o = outcomes(&log, None, &SlaSpec::Global(250.0), 2).unwrap();
    assert_eq!(
        o.pending.get("simulated-service"),
        Some(&2),
        "the last two polls of the service wait for their future: {:?}",
        o.pending
    );
    assert_eq!(o.vectors.len() + 2, stream.records.len());
    let labels = derive_labels(&stream.records, &SlaSpec::Global(250.0), 2).unwrap();
    let positives = o.vectors.iter().filter(|v| v.label).count();
    assert!(positives > 0 && positives < o.vectors.len());
    assert!(
        labels.iter().filter(|l| **l == Some(true)).count() >= positives,
        "outcomes never invent a violation"
    );
    let (outcomes_csv, votes_csv) = write_outcomes(&o, &preds).unwrap();
    assert!(votes_csv.exists());

    // 3–6. Retrain → candidate, shadow votes, decision.
    let before = live_bytes(&live);
    let mut steps: Vec<String> = Vec::new();
    let out = retrain(
        &retrain_cfg(
            vec![outcomes_csv.clone()],
            &live,
            &candidates,
            "2025-02-01T00:00:00Z",
        ),
        &mut |s: &str| steps.push(s.to_string()),
    )
    .unwrap();
    let card = &out.card;
    // The progress bar's length: every step, `promoting` only when it promotes.
    assert_eq!(
        steps.len() as u64,
        autoscaler_training::learning::retrain_steps() - u64::from(!card.decision.promoted),
        "{steps:?}"
    );
    assert_eq!(card.candidate.len(), 3);
    assert_eq!(card.live.len(), 3, "live scored on the same slice");
    for (c, l) in card.candidate.iter().zip(&card.live) {
        assert_eq!(c.metrics.rows, l.metrics.rows, "same recent slice");
    }
    assert!(card.shadow_votes > 0);
    let shadow = out
        .candidate_dir
        .join("shadow")
        .join("predictions_xgboost.csv");
    let shadow_log = read_predictions(&[shadow]).unwrap();
    assert!(shadow_log.bad_rows.is_empty());
    assert!(shadow_log
        .rows
        .iter()
        .all(|r| r.model_version == card.candidate[0].version));
    let d1 = &card.decision;
    let beats = d1.candidate_f1 >= d1.live_f1.unwrap() + 0.02;
    assert_eq!(d1.promoted, beats, "{d1:?}");
    let after = live_bytes(&live);
    if d1.promoted {
        let cand = std::fs::read(out.candidate_dir.join("xgboost/model.json")).unwrap();
        assert_eq!(
            std::fs::read(live.join("xgboost/model.json")).unwrap(),
            cand
        );
        assert!(live.join(".previous/xgboost/model.json").exists());
    } else {
        assert_eq!(before, after, "refused: live untouched");
    }

    // Refusal: a margin no candidate can meet keeps the live models and reports.
    let before = live_bytes(&live);
    let mut cfg = retrain_cfg(
        vec![outcomes_csv.clone()],
        &live,
        &candidates,
        "2025-02-02T00:00:00Z",
    );
    cfg.margin = 2.0;
    let out = retrain(&cfg, &mut |_: &str| {}).unwrap();
    assert!(!out.card.decision.promoted);
    assert!(out.card.decision.reason.contains("kept as a report"));
    assert_eq!(before, live_bytes(&live));
    // (The simulated traffic drifts by itself between the window's start and its end — load
    // and CPU grow — but the change in request rate is steady: its PSI stays low.)
    let unshifted = out.card.drift.psi["delta_rps"];
    assert!(unshifted < DEFAULT_PSI_ALARM, "{:?}", out.card.drift);
    assert!(!out
        .card
        .drift
        .reasons
        .iter()
        .any(|r| r.contains("`delta_rps`")));

    // Drift: in the most recent third of the rows the change in request rate is shifted by 100.
    let text = std::fs::read_to_string(&outcomes_csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header: Vec<String> = lines[0].split(',').map(str::to_string).collect();
    let rps = header.iter().position(|c| *c == "delta_rps").unwrap();
    let n = lines.len();
    for line in lines.iter_mut().skip(1 + 2 * (n - 1) / 3) {
        let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
        let v: f64 = f[rps].parse().unwrap();
        f[rps] = (v + 100.0).to_string();
        *line = f.join(",");
    }
    let shifted = d.join("shifted.csv");
    std::fs::write(&shifted, lines.join("\n") + "\n").unwrap();
    let mut cfg = retrain_cfg(vec![shifted], &live, &candidates, "2025-02-03T00:00:00Z");
    cfg.promote = false;
    let out = retrain(&cfg, &mut |_: &str| {}).unwrap();
    assert!(out.card.drift.alarm, "{:?}", out.card.drift);
    assert!(
        out.card
            .drift
            .reasons
            .iter()
            .any(|r| r.contains("`delta_rps`")),
        "{:?}",
        out.card.drift.reasons
    );
    assert!(out.card.drift.psi["delta_rps"] > DEFAULT_PSI_ALARM);

    // Bad input: one class only, too few rows; the live models untouched.
    let before = live_bytes(&live);
    let one_class: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                return l.to_string();
            }
            let mut f: Vec<&str> = l.split(',').collect();
            let k = header.iter().position(|c| *c == "sla_violated").unwrap();
            f[k] = "0";
            f.join(",")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let one = d.join("one_class.csv");
    std::fs::write(&one, one_class + "\n").unwrap();
    let e = retrain(
        &retrain_cfg(vec![one], &live, &candidates, "2025-02-04T00:00:00Z"),
        &mut |_: &str| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("one class only") && e.contains("untouched"),
        "{e}"
    );
    let mut cfg = retrain_cfg(
        vec![outcomes_csv],
        &live,
        &candidates,
        "2025-02-05T00:00:00Z",
    );
    cfg.min_rows = 1_000_000;
    let e = retrain(&cfg, &mut |_: &str| {}).unwrap_err().to_string();
    assert!(e.contains("too few rows"), "{e}");

    // A candidate that fails to load is never promoted.
    let broken = candidates.join("2025-02-02T00-00-00Z");
    std::fs::write(broken.join("random_forest/model.json"), b"{ not json").unwrap();
    let e = promote(&broken, &live).unwrap_err().to_string();
    assert!(
        e.contains("does not load") && e.contains("random_forest"),
        "{e}"
    );
    assert_eq!(before, live_bytes(&live));
}
