"""Cost forecasts per scope, cost-saving suggestions, and the usage frame from the warehouse."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert

from timbel_dagster.assets.cluster.cost import PriceTable
from timbel_dagster.ml.forecast.candidates import ALL
from timbel_dagster.ml.forecast.cost_data import load_usage_frame, namespace_hours
from timbel_dagster.ml.forecast.costs import (
    CostForecast,
    cost_saving_suggestions,
    forecast_costs,
    scope_series,
)
from timbel_dagster.ml.forecast.selection import TOP
from timbel_dagster.warehouse.schema.cluster import CostAllocation, NamespaceUsage, PodMetric
from timbel_dagster.warehouse.schema.ids import stable_id

PRICES = PriceTable()  # OpenCost's defaults
CPU, MEMORY, STORAGE = 0.031611, 0.004237, 0.00005479452
START = pd.Timestamp("2026-09-07", tz="UTC")
GIB = 1024**3


def usage_rows(
    cluster: str,
    namespace: str,
    hours: int,
    cpu: float | list[float] = 1.0,
    cpu_requested: float = 2.0,
    memory: float = 1.0,
    memory_requested: float = 2.0,
    storage: float = 0.0,
    tenant: str | None = None,
    start: pd.Timestamp = START,
    **extra: object,
) -> list[dict]:
    used = cpu if isinstance(cpu, list) else [cpu] * hours
    return [
        {
            "source": "sample",
            "cluster": cluster,
            "namespace": namespace,
            "tenant": tenant or namespace,
            "hour": start + pd.Timedelta(hours=h),
            "cpu_used_cores": used[h],
            "cpu_requested_cores": cpu_requested,
            "memory_gib_used": memory,
            "memory_gib_requested": memory_requested,
            "storage_gib": storage,
            "cost_usd": np.nan,
            **extra,
        }
        for h in range(hours)
    ]


def frame(*parts: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([row for part in parts for row in part])


# -- forecasts --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def steady() -> pd.DataFrame:
    """Three weeks of constant usage: two namespaces of one tenant on two clusters."""
    return frame(
        usage_rows("c1", "shop", 21 * 24, cpu=1.0, storage=10.0, tenant="retail"),
        usage_rows("c2", "shop", 21 * 24, cpu=3.0, cpu_requested=2.0, tenant="retail"),
        usage_rows("c2", "ads", 21 * 24, cpu=0.5, cpu_requested=0.5, memory=4.0),
    )


@pytest.fixture(scope="module")
def steady_forecast(steady: pd.DataFrame) -> CostForecast:
    return forecast_costs(steady, PRICES)


def test_forecasts_of_every_scope_and_metric(steady_forecast: CostForecast) -> None:
    result = steady_forecast
    totals = result.totals
    assert set(totals["scope"]) == {"namespace", "cluster", "tenant", "total"}
    assert set(totals["metric"]) == {"cpu_cores", "memory_gib", "cost_usd"}
    assert set(totals["horizon_hours"]) == {168, 720}
    assert len(totals) == (3 + 2 + 2 + 1) * 3 * 2
    assert (totals["method"] == "weekly-profile").all() and (totals["note"] == "").all()
    assert list(result.hourly.columns) == [
        "scope", "cluster", "namespace", "tenant", "metric", "hour",
        "yhat", "lo80", "hi80", "lo95", "hi95",
    ]  # fmt: skip
    assert len(result.hourly) == len(totals) // 2 * 720
    assert result.hourly["hour"].min() == START + pd.Timedelta(days=21)


def _total(totals: pd.DataFrame, **keys: object) -> pd.Series:
    match = np.logical_and.reduce([totals[k] == v for k, v in keys.items()])
    [row] = totals[match].to_dict("records")
    return pd.Series(row)


def test_steady_usage_is_forecast_exactly(steady_forecast: CostForecast) -> None:
    totals = steady_forecast.totals
    shop = _total(totals, scope="namespace", cluster="c1", metric="cost_usd", horizon_hours=168)
    # Charged max(request, usage): 2 cores, 2 GiB, and 10 GiB of storage.
    hourly = 2 * CPU + 2 * MEMORY + 10 * STORAGE
    for column in ("yhat", "lo80", "hi80", "lo95", "hi95", "baseline_mean7d"):
        assert shop[column] == pytest.approx(168 * hourly)
    assert shop["baseline_seasonal_naive"] == pytest.approx(168 * hourly)
    retail = _total(totals, scope="tenant", tenant="retail", metric="cpu_cores", horizon_hours=720)
    assert retail["yhat"] == pytest.approx(720 * (1.0 + 3.0))
    total = _total(totals, scope="total", metric="memory_gib", horizon_hours=168)
    assert total["yhat"] == pytest.approx(168 * (1 + 1 + 4))
    c2 = _total(totals, scope="cluster", cluster="c2", metric="cost_usd", horizon_hours=168)
    assert c2["yhat"] == pytest.approx(168 * (3 * CPU + 2 * MEMORY + 0.5 * CPU + 4 * MEMORY))


def test_the_weekly_total_has_its_own_interval_and_names_the_chosen_model() -> None:
    """Four weeks of noisy usage above the request: the total's cost chooses among every
    candidate, a namespace's usage among the fast ones; the week's 80 % interval comes from
    the backtests' weekly-total errors, far narrower than the sum of the hourly bounds."""
    rng = np.random.default_rng(11)
    hours = 28 * 24
    daily = 1 + 0.5 * np.sin(2 * np.pi * np.arange(hours) / 24)
    cpu = list(3.0 * daily * rng.lognormal(0, 0.3, hours))
    result = forecast_costs(frame(usage_rows("c1", "shop", hours, cpu=cpu, cpu_requested=0.5)),
                            PRICES)  # fmt: skip
    totals = result.totals
    total = _total(totals, scope="total", metric="cost_usd", horizon_hours=168)
    namespace = _total(totals, scope="namespace", metric="cpu_cores", horizon_hours=168)

    def members(model: str) -> set[str]:
        return set(model.removeprefix("median(").removesuffix(")").split(", "))

    assert len(members(total["model"])) == TOP == len(ALL)  # every candidate: selection.TOP
    assert members(namespace["model"]) == {"profile", "profile-daily", "mean7d"}
    assert total["lo80"] < total["yhat"] < total["hi80"] < total["hi95"]
    hourly = result.hourly
    week = hourly[(hourly["scope"] == "total") & (hourly["metric"] == "cost_usd")].iloc[:168]
    assert week["lo80"].sum() < total["lo80"] and total["hi80"] < week["hi80"].sum()


