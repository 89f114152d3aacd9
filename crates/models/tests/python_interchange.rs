//! An XGBoost classifier trained and saved as JSON by Python's xgboost loads here and predicts
//! within 1e-6 of Python's own predictions (missing values included).
//!
//! The fixture (`tests/fixtures/python_xgboost/`) is made by
//! `scripts/make-python-xgboost-fixture.sh` (Python xgboost 3.2.0 from PyPI, in a venv outside
//! the repository) and committed.

use std::path::PathBuf;

use autoscaler_contract::ModelKind;
use autoscaler_models::{load, load_expecting, ModelError};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python_xgboost")
}

#[derive(serde::Deserialize)]
struct Expected {
    feature_names: Vec<String>,
    rows: Vec<Vec<Option<f64>>>,
    predictions: Vec<f64>,
}

fn expected() -> Expected {
    let bytes = std::fs::read(fixture().join("expected.json")).expect("fixture present");
    serde_json::from_slice(&bytes).expect("fixture parses")
}

#[test]
fn python_xgboost_model_predicts_like_python() {
    let e = expected();
    let model = load(ModelKind::Xgboost, &fixture()).expect("the Python model loads");
    assert_eq!(model.feature_names(), e.feature_names.as_slice());
    let rows: Vec<Vec<f64>> = e
        .rows
        .iter()
        .map(|r| r.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        .collect();
    assert!(
        rows.iter().flatten().any(|v| v.is_nan()),
        "the fixture exercises missing values"
    );
    let batch = model.predict_proba_batch(&rows).expect("predicts");
    assert_eq!(batch.len(), e.predictions.len());
    for (i, (row, (got, want))) in rows
        .iter()
        .zip(batch.iter().zip(&e.predictions))
        .enumerate()
    {
        assert!(
            (got - want).abs() <= 1e-6,
            "row {i}: rust {got} vs python {want}"
        );
        let one = model.predict_proba(row).expect("predicts one row");
        assert!((one - want).abs() <= 1e-6, "row {i} alone: {one} vs {want}");
    }
    // Not a constant model: the comparison means something.
    let spread = e
        .predictions
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max)
        - e.predictions.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(spread > 0.5, "predictions span {spread}");
}

#[test]
fn python_model_is_refused_for_other_features() {
    let mut names = expected().feature_names;
    names.swap(0, 1);
    let err = load_expecting(ModelKind::Xgboost, &fixture(), &names).unwrap_err();
    assert!(matches!(err, ModelError::FeatureMismatch { .. }), "{err}");
    assert!(err.to_string().contains("feature list mismatch"), "{err}");
}
