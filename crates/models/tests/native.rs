//! The native engine against the libraries' own prediction (`predict_proba_reference`: the
//! XGBoost C API, smartcore's `predict`): XGBoost within 1e-6 on the Python fixture, on
//! randomised models written as XGBoost JSON and on trained ones, missing values included; the
//! forest and logistic regression exactly. Unsupported XGBoost models are refused at load,
//! naming what is unsupported. The batch and candidate-count APIs agree with one-row
//! prediction.

use std::path::{Path, PathBuf};

use autoscaler_contract::{Features, ModelKind};
use autoscaler_models::native::{NativeModel, RowPlan};
use autoscaler_models::{
    default_feature_names, input_row, load, save, train, Candidate, Dataset, MetadataExtra, Model,
    ModelError, TrainParams,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

const TOLERANCE: f64 = 1e-6;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python_xgboost")
}

fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "autoscaler-native-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn trained(m: &dyn Model) -> &autoscaler_models::TrainedModel {
    m.as_trained().expect("built by this crate")
}

/// Native and reference predictions of every row, and their largest difference.
fn compare(model: &dyn Model, rows: &[Vec<f64>]) -> f64 {
    // The engines before calibration: the library's reference is the uncalibrated output, and
    // a calibrated model (the shipped ones are) maps both the same way afterwards.
    let raw: &dyn Model = trained(model);
    let reference = trained(model).predict_proba_reference(rows).unwrap();
    let native = raw.predict_proba_batch(rows).unwrap();
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let mut into = vec![0.0; rows.len()];
    raw.predict_proba_into(&flat, &mut into).unwrap();
    assert_eq!(native, into, "batch APIs agree");
    native
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn python_fixture_native_matches_python_and_the_c_api() {
    #[derive(serde::Deserialize)]
    struct Expected {
        rows: Vec<Vec<Option<f64>>>,
        predictions: Vec<f64>,
    }
    let e: Expected =
        serde_json::from_slice(&std::fs::read(fixture().join("expected.json")).unwrap()).unwrap();
    let model = load(ModelKind::Xgboost, &fixture()).unwrap();
    let rows: Vec<Vec<f64>> = e
        .rows
        .iter()
        .map(|r| r.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        .collect();
    assert!(rows.iter().flatten().any(|v| v.is_nan()));
    for (row, want) in rows.iter().zip(&e.predictions) {
        let got = trained(model.as_ref()).native().predict_row(row);
        assert!(
            (got - want).abs() <= TOLERANCE,
            "native {got} vs python {want}"
        );
    }
    assert!(compare(model.as_ref(), &rows) <= TOLERANCE);
}

#[test]
fn shipped_models_native_match_their_libraries() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let names = default_feature_names();
    let rows: Vec<Vec<f64>> = (0..2000)
        .map(|_| random_features_row(&mut rng, &names))
        .collect();
    for kind in ModelKind::ALL {
        let model = load(kind, &shipped()).unwrap();
        let diff = compare(model.as_ref(), &rows);
        match kind {
            ModelKind::Xgboost => assert!(diff <= TOLERANCE, "{kind}: {diff}"),
            _ => assert_eq!(diff, 0.0, "{kind} must be exact"),
        }
    }
}

/// A plausible row: realistic ranges, so the shipped models' splits are exercised.
fn random_features_row(rng: &mut ChaCha8Rng, names: &[String]) -> Vec<f64> {
    let replicas: u32 = rng.random_range(1..=8);
    let rps: f64 = rng.random_range(0.0..600.0);
    let cpu: f64 = rng.random_range(0.0..95.0) * f64::from(replicas);
    let p95: f64 = rng.random_range(5.0..600.0);
    let f = Features {
        request_rate_rps: Some(rps),
        error_rate_pct: Some(rng.random_range(0.0..10.0)),
        p50_latency_ms: Some(p95 * rng.random_range(0.2..0.8)),
        p95_latency_ms: Some(p95),
        p99_latency_ms: Some(p95 * rng.random_range(1.0..2.0)),
        cpu_usage_pct: Some(cpu),
        memory_usage_mb: Some(rng.random_range(50.0..2000.0)),
        delta_rps: Some(rng.random_range(-100.0..100.0)),
        delta_p95_latency_ms: Some(rng.random_range(-100.0..100.0)),
        delta_cpu_usage_pct: Some(rng.random_range(-50.0..50.0)),
    };
    input_row(&f, Some(replicas), names).unwrap()
}

// ---- randomised XGBoost models, written as XGBoost JSON and loaded by both engines ----

/// Values splits and rows are drawn from, so rows often land exactly on a threshold (`<` vs
/// `<=` matters) and in every branch.
const GRID: [f32; 9] = [-3.5, -1.0, -0.25, 0.0, 0.5, 1.0, 2.75, 10.0, 1e3];

fn grid_or_random(rng: &mut ChaCha8Rng) -> f32 {
    if rng.random_bool(0.5) {
        GRID[rng.random_range(0..GRID.len())]
    } else {
        rng.random_range(-5.0f32..20.0)
    }
}

/// One random tree in XGBoost's JSON layout (nodes numbered breadth-first as XGBoost does).
fn random_tree(rng: &mut ChaCha8Rng, id: usize, n_features: usize, max_depth: usize) -> Value {
    let mut left = vec![-1i64];
    let mut right = vec![-1i64];
    let mut parents = vec![2147483647i64];
    let mut depth = vec![0usize];
    let mut i = 0;
    while i < left.len() {
        if depth[i] < max_depth && (i == 0 || rng.random_bool(0.7)) {
            let l = left.len() as i64;
            left[i] = l;
            right[i] = l + 1;
            for _ in 0..2 {
                left.push(-1);
                right.push(-1);
                parents.push(i as i64);
                depth.push(depth[i] + 1);
            }
        }
        i += 1;
    }
    let n = left.len();
    let mut cond = Vec::with_capacity(n);
    let mut feat = Vec::with_capacity(n);
    let mut dl = Vec::with_capacity(n);
    for l in &left {
        if *l == -1 {
            cond.push(rng.random_range(-1.0f32..1.0));
            feat.push(0);
            dl.push(0);
        } else {
            cond.push(grid_or_random(rng));
            feat.push(rng.random_range(0..n_features));
            dl.push(i64::from(rng.random_bool(0.5)));
        }
    }
    json!({
        "base_weights": cond.clone(),
        "categories": [], "categories_nodes": [], "categories_segments": [], "categories_sizes": [],
        "default_left": dl,
        "id": id,
        "left_children": left,
        "loss_changes": vec![1.0f32; n],
        "parents": parents,
        "right_children": right,
        "split_conditions": cond,
        "split_indices": feat,
        "split_type": vec![0; n],
        "sum_hessian": vec![10.0f32; n],
        "tree_param": {"num_deleted": "0", "num_feature": n_features.to_string(),
                       "num_nodes": n.to_string(), "size_leaf_vector": "1"}
    })
}

fn random_xgb_json(rng: &mut ChaCha8Rng, names: &[String], trees: usize, depth: usize) -> Value {
    let f = names.len();
    let base_score: f32 = rng.random_range(0.05..0.95);
    json!({
        "learner": {
            "attributes": {},
            "feature_names": names,
            "feature_types": [],
            "gradient_booster": {
                "model": {
                    "cats": {"enc": [], "feature_segments": [], "sorted_idx": []},
                    "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": trees.to_string()},
                    "iteration_indptr": (0..=trees).collect::<Vec<_>>(),
                    "tree_info": vec![0; trees],
                    "trees": (0..trees).map(|t| random_tree(rng, t, f, depth)).collect::<Vec<_>>(),
                },
                "name": "gbtree"
            },
            "learner_model_param": {
                "base_score": format!("[{base_score:E}]"),
                "boost_from_average": "1", "num_class": "0",
                "num_feature": f.to_string(), "num_target": "1"
            },
            "objective": {"name": "binary:logistic", "reg_loss_param": {"scale_pos_weight": "1"}}
        },
        "version": [3, 2, 0]
    })
}