def test_stored_cost_wins_over_priced_usage() -> None:
    rows = frame(usage_rows("c1", "shop", 72))
    rows["cost_usd"] = 0.5
    rows.loc[0, "cost_usd"] = np.nan  # priced: 2 x CPU + 2 x MEMORY
    hours = namespace_hours(rows, PRICES)
    assert hours["cost_usd"].iloc[0] == pytest.approx(2 * CPU + 2 * MEMORY)
    assert (hours["cost_usd"].iloc[1:] == 0.5).all()


def test_a_short_history_falls_back_and_says_so() -> None:
    totals = forecast_costs(frame(usage_rows("c1", "new", 30, cpu=0.25)), PRICES).totals
    row = _total(totals, scope="namespace", metric="cpu_cores", horizon_hours=168)
    assert row["method"] == "flat-mean" and row["history_hours"] == 30
    assert row["note"].startswith("under 2 days of history: flat mean of the last day")
    assert "intervals: in-sample" in row["note"]
    assert row["yhat"] == pytest.approx(168 * 0.25)
    assert row["baseline_seasonal_naive"] is None or np.isnan(row["baseline_seasonal_naive"])


def test_gaps_and_absences_in_the_series() -> None:
    """c1 reports hours 0-5 without `b` in hours 2-3 (so `b` used 0 there) and reports
    nothing in hour 4 (a gap); `b` starts in hour 1 and counts 0 in the sums before."""
    a = usage_rows("c1", "a", 6, cpu=1.0)
    b = usage_rows("c1", "b", 6, cpu=2.0)
    rows = namespace_hours(frame([r for i, r in enumerate(a) if i != 4],
                                 [r for i, r in enumerate(b) if i in (1, 5)]), PRICES)  # fmt: skip
    series = {(k["scope"], k["namespace"]): s.tolist() for k, s in scope_series(rows, "cpu_cores")}
    assert np.allclose(series[("namespace", "a")], [1, 1, 1, 1, np.nan, 1], equal_nan=True)
    assert np.allclose(series[("namespace", "b")], [2, 0, 0, np.nan, 2], equal_nan=True)
    assert np.allclose(series[("total", None)], [1, 3, 1, 1, np.nan, 3], equal_nan=True)


