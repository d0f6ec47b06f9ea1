"""Cost and noise of alert evaluation.

Figures:

1. One `AlertEvaluator.tick` of 500 PromQL rules over 10,000 series in a real Prometheus
   (Debian's, history loaded by promtool), with the alert state in SQLite and in PostgreSQL:
   the first tick (every alert new) and the next one a minute later (alerts already stored),
   against the same 500 queries run one after the other with plain `requests` and nothing
   else (no state machine, no warehouse), measured in the same run. Target: at most 5 s.
2. Notifications, counted by a loopback Slack receiver behind a real `Dispatcher`, while the
   evaluator ticks once a minute over a warehouse fact whose rows change between ticks: 1,000
   healthy windows send none; a metric flapping across its threshold every window for six
   hours sends at most one per re-notify interval (1 h), against notifying on every change
   of the condition. The pure state machine (`alert_state.step`) is checked the same way
   over many flapping patterns and rule settings.

Exits non-zero when a target is missed.
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks import alert_series
from benchmarks.common import report, scratch_postgres

TICK_TARGET_SECONDS = 5.0
MINUTE = dt.timedelta(minutes=1)
RENOTIFY = dt.timedelta(hours=1)
HEALTHY_WINDOWS = 1000
FLAPPING_WINDOWS = 6 * 60
FACT_RULE = """\
rules:
  - name: namespace-cpu-near-quota
    severity: critical
    fact: namespace_cpu_quota_ratio
    threshold: "> 0.9"
    renotify: 1h
    summary: "{{ labels.namespace }} in {{ labels.cluster }} at {{ (value * 100) | round }} %"
