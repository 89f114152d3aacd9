#!/usr/bin/env python3
"""Run one Locust load experiment headless and summarise it.

    python3 load-testing/run_experiment.py --pattern spike --duration 10 \\
        --host http://127.0.0.1:8081 --peak-users 50

Runs `locust --headless` on load-testing/locustfile.py with the pattern's LoadTestShape
(shapes.py), writes Locust's CSV stats under `--csv-prefix` (default
output/locust/<pattern>-<UTC time>) and `<prefix>_summary.json` (requests, failures, rps,
p50/p95 from Locust's stats). Prints the summary's path as its last line. Exits with Locust's
exit code when it is non-zero (Locust returns 1 when any request failed), or 1 when Locust wrote
no stats. Needs only the standard library: Locust runs from the interpreter given by
`--locust-python`, else this one if it has Locust, else scripts/locust-venv.sh's venv.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.util
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import shapes  # noqa: E402

USER_CLASS = {"demo": "DemoServiceUser", "sockshop": "SockShopUser"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pattern", choices=shapes.PATTERNS, help="load shape (see load-testing/README.md)")
    p.add_argument("--duration", type=float, required=True, help="minutes, fractional allowed (0.1 = 6 s)")
    p.add_argument("--host", required=True, help="base URL, e.g. http://127.0.0.1:8081")
    p.add_argument("--peak-users", type=int, default=10, help="users at the pattern's peak (default 10)")
    p.add_argument("--spawn-rate", type=float, help="users started/stopped per second (default: peak users)")
    p.add_argument(
        "--users-file",
        help="CSV `t_seconds,users` (each level held until the next row) instead of --pattern",
    )
    p.add_argument("--csv-prefix", help="default output/locust/<pattern>-<UTC time> under the repository")
    p.add_argument("--target", choices=sorted(USER_CLASS), default="demo", help="user class (default demo)")
    p.add_argument("--locust-python", help="python with Locust installed (default: see above)")
    p.add_argument("--verbose", action="store_true", help="Locust's periodic stats table, not just the summary")
    p.add_argument(
        "--timeout-slack",
        type=float,
        default=60.0,
        help="kill Locust this many seconds after the planned end (default 60)",
    )
    args = p.parse_args(argv)
    if bool(args.pattern) == bool(args.users_file):
        p.error("give exactly one of --pattern and --users-file")
    if not args.host.startswith(("http://", "https://")):
        p.error(f"--host must be a URL like http://127.0.0.1:8081, got {args.host!r}")
    if not args.duration > 0:
        p.error("--duration must be > 0 minutes")
    if args.peak_users < 1:
        p.error("--peak-users must be >= 1")
    if args.spawn_rate is not None and not args.spawn_rate > 0:
        p.error("--spawn-rate must be > 0")
    if args.users_file:
        try:
            shapes.load_profile(args.users_file)
        except (OSError, ValueError) as e:
            p.error(f"--users-file: {e}")
    return args


def locust_python(explicit) -> str:
    if explicit:
        return explicit
    if importlib.util.find_spec("locust") is not None:
        return sys.executable
    out = subprocess.run(
        [os.path.join(REPO, "scripts", "locust-venv.sh")], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return out.strip().splitlines()[-1]


def _num(value, digits=None):
    """A Locust CSV cell as a number, optionally rounded (None for N/A or empty)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x):
        return None
    return x if digits is None else round(x, digits)