def test_workload_rows_are_summed_per_namespace() -> None:
    rows = frame(
        usage_rows("c1", "shop", 3, cpu=1.0, workload="api"),
        usage_rows("c1", "shop", 3, cpu=0.5, workload="web"),
    )
    hours = namespace_hours(rows, PRICES)
    assert hours["cpu_cores"].tolist() == [1.5, 1.5, 1.5]
    assert hours["cost_usd"].iloc[0] == pytest.approx(2 * (2 * CPU + 2 * MEMORY))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["storage_gib"]), "usage frame lacks column\\(s\\) storage_gib"),
        (lambda f: f.assign(source=["a", "b"] * 12), "mixes sources a, b: pass one source"),
    ],
)
def test_bad_frames_are_named(change, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        forecast_costs(change(frame(usage_rows("c1", "a", 24))), PRICES)


def test_an_empty_frame_gives_empty_forecasts() -> None:
    empty = pd.DataFrame(columns=list(frame(usage_rows("c", "n", 1)).columns))
    result = forecast_costs(empty, PRICES)
    assert result.totals.empty and result.hourly.empty
    assert "baseline_mean7d" in result.totals.columns and "hi95" in result.hourly.columns


# -- suggestions ------------------------------------------------------------------------------


def test_rightsizing_and_idle_suggestions_with_exact_savings() -> None:
    spiky = [1.0] * 23 + [3.0]  # p95 of these 24 hours is 1.0 (linear interpolation)
    rows = frame(
        usage_rows("c1", "api", 24, cpu=spiky, cpu_requested=4.0, memory=2.0, memory_requested=2),
        usage_rows("c1", "old", 24, cpu=0.001, cpu_requested=0.5, memory=0.01,
                   memory_requested=1.0, storage=10.0),
        usage_rows("c1", "tight", 24, cpu=1.0, cpu_requested=1.1, memory_requested=1.1),  # fits
        usage_rows("c1", "young", 10, cpu=0.1, cpu_requested=8.0),  # too few hours
    )  # fmt: skip
    suggestions = cost_saving_suggestions(rows, PRICES).to_dict("records")
    assert [(s["kind"], s["namespace"]) for s in suggestions] == [
        ("rightsizing", "api"),
        ("idle", "old"),
    ]
    api, old = suggestions
    assert (api["cpu_requested"], api["cpu_p95"]) == (4.0, 1.0)
    assert api["cpu_suggested"] == pytest.approx(1.15)
    assert api["memory_gib_suggested"] == 2.0  # 2 x 1.15 is no cut
    # 23 hours save 4 - 1.15 cores; the spike hour is charged 3 after the cut, so saves 1.
    assert api["monthly_saving_usd"] == pytest.approx((23 * 2.85 + 1.0) / 24 * CPU * 730)
    assert pd.isna(api["workload"]) and api["hours"] == 24
    assert old["monthly_saving_usd"] == pytest.approx((0.5 * CPU + MEMORY + 10 * STORAGE) * 730)
    assert "0.001 cores" in old["reason"]


def test_rightsizing_per_workload_with_other_settings() -> None:
    rows = frame(
        usage_rows(
            "c1", "shop", 48, cpu=1.0, cpu_requested=3.0, memory_requested=1, workload="api"
        ),
        usage_rows(
            "c1", "shop", 48, cpu=1.0, cpu_requested=1.0, memory_requested=1, workload="web"
        ),
    )
    [api] = cost_saving_suggestions(rows, PRICES, headroom=1.5).to_dict("records")
    assert (api["workload"], api["cpu_suggested"]) == ("api", 1.5)
    assert api["monthly_saving_usd"] == pytest.approx(1.5 * CPU * 730)
    with pytest.raises(ValueError, match=r"headroom \(0.9\) must be >= 1"):
        cost_saving_suggestions(rows, PRICES, headroom=0.9)


# -- the usage frame from the warehouse ------------------------------------------------------


def _hour(h: int) -> dt.datetime:
    return dt.datetime(2026, 9, 7, h, tzinfo=dt.UTC)


def _namespace(source: str, namespace: str, h: int, cpu: float) -> dict:
    return {
        "id": stable_id("namespace_usage", source, "c1", namespace, _hour(h)),
        "source": source, "cluster": "c1", "namespace": namespace, "hour": _hour(h),
        "tenant": f"t-{namespace}", "pods": 2, "cpu_used_cores": cpu,
        "cpu_used_cores_max": cpu * 2, "cpu_requested_cores": cpu * 3,
        "memory_used_bytes": 2 * GIB, "memory_requested_bytes": 4 * GIB,
        "storage_bytes": 8 * GIB,
    }  # fmt: skip


def _cost(namespace: str, workload: str, h: int, total: float) -> dict:
    return {
        "id": stable_id("cost_allocations", "sample", "c1", namespace, workload, _hour(h)),
        "source": "sample", "cluster": "c1", "hour": _hour(h), "namespace": namespace,
        "workload": workload, "tenant": f"t-{namespace}", "cpu_charged_cores": 1.0,
        "memory_charged_gib": 1.0, "storage_gib": 0.0, "cpu_cost": total,
        "memory_cost": 0.0, "storage_cost": 0.0, "total_cost": total,
    }  # fmt: skip


def _pod(pod: str, workload: str, h: int, cpu: float) -> dict:
    return {
        "id": stable_id("pod_metrics", "sample", "c1", "shop", pod, _hour(h)),
        "source": "sample", "cluster": "c1", "hour": _hour(h), "namespace": "shop",
        "pod": pod, "workload": workload, "cpu_used_cores": cpu, "cpu_used_cores_max": cpu,
        "cpu_requested_cores": 1.0, "memory_used_bytes": GIB, "memory_used_bytes_max": GIB,
        "memory_requested_bytes": 2 * GIB, "storage_bytes": 0.0,
    }  # fmt: skip


@pytest.fixture
def warehouse(warehouse_url: str):
    from timbel_dagster.warehouse.engine import get_engine

    engine = get_engine(warehouse_url)
    with engine.begin() as connection:
        connection.execute(
            insert(NamespaceUsage),
            [
                _namespace("sample", "shop", 1, 1.0),
                _namespace("sample", "shop", 2, 2.0),
                _namespace("sample", "ads", 2, 0.5),
                _namespace("kube-prometheus", "shop", 2, 9.0),
            ],
        )
        connection.execute(
            insert(CostAllocation),
            [_cost("shop", "api", 2, 0.25), _cost("shop", "web", 2, 0.5), _cost("ads", "x", 1, 7)],
        )
        connection.execute(
            insert(PodMetric),
            [_pod("api-1", "api", 2, 0.5), _pod("api-2", "api", 2, 0.25),
             _pod("web-1", "web", 2, 1)],
        )  # fmt: skip
    return engine


def test_load_usage_frame_per_namespace(warehouse) -> None:
    with warehouse.connect() as connection:
        rows = load_usage_frame(connection, source="sample")
        later = load_usage_frame(connection, since=_hour(2))
    assert list(rows.columns[:5]) == ["source", "cluster", "namespace", "tenant", "hour"]
    assert [(r.namespace, r.hour.hour) for r in rows.itertuples()] == [
        ("ads", 2),
        ("shop", 1),
        ("shop", 2),
    ]
    ads, shop1, shop2 = rows.to_dict("records")
    assert str(rows["hour"].dt.tz) == "UTC"
    assert (shop2["cpu_used_cores"], shop2["cpu_requested_cores"]) == (2.0, 6.0)
    assert (shop2["memory_gib_used"], shop2["memory_gib_requested"]) == (2.0, 4.0)
    assert shop2["storage_gib"] == 8.0 and shop2["tenant"] == "t-shop"
    assert shop2["cost_usd"] == pytest.approx(0.75)  # two workloads' allocations
    assert np.isnan(shop1["cost_usd"]) and np.isnan(ads["cost_usd"])  # ads' cost is hour 1
    assert sorted(later["source"]) == ["kube-prometheus", "sample", "sample"]


def test_load_usage_frame_per_workload(warehouse) -> None:
    with warehouse.connect() as connection:
        rows = load_usage_frame(connection, source="sample", by_workload=True)
        empty = load_usage_frame(connection, source="nobody")
    assert [(r.workload, r.cpu_used_cores) for r in rows.itertuples()] == [
        ("api", 0.75),
        ("web", 1.0),
    ]
    api, web = rows.to_dict("records")
    assert (api["tenant"], api["cpu_requested_cores"], api["memory_gib_requested"]) == (
        "t-shop",
        2.0,
        4.0,
    )
    assert (api["cost_usd"], web["cost_usd"]) == (0.25, 0.5)
    assert empty.empty and "cost_usd" in empty.columns


def test_the_stored_forecast_has_each_hours_cost_and_usage(
    steady_forecast: CostForecast, warehouse_url: str
) -> None:
    from sqlalchemy import select

    from timbel_dagster.assets.ml.cost_forecast import _store
    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.schema.ml import CostForecast as Stored

    hourly = steady_forecast.hourly
    with get_engine(warehouse_url).begin() as connection:
        stored, advised = _store(connection, hourly, [])
        rows = pd.DataFrame(connection.execute(select(Stored.__table__)).mappings().all())
    assert (stored, advised) == (len(rows), 0)
    assert stored == (hourly["metric"] == "cost_usd").sum()
    # What each stored hour should hold, from the forecast frame, side by side with it.
    key = hourly[["cluster", "namespace", "tenant"]].fillna("").agg("/".join, axis=1).str.strip("/")
    wide = hourly.assign(key=key).pivot_table(
        index=["scope", "key", "hour"],
        columns="metric",
        values=["yhat", "lo80", "hi80", "lo95", "hi95"],
    )
    expected = pd.DataFrame(
        {
            "cost_usd": wide[("yhat", "cost_usd")],
            "cost_lo80": wide[("lo80", "cost_usd")],
            "cost_hi80": wide[("hi80", "cost_usd")],
            "cost_lo95": wide[("lo95", "cost_usd")],
            "cost_hi95": wide[("hi95", "cost_usd")],
            "cpu_cores": wide[("yhat", "cpu_cores")],
            "memory_gib": wide[("yhat", "memory_gib")],
        }
    )
    hours = pd.to_datetime(rows["hour"])
    rows["hour"] = hours.dt.tz_localize("UTC") if hours.dt.tz is None else hours
    got = rows.set_index(["scope", "key", "hour"])[expected.columns].sort_index()
    assert got.index.equals(expected.sort_index().index)
    assert np.allclose(got.to_numpy(), expected.sort_index().to_numpy())