"""
HOUR = dt.datetime(2026, 11, 2, 0, tzinfo=dt.UTC)  # the stored usage hour
QUOTA_CORES = 4.0
HEALTHY_NAMESPACES = [f"quiet-{n}" for n in range(10)]
FLAPPING_NAMESPACE = "flappy"


def count(name: str, value: int, unit: str, note: str = "") -> None:
    """A whole-number figure, in `name: value unit (note)` form."""
    print(f"{name}: {value:,} {unit}{f' ({note})' if note else ''}", flush=True)


def max_in_window(times: list[dt.datetime], window: dt.timedelta) -> int:
    """The most of `times` (sorted) inside any half-open interval of length `window`."""
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def changes(pattern: list[bool], start: dt.datetime) -> list[dt.datetime]:
    """When the condition changed: what notifying on every change would send."""
    previous = False
    found = []
    for index, holds in enumerate(pattern):
        if holds != previous:
            found.append(start + index * MINUTE)
        previous = holds
    return found


# -- 1. One tick of 500 rules over 10,000 series ---------------------------------------------


def sequential_queries(url: str, exprs: list[str], at: dt.datetime) -> tuple[float, int]:
    """The baseline: each query once, one after the other, answers parsed and nothing more."""
    import requests

    with requests.Session() as session:
        started = time.perf_counter()
        series = 0
        for expr in exprs:
            response = session.get(
                f"{url}/api/v1/query", params={"query": expr, "time": at.timestamp()}, timeout=30
            )
            response.raise_for_status()
            series += len(response.json()["data"]["result"])
        return time.perf_counter() - started, series


def _events(engine: Any) -> int:
    from sqlalchemy import func, select

    from timbel_dagster.warehouse.schema.notify import AlertEvent

    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(AlertEvent)).scalar_one()


def rule_ticks(prometheus_url: str, warehouses: dict[str, str]) -> list[str]:
    """Run and print figure 1; returns the targets missed.

    Per backend, side by side: the sequential queries, the evaluator's `observe` alone (its
    queries on its thread pool, parsed and fingerprinted), the two ticks, the sequential
    queries again."""
    from timbel_dagster.notify.alerting import AlertEvaluator, TickReport
    from timbel_dagster.notify.rules import parse_rules
    from timbel_dagster.resources.prometheus import PrometheusClient
    from timbel_dagster.warehouse.engine import get_engine

    rules = parse_rules(alert_series.rules_yaml(), "bench.yaml")
    exprs = [r.expr for r in rules if r.expr]
    first_at, second_at = alert_series.END - MINUTE, alert_series.END
    _, series = sequential_queries(prometheus_url, exprs, first_at)  # warms Prometheus' caches
    baselines: list[float] = []
    observes: list[float] = []
    ticks: dict[tuple[str, int], float] = {}
    shapes: dict[tuple[str, int], tuple[int, int]] = {}  # (active series, transitions)
    missed = []
    for backend, url in warehouses.items():
        engine = get_engine(url)
        evaluator = AlertEvaluator(engine, PrometheusClient(url=prometheus_url), dispatcher=None)
        baselines.append(sequential_queries(prometheus_url, exprs, first_at)[0])
        started = time.perf_counter()
        evaluator.observe(rules, first_at, TickReport(at=first_at))
        observes.append(time.perf_counter() - started)
        written = 0
        for number, at in ((1, first_at), (2, second_at)):
            started = time.perf_counter()
            result = evaluator.tick(rules, at)
            ticks[backend, number] = time.perf_counter() - started
            if result.errors:
                missed.append(f"{backend} tick {number}: rule errors {result.errors}")
            events = _events(engine)
            shapes[backend, number] = (result.series, events - written)
            written = events
        baselines.append(sequential_queries(prometheus_url, exprs, second_at)[0])
    baseline = statistics.median(baselines)
    report(
        "rules_sequential_queries_500x10000",
        baseline,
        f"s (median of {len(baselines)}; {len(exprs)} queries, {series:,} series returned)",
    )
    observe = statistics.median(observes)
    report(
        "rules_observe_only_500x10000",
        observe,
        f"s (median of {len(observes)}; the queries on the evaluator's thread pool)",
        observe / baseline,
        "sequential queries",
    )
    for (backend, number), seconds in ticks.items():
        name = f"rules_tick_500x10000_{backend}_{'first' if number == 1 else 'second'}"
        report(name, seconds, "s", seconds / baseline, "sequential queries")
        if seconds > TICK_TARGET_SECONDS:
            missed.append(f"{name}: {seconds:.2f} s > {TICK_TARGET_SECONDS:g} s")
    for number, label in ((1, "first"), (2, "second")):
        found = {shape for (_, n), shape in shapes.items() if n == number}
        if len(found) != 1:
            missed.append(f"tick {number}: the backends disagree: {sorted(found)}")
        active, transitions = max(found)
        count(f"rules_tick_active_series_{label}", active, "series")
        count(f"rules_tick_transitions_{label}", transitions, "transitions", "alert_events rows")
    slowest = max(ticks.values())
    print(
        f"target: <= {TICK_TARGET_SECONDS:g} s per tick (slowest {slowest:.2f} s: "
        f"{'met' if slowest <= TICK_TARGET_SECONDS else 'MISSED'})",
        flush=True,
    )
    return missed


# -- 2. Notifications: healthy windows and a flapping metric ---------------------------------


class Receiver:
    """A Slack webhook stand-in on loopback: counts the POSTs it answers with 200 `ok`."""

    def __init__(self) -> None:
        receiver = self
        self.posts = 0
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.posts += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/services/T0/B0/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


def _seed_warehouse(engine: Any) -> None:
    """A subscribed user, and one usage row per namespace in the hour the fact reads."""
    from sqlalchemy import insert

    from timbel_dagster.notify.subscriptions import subscribe
    from timbel_dagster.warehouse.schema.cluster import NamespaceUsage
    from timbel_dagster.warehouse.schema.ids import stable_id
    from timbel_dagster.warehouse.schema.models import User

    with engine.begin() as connection:
        connection.execute(
            insert(User),
            {
                "id": stable_id("users", "bench"),
                "source": "bench",
                "name": "bench",
                "display_name": "Bench Mark",
                "email": "bench@example.com",
                "role": "developer",
                "team": "platform",
                "slack_id": "U0BENCH",
            },
        )
        connection.execute(
            insert(NamespaceUsage),
            [
                {
                    "id": stable_id("namespace_usage", "bench", namespace),
                    "source": "bench",
                    "cluster": "c00",
                    "hour": HOUR,
                    "namespace": namespace,
                    "tenant": "bench",
                    "pods": 10,
                    "cpu_used_cores": 1.0,
                    "cpu_used_cores_max": 0.5 * QUOTA_CORES,
                    "cpu_requested_cores": 2.0,
                    "cpu_quota_cores": QUOTA_CORES,
                    "memory_used_bytes": 1e9,
                    "memory_requested_bytes": 2e9,
                    "storage_bytes": 0.0,
                }
                for namespace in [*HEALTHY_NAMESPACES, FLAPPING_NAMESPACE]
            ],
        )
    subscribe(engine, "bench", "slack", event="alert")


def _set_ratios(engine: Any, ratios: dict[str, float]) -> None:
    from sqlalchemy import bindparam, update

    from timbel_dagster.warehouse.schema.cluster import NamespaceUsage

    usage = NamespaceUsage.__table__
    with engine.begin() as connection:
        connection.execute(
            update(usage)
            .where(usage.c.namespace == bindparam("ns"))
            .values(cpu_used_cores_max=bindparam("peak")),
            [{"ns": ns, "peak": ratio * QUOTA_CORES} for ns, ratio in ratios.items()],
        )


def evaluator_windows(url: str, receiver: Receiver) -> dict[str, Any]:
    """Tick the evaluator once a minute over the fact: healthy windows, then flapping ones.
    Returns the notices' times per phase, as the receiver counted them."""
    from timbel_dagster.notify.alerting import AlertEvaluator
    from timbel_dagster.notify.dispatch import Dispatcher
    from timbel_dagster.notify.facts import FACTS
    from timbel_dagster.notify.rules import parse_rules
    from timbel_dagster.notify.slack import SlackWebhook
    from timbel_dagster.warehouse.engine import get_engine

    engine = get_engine(url)
    _seed_warehouse(engine)
    rules = parse_rules(FACT_RULE, "bench.yaml", set(FACTS))
    now = [HOUR + MINUTE]
    dispatcher = Dispatcher(
        engine, {"slack": SlackWebhook(receiver.url, timeout_seconds=5)}, clock=lambda: now[0]
    )
    evaluator = AlertEvaluator(engine, None, dispatcher)
    rng = random.Random(7)
    found: dict[str, Any] = {"errors": {}}

    def window(ratios: dict[str, float]) -> int:
        _set_ratios(engine, ratios)
        before = receiver.posts
        result = evaluator.tick(rules, now[0])
        found["errors"].update(result.errors)
        return receiver.posts - before

    healthy: list[dt.datetime] = []
    started = time.perf_counter()
    for _ in range(HEALTHY_WINDOWS):  # close to the threshold, never over it
        posted = window({ns: rng.uniform(0.6, 0.9) for ns in HEALTHY_NAMESPACES})
        healthy += [now[0]] * posted
        now[0] += MINUTE
    found["healthy"] = healthy
    found["healthy_tick_seconds"] = (time.perf_counter() - started) / HEALTHY_WINDOWS
    flapping: list[dt.datetime] = []
    pattern = [index % 2 == 0 for index in range(FLAPPING_WINDOWS)]
    found["flapping_start"] = now[0]
    for holds in pattern:
        ratios = {ns: rng.uniform(0.6, 0.9) for ns in HEALTHY_NAMESPACES}
        ratios[FLAPPING_NAMESPACE] = 0.95 if holds else 0.85
        flapping += [now[0]] * window(ratios)
        now[0] += MINUTE
    found["flapping"] = flapping
    found["flapping_pattern"] = pattern
    found["sent_rows"] = _sent_rows(engine)
    return found


