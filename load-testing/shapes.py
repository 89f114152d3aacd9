"""Load patterns for the Locust experiments, as pure functions of time (no Locust import).

`users_at(t_seconds, pattern, duration_s, peak)` is the number of users the experiment wants at
`t_seconds` after the start, or None once the experiment is over (t >= duration_s). Every value
is between 1 and `peak`. The locustfile wraps it in a `LoadTestShape` when `LOCUST_PATTERN` is
set; `run_experiment.py` sets it.

    ramp      linear from 0 to peak over the duration (at least 1 user)
    constant  peak throughout
    spike     base = 20 % of peak, peak in the middle fifth [0.4, 0.6) of the duration
    step      4 equal steps: peak/4, peak/2, 3 peak/4, peak, one per quarter
"""

from __future__ import annotations

import csv
import math
from typing import Optional, Sequence, Tuple

PATTERNS = ("ramp", "constant", "spike", "step")
SPIKE_BASE_FRACTION = 0.2
SPIKE_START, SPIKE_END = 0.4, 0.6  # the middle fifth of the duration
STEPS = 4


def _check(duration_s: float, peak: int) -> None:
    if not duration_s > 0:
        raise ValueError(f"duration must be > 0 s, got {duration_s}")
    if int(peak) != peak or peak < 1:
        raise ValueError(f"peak must be an integer >= 1, got {peak}")


def spike_base(peak: int) -> int:
    """The spike pattern's base level: about 20 % of peak, at least 1 user."""
    return max(1, round(SPIKE_BASE_FRACTION * peak))


def users_at(t_seconds: float, pattern: str, duration_s: float, peak: int) -> Optional[int]:
    """Users wanted at `t_seconds` into an experiment of `duration_s` seconds, or None when over."""
    _check(duration_s, peak)
    peak = int(peak)
    t = max(0.0, float(t_seconds))
    if t >= duration_s:
        return None
    frac = t / duration_s  # in [0, 1)
    if pattern == "ramp":
        users = math.ceil(peak * frac)
    elif pattern == "constant":
        users = peak
    elif pattern == "spike":
        users = peak if SPIKE_START <= frac < SPIKE_END else spike_base(peak)
    elif pattern == "step":
        step = min(STEPS, int(frac * STEPS) + 1)  # 1..4
        users = math.ceil(peak * step / STEPS)
    else:
        raise ValueError(f"unknown pattern {pattern!r}; expected one of {', '.join(PATTERNS)}")
    return max(1, min(peak, users))


# A custom profile (`run_experiment.py --users-file`): rows `t_seconds,users`, each level held
# until the next row's time; the experiment ends at `duration_s`.
Profile = Sequence[Tuple[float, int]]


def load_profile(path: str) -> list:
    """Read a `t_seconds,users` CSV (a header row and `#` comments are allowed), sorted by time."""
    rows = []
    with open(path, newline="") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                continue
            try:
                t, users = float(row[0]), int(float(row[1]))
            except (ValueError, IndexError):
                if not rows and line_no == 1:
                    continue  # header
                raise ValueError(f"{path}:{line_no}: expected `t_seconds,users`, got {row!r}")
            if t < 0 or users < 0:
                raise ValueError(f"{path}:{line_no}: negative time or users in {row!r}")
            rows.append((t, users))
    if not rows:
        raise ValueError(f"{path}: no `t_seconds,users` rows")
    rows.sort()
    return rows


def users_from_profile(t_seconds: float, profile: Profile, duration_s: float) -> Optional[int]:
    """Users wanted at `t_seconds` for a step-wise profile (at least 1), or None when over."""
    if not duration_s > 0:
        raise ValueError(f"duration must be > 0 s, got {duration_s}")
    t = max(0.0, float(t_seconds))
    if t >= duration_s:
        return None
    users = profile[0][1]
    for start, level in profile:
        if start > t:
            break
        users = level
    return max(1, int(users))
