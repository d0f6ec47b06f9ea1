"""Prometheus queries through prometheus-api-client, split to stay under the point limit.

Prometheus refuses a range query that would return more than 11,000 points per series
("exceeded maximum resolution"). Every range query here sends an explicit start and end and
is cut into consecutive windows of at most 11,000 steps, whose results are joined per series.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg

from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.errors import (
    SourceDataError,
    SourceError,
    TransientSourceError,
)
from timbel_dagster.settings import get_settings

SYSTEM = "prometheus"
MAX_POINTS = 11_000  # Prometheus' limit per series and query


@dataclass(frozen=True)
class Series:
    """One time series: its labels and its samples in time order."""

    labels: tuple[tuple[str, str], ...]
    samples: tuple[tuple[dt.datetime, float], ...]

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)


def windows(
    start: dt.datetime, end: dt.datetime, step: dt.timedelta, max_points: int = MAX_POINTS
) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """Consecutive [start, end] windows that each return at most `max_points` points and
    together cover every step from `start` to `end` exactly once."""
    if step <= dt.timedelta(0):
        raise ValueError("step must be positive")
    if end < start:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
    span = step * (max_points - 1)
    cursor = start
    while cursor <= end:
        last = min(end, cursor + span)
        yield cursor, last
        cursor = last + step


class PrometheusClient:
    def __init__(self, url: str, timeout_seconds: float = 30.0) -> None:
        from prometheus_api_client import PrometheusConnect

        self.url = url.rstrip("/")
        self._api = PrometheusConnect(url=self.url, timeout=timeout_seconds)
        self.requests_made = 0

    def query_window(
        self, query: str, start: dt.datetime, end: dt.datetime, step: dt.timedelta
    ) -> list[dict[str, Any]]:
        """One range query as sent (it must fit the point limit): the raw result list."""
        return self._guarded(
            query,
            lambda: self._api.custom_query_range(
                query, start_time=start, end_time=end, step=f"{step.total_seconds():g}s"
            ),
        )

    def _guarded(self, query: str, call: Any) -> list[dict[str, Any]]:
        """Run one API call, turning its failures into typed errors that name the query."""
        import requests
        from prometheus_api_client import PrometheusApiClientException

        self.requests_made += 1
        try:
            return call()
        except requests.RequestException as error:
            raise TransientSourceError(
                SYSTEM,
                query,
                f"cannot reach {self.url} ({type(error).__name__}); is "
                "Prometheus up and PROMETHEUS_URL right?",
            ) from None
        except PrometheusApiClientException as error:
            detail = str(error)
            if "HTTP Status Code 5" in detail:
                raise TransientSourceError(SYSTEM, query, detail[:300]) from None
            raise SourceError(SYSTEM, query, f"query refused: {detail[:300]}") from None
        except (ValueError, KeyError) as error:  # not JSON, or no data.result
            raise SourceDataError(SYSTEM, query, f"unexpected answer: {error}") from None

    def instant_query(self, query: str, at: dt.datetime) -> list[tuple[dict[str, str], float]]:
        """The instant vector of `query` at `at`: each series' labels and value. A scalar
        answer is one series without labels."""
        result = self._guarded(
            query, lambda: self._api.custom_query(query, params={"time": at.timestamp()})
        )
        if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
            return [({}, float(result[1]))]  # resultType scalar: [time, "value"]
        vector = []
        for index, item in enumerate(result):
            value = item.get("value") if isinstance(item, dict) else None
            if not isinstance(value, list) or len(value) != 2:
                raise SourceDataError(
                    SYSTEM, query, "series without a value", field=f"result[{index}].value"
                )
            vector.append((dict(item.get("metric") or {}), float(value[1])))
        return vector

    def range_query(
        self, query: str, start: dt.datetime, end: dt.datetime, step: dt.timedelta
    ) -> list[Series]:
        """All series of `query` over [start, end] at `step`, however long the range."""
        joined: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
        for window_start, window_end in windows(start, end, step):
            for index, item in enumerate(self.query_window(query, window_start, window_end, step)):
                if not isinstance(item, dict) or not isinstance(item.get("values"), list):
                    raise SourceDataError(
                        SYSTEM, query, "series without values", field=f"result[{index}].values"
                    )
                labels = tuple(sorted((item.get("metric") or {}).items()))
                points = joined.setdefault(labels, {})
                for stamp, value in item["values"]:
                    points[float(stamp)] = float(value)
        return [
            Series(
                labels,
                tuple((dt.datetime.fromtimestamp(t, dt.UTC), v) for t, v in sorted(points.items())),
            )
            for labels, points in sorted(joined.items())
        ]


class PrometheusResource(dg.ConfigurableResource):
    """Prometheus. Unset fields come from PROMETHEUS_URL and PROMETHEUS_TIMEOUT_SECONDS."""

    url: str | None = None
    timeout_seconds: float | None = None

    def client(self) -> PrometheusClient:
        settings = get_settings()
        url = self.url or (str(settings.prometheus_url) if settings.prometheus_url else None)
        if not url:
            raise SourceNotConfiguredError("Prometheus is not configured: set PROMETHEUS_URL")
        return PrometheusClient(url, self.timeout_seconds or settings.prometheus_timeout_seconds)