def _sent_rows(engine: Any) -> int:
    from sqlalchemy import func, select

    from timbel_dagster.warehouse.schema.notify import Notification

    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(Notification).where(Notification.status == "sent")
        ).scalar_one()


def machine_notices(rule: Any, pattern: list[bool], start: dt.datetime) -> list[dt.datetime]:
    """When the pure state machine notifies, one step per window of `pattern`."""
    from timbel_dagster.notify.alert_state import step

    state, sent = None, []
    for index, holds in enumerate(pattern):
        at = start + index * MINUTE
        state, transition = step(state, rule, {"namespace": "x"}, 0.95 if holds else None, at)
        if transition is not None and transition.notify:
            sent.append(at)
    return sent


def state_machine() -> dict[str, int]:
    """The pure state machine over healthy windows and many flapping patterns and settings."""
    from timbel_dagster.notify.rules import parse_rules

    rng = random.Random(11)
    patterns = [[index % (2 * p) < p for index in range(FLAPPING_WINDOWS)] for p in range(1, 31)]
    patterns += [[rng.random() < 0.5 for _ in range(FLAPPING_WINDOWS)] for _ in range(50)]
    healthy, worst, naive_worst, total, naive_total, variants = 0, 0, 0, 0, 0, 0
    for wait in ("0s", "2m"):
        for keep in ("0s", "5m"):
            (rule,) = parse_rules(
                f"rules:\n  - name: m\n    expr: up\n    for: {wait}\n"
                f"    keep_firing_for: {keep}\n    renotify: 1h\n",
                "machine.yaml",
            )
            healthy += len(machine_notices(rule, [False] * HEALTHY_WINDOWS, HOUR))
            for pattern in patterns:
                variants += 1
                sent = machine_notices(rule, pattern, HOUR)
                naive = changes(pattern, HOUR)
                worst = max(worst, max_in_window(sent, RENOTIFY))
                naive_worst = max(naive_worst, max_in_window(naive, RENOTIFY))
                total += len(sent)
                naive_total += len(naive)
    return {
        "healthy": healthy,
        "worst": worst,
        "naive_worst": naive_worst,
        "total": total,
        "naive_total": naive_total,
        "variants": variants,
    }


