"""The Python side of `autoscaler bench-models` (scripts/bench-models.sh): the same model files
predicted by Python's xgboost and scikit-learn, one row at a time and in batches of 1,000.

Usage: bench_models.py MANIFEST RESULTS   (MANIFEST written by the Rust side; see
crates/models/src/native/bench.rs)

Each model is first checked to predict what the native engine predicted on every row (XGBoost
within 1e-6, the forest exactly, logistic regression within 1e-9: its coefficients are folded
with the standardisation); a mismatch stops the run. Then each case is timed as the Rust side
times it: calls cycle through the distinct rows, each timed pass lasts at least
`seconds_per_case`, the median of five passes is reported in microseconds per row.

The models, converted:
* xgboost: the model.json itself, `Booster.inplace_predict` (the fastest single-row call), one
  thread;
* random forest: a scikit-learn RandomForestClassifier whose trees are this crate's trees
  (`Tree.__setstate__` with the exported node arrays; a leaf is one-hot on its class, so
  `predict_proba` averages the trees' votes exactly as the crate does). The rows are `f32`
  numbers, so scikit-learn's `f32` comparison takes smartcore's `f64` branches;
* logistic regression: a scikit-learn LogisticRegression with coef = c / std and
  intercept = b - sum(c * mean / std).
"""
import json
import statistics
import sys
import time

import numpy as np

REPEATS = 5
BATCH = 1000


def load_xgboost(path):
    import xgboost as xgb

    booster = xgb.Booster(model_file=path)
    booster.set_param({"nthread": 1})
    return (lambda x: booster.inplace_predict(x)), "xgboost Booster.inplace_predict"


def load_forest(path):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.tree._tree import NODE_DTYPE, Tree

    with open(path) as f:
        flat = json.load(f)
    n_features = flat["n_features"]
    classes = np.array([0, 1])
    estimators = []
    for t in flat["trees"]:
        n = len(t["left"])
        nodes = np.zeros(n, dtype=NODE_DTYPE)
        values = np.zeros((n, 1, 2), dtype=np.float64)
        depth = np.zeros(n, dtype=np.int64)
        for i in range(n):
            leaf = t["left"][i] < 0
            nodes[i]["left_child"] = -1 if leaf else t["left"][i]
            nodes[i]["right_child"] = -1 if leaf else t["right"][i]
            nodes[i]["feature"] = -2 if leaf else t["feature"][i]
            thr = t["threshold"][i]
            # JSON has no NaN: a split without a value (smartcore: always false) is null.
            nodes[i]["threshold"] = -2.0 if leaf else (np.nan if thr is None else thr)
            nodes[i]["n_node_samples"] = 1
            nodes[i]["weighted_n_node_samples"] = 1.0
            if "missing_go_to_left" in NODE_DTYPE.names:
                nodes[i]["missing_go_to_left"] = 0
            if leaf:
                values[i, 0, int(t["value"][i] > 0.5)] = 1.0
            else:
                for c in (t["left"][i], t["right"][i]):
                    depth[c] = depth[i] + 1
        tree = Tree(n_features, np.array([2], dtype=np.intp), 1)
        tree.__setstate__(
            {"max_depth": int(depth.max()), "node_count": n, "nodes": nodes, "values": values}
        )
        dt = DecisionTreeClassifier()
        dt.tree_ = tree
        dt.n_outputs_ = 1
        dt.n_classes_ = 2
        dt.classes_ = classes
        dt.n_features_in_ = n_features
        dt.max_features_ = n_features
        estimators.append(dt)
    rf = RandomForestClassifier(n_estimators=len(estimators))
    rf.estimators_ = estimators
    rf.estimator_ = DecisionTreeClassifier()
    rf.n_outputs_ = 1
    rf.n_classes_ = 2
    rf.classes_ = classes
    rf.n_features_in_ = n_features
    return (lambda x: rf.predict_proba(x)[:, 1]), "scikit-learn RandomForestClassifier.predict_proba"


def load_logistic(path):
    from sklearn.linear_model import LogisticRegression

    with open(path) as f:
        m = json.load(f)
    c = np.array(m["coefficients"])
    mean = np.array(m["means"])
    std = np.array(m["stds"])
    lr = LogisticRegression()
    lr.coef_ = (c / std)[None, :]
    lr.intercept_ = np.array([m["intercept"] - float(np.sum(c * mean / std))])
    lr.classes_ = np.array([0, 1])
    lr.n_features_in_ = len(c)
    return (lambda x: lr.predict_proba(x)[:, 1]), "scikit-learn LogisticRegression.predict_proba"


LOADERS = {
    "xgboost": (load_xgboost, 1e-6),
    "random_forest": (load_forest, 0.0),
    "logistic_regression": (load_logistic, 1e-9),
}


def time_case(predict, x, batch, seconds):
    n = x.shape[0] // batch
    chunks = [x[k * batch:(k + 1) * batch] for k in range(n)]
    state = {"k": 0}

    def run(calls):
        k = state["k"]
        start = time.perf_counter()
        for _ in range(calls):
            predict(chunks[k])
            k += 1
            if k == n:
                k = 0
        elapsed = time.perf_counter() - start
        state["k"] = k
        return elapsed

    # Calibrate the calls per pass (at least one call, at least `seconds`).
    calls = 1
    while True:
        t = run(calls)
        if t >= seconds:
            break
        calls = max(calls * 2, int(calls * seconds / max(t, 1e-9) * 1.1))
    samples = sorted(run(calls) * 1e6 / (calls * batch) for _ in range(REPEATS))
    return statistics.median(samples)


def main(manifest_path, results_path):
    with open(manifest_path) as f:
        manifest = json.load(f)
    x = np.fromfile(manifest["rows_file"], dtype="<f8").reshape(manifest["rows"], manifest["n_features"])
    seconds = manifest["seconds_per_case"]
    results = []
    for m in manifest["models"]:
        loader, tolerance = LOADERS[m["kind"]]
        predict, call = loader(m["file"])
        native = np.fromfile(m["native_file"], dtype="<f8")
        got = np.concatenate([predict(x[k:k + BATCH]) for k in range(0, x.shape[0], BATCH)])
        diff = float(np.max(np.abs(got.astype(np.float64) - native)))
        if not diff <= tolerance:
            sys.exit(f"bench_models.py: {m['kind']} ({m['label']}) differs from native by {diff} > {tolerance}")
        for batch in (1, BATCH):
            us = time_case(predict, x, batch, seconds)
            print(f"bench_models.py: {m['kind']} {m['trees']} trees batch {batch}: {us:.3f} µs/row", file=sys.stderr)
            results.append(
                {"kind": m["kind"], "trees": m["trees"], "batch": batch, "us_per_row": us,
                 "max_abs_diff": diff, "call": call}
            )
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
