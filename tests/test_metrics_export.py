"""`timbel metrics export`: two days of 15 s samples from a real Prometheus into the
warehouse, window by window under the point limit."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import missing_service
from tests.services.prometheus import SAMPLES, START, STEP_SECONDS, running_prometheus, sample_value
from tests.test_cli import invoke
from timbel_dagster.metrics_export import export_range, series_id
from timbel_dagster.resources.errors import TransientSourceError
from timbel_dagster.resources.prometheus import PrometheusClient
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.cluster import MetricSample, MetricSeries

STEP = dt.timedelta(seconds=STEP_SECONDS)
END = START + STEP * (SAMPLES - 1)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        with running_prometheus(tmp_path_factory.mktemp("export")) as url:
            yield url
    except FileNotFoundError as error:
        missing_service(str(error))


def _count(engine, model) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(model)).scalar_one()


def test_export_stores_every_sample_once(prometheus: str, warehouse_url: str) -> None:
    engine = get_engine(warehouse_url)
    lines: list[str] = []
    report = export_range(
        PrometheusClient(prometheus), engine, "node_load1", START, END, STEP, lines.append
    )
    assert report["queries"] == 2  # 11,520 steps: more than one query may return
    assert report["rejected_queries"] == 0
    assert report["series"] == 2 and report["samples"] == 2 * SAMPLES
    assert _count(engine, MetricSample) == 2 * SAMPLES and _count(engine, MetricSeries) == 2
    assert lines[0].startswith("[1/2]") and lines[-1].startswith("[2/2]")
    labels = {"__name__": "node_load1", "cluster": "seoul-prod-01", "instance": "node-b"}
    with engine.connect() as connection:
        values = (
            connection.execute(
                select(MetricSample.value)
                .where(MetricSample.series_id == series_id(labels))
                .order_by(MetricSample.at)
            )
            .scalars()
            .all()
        )
    assert values == [sample_value(1, i) for i in range(SAMPLES)]
    again = export_range(PrometheusClient(prometheus), engine, "node_load1", START, END, STEP)
    assert again["samples_written"] == 0  # an export run twice changes nothing


def test_prometheus_down_stores_nothing(warehouse_url: str) -> None:
    engine = get_engine(warehouse_url)
    client = PrometheusClient("http://127.0.0.1:9", timeout_seconds=2)
    with pytest.raises(TransientSourceError, match="cannot reach"):
        export_range(client, engine, "node_load1", START, END, STEP)
    assert _count(engine, MetricSample) == 0


def test_export_cli(prometheus: str, tmp_path: Path) -> None:
    args = ["metrics", "export", "node_load1", "--since", START.isoformat(), "--until"]
    done = invoke(
        [*args, (START + dt.timedelta(hours=6)).isoformat(), "--step", "15s", "--json"],
        tmp_path,
        PROMETHEUS_URL=prometheus,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["samples"] == 2 * (6 * 3600 // STEP_SECONDS + 1)
    assert "[1/1]" in done.stderr
    bad = invoke([*args, "x"], tmp_path, PROMETHEUS_URL=prometheus)
    assert bad.returncode == 2 and "'x' is not a duration (7d, 12h) or an ISO date" in bad.stderr
    zero = invoke([*args, START.isoformat(), "--step", "0s"], tmp_path, PROMETHEUS_URL=prometheus)
    assert zero.returncode == 2
    assert "timbel: error: --step must be positive, not '0s'" in zero.stderr


def test_special_values_are_stored(warehouse_url: str) -> None:
    import math

    from timbel_dagster.metrics_export import _store_samples, _window_rows

    engine = get_engine(warehouse_url)
    result = [{"metric": {"__name__": "x"}, "values": [[1, "+Inf"], [2, "-Inf"], [3, "NaN"]]}]
    series, samples = _window_rows(result, "x")
    with engine.begin() as connection:
        connection.execute(
            MetricSeries.__table__.insert(), [s | {"created_at": START} for s in series]
        )
        assert _store_samples(connection, samples) == 3
    with engine.connect() as connection:
        values = connection.execute(select(MetricSample.value).order_by(MetricSample.at)).scalars()
        stored = list(values)
    assert stored[:2] == [math.inf, -math.inf]
    assert stored[2] is None or math.isnan(stored[2])  # SQLite keeps NaN as NULL