def notifications(warehouses: dict[str, str]) -> list[str]:
    """Run and print figure 2; returns the targets missed."""
    missed = []
    machine = state_machine()
    count(
        "state_machine_healthy_windows_notifications",
        machine["healthy"],
        "count",
        f"{HEALTHY_WINDOWS} windows x 4 rule settings; target 0",
    )
    if machine["healthy"]:
        missed.append(f"state machine: {machine['healthy']} notices in healthy windows")
    count(
        "state_machine_flapping_notifications_per_debounce_window_max",
        machine["worst"],
        "count",
        f"{machine['worst'] / machine['naive_worst']:.2f}x vs notify-on-every-change: "
        f"{machine['naive_worst']}; {machine['variants']} patterns x settings; target <= 1",
    )
    count(
        "state_machine_flapping_notifications_total",
        machine["total"],
        "count",
        f"{machine['total'] / machine['naive_total']:.2f}x vs notify-on-every-change: "
        f"{machine['naive_total']:,}",
    )
    if machine["worst"] > 1 or not machine["total"]:  # none at all: nothing was measured
        missed.append(f"state machine: {machine['worst']} notices in one re-notify interval")
    with Receiver().running() as receiver:
        for backend, url in warehouses.items():
            before = receiver.posts
            found = evaluator_windows(url, receiver)
            if found["errors"]:
                missed.append(f"{backend}: rule errors {found['errors']}")
            healthy, flapping = found["healthy"], found["flapping"]
            naive = changes(found["flapping_pattern"], found["flapping_start"])
            worst, naive_worst = max_in_window(flapping, RENOTIFY), max_in_window(naive, RENOTIFY)
            count(
                f"healthy_windows_notifications_{backend}",
                len(healthy),
                "count",
                f"{HEALTHY_WINDOWS} windows x {len(HEALTHY_NAMESPACES)} namespaces; target 0",
            )
            count(
                f"flapping_notifications_per_debounce_window_max_{backend}",
                worst,
                "count",
                f"{worst / naive_worst:.2f}x vs notify-on-every-change: {naive_worst}; target <= 1",
            )
            count(
                f"flapping_notifications_total_{backend}",
                len(flapping),
                "count",
                f"{len(flapping) / len(naive):.2f}x vs notify-on-every-change: {len(naive)}; "
                f"{FLAPPING_WINDOWS // 60} h of 1-minute windows, re-notify 1 h",
            )
            report(
                f"fact_rule_tick_{backend}",
                found["healthy_tick_seconds"] * 1000,
                "ms (mean over the healthy windows)",
            )
            if healthy:
                missed.append(f"{backend}: {len(healthy)} notices in healthy windows")
            if worst > 1 or not flapping:  # none at all: the notices never got through
                missed.append(f"{backend}: {worst} notices in one re-notify interval")
            if found["sent_rows"] != receiver.posts - before:
                missed.append(
                    f"{backend}: {found['sent_rows']} notifications rows sent, "
                    f"{receiver.posts - before} posts received"
                )
    return missed


def main() -> int:
    from tests.services.prometheus import running_prometheus
    from timbel_dagster.warehouse import migrate

    missed = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp,
        scratch_postgres() as postgres_ticks,
        scratch_postgres() as postgres_windows,
    ):
        work = Path(tmp)
        ticks = {"sqlite": f"sqlite:///{work / 'ticks.db'}", "postgresql": postgres_ticks}
        windows = {"sqlite": f"sqlite:///{work / 'windows.db'}", "postgresql": postgres_windows}
        for url in [*ticks.values(), *windows.values()]:
            migrate.upgrade(url)
        with running_prometheus(work, alert_series.write_history) as prometheus_url:
            (work / "history.om").unlink()  # 350 MB, loaded into the TSDB already
            missed += rule_ticks(prometheus_url, ticks)
        missed += notifications(windows)
    for line in missed:
        print(f"MISSED: {line}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
