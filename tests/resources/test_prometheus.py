"""The Prometheus client against a real Prometheus with two days of loaded history."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import missing_service
from tests.services.prometheus import SAMPLES, START, STEP_SECONDS, running_prometheus, sample_value
from timbel_dagster.resources.errors import SourceError, TransientSourceError
from timbel_dagster.resources.prometheus import MAX_POINTS, PrometheusClient, windows

STEP = dt.timedelta(seconds=STEP_SECONDS)
END = START + STEP * (SAMPLES - 1)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        with running_prometheus(tmp_path_factory.mktemp("prometheus")) as url:
            yield url
    except FileNotFoundError as error:
        missing_service(str(error))


@pytest.mark.parametrize(
    ("points", "expected_windows"),
    [(1, 1), (MAX_POINTS, 1), (MAX_POINTS + 1, 2), (3 * MAX_POINTS, 3), (3 * MAX_POINTS + 1, 4)],
)
def test_windows_cover_every_step_once(points: int, expected_windows: int) -> None:
    end = START + STEP * (points - 1)
    parts = list(windows(START, end, STEP))
    assert len(parts) == expected_windows
    covered = sum(int((b - a) / STEP) + 1 for a, b in parts)
    assert covered == points
    assert all(int((b - a) / STEP) + 1 <= MAX_POINTS for a, b in parts)
    assert parts[0][0] == START and parts[-1][1] == end


def test_bad_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="before start"):
        list(windows(END, START, STEP))
    with pytest.raises(ValueError, match="positive"):
        list(windows(START, END, dt.timedelta(0)))


def test_prometheus_itself_refuses_more_than_11000_points(prometheus: str) -> None:
    query = urllib.parse.urlencode(
        {
            "query": "node_load1",
            "start": START.timestamp(),
            "end": END.timestamp(),
            "step": STEP_SECONDS,
        }
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{query}", timeout=10)
    assert "11,000 points" in json.loads(refused.value.read())["error"]


def test_long_range_is_split_and_joined(prometheus: str) -> None:
    client = PrometheusClient(prometheus, timeout_seconds=10)
    series = client.range_query('node_load1{cluster="seoul-prod-01"}', START, END, STEP)
    assert client.requests_made == 2  # 11,520 points per series: two windows
    assert [s.label("instance") for s in series] == ["node-a", "node-b"]
    for number, one in enumerate(series):
        assert len(one.samples) == SAMPLES
        assert one.samples[0][0] == START and one.samples[-1][0] == END
        assert [v for _t, v in one.samples[:3]] == [sample_value(number, i) for i in range(3)]
        assert one.samples[11_000][1] == sample_value(number, 11_000)


def test_bad_promql_is_refused_with_the_reason(prometheus: str) -> None:
    client = PrometheusClient(prometheus, timeout_seconds=10)
    with pytest.raises(SourceError, match="prometheus sum\\(: query refused"):
        client.range_query("sum(", START, START + STEP * 10, STEP)


def test_prometheus_down_is_a_clear_transient_error() -> None:
    client = PrometheusClient("http://127.0.0.1:1", timeout_seconds=2)
    with pytest.raises(TransientSourceError, match=r"cannot reach http://127\.0\.0\.1:1"):
        client.range_query("up", START, START + STEP, STEP)