def summarise(prefix: str) -> dict:
    """requests, failures, rps, p50/p95 (ms) from Locust's `<prefix>_stats.csv`, per endpoint too."""
    with open(prefix + "_stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    total = next((r for r in rows if r.get("Name") == "Aggregated"), None)
    if total is None:
        raise ValueError(f"{prefix}_stats.csv has no Aggregated row")

    def row_summary(r: dict) -> dict:
        return {
            "requests": int(_num(r["Request Count"]) or 0),
            "failures": int(_num(r["Failure Count"]) or 0),
            "rps": _num(r["Requests/s"], 3),
            "p50_ms": _num(r.get("50%")),
            "p95_ms": _num(r.get("95%")),
            "avg_ms": _num(r.get("Average Response Time"), 1),
            "max_ms": _num(r.get("Max Response Time"), 1),
        }

    summary = row_summary(total)
    summary["endpoints"] = {f'{r["Type"]} {r["Name"]}': row_summary(r) for r in rows if r is not total}
    users = []
    try:
        with open(prefix + "_stats_history.csv", newline="") as f:
            users = [int(_num(r.get("User Count")) or 0) for r in csv.DictReader(f)]
    except OSError:
        pass
    summary["max_users"] = max(users, default=0)
    try:
        with open(prefix + "_failures.csv", newline="") as f:
            summary["top_failures"] = [
                {"method": r["Method"], "name": r["Name"], "error": r["Error"], "occurrences": int(r["Occurrences"])}
                for r in sorted(csv.DictReader(f), key=lambda r: -int(r["Occurrences"]))[:5]
            ]
    except (OSError, KeyError, ValueError):
        summary["top_failures"] = []
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    duration_s = args.duration * 60.0
    label = args.pattern or "profile"
    prefix = args.csv_prefix or os.path.join(
        REPO, "output", "locust", f"{label}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}"
    )
    prefix = os.path.abspath(prefix)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    python = locust_python(args.locust_python)

    env = dict(os.environ)
    env.update(LOCUST_TARGET=args.target, LOCUST_DURATION_S=repr(duration_s))
    for stale in ("LOCUST_PATTERN", "LOCUST_USERS_FILE", "LOCUST_PEAK_USERS", "LOCUST_SHAPE_SPAWN_RATE"):
        env.pop(stale, None)
    if args.users_file:
        env["LOCUST_USERS_FILE"] = os.path.abspath(args.users_file)
    else:
        env.update(LOCUST_PATTERN=args.pattern, LOCUST_PEAK_USERS=str(args.peak_users))
    if args.spawn_rate:
        env["LOCUST_SHAPE_SPAWN_RATE"] = repr(args.spawn_rate)
    cmd = [
        python, "-m", "locust",
        "-f", os.path.join(HERE, "locustfile.py"),
        "--headless",
        "--host", args.host,
        "--csv", prefix,
        "--exit-code-on-error", "1",
        "--loglevel", "INFO",
    ]  # fmt: skip
    if not args.verbose:
        cmd.append("--only-summary")
    cmd.append(USER_CLASS[args.target])

    print(
        f"run_experiment: {label} for {duration_s:g} s against {args.host} "
        f"(target {args.target}, {f'peak {args.peak_users} users' if args.pattern else args.users_file}); "
        f"output {prefix}_*",
        file=sys.stderr,
    )
    started = time.monotonic()
    try:
        # Locust's stdout (its stats tables) goes to our stderr: our stdout is the summary's path.
        rc = subprocess.run(cmd, env=env, stdout=sys.stderr, timeout=duration_s + args.timeout_slack).returncode
        timed_out = False
    except subprocess.TimeoutExpired:
        print(f"run_experiment: Locust still running {args.timeout_slack:g} s after the planned end; killed", file=sys.stderr)
        rc, timed_out = 1, True
    wall_s = time.monotonic() - started

    try:
        stats = summarise(prefix)
    except (OSError, ValueError, KeyError) as e:
        print(f"run_experiment: no Locust stats ({e}); Locust exit code {rc}", file=sys.stderr)
        return rc or 1

    summary = {
        "pattern": args.pattern,
        "users_file": os.path.abspath(args.users_file) if args.users_file else None,
        "target": args.target,
        "host": args.host,
        "duration_s": duration_s,
        "peak_users": args.peak_users if args.pattern else None,
        "wall_s": round(wall_s, 2),
        "locust_exit_code": rc,
        "timed_out": timed_out,
        "csv_prefix": prefix,
        **stats,
    }
    path = prefix + "_summary.json"
    with open(path, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    fmt = lambda x, spec: "n/a" if x is None else format(x, spec)  # noqa: E731
    print(
        f"run_experiment: {summary['requests']} requests, {summary['failures']} failures, "
        f"{fmt(summary['rps'], '.1f')} rps, p50 {fmt(summary['p50_ms'], '.0f')} ms, "
        f"p95 {fmt(summary['p95_ms'], '.0f')} ms, max {summary['max_users']} users, "
        f"{wall_s:.1f} s; Locust exit code {rc}",
        file=sys.stderr,
    )
    print(path)
    return rc


if __name__ == "__main__":
    sys.exit(main())
