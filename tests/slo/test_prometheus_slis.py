"""Availability and latency SLIs against a real Prometheus (Debian's binary, history loaded
with promtool), and the slo/slo_status asset storing what they give.

The history: checkout serves 1,000 requests a minute for four days. 1 a minute fail, then
10 a minute over the 5 hours before the last hour, then 20 a minute in the last hour; 990 of
each 1,000 finish within 0.3 s. Every counter starts at 0 on the first sample and the
evaluation time is a sample's, so `increase` is exact over every window (no extrapolation)
and the expected figures are plain arithmetic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import select

from tests.conftest import missing_service
from tests.services.prometheus import running_prometheus
from timbel_dagster.assets.slo.status import slo_status
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.prometheus import PrometheusClient, PrometheusResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.slo.spec import parse_slos
from timbel_dagster.slo.status import evaluate
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.slo import SloStatus

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
MINUTES = 4 * 24 * 60
AT = START + dt.timedelta(minutes=MINUTES)  # the last sample


def errors_in_minute(minute: int) -> int:
    """Failed requests in the minute ending `minute` minutes after START."""
    before_end = MINUTES - minute
    if before_end < 60:
        return 20
    if before_end < 360:
        return 10
    return 1


def write_checkout_history(path: Path) -> None:
    start = int(START.timestamp())
    totals = {"ok": 0, "failed": 0, "fast": 0, "count": 0}
    lines: dict[str, list[str]] = {key: [] for key in totals}
    names = {
        "ok": 'http_requests_total{service="checkout",code="200"}',
        "failed": 'http_requests_total{service="checkout",code="500"}',
        "fast": 'http_request_duration_seconds_bucket{service="checkout",le="0.3"}',
        "count": 'http_request_duration_seconds_count{service="checkout"}',
    }
    for minute in range(MINUTES + 1):
        if minute:
            errors = errors_in_minute(minute)
            totals["ok"] += 1000 - errors
            totals["failed"] += errors
            totals["fast"] += 990
            totals["count"] += 1000
        for key, value in totals.items():
            lines[key].append(f"{names[key]} {value} {start + minute * 60}\n")
    with path.open("w") as out:
        for family, keys in (
            ("http_requests_total", ("ok", "failed")),
            ("http_request_duration_seconds_bucket", ("fast",)),
            ("http_request_duration_seconds_count", ("count",)),
        ):
            out.write(f"# TYPE {family} unknown\n")
            for key in keys:
                out.writelines(lines[key])
        out.write("# EOF\n")


SLOS = """\
slos:
  - service: checkout
    name: availability
    objective: 99.9
    sli:
      kind: availability
      total: http_requests_total{service="checkout"}
      errors: http_requests_total{service="checkout", code=~"5.."}
  - service: checkout
    name: availability-good
    objective: 99.9
    sli:
      kind: availability
      total: http_requests_total{service="checkout"}
      good: http_requests_total{service="checkout", code!~"5.."}
  - service: checkout
    name: latency
    objective: 99.5
    sli:
      kind: latency
      histogram: http_request_duration_seconds{service="checkout"}
      le: "0.3"
  - service: nobody
    name: availability
    objective: 99
    sli:
      kind: availability
      total: http_requests_total{service="nobody"}
      errors: http_requests_total{service="nobody", code=~"5.."}
