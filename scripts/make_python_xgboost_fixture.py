"""Train a small XGBoost classifier with Python's xgboost, save it as JSON, and record inputs and
Python's predictions, for the Rust interchange test (crates/models/tests/python_interchange.rs).

Usage: make_python_xgboost_fixture.py OUT_DIR   (run by scripts/make-python-xgboost-fixture.sh)
"""
import json
import os
import sys

import numpy as np
import xgboost as xgb

FEATURES = ["request_rate_rps", "p95_latency_ms", "cpu_usage_pct", "delta_rps"]


def data(rng, n):
    rps = rng.uniform(0, 400, n)
    p95 = 40 + 0.6 * rps + rng.normal(0, 30, n)
    cpu = 0.5 * rps + rng.normal(0, 10, n)
    delta = rng.normal(0, 20, n)
    x = np.column_stack([rps, p95, cpu, delta]).astype(np.float32)
    y = ((p95 + 2 * delta > 220) | (cpu > 170)).astype(np.int32)
    # About 8 % missing values, as NaN (XGBoost's missing value).
    mask = rng.random(x.shape) < 0.08
    x[mask] = np.nan
    return x, y


def main(out):
    rng = np.random.default_rng(20240611)
    x_train, y_train = data(rng, 600)
    x_test, _ = data(rng, 80)
    # A binary classifier through the native API (objective binary:logistic: the output is
    # P(class 1)), as XGBClassifier would train it, without needing scikit-learn.
    params = {
        "objective": "binary:logistic",
        "max_depth": 3,
        "eta": 0.3,
        "tree_method": "hist",
        "seed": 0,
        "nthread": 1,
    }
    dtrain = xgb.DMatrix(x_train, label=y_train, missing=np.nan, feature_names=FEATURES)
    booster = xgb.train(params, dtrain, num_boost_round=25)
    model_dir = os.path.join(out, "xgboost")
    os.makedirs(model_dir, exist_ok=True)
    booster.save_model(os.path.join(model_dir, "model.json"))
    # Predict with the model as saved (reloaded), on float32 inputs as the Rust side feeds them.
    reloaded = xgb.Booster()
    reloaded.load_model(os.path.join(model_dir, "model.json"))
    p = reloaded.predict(xgb.DMatrix(x_test, missing=np.nan, feature_names=FEATURES))
    assert np.allclose(p, booster.predict(xgb.DMatrix(x_test, feature_names=FEATURES)), atol=1e-7)
    metadata = {
        "format_version": 1,
        "model_kind": "xgboost",
        "version": "xgboost-python",
        "feature_names": FEATURES,
        "preprocessing": {"kind": "none"},
        "threshold": 0.5,
        "horizon": 2,
        "sla_p95_ms": 220.0,
        "training_fingerprint": "python-fixture",
        "train_rows": int(len(y_train)),
        "positive_rows": int(y_train.sum()),
        "scores": {},
        "created_at": "2025-01-01T00:00:00Z",
        "hyper_parameters": dict(params, num_boost_round=25),
        "library": "python xgboost " + xgb.__version__,
    }
    with open(os.path.join(model_dir, "metadata.json"), "w") as f:
        json.dump(metadata, f, indent=2)
        f.write("\n")
    rows = [[None if np.isnan(v) else float(v) for v in row] for row in x_test]
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(
            {
                "xgboost_version": xgb.__version__,
                "feature_names": FEATURES,
                "rows": rows,
                "predictions": [float(v) for v in p],
            },
            f,
            indent=1,
        )
        f.write("\n")
    print(f"wrote {model_dir} and expected.json ({len(rows)} rows), xgboost {xgb.__version__}")


if __name__ == "__main__":
    main(sys.argv[1])
