#!/usr/bin/env python3
"""statsmodels' SARIMAX on a series, for crates/forecast/tests/statsmodels.rs.

Usage: sarimax_reference.py SERIES.csv ORDERS
  SERIES.csv: header `y,<regressor names...>`; the regressors (exogenous inputs and Fourier
              terms) are passed as `exog`.
  ORDERS:     `p,d,q;p,d,q;...`
Fits each order with trend 'c' when d == 0 ('n' otherwise), simple_differencing=True (the
likelihood of the differenced series, as the Rust fit), and prints JSON:
{"statsmodels": version, "fits": [{"order": [p,d,q], "aic", "llf", "nobs", "params": {name: value}}]}
"""
import json
import sys
import warnings

import numpy as np
import pandas as pd
import statsmodels
from statsmodels.tsa.statespace.sarimax import SARIMAX


def main():
    df = pd.read_csv(sys.argv[1])
    y = df["y"].to_numpy(dtype=float)
    exog = df.drop(columns=["y"])
    exog = exog if exog.shape[1] > 0 else None
    fits = []
    for spec in sys.argv[2].split(";"):
        p, d, q = (int(v) for v in spec.split(","))
        model = SARIMAX(
            y,
            exog=exog,
            order=(p, d, q),
            trend="c" if d == 0 else "n",
            simple_differencing=True,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = model.fit(disp=False, maxiter=1000)
        fits.append(
            {
                "order": [p, d, q],
                "aic": float(res.aic),
                "llf": float(res.llf),
                "nobs": int(res.nobs),
                "params": {k: float(v) for k, v in zip(model.param_names, np.asarray(res.params))},
            }
        )
    print(json.dumps({"statsmodels": statsmodels.__version__, "fits": fits}))


if __name__ == "__main__":
    main()