/// Write `model` as `dir/xgboost/model.json` with the fixture's metadata (feature names set).
fn write_xgb(dir: &Path, model: &Value, names: &[String]) {
    let d = dir.join("xgboost");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("model.json"), serde_json::to_vec(model).unwrap()).unwrap();
    let mut meta: Value =
        serde_json::from_slice(&std::fs::read(fixture().join("xgboost/metadata.json")).unwrap())
            .unwrap();
    meta["feature_names"] = json!(names);
    std::fs::write(d.join("metadata.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
}

fn random_rows(rng: &mut ChaCha8Rng, n: usize, f: usize, missing: f64) -> Vec<Vec<f64>> {
    (0..n)
        .map(|_| {
            (0..f)
                .map(|_| {
                    if rng.random_bool(missing) {
                        f64::NAN
                    } else if rng.random_bool(0.6) {
                        f64::from(GRID[rng.random_range(0..GRID.len())])
                    } else {
                        rng.random_range(-5.0..20.0)
                    }
                })
                .collect()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn random_xgboost_models_native_equal_libxgboost(
        seed in any::<u64>(),
        trees in 1usize..40,
        depth in 1usize..9,
        n_features in 1usize..13,
        missing in 0.0f64..0.4,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let names: Vec<String> = default_feature_names().into_iter().take(n_features).collect();
        let json = random_xgb_json(&mut rng, &names, trees, depth);
        let dir = tempdir("prop");
        write_xgb(&dir, &json, &names);
        let model = load(ModelKind::Xgboost, &dir).unwrap();
        let rows = random_rows(&mut rng, 300, n_features, missing);
        let diff = compare(model.as_ref(), &rows);
        prop_assert!(diff <= TOLERANCE, "largest difference {}", diff);
        std::fs::remove_dir_all(&dir).ok();
    }
}

// ---- trained models ----

fn synthetic(rng: &mut ChaCha8Rng, n: usize, missing: f64) -> Dataset {
    let names = default_feature_names();
    let mut rows = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let mut row = random_features_row(rng, &names);
        // p95 (index 3) or CPU per replica (index 11) decide, with noise.
        labels.push(row[3] + rng.random_range(-80.0..80.0) > 300.0 || row[11] > 80.0);
        for v in &mut row {
            if rng.random_bool(missing) {
                *v = f64::NAN;
            }
        }
        rows.push(row);
    }
    Dataset {
        feature_names: names,
        rows,
        labels,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]

    #[test]
    fn trained_models_native_equal_their_libraries(
        // XGBoost takes a seed that fits an i64.
        seed in 0u64..1_000_000,
        depth in 2u32..8,
        forest_depth in proptest::option::of(2u16..10),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let params = TrainParams {
            seed,
            xgb_rounds: 20,
            xgb_max_depth: depth,
            rf_trees: 12,
            rf_max_depth: forest_depth,
            ..TrainParams::default()
        };
        let with_nan = synthetic(&mut rng, 800, 0.1);
        let complete = synthetic(&mut rng, 800, 0.0);
        let rows_nan = synthetic(&mut rng, 400, 0.15).rows;
        let rows = synthetic(&mut rng, 400, 0.0).rows;
        let xgb = train(ModelKind::Xgboost, &with_nan, &params).unwrap();
        prop_assert!(compare(xgb.as_ref(), &rows_nan) <= TOLERANCE);
        for kind in [ModelKind::RandomForest, ModelKind::LogisticRegression] {
            let m = train(kind, &complete, &params).unwrap();
            prop_assert_eq!(compare(m.as_ref(), &rows), 0.0, "{} exact", kind);
        }
    }
}

#[test]
fn saved_and_reloaded_models_keep_native_predictions() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let data = synthetic(&mut rng, 600, 0.0);
    let dir = tempdir("reload");
    let extra = MetadataExtra {
        horizon: 1,
        sla_p95_ms: 300.0,
        created_at: "2024-01-01T00:00:00Z".into(),
        threshold: None,
        scores: json!({}),
        imputation: None,
        training_data: Value::Null,
    };
    let params = TrainParams {
        rf_trees: 10,
        xgb_rounds: 10,
        ..TrainParams::default()
    };
    for kind in ModelKind::ALL {
        let m = train(kind, &data, &params).unwrap();
        save(m.as_ref(), &dir, &extra).unwrap();
        let back = load(kind, &dir).unwrap();
        assert_eq!(
            m.predict_proba_batch(&data.rows).unwrap(),
            back.predict_proba_batch(&data.rows).unwrap(),
            "{kind}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

// ---- candidate counts ----

#[test]
fn candidate_counts_equal_rows_built_at_each_count() {
    let names = default_feature_names();
    // Near the shipped models' training data (rps ~ 18 ± 10, CPU ~ 108 ± 62 in total).
    let base = Features {
        request_rate_rps: Some(30.0),
        error_rate_pct: Some(0.2),
        p50_latency_ms: Some(150.0),
        p95_latency_ms: Some(400.0),
        p99_latency_ms: Some(550.0),
        cpu_usage_pct: Some(110.0),
        memory_usage_mb: Some(400.0),
        delta_rps: Some(0.5),
        delta_p95_latency_ms: Some(4.0),
        delta_cpu_usage_pct: Some(1.0),
    };
    let candidates: Vec<Candidate> = (1..=12)
        .map(|r| {
            if r % 2 == 0 {
                Candidate::at(r)
            } else {
                Candidate::projected(r, 1200.0 / f64::from(r), Some(100.0 + f64::from(r)))
            }
        })
        .collect();
    for kind in ModelKind::ALL {
        let model = load(kind, &shipped()).unwrap();
        let mut out = vec![0.0; candidates.len()];
        model
            .predict_proba_at_counts(&base, &candidates, &mut out)
            .unwrap();
        let mut varied = false;
        for (c, got) in candidates.iter().zip(&out) {
            let f = Features {
                p95_latency_ms: c.projected.p95_latency_ms.or(base.p95_latency_ms),
                cpu_usage_pct: c.projected.cpu_usage_pct.or(base.cpu_usage_pct),
                ..base.clone()
            };
            let row = input_row(&f, Some(c.replicas), &names).unwrap();
            assert_eq!(
                *got,
                model.predict_proba(&row).unwrap(),
                "{kind} at {}",
                c.replicas
            );
            varied |= *got != out[0];
        }
        assert!(varied, "{kind}: the counts change the prediction: {out:?}");
    }
}

#[test]
fn candidate_counts_with_a_missing_feature_fail_naming_it() {
    let model = load(ModelKind::RandomForest, &shipped()).unwrap();
    let base = Features {
        request_rate_rps: Some(1.0),
        ..Features::default()
    };
    let mut out = [0.0; 2];
    let e = model
        .predict_proba_at_counts(&base, &[Candidate::at(1), Candidate::at(2)], &mut out)
        .unwrap_err();
    assert!(
        matches!(&e, ModelError::MissingFeatures(m) if m.contains(&"p95_latency_ms".to_string())),
        "{e}"
    );
    assert_eq!(out, [0.0; 2], "nothing written on error");
    let e = model
        .predict_proba_at_counts(&base, &[Candidate::at(1)], &mut out)
        .unwrap_err();
    assert!(e.to_string().contains("output slots"), "{e}");
}

#[test]
fn row_plan_refuses_unknown_features() {
    let e = RowPlan::new(&["p95_latency_ms".into(), "bogus".into()]).unwrap_err();
    assert!(matches!(e, ModelError::UnknownFeature(n) if n == "bogus"));
}

// ---- unsupported models ----

fn fixture_json() -> Value {
    serde_json::from_slice(&std::fs::read(fixture().join("xgboost/model.json")).unwrap()).unwrap()
}

fn refused(edit: impl FnOnce(&mut Value)) -> String {
    let mut j = fixture_json();
    edit(&mut j);
    let bytes = serde_json::to_vec(&j).unwrap();
    match NativeModel::from_json(ModelKind::Xgboost, &bytes, Path::new("model.json")) {
        Err(e @ ModelError::Unsupported { .. }) => e.to_string(),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn unsupported_xgboost_models_are_refused_naming_what() {
    let e = refused(|j| j["learner"]["objective"]["name"] = json!("reg:squarederror"));
    assert!(e.contains("objective `reg:squarederror`"), "{e}");
    let e = refused(|j| j["learner"]["gradient_booster"]["name"] = json!("dart"));
    assert!(e.contains("booster `dart`"), "{e}");
    let e = refused(|j| {
        j["learner"]["gradient_booster"]["model"]["trees"][3]["split_type"][0] = json!(1)
    });
    assert!(e.contains("tree 3: categorical splits"), "{e}");
    let e = refused(|j| j["learner"]["feature_types"] = json!(["float", "c", "float", "float"]));
    assert!(e.contains("categorical"), "{e}");
    let e = refused(|j| j["learner"]["learner_model_param"]["num_class"] = json!("3"));
    assert!(e.contains("num_class `3`"), "{e}");
    let e = refused(|j| {
        j["learner"]["gradient_booster"]["model"]["trees"][0]["tree_param"]["size_leaf_vector"] =
            json!("2")
    });
    assert!(e.contains("vector leaves"), "{e}");
    // …and through `load`, as the inference service loads models.
    let dir = tempdir("unsupported");
    let mut j = fixture_json();
    j["learner"]["gradient_booster"]["name"] = json!("gblinear");
    let names: Vec<String> = serde_json::from_value(j["learner"]["feature_names"].clone()).unwrap();
    write_xgb(&dir, &j, &names);
    let e = load(ModelKind::Xgboost, &dir).unwrap_err();
    assert!(e.to_string().contains("booster `gblinear`"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn malformed_trees_are_bad_artefacts() {
    let mut j = fixture_json();
    j["learner"]["gradient_booster"]["model"]["trees"][0]["left_children"][0] = json!(0);
    let bytes = serde_json::to_vec(&j).unwrap();
    let e = NativeModel::from_json(ModelKind::Xgboost, &bytes, Path::new("m.json")).unwrap_err();
    assert!(
        matches!(e, ModelError::BadArtefact { .. }) && e.to_string().contains("tree 0"),
        "{e}"
    );
    let mut j = fixture_json();
    j["learner"]["gradient_booster"]["model"]["trees"][1]["split_indices"][0] = json!(9);
    let bytes = serde_json::to_vec(&j).unwrap();
    let e = NativeModel::from_json(ModelKind::Xgboost, &bytes, Path::new("m.json")).unwrap_err();
    assert!(e.to_string().contains("feature 9"), "{e}");
}
