"""Pipeline SLIs counted in the warehouse, the status history, and the burn-rate alert rules
firing and resolving; on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import insert, select

from timbel_dagster.notify.alerting import AlertEvaluator
from timbel_dagster.notify.rule_store import builtin_rules
from timbel_dagster.slo.counts import Counts, warehouse_counts
from timbel_dagster.slo.spec import parse_slos
from timbel_dagster.slo.status import evaluate, latest, status_of, store, windows_of
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import Pipeline, PipelineExecution
from timbel_dagster.warehouse.schema.notify import Alert, AlertEvent
from timbel_dagster.warehouse.schema.slo import SloStatus

T = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)
M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)

# (pipeline, status, completed before T (None: not finished), duration seconds)
EXECUTIONS = [
    ("payments-api/main", "success", 2 * M, 600),
    ("payments-api/main", "success", 3 * M, None),  # no duration: not a duration event
    ("payments-api/main", "failed", 20 * M, 120),
    ("payments-api/main", "success", 1 * H, 1200),  # on the 1 h boundary: in 2 h, not in 1 h
    ("payments-api/main", "aborted", 3 * H, 300),
    ("payments-api/main", "running", None, None),  # not finished: not an event
    ("payments-api/main", "success", 10 * D, 800),
    ("payments-api/main", "success", -1 * M, 10),  # after T
    ("payments-api/main", "success", 40 * D, 10),  # before the 30-day window
    ("payments-api/nightly", "failed", 10 * M, 50),
    ("ledger/main", "failed", 1 * M, 5),  # another service
]
SERVICE_OF = {"payments-api/main": "payments-api", "payments-api/nightly": "payments-api"}

SLOS = """\
slos:
  - service: payments-api
    name: success
    objective: 90
    sli: {kind: pipeline_success}
  - service: payments-api
    name: main-success
    objective: 90
    sli: {kind: pipeline_success, pipelines: [payments-api/main]}
  - service: payments-api
    name: duration
    objective: 80
    sli: {kind: pipeline_duration, threshold: 15m}
  - service: quiet-service
    name: success
    objective: 99
    sli: {kind: pipeline_success}
