"""Locust users for the autoscaler's load experiments.

Two targets, one class each:

* `DemoServiceUser` (`LOCUST_TARGET=demo`): `autoscaler demo-service` — weighted GETs on `/`,
  `/catalogue`, `/cart`, `/orders`. `LOCUST_WORK_MS=N` adds `?work_ms=N` (per-request CPU work).
* `SockShopUser` (`LOCUST_TARGET=sockshop`): Sock Shop's front-end, following its own load test
  (microservices-demo/load-test): log in as `user:password`, browse `/`, `/catalogue`,
  `/category.html`, `/detail.html?id=...`, `/basket.html`, add to `/cart`, view and place
  `/orders`.

Choosing: `LOCUST_TARGET=demo|sockshop` exposes only that class. Without it, both classes are
exposed when Locust is asked to choose (`--class-picker` in the web UI, or a class name on the
command line: `locust -f locustfile.py SockShopUser`); otherwise only `DemoServiceUser`, so two
targets never share one `--host` by accident. `LOCUST_TARGET=all` exposes both regardless.

Think time: `LOCUST_WAIT_MIN` / `LOCUST_WAIT_MAX` seconds (default 1 and 2), uniform.

Load shape: when `LOCUST_PATTERN=ramp|constant|spike|step` (with `LOCUST_DURATION_S`,
`LOCUST_PEAK_USERS`, optional `LOCUST_SHAPE_SPAWN_RATE`) or `LOCUST_USERS_FILE` is set, a
`LoadTestShape` drives the user count from `shapes.py` and stops the test at the end; the
names avoid Locust's own `LOCUST_USERS` / `LOCUST_SPAWN_RATE`. `run_experiment.py` sets them.
"""

from __future__ import annotations

import os
import random
import sys
from urllib.parse import urlencode

from locust import FastHttpUser, LoadTestShape, between, task

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes  # noqa: E402  (pure functions, no Locust import)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"locustfile: {name}={raw!r} is not a number")
    if value < 0:
        raise SystemExit(f"locustfile: {name}={raw!r} must be >= 0")
    return value


WAIT_MIN = _env_float("LOCUST_WAIT_MIN", 1.0)
WAIT_MAX = _env_float("LOCUST_WAIT_MAX", max(2.0, WAIT_MIN))
if WAIT_MAX < WAIT_MIN:
    raise SystemExit(f"locustfile: LOCUST_WAIT_MAX ({WAIT_MAX}) < LOCUST_WAIT_MIN ({WAIT_MIN})")

# per-request CPU work for the demo service (`?work_ms=N`); None = the service's default
WORK_MS = int(_env_float("LOCUST_WORK_MS", 0)) if os.environ.get("LOCUST_WORK_MS", "").strip() else None

TARGET = os.environ.get("LOCUST_TARGET", "").strip().lower()
if TARGET not in ("", "demo", "sockshop", "all"):
    raise SystemExit(f"locustfile: LOCUST_TARGET={TARGET!r}; expected demo, sockshop or all")


class DemoServiceUser(FastHttpUser):
    """`autoscaler demo-service`: mostly browsing, some cart, few orders."""

    wait_time = between(WAIT_MIN, WAIT_MAX)

    query = "?" + urlencode({"work_ms": WORK_MS}) if WORK_MS is not None else ""

    def _get(self, path: str) -> None:
        self.client.get(path + self.query, name=path)

    @task(4)
    def catalogue(self) -> None:
        self._get("/catalogue")

    @task(3)
    def home(self) -> None:
        self._get("/")

    @task(2)
    def cart(self) -> None:
        self._get("/cart")

    @task(1)
    def orders(self) -> None:
        self._get("/orders")


# Sock Shop's seeded catalogue, used until `/catalogue` answers with JSON.
SOCKSHOP_ITEMS = [
    "03fef6ac-1896-4ce8-bd69-b798f85c6e0b",
    "3395a43e-2d88-40de-b95f-e00e1502085b",
    "510a0d7e-8e83-4193-b483-e27e09ddc34d",
    "808a2de1-1aaa-4c25-a9b9-6612e8f29a38",
    "819e1fbf-8b7e-4f6d-811f-693534916a8b",
    "837ab141-399e-4c1f-9abc-bace40296bac",
    "a0a4f044-b040-410d-8ead-4de0446aec7e",
    "d3588630-ad8e-49df-bbd7-3167f7efb246",
    "zzz4f044-b040-410d-8ead-4de0446aec7e",
]


