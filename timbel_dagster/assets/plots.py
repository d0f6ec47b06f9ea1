"""The plots the asset pages show where a trend is the point: DORA per week, cost by
namespace over time, and the risk model's calibration. Each takes plain rows and returns a
`MetadataValue.md` image (`metadata.plot`), or None when there is nothing to draw."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from timbel_dagster.assets.metadata import plot

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

# Namespaces drawn one by one in the cost plot; the rest are summed as "other".
TOP_NAMESPACES = 6


def dora_trend(rows: Sequence[dict[str, Any]]) -> Any | None:
    """Deployments per week, median lead time and change failure rate of the organisation,
    one point per week (`rows`: the weekly DORA rows of service `*`, oldest first)."""
    if not rows:
        return None
    weeks = [_day(r["week_start"]) for r in rows]

    def series(name: str, scale: float = 1.0) -> list[float]:
        return [float("nan") if r[name] is None else float(r[name]) * scale for r in rows]

    def draw(figure: Figure) -> None:
        top, middle, bottom = figure.subplots(3, 1, sharex=True)
        top.bar(weeks, [r["deployments"] for r in rows], width=5, color="tab:blue")
        top.set_ylabel("deploys")
        top.set_title("DORA per week (prod, whole organisation)")
        middle.plot(weeks, series("lead_time_hours_median"), marker="o", color="tab:green")
        middle.set_ylabel("lead time h")
        failure = series("change_failure_rate", 100)
        bottom.plot(weeks, failure, marker="o", color="tab:red")
        bottom.set_ylabel("CFR %")
        bottom.set_ylim(0, max((v for v in failure if v == v), default=0) * 1.2 or 1)
        figure.autofmt_xdate()

    return plot(draw, "DORA metrics per week", size=(7, 5.5))


def cost_by_namespace(rows: Sequence[dict[str, Any]]) -> Any | None:
    """Cost per hour of each namespace (all clusters), stacked: the `TOP_NAMESPACES` most
    expensive drawn apart and the rest as `other` (`rows`: hour, namespace, total_cost)."""
    totals: dict[str, float] = {}
    for row in rows:
        totals[row["namespace"]] = totals.get(row["namespace"], 0.0) + row["total_cost"]
    if not totals:
        return None
    named = sorted(totals, key=totals.__getitem__, reverse=True)[:TOP_NAMESPACES]
    hours = sorted({row["hour"] for row in rows})
    at = {hour: i for i, hour in enumerate(hours)}
    layers = {name: [0.0] * len(hours) for name in [*named, "other"]}
    for row in rows:
        name = row["namespace"] if row["namespace"] in named else "other"
        layers[name][at[row["hour"]]] += row["total_cost"]
    if not any(layers["other"]):
        del layers["other"]

    def draw(figure: Figure) -> None:
        axes = figure.subplots()
        axes.stackplot(hours, *layers.values(), labels=list(layers), step="post")
        axes.set_ylabel("USD per hour")
        axes.set_title("Cost by namespace (all clusters)")
        axes.legend(loc="upper left", fontsize="small", ncols=min(len(layers), 4))
        axes.set_ylim(bottom=0, top=max(map(sum, zip(*layers.values(), strict=True))) * 1.3)
        figure.autofmt_xdate()

    return plot(draw, "cost by namespace per hour")


def risk_calibration(table: pd.DataFrame) -> Any | None:
    """Predicted failure probability against the observed failure rate of held-out
    deployments, per bin, with 95 % Wilson intervals (`table`: `ml.calibration`'s; the
    deployments per bin are in the table beside the plot)."""
    if table.empty:
        return None

    def draw(figure: Figure) -> None:
        axes = figure.subplots()
        axes.plot([0, 1], [0, 1], color="gray", linestyle="--", label="perfect calibration")
        axes.errorbar(
            table["predicted"],
            table["observed"],
            yerr=[table["err_below"], table["err_above"]],
            marker="o",
            capsize=3,
            label="held-out deployments",
        )
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_xlabel("mean predicted failure probability")
        axes.set_ylabel("observed failure rate")
        axes.set_title("Risk model calibration (newest 20 % of deployments)")
        axes.legend(loc="upper left")

    return plot(draw, "risk model calibration", size=(5.5, 5))


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