"""


def _seed(engine: Any) -> None:
    ids = {name: uuid.uuid4() for name in {e[0] for e in EXECUTIONS}}
    with engine.begin() as connection:
        connection.execute(
            insert(Pipeline),
            [
                {
                    "id": pid,
                    "source": "test",
                    "ci_system": "jenkins",
                    "name": name,
                    "service": SERVICE_OF.get(name, "ledger"),
                }
                for name, pid in ids.items()
            ],
        )
        connection.execute(
            insert(PipelineExecution),
            [
                {
                    "id": uuid.uuid4(),
                    "source": "test",
                    "pipeline_id": ids[name],
                    "external_id": str(n),
                    "status": status,
                    "completed_at": None if before is None else T - before,
                    "duration": duration,
                }
                for n, (name, status, before, duration) in enumerate(EXECUTIONS)
            ],
        )


@pytest.fixture
def engine(warehouse_url: str) -> Any:
    engine = get_engine(warehouse_url)
    _seed(engine)
    return engine


def _counted(engine: Any, slo: Any) -> dict[str, tuple[float, float]]:
    with engine.connect() as connection:
        found = warehouse_counts(connection, slo, windows_of(slo), T)
    return {label: (c.good, c.total) for label, c in found.items()}


def test_pipeline_success_counts_finished_executions_per_window(engine: Any) -> None:
    success, main_only, _, _ = parse_slos(SLOS, "slos.yaml")
    assert _counted(engine, success) == {
        "5m": (2, 2),
        "30m": (2, 4),  # + the failed main build and the failed nightly one
        "1h": (2, 4),  # the build completed exactly 1 h before is not in the last hour
        "2h": (3, 5),
        "6h": (3, 6),  # + the aborted one
        "1d": (3, 6),
        "3d": (3, 6),
        "slo": (4, 7),  # + 10 days ago; 40 days ago and after T are out
    }
    # Only the pipelines the SLO names.
    assert _counted(engine, main_only)["30m"] == (2, 3)
    assert _counted(engine, main_only)["slo"] == (4, 6)


def test_pipeline_duration_counts_executions_under_the_threshold(engine: Any) -> None:
    duration = parse_slos(SLOS, "slos.yaml")[2]
    counted = _counted(engine, duration)
    assert counted["5m"] == (1, 1)  # the one without a duration is no event
    assert counted["30m"] == (3, 3)
    assert counted["2h"] == (3, 4)  # 1,200 s is over 15 minutes
    assert counted["6h"] == (4, 5)
    assert counted["slo"] == (5, 6)


def test_statuses_are_stored_as_history_and_read_back(engine: Any) -> None:
    slos = parse_slos(SLOS, "slos.yaml")
    statuses = evaluate(slos, engine, None, T)
    by_key = {s.key: s for s in statuses}
    success = by_key["payments-api/success"]
    assert success.sli == pytest.approx(4 / 7)
    # 90 % of 7 allows 0.7 bad; 3 bad spent the budget 3/0.7 times.
    assert success.budget_remaining == pytest.approx(1 - 3 / 0.7)
    assert success.burn["5m"] == 0.0
    assert success.burn["30m"] == pytest.approx(5.0)  # 50 % errors against 10 %
    assert success.burn["6h"] == pytest.approx(5.0)
    # 5x over 30 m and 6 h is under the page's 6x; 5x over 1 d and 2 h is over the ticket's 3x.
    assert success.alert == "ticket"
    quiet = by_key["quiet-service/success"]
    assert (quiet.sli, quiet.budget_remaining, quiet.alert) == (None, None, None)
    assert set(quiet.burn.values()) == {None}

    with engine.begin() as connection:
        assert store(connection, statuses).written == 4
    with engine.begin() as connection:
        assert store(connection, statuses).written == 0  # the same evaluation again
    later = evaluate(slos, engine, None, T + 5 * M)
    with engine.begin() as connection:
        store(connection, later)
    with engine.connect() as connection:
        assert connection.execute(select(SloStatus.id)).all().__len__() == 8
        newest = latest(connection)
        at_t = latest(connection, at=T)
    assert [s.key for s in newest] == sorted(s.key for s in statuses)
    assert {s.evaluated_at for s in newest} == {T + 5 * M}
    assert {s.evaluated_at for s in at_t} == {T}
    assert {s.key: s for s in at_t}["payments-api/success"] == success


def _status(at: dt.datetime, fast: float, slow: float, objective_percent: float = 99.9):
    """A status whose 5 m and 1 h windows burn at `fast` and whose 2 h and 1 d windows burn
    at `slow` (other windows without traffic)."""
    [slo] = parse_slos(
        "slos:\n  - service: checkout\n    name: availability\n"
        f"    objective: {objective_percent}\n    sli: {{kind: pipeline_success}}\n",
        "s.yaml",
    )
    allowed = 1 - slo.objective

    def counts(rate: float) -> Counts:
        return Counts(good=100_000 * (1 - rate * allowed), total=100_000)

    per_window = dict.fromkeys(windows_of(slo), Counts(0, 0)) | {
        "5m": counts(fast),
        "1h": counts(fast),
        "2h": counts(slow),
        "1d": counts(slow),
        "slo": counts(1.0),
    }
    return status_of(slo, per_window, at)


def _tick(engine: Any, at: dt.datetime) -> list[tuple[str, str, float | None]]:
    rules = [r for r in builtin_rules() if r.fact == "slo_burn_rate"]
    report = AlertEvaluator(engine).tick(rules, at)
    assert report.errors == {}
    return [(t.state.rule, t.kind, t.state.value) for t in report.transitions]


def test_burn_rate_rules_fire_and_resolve(engine: Any) -> None:
    with engine.begin() as connection:
        store(connection, [_status(T, fast=20.0, slow=4.0)])
    # 20x over 1 h and 5 m pages; 4x over 1 d and 2 h opens a ticket.
    fired = _tick(engine, T)
    assert sorted((rule, kind) for rule, kind, _ in fired) == [
        ("slo-fast-burn", "fired"),
        ("slo-slow-burn", "fired"),
    ]
    assert {rule: value for rule, _, value in fired} == {
        "slo-fast-burn": pytest.approx(20.0),
        "slo-slow-burn": pytest.approx(4.0),
    }
    with engine.connect() as connection:
        labels = connection.execute(select(Alert.labels).where(Alert.rule == "slo-fast-burn"))
        assert labels.scalar_one() == {
            "service": "checkout",
            "slo": "availability",
            "slo_window": "30d",
        }
    # Nothing new: nothing changes.
    assert _tick(engine, T + M) == []
    # The burn stopped: the 5-minute window is back under 14.4x, the page resolves; the slow
    # burn goes on, so the ticket stays.
    with engine.begin() as connection:
        store(connection, [_status(T + 5 * M, fast=0.5, slow=4.0)])
    assert [(r, k) for r, k, _ in _tick(engine, T + 5 * M)] == [("slo-fast-burn", "resolved")]
    with engine.begin() as connection:
        store(connection, [_status(T + 10 * M, fast=0.5, slow=1.0)])
    assert [(r, k) for r, k, _ in _tick(engine, T + 10 * M)] == [("slo-slow-burn", "resolved")]
    with engine.connect() as connection:
        kinds = connection.execute(select(AlertEvent.rule, AlertEvent.kind)).all()
    assert len(kinds) == 4


def test_a_status_older_than_max_age_raises_no_alert(engine: Any) -> None:
    with engine.begin() as connection:
        store(connection, [_status(T, fast=20.0, slow=4.0)])
    assert _tick(engine, T + 31 * M) == []