class SockShopUser(FastHttpUser):
    """Sock Shop's front-end (`front-end` service, port 8079 or the edge router's 80).

    `LOCUST_SOCKSHOP_USER` / `LOCUST_SOCKSHOP_PASSWORD` (default Sock Shop's seeded
    `user` / `password`); `LOCUST_SOCKSHOP_LOGIN=0` browses anonymously (no orders then).
    """

    wait_time = between(WAIT_MIN, WAIT_MAX)

    def on_start(self) -> None:
        self.items = list(SOCKSHOP_ITEMS)
        self.logged_in = os.environ.get("LOCUST_SOCKSHOP_LOGIN", "1").strip() != "0"
        if self.logged_in:
            user = os.environ.get("LOCUST_SOCKSHOP_USER", "user")
            password = os.environ.get("LOCUST_SOCKSHOP_PASSWORD", "password")
            self.client.get("/login", auth=(user, password), name="/login")
        self.catalogue()

    @task(2)
    def home(self) -> None:
        self.client.get("/", name="/")

    @task(2)
    def catalogue(self) -> None:
        with self.client.get("/catalogue", name="/catalogue", catch_response=True) as resp:
            if resp.status_code == 200:
                try:
                    ids = [item["id"] for item in resp.json() if "id" in item]
                except (ValueError, TypeError, AttributeError):
                    ids = []
                if ids:
                    self.items = ids

    @task(3)
    def category(self) -> None:
        self.client.get("/category.html", name="/category.html")

    @task(3)
    def detail(self) -> None:
        item = random.choice(self.items)
        self.client.get("/detail.html?" + urlencode({"id": item}), name="/detail.html?id=[id]")

    @task(2)
    def basket(self) -> None:
        self.client.get("/basket.html", name="/basket.html")
        self.client.get("/cart", name="/cart")

    @task(2)
    def add_to_cart(self) -> None:
        self.client.post("/cart", json={"id": random.choice(self.items), "quantity": 1}, name="/cart")

    @task(1)
    def orders(self) -> None:
        if self.logged_in:
            self.client.get("/orders", name="/orders")

    @task(1)
    def checkout(self) -> None:
        if not self.logged_in:
            return
        self.client.delete("/cart", name="/cart")
        self.client.post("/cart", json={"id": random.choice(self.items), "quantity": 1}, name="/cart")
        self.client.get("/basket.html", name="/basket.html")
        self.client.post("/orders", name="/orders")


_USER_CLASSES = {"demo": DemoServiceUser, "sockshop": SockShopUser}


def _locust_will_choose() -> bool:
    """Whether Locust is told which class to use (class picker, or class names on the command line)."""
    if "--class-picker" in sys.argv:
        return True
    if os.environ.get("LOCUST_USERCLASS_PICKER", "").strip().lower() in ("1", "true", "yes"):
        return True
    names = {cls.__name__ for cls in _USER_CLASSES.values()}
    return bool(names & set(sys.argv[1:] + os.environ.get("LOCUST_USER_CLASSES", "").split()))


if TARGET in _USER_CLASSES:
    _exposed = {TARGET}
elif TARGET == "all" or _locust_will_choose():
    _exposed = set(_USER_CLASSES)
else:
    _exposed = {"demo"}
for _name in _USER_CLASSES:
    _USER_CLASSES[_name].abstract = _name not in _exposed  # Locust skips abstract User classes
del _name  # (a User class left in a module-level name would be picked up by Locust)


# ---- load shape (only when asked for) ---------------------------------------------------------

PATTERN = os.environ.get("LOCUST_PATTERN", "").strip().lower()
USERS_FILE = os.environ.get("LOCUST_USERS_FILE", "").strip()

if PATTERN or USERS_FILE:
    _DURATION_S = _env_float("LOCUST_DURATION_S", 0.0)
    if not _DURATION_S > 0:
        raise SystemExit("locustfile: LOCUST_PATTERN/LOCUST_USERS_FILE need LOCUST_DURATION_S > 0")
    if USERS_FILE:
        _PROFILE = shapes.load_profile(USERS_FILE)
        _PEAK = max(1, max(users for _, users in _PROFILE))

        def _users(t: float):
            return shapes.users_from_profile(t, _PROFILE, _DURATION_S)

    else:
        if PATTERN not in shapes.PATTERNS:
            raise SystemExit(f"locustfile: LOCUST_PATTERN={PATTERN!r}; expected {'|'.join(shapes.PATTERNS)}")
        _PEAK = int(_env_float("LOCUST_PEAK_USERS", 10))

        def _users(t: float):
            return shapes.users_at(t, PATTERN, _DURATION_S, _PEAK)

    _users(0.0)  # validate the parameters now, not in the first tick
    _SPAWN_RATE = _env_float("LOCUST_SHAPE_SPAWN_RATE", 0.0) or float(_PEAK)

    class PatternShape(LoadTestShape):
        """The experiment's user count over time (see shapes.py); None ends the test."""

        def tick(self):
            users = _users(self.get_run_time())
            return None if users is None else (users, _SPAWN_RATE)
