//! Behaviour of the three models: learning, determinism, artefacts, inputs.

use std::path::Path;

use autoscaler_contract::{Features, ModelKind};
use autoscaler_models::{
    artefacts_present, default_feature_names, input_row, input_row_one_fewer, load,
    load_consistent, load_expecting, save, train, Dataset, MetadataExtra, Model, ModelError,
    ModelMetadata, TrainParams,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A synthetic service, in time order: label = p95 > 200 ms or CPU per replica > 80 %
/// (computed on the current row, so the problem is separable).
fn synthetic(n: usize, seed: u64) -> (Dataset, Vec<(Features, u32)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let names = default_feature_names();
    let mut rows = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    let mut raw = Vec::with_capacity(n);
    let mut prev: Option<(f64, f64, f64)> = None;
    for _ in 0..n {
        let replicas: u32 = rng.random_range(1..=5);
        let rps: f64 = rng.random_range(10.0..500.0);
        let cpu_per_replica = (rps / f64::from(replicas)) * 0.6 + rng.random_range(-5.0..5.0);
        let cpu = (cpu_per_replica * f64::from(replicas)).max(0.0);
        // latency rises with the per-replica load, with noise: the two causes of a violation
        // overlap, so the OR below is close to linear and all three models can learn it
        let p95 = (40.0 + 1.8 * cpu_per_replica + rng.random_range(-50.0..50.0)).max(5.0);
        let (prps, pp95, pcpu) = prev.unwrap_or((rps, p95, cpu));
        let features = Features {
            request_rate_rps: Some(rps),
            error_rate_pct: Some(rng.random_range(0.0..2.0)),
            p50_latency_ms: Some(p95 * 0.5),
            p95_latency_ms: Some(p95),
            p99_latency_ms: Some(p95 * 1.3),
            cpu_usage_pct: Some(cpu),
            memory_usage_mb: Some(rng.random_range(100.0..400.0) * f64::from(replicas)),
            delta_rps: Some(rps - prps),
            delta_p95_latency_ms: Some(p95 - pp95),
            delta_cpu_usage_pct: Some(cpu - pcpu),
        };
        prev = Some((rps, p95, cpu));
        let row = input_row(&features, Some(replicas), &names).expect("complete features");
        labels.push(p95 > 200.0 || cpu / f64::from(replicas) > 80.0);
        rows.push(row);
        raw.push((features, replicas));
    }
    (
        Dataset {
            feature_names: names,
            rows,
            labels,
        },
        raw,
    )
}

fn fast_params() -> TrainParams {
    TrainParams {
        rf_trees: 40,
        ..TrainParams::default()
    }
}

fn extra() -> MetadataExtra {
    MetadataExtra {
        horizon: 3,
        sla_p95_ms: 200.0,
        created_at: "2024-01-01T00:00:00Z".into(),
        threshold: Some(0.4),
        scores: serde_json::json!({"f1": 0.93}),
        imputation: None,
        training_data: serde_json::Value::Null,
    }
}

fn accuracy(model: &dyn Model, data: &Dataset) -> f64 {
    let p = model.predict_proba_batch(&data.rows).unwrap();
    let correct = p
        .iter()
        .zip(&data.labels)
        .filter(|(p, l)| (**p >= model.threshold()) == **l)
        .count();
    correct as f64 / data.rows.len() as f64
}

#[test]
fn each_model_learns_a_separable_problem_on_a_later_slice() {
    let (data, _) = synthetic(1000, 7);
    let (train_part, test_part) = (data.head(700), data.tail_from(700));
    assert!(
        test_part.positive_rows() > 30,
        "the held-out slice has violations"
    );
    for kind in ModelKind::ALL {
        let model = train(kind, &train_part, &fast_params()).unwrap();
        assert_eq!(model.kind(), kind);
        assert_eq!(model.threshold(), 0.5);
        assert_eq!(model.feature_names(), &default_feature_names()[..]);
        assert!(model.version().starts_with(&format!("{}-", kind.as_str())));
        assert_eq!(model.version().len(), kind.as_str().len() + 9);
        let acc = accuracy(model.as_ref(), &test_part);
        eprintln!("{kind}: held-out accuracy {acc}");
        assert!(acc >= 0.9, "{kind}: held-out accuracy {acc}");
        let p = model.predict_proba_batch(&test_part.rows).unwrap();
        assert!(p.iter().all(|p| (0.0..=1.0).contains(p)), "{kind}");
        // the single-row path agrees with the batch path
        for (row, pb) in test_part.rows.iter().zip(&p).take(20) {
            let p1 = model.predict_proba(row).unwrap();
            assert!((p1 - pb).abs() < 1e-9, "{kind}: {p1} vs {pb}");
        }
    }
}

#[test]
fn same_data_and_seed_give_identical_predictions() {
    let (data, _) = synthetic(400, 11);
    for kind in ModelKind::ALL {
        let a = train(kind, &data, &fast_params()).unwrap();
        let b = train(kind, &data, &fast_params()).unwrap();
        assert_eq!(a.version(), b.version(), "{kind}");
        assert_eq!(
            a.predict_proba_batch(&data.rows).unwrap(),
            b.predict_proba_batch(&data.rows).unwrap(),
            "{kind}"
        );
    }
}

#[test]
fn save_load_round_trip_keeps_predictions_and_version() {
    let (data, _) = synthetic(500, 3);
    let dir = tempdir("roundtrip");
    assert!(!artefacts_present(&dir));
    for kind in ModelKind::ALL {
        let model = train(kind, &data, &fast_params()).unwrap();
        save(model.as_ref(), &dir, &extra()).unwrap();
        assert!(dir.join(kind.as_str()).join("model.json").is_file());
        let loaded = load(kind, &dir).unwrap();
        assert_eq!(loaded.version(), model.version(), "{kind}");
        assert_eq!(loaded.kind(), kind);
        assert_eq!(loaded.threshold(), 0.4, "threshold comes from the metadata");
        assert_eq!(loaded.feature_names(), model.feature_names());
        let before = model.predict_proba_batch(&data.rows).unwrap();
        let after = loaded.predict_proba_batch(&data.rows).unwrap();
        for (b, a) in before.iter().zip(&after) {
            assert!((a - b).abs() <= 1e-6, "{kind}: {b} vs {a}");
        }
        if kind != ModelKind::Xgboost {
            assert_eq!(before, after, "{kind}: exact");
        }

        let meta: ModelMetadata = serde_json::from_slice(
            &std::fs::read(dir.join(kind.as_str()).join("metadata.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(meta.format_version, 1);
        assert_eq!(meta.model_kind, kind);
        assert_eq!(meta.version, model.version());
        assert_eq!(meta.feature_names, default_feature_names());
        assert_eq!(meta.created_at, "2024-01-01T00:00:00Z");
        assert_eq!(meta.horizon, 3);
        assert_eq!(meta.sla_p95_ms, 200.0);
        assert_eq!(meta.train_rows, 500);
        assert_eq!(meta.positive_rows, data.positive_rows());
        assert_eq!(meta.training_fingerprint, data.fingerprint());
        assert_eq!(meta.scores["f1"], 0.93);
        assert!(meta.hyper_parameters.is_object());
        let standardised = matches!(
            meta.preprocessing,
            autoscaler_models::Preprocessing::Standardise { .. }
        );
        assert_eq!(standardised, kind == ModelKind::LogisticRegression);

        // saving the loaded model again writes the same model file
        let dir2 = tempdir(&format!("resave-{kind}"));
        save(loaded.as_ref(), &dir2, &extra()).unwrap();
        assert_eq!(
            std::fs::read(dir.join(kind.as_str()).join("model.json")).unwrap(),
            std::fs::read(dir2.join(kind.as_str()).join("model.json")).unwrap(),
            "{kind}"
        );
    }
    assert!(artefacts_present(&dir));
}

#[test]
fn missing_directory_is_a_clear_error_naming_the_path() {
    let dir = tempdir("missing").join("nowhere");
    for kind in ModelKind::ALL {
        let err = load(kind, &dir).unwrap_err();
        assert!(matches!(err, ModelError::MissingArtefact { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&dir.join(kind.as_str()).display().to_string()),
            "{msg}"
        );
    }
    assert!(!artefacts_present(&dir));
}

#[test]
fn missing_model_file_names_it() {
    let (data, _) = synthetic(200, 5);
    let dir = tempdir("missing-file");
    let model = train(ModelKind::LogisticRegression, &data, &fast_params()).unwrap();
    save(model.as_ref(), &dir, &extra()).unwrap();
    let file = dir.join("logistic_regression").join("model.json");
    std::fs::remove_file(&file).unwrap();
    let msg = load(ModelKind::LogisticRegression, &dir)
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
}

fn edit_metadata(dir: &Path, kind: ModelKind, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(kind.as_str()).join("metadata.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut meta);
    std::fs::write(&path, serde_json::to_vec(&meta).unwrap()).unwrap();
}

#[test]
fn metadata_feature_list_differing_from_model_file_is_refused() {
    let (data, _) = synthetic(300, 9);
    let dir = tempdir("mismatch");
    for kind in ModelKind::ALL {
        let model = train(kind, &data, &fast_params()).unwrap();
        save(model.as_ref(), &dir, &extra()).unwrap();
        edit_metadata(&dir, kind, |m| {
            let list = m["feature_names"].as_array_mut().unwrap();
            list.swap(0, 1);
        });
        let err = load(kind, &dir).unwrap_err();
        assert!(
            matches!(err, ModelError::FeatureMismatch { .. }),
            "{kind}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("request_rate_rps, error_rate_pct")
                && msg.contains("error_rate_pct, request_rate_rps"),
            "{msg}"
        );
    }
}

/// Issue 15, item 14: a `model.json` that does not match its `metadata.json` (another
/// training's file copied over) is refused by the reload path; `load` only warns.
#[test]
fn a_model_file_not_matching_its_metadata_is_refused_on_reload() {
    let (data, _) = synthetic(300, 9);
    let dir = tempdir("reload-mismatch");
    let kind = ModelKind::LogisticRegression;
    let model = train(kind, &data, &fast_params()).unwrap();
    save(model.as_ref(), &dir, &extra()).unwrap();
    assert!(load_consistent(kind, &dir).is_ok());
    edit_metadata(&dir, kind, |m| {
        m["version"] = "logistic_regression-00000000".into()
    });
    assert!(load(kind, &dir).is_ok(), "start-up load still only warns");
    let err = load_consistent(kind, &dir).unwrap_err();
    assert!(matches!(err, ModelError::BadArtefact { .. }), "{err:?}");
    assert!(
        err.to_string().contains("logistic_regression-00000000"),
        "{err}"
    );
}

#[test]
fn caller_expecting_other_features_or_kind_gets_a_clear_error() {
    let (data, _) = synthetic(300, 13);
    let dir = tempdir("expect");
    let model = train(ModelKind::Xgboost, &data, &fast_params()).unwrap();
    save(model.as_ref(), &dir, &extra()).unwrap();
    let names = default_feature_names();
    assert!(load_expecting(ModelKind::Xgboost, &dir, &names).is_ok());
    let fewer = names[..10].to_vec();
    let err = load_expecting(ModelKind::Xgboost, &dir, &fewer).unwrap_err();
    assert!(matches!(err, ModelError::FeatureMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("cpu_per_replica_pct"), "{err}");

    // metadata for another kind in the xgboost directory
    edit_metadata(&dir, ModelKind::Xgboost, |m| {
        m["model_kind"] = "random_forest".into();
    });
    let msg = load(ModelKind::Xgboost, &dir).unwrap_err().to_string();
    assert!(
        msg.contains("random_forest model, expected xgboost"),
        "{msg}"
    );
}

#[test]
fn xgboost_reads_nan_as_missing_others_refuse_it() {
    let (data, _) = synthetic(400, 17);
    let mut row = data.rows[0].clone();
    row[3] = f64::NAN; // p95 unknown
    for kind in ModelKind::ALL {
        let model = train(kind, &data, &fast_params()).unwrap();
        let res = model.predict_proba(&row);
        if kind == ModelKind::Xgboost {
            let p = res.unwrap();
            assert!((0.0..=1.0).contains(&p), "{p}");
        } else {
            let err = res.unwrap_err();
            assert!(matches!(err, ModelError::NonFiniteInput { .. }), "{err:?}");
            assert!(err.to_string().contains("p95_latency_ms"));
        }
        let err = model.predict_proba(&row[..5]).unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::RowLength {
                    expected: 12,
                    found: 5
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn xgboost_trains_on_rows_with_missing_values() {
    let (mut data, _) = synthetic(400, 19);
    for row in data.rows.iter_mut().step_by(7) {
        row[6] = f64::NAN;
    }
    let model = train(ModelKind::Xgboost, &data, &fast_params()).unwrap();
    assert!(accuracy(model.as_ref(), &data) > 0.9);
    let err = train(ModelKind::RandomForest, &data, &fast_params()).unwrap_err();
    assert!(matches!(err, ModelError::InvalidData(_)), "{err:?}");
}

fn full_features() -> Features {
    Features {
        request_rate_rps: Some(30.0),
        error_rate_pct: Some(0.5),
        p50_latency_ms: Some(20.0),
        p95_latency_ms: Some(80.0),
        p99_latency_ms: Some(120.0),
        cpu_usage_pct: Some(90.0),
        memory_usage_mb: Some(300.0),
        delta_rps: Some(0.0),
        delta_p95_latency_ms: Some(-3.0),
        delta_cpu_usage_pct: Some(1.0),
    }
}

#[test]
fn input_row_refuses_missing_features_and_names_them() {
    let names = default_feature_names();
    let mut f = full_features();
    let row = input_row(&f, Some(3), &names).unwrap();
    assert_eq!(row.len(), 12);
    assert_eq!(row[0], 30.0);
    assert_eq!(row[7], 0.0, "a measured 0 stays 0");
    assert_eq!(&row[10..], &[10.0, 30.0]);

    f.p95_latency_ms = None;
    let err = input_row(&f, Some(3), &names).unwrap_err();
    match &err {
        ModelError::MissingFeatures(m) => assert_eq!(m, &vec!["p95_latency_ms".to_string()]),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("p95_latency_ms"));

    f.p95_latency_ms = Some(f64::NAN);
    assert!(matches!(
        input_row(&f, Some(3), &names),
        Err(ModelError::MissingFeatures(_))
    ));

    let f = Features {
        request_rate_rps: None,
        ..full_features()
    };
    let err = input_row(&f, Some(3), &names).unwrap_err();
    let ModelError::MissingFeatures(m) = err else {
        panic!()
    };
    assert_eq!(m, vec!["request_rate_rps", "rps_per_replica"]);

    let err = input_row(&full_features(), None, &names).unwrap_err();
    let ModelError::MissingFeatures(m) = err else {
        panic!()
    };
    assert_eq!(
        m,
        vec!["rps_per_replica", "cpu_per_replica_pct", "replicas"]
    );

    // only contract features: replicas not needed
    let ten = names[..10].to_vec();
    assert_eq!(input_row(&full_features(), None, &ten).unwrap().len(), 10);

    let err = input_row(&full_features(), Some(1), &["bogus".to_string()]).unwrap_err();
    assert!(matches!(err, ModelError::UnknownFeature(n) if n == "bogus"));
}

#[test]
fn input_row_one_fewer_rescales_per_replica_features_only() {
    let names = default_feature_names();
    let f = full_features();
    let now = input_row(&f, Some(3), &names).unwrap();
    let fewer = input_row_one_fewer(&f, Some(3), &names).unwrap();
    assert_eq!(now[10], 10.0);
    assert_eq!(fewer[10], 15.0);
    assert_eq!(now[11], 30.0);
    assert_eq!(fewer[11], 45.0);
    assert_eq!(now[..10], fewer[..10]);
    for r in [None, Some(0), Some(1)] {
        let err = input_row_one_fewer(&f, r, &names).unwrap_err();
        assert!(
            matches!(err, ModelError::NoFewerReplicas { replicas } if replicas == r),
            "{err:?}"
        );
    }
    assert_eq!(input_row_one_fewer(&f, Some(2), &names).unwrap()[10], 30.0);
}

#[test]
fn model_flags_violation_less_often_with_more_replicas() {
    // A sanity check of the scale-down question: the same overload at more replicas looks safer.
    let (data, raw) = synthetic(800, 23);
    let names = default_feature_names();
    let model = train(ModelKind::Xgboost, &data, &fast_params()).unwrap();
    let (f, _) = raw
        .iter()
        .find(|(f, r)| {
            *r == 3
                && f.p95_latency_ms.unwrap() < 150.0
                && (210.0..225.0).contains(&f.cpu_usage_pct.unwrap())
        })
        .expect("a moderately loaded 3-replica row");
    let p3 = model
        .predict_proba(&input_row(f, Some(3), &names).unwrap())
        .unwrap();
    let p2 = model
        .predict_proba(&input_row_one_fewer(f, Some(3), &names).unwrap())
        .unwrap();
    assert!(
        p2 > p3,
        "p(2 replicas) = {p2} should exceed p(3 replicas) = {p3}"
    );
}

proptest! {
    #[test]
    fn one_fewer_divides_totals_by_replicas_minus_one(
        rps in 0.0f64..1e5,
        cpu in 0.0f64..1e4,
        replicas in 2u32..64,
    ) {
        let names = default_feature_names();
        let f = Features { request_rate_rps: Some(rps), cpu_usage_pct: Some(cpu), ..full_features() };
        let row = input_row_one_fewer(&f, Some(replicas), &names).unwrap();
        prop_assert_eq!(row[10], rps / f64::from(replicas - 1));
        prop_assert_eq!(row[11], cpu / f64::from(replicas - 1));
        prop_assert_eq!(row[0], rps);
        prop_assert_eq!(row[5], cpu);
    }
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "autoscaler-models-test-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
