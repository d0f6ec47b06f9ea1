"""What the asset pages show: numbers rounded to what they mean, tables with a header and
an empty state, and plots as PNG images the Dagster UI renders from markdown."""

from __future__ import annotations

import base64
import datetime as dt
import math

import dagster as dg
import pandas as pd
import pytest

from timbel_dagster.assets import plots
from timbel_dagster.assets.cluster.cost_allocation import plotted
from timbel_dagster.assets.ingestion import markdown_table
from timbel_dagster.assets.metadata import number_text, rounded, significant

PNG = b"\x89PNG\r\n\x1a\n"


def png_of(value: dg.MetadataValue) -> bytes:
    """The PNG inside a markdown image metadata value (`![alt](data:image/png;base64,...)`)."""
    text = value.value
    assert text.startswith("![") and "](data:image/png;base64," in text and text.endswith(")")
    return base64.b64decode(text.split("base64,", 1)[1][:-1], validate=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.9525568181818183, 0.9526),
        (1.0025439999999999, 1.003),
        (0.000123456, 0.0001235),
        (12345.678, 12346.0),
        (-3.14159, -3.142),
        (0.0, 0.0),
        (7.0, 7.0),
    ],
)
def test_significant_keeps_four_digits_and_the_units(value: float, expected: float) -> None:
    assert significant(value) == expected


def test_significant_leaves_nan_and_infinity() -> None:
    assert math.isnan(significant(float("nan"))) and significant(math.inf) == math.inf


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.9525568181818183, "0.9526"),
        (12345.678, "12,346"),
        (0.5, "0.5000"),
        (0.0, "0"),
        (float("nan"), "-"),
    ],
)
def test_number_text(value: float, text: str) -> None:
    assert number_text(value) == text


def test_rounded_rounds_every_float_and_nothing_else() -> None:
    metadata = rounded(
        {
            "auc": dg.MetadataValue.float(0.9525568181818183),
            "plain": 1.0025439999999999,
            "rows": dg.MetadataValue.int(12345),
            "flag": True,
            "note": dg.MetadataValue.text("0.9525568181818183"),
            "json": dg.MetadataValue.json({"a": [0.123456789, 3], "b": {"c": 2.718281828}}),
        }
    )
    assert metadata["auc"] == dg.MetadataValue.float(0.9526)
    assert metadata["plain"] == 1.003
    assert metadata["rows"] == dg.MetadataValue.int(12345) and metadata["flag"] is True
    assert metadata["note"].value == "0.9525568181818183"  # text is what it says
    assert metadata["json"].data == {"a": [0.1235, 3], "b": {"c": 2.718}}


def test_markdown_table_has_a_header_rounds_and_says_when_empty_or_cut() -> None:
    rows = [{"name": f"n{i}", "cost": 1 / 3, "hours": i} for i in range(5)]
    text = markdown_table(rows, ["name", "cost", "hours"], limit=2).value
    lines = text.splitlines()
    assert lines[:2] == ["| name | cost | hours |", "|---|---|---|"]
    assert lines[2] == "| n0 | 0.3333 | 0 |"
    assert lines[-1] == "3 more rows not shown."
    empty = markdown_table([], ["rule", "alerts"]).value
    assert empty.splitlines()[-1] == "| (none) | |"


def test_dora_trend_is_a_png_of_the_weeks() -> None:
    weeks = [
        {
            "week_start": dt.date(2026, 9, 7) + dt.timedelta(weeks=i),
            "deployments": 10 + i,
            "lead_time_hours_median": None if i == 2 else 20.5 - i,
            "change_failure_rate": 0.1,
        }
        for i in range(6)
    ]
    assert png_of(plots.dora_trend(weeks)).startswith(PNG)
    assert plots.dora_trend([]) is None


def test_cost_by_namespace_is_a_png_with_the_small_namespaces_summed() -> None:
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    rows = [
        {"hour": start + dt.timedelta(hours=h), "namespace": f"ns{n}", "total_cost": 0.01 * n}
        for h in range(24)
        for n in range(1, plots.TOP_NAMESPACES + 3)
    ]
    assert png_of(plots.cost_by_namespace(rows)).startswith(PNG)
    assert plots.cost_by_namespace([]) is None


def test_risk_calibration_is_a_png() -> None:
    from timbel_dagster.ml.risk.calibration import calibration_table

    probability = pd.Series([0.01, 0.03, 0.04, 0.15, 0.3, 0.5, 0.7, 0.9] * 5)
    label = pd.Series([0, 0, 0, 0, 1, 0, 1, 1] * 5)
    table = calibration_table(probability, label, [0, 0.02, 0.05, 0.2, 0.6, 1])
    assert png_of(plots.risk_calibration(table)).startswith(PNG)
    assert plots.risk_calibration(table.iloc[0:0]) is None


def _hours(*hours: int) -> list[dt.datetime]:
    return [dt.datetime(2026, 11, 1, hour, tzinfo=dt.UTC) for hour in hours]


@pytest.mark.parametrize(
    ("spans", "drawn"),
    [
        ({"a": _hours(5)}, False),  # the hourly schedule's run of 05:00
        ({"a": _hours(5), "b": _hours(5)}, False),  # every cluster, still one hour
        ({"a": _hours(23)}, True),  # the day's last hour: once a day
        ({"a": _hours(4, 5)}, True),  # a range: a backfill, the demo, metrics collect
        ({}, False),
    ],
)
def test_the_cost_plot_is_drawn_once_a_day_or_for_a_range(spans: dict, drawn: bool) -> None:
    assert plotted(spans) is drawn