"""


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        with running_prometheus(tmp_path_factory.mktemp("slo"), write_checkout_history) as url:
            yield url
    except FileNotFoundError as error:
        missing_service(str(error))


# Errors per window at AT, by hand: 20/min in the last hour, 10/min for the 5 h before,
# 1/min before that; 1,000 requests a minute throughout.
EXPECTED_BURN = {
    "5m": 20.0,
    "30m": 20.0,
    "1h": 20.0,
    "2h": (60 * 20 + 60 * 10) / 120,  # 15
    "6h": (60 * 20 + 300 * 10) / 360,  # 11.67
    "1d": (60 * 20 + 300 * 10 + 1080 * 1) / 1440,  # 3.67
    "3d": (60 * 20 + 300 * 10 + 3960 * 1) / 4320,  # 1.89
}
ERRORS_IN_HISTORY = 60 * 20 + 300 * 10 + (MINUTES - 360) * 1  # 9,600 of 5,760,000


def test_availability_and_latency_from_prometheus(prometheus_url: str, tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'unused.db'}")  # no warehouse SLO here
    statuses = {
        s.key: s
        for s in evaluate(
            parse_slos(SLOS, "slos.yaml"), engine, PrometheusClient(prometheus_url), AT
        )
    }
    availability = statuses["checkout/availability"]
    # The 30-day window holds the four days there are.
    assert availability.total == MINUTES * 1000
    assert availability.good == MINUTES * 1000 - ERRORS_IN_HISTORY
    assert availability.sli == pytest.approx(1 - 9600 / 5_760_000)
    # 0.1 % of 5.76 million allows 5,760 errors; 9,600 overspent it by two thirds.
    assert availability.budget_remaining == pytest.approx(1 - 9600 / 5760)
    assert availability.burn == pytest.approx(EXPECTED_BURN)
    assert availability.alert == "page"  # 20x over 1 h and 5 m (a ticket holds too)
    # `good` instead of `errors`: the same figures.
    good = statuses["checkout/availability-good"]
    assert (good.good, good.total, good.burn) == (
        availability.good,
        availability.total,
        pytest.approx(EXPECTED_BURN),
    )
    latency = statuses["checkout/latency"]
    assert latency.sli == pytest.approx(0.99)
    assert latency.burn == pytest.approx(dict.fromkeys(EXPECTED_BURN, 2.0))  # 1 % vs 0.5 %
    # 2x for days spends a 30-day budget in 15: over 1x for 3 d and 6 h, a ticket.
    assert latency.alert == "ticket"
    # No series: no traffic, so nothing is known and nothing alerts.
    nobody = statuses["nobody/availability"]
    assert (nobody.total, nobody.sli, nobody.budget_remaining, nobody.alert) == (
        0,
        None,
        None,
        None,
    )
    assert set(nobody.burn.values()) == {None}


def test_before_the_incident_every_window_burns_at_one(prometheus_url: str, tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'unused.db'}")
    [availability] = evaluate(
        parse_slos(SLOS, "slos.yaml")[:1],
        engine,
        PrometheusClient(prometheus_url),
        AT - dt.timedelta(hours=6),
    )
    assert availability.burn == pytest.approx(dict.fromkeys(EXPECTED_BURN, 1.0))
    assert availability.alert is None


def test_the_asset_stores_the_statuses(
    prometheus_url: str, warehouse_url: str, tmp_path: Path
) -> None:
    slo_file = tmp_path / "slos.yaml"
    slo_file.write_text(SLOS)
    result = dg.materialize(
        [slo_status],
        resources={
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "sources": DeliverySourcesResource(prometheus=PrometheusResource(url=prometheus_url)),
        },
        run_config={
            "ops": {
                "slo__slo_status": {"config": {"slo_file": str(slo_file), "at": AT.isoformat()}}
            }
        },
    )
    assert result.success
    metadata = result.asset_materializations_for_node("slo__slo_status")[0].metadata
    assert metadata["slos"].value == 4
    assert (metadata["paging"].value, metadata["ticket"].value) == (2, 1)
    assert metadata["rows_written"].value == 4
    assert "| checkout/availability | 99.83 % | 99.9 % | -66.67 % |" in metadata["status"].value
    with get_engine(warehouse_url).connect() as connection:
        rows: list[Any] = connection.execute(
            select(SloStatus.service, SloStatus.slo, SloStatus.burn_1h, SloStatus.alert).order_by(
                SloStatus.service, SloStatus.slo
            )
        ).all()
    assert [(s, n, None if b is None else round(b, 6), a) for s, n, b, a in rows] == [
        ("checkout", "availability", 20.0, "page"),
        ("checkout", "availability-good", 20.0, "page"),
        ("checkout", "latency", 2.0, "ticket"),
        ("nobody", "availability", None, None),
    ]


def test_a_prometheus_slo_without_prometheus_fails_naming_the_setting(tmp_path: Path) -> None:
    from timbel_dagster.slo.status import PrometheusNotConfiguredError

    engine = get_engine(f"sqlite:///{tmp_path / 'unused.db'}")
    with pytest.raises(PrometheusNotConfiguredError, match="checkout/latency read Prometheus"):
        evaluate(parse_slos(SLOS, "slos.yaml")[2:3], engine, None, AT)


def test_an_unreachable_prometheus_fails_the_run_and_stores_nothing(
    warehouse_url: str, tmp_path: Path
) -> None:
    slo_file = tmp_path / "slos.yaml"
    slo_file.write_text(SLOS)
    closed = "http://127.0.0.1:9"  # discard: nothing listens
    result = dg.materialize(
        [slo_status],
        resources={
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "sources": DeliverySourcesResource(prometheus=PrometheusResource(url=closed)),
        },
        run_config={"ops": {"slo__slo_status": {"config": {"slo_file": str(slo_file)}}}},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    cause = failure.step_failure_data.error.cause
    assert cause.cls_name == "TransientSourceError"
    assert "cannot reach http://127.0.0.1:9" in cause.message
    with get_engine(warehouse_url).connect() as connection:
        assert connection.execute(select(SloStatus.id)).all() == []
