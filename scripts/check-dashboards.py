#!/usr/bin/env python3
"""Check every Grafana panel query in deploy/grafana/dashboards against a running Prometheus.

Debian has no Grafana, so the dashboards are checked where their data comes from: each panel
target's PromQL is evaluated (variables replaced: a multi-value `$var` by `.+`, Grafana's
interval variables by 1m) and must return at least one finite sample. Prints one line per
query; exits 1 if any query fails or returns nothing.

    scripts/check-dashboards.py [--prometheus http://127.0.0.1:9090] [DASHBOARD.json ...]
"""
import argparse
import glob
import json
import math
import re
import sys
import urllib.parse
import urllib.request


def queries(path):
    with open(path) as f:
        d = json.load(f)
    for p in d.get("panels", []):
        for t in p.get("targets", []):
            if t.get("expr"):
                yield d["title"], p["title"], t["refId"], t["expr"]


def substitute(expr):
    expr = re.sub(r"\$__(rate_)?interval|\$__range", "1m", expr)
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".+", expr)


def evaluate(prom, expr):
    url = prom.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(body.get("error", "query failed"))
    res = body["data"]["result"]
    values = []
    for s in res if isinstance(res, list) else []:
        v = s.get("value", [None, "NaN"])[1]
        try:
            values.append(float(v))
        except ValueError:
            pass
    return [v for v in values if math.isfinite(v)], len(res)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090")
    ap.add_argument("dashboards", nargs="*")
    a = ap.parse_args()
    files = a.dashboards or sorted(glob.glob("deploy/grafana/dashboards/*.json"))
    failed = 0
    total = 0
    for path in files:
        for dash, panel, ref, expr in queries(path):
            total += 1
            q = substitute(expr)
            try:
                finite, series = evaluate(a.prometheus, q)
                ok = bool(finite)
                what = f"{series} series, {len(finite)} finite" if ok else f"no data ({series} series, none finite)"
            except Exception as e:  # a failed query is a failed check, with the reason
                ok, what = False, f"error: {e}"
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {dash} / {panel} [{ref}]: {what}")
            if not ok:
                print(f"     {q}")
    print(f"check-dashboards: {total - failed} of {total} panel queries return data")
    return 1 if failed or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
