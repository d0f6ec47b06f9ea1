"""The model cards of `ml/risk_model`, `ml/pipeline_bottlenecks` and `ml/cost_forecast`:
each built from the run's data and the stored evaluation (never from figures written here),
rendered by `ml.cards.render` and attached as the `model_card` markdown metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg

from timbel_dagster.ml.bottlenecks.regressions import MIN_REGRESSION
from timbel_dagster.ml.cards import Figure, ModelCard, render
from timbel_dagster.ml.changepoints.detect import SHIPPED_RULE
from timbel_dagster.ml.changepoints.selection import GRID, SELECTION_RULE
from timbel_dagster.ml.forecast.selection import BACKTESTS, MIN_BACKTESTS, TOP
from timbel_dagster.ml.risk.advisor import (
    FILE_HISTORY_FEATURES,
    MODEL_NAME,
    RISK_CODE_VERSION,
    TRAIN_FRACTION,
)

if TYPE_CHECKING:
    import pandas as pd


def card_metadata(card: ModelCard) -> dg.MetadataValue:
    """The card as the asset page shows it."""
    return dg.MetadataValue.md(render(card))


# A calibration bin with fewer deployments than this has a 95 % interval wider than about
# +-0.14 around a 20 % failure rate: the card says how many bins are that thin.
THIN_BIN = 30


def _blend_weights(weights: Any) -> str:
    """` (here: 1/1/1)` for a stored evaluation that has its chosen weights, else nothing
    (evaluations stored before the weights were chosen per training set)."""
    if not isinstance(weights, list | tuple) or not weights:
        return ""
    return " (here: logistic/boosting/size " + "/".join(f"{float(w):g}" for w in weights) + ")"


def risk_card(
    evaluation: dict[str, Any],
    version: int,
    table: pd.DataFrame,
    calibration: pd.DataFrame | None,
    plot: str | None,
) -> ModelCard:
    """The risk model's card from its stored evaluation, the training rows and the held-out
    calibration table (None when there are no rows)."""
    failed = int(table["label"].sum()) if not table.empty else 0
    window = None if table.empty else (table["started_at"].iloc[0], table["started_at"].iloc[-1])
    needed = ("auc", "n_test", "test_defect_rate", "train_defect_rate")
    missing = [key for key in needed if evaluation.get(key) is None]
    figures, limits, not_evaluated = [], [], None
    if missing:
        not_evaluated = f"the stored evaluation of v{version} has no {', '.join(missing)}"
    else:
        get = evaluation.get
        train_rate, test_rate = float(get("train_defect_rate")), float(get("test_defect_rate"))
        # The Brier score of always predicting the training failure rate, on the test rows.
        constant = test_rate * (1 - train_rate) ** 2 + (1 - test_rate) * train_rate**2
        figures = [
            Figure(
                "ROC AUC",
                get("auc"),
                {
                    "lines added (LApredict)": get("baseline_la_auc"),
                    "random forest": get("baseline_rf_auc"),
                },
            ),
            Figure(
                "PR AUC",
                get("pr_auc"),
                {"random forest": get("baseline_rf_pr_auc"), "random order": test_rate},
            ),
            Figure("Brier score", get("brier"), {"training failure rate": constant}, "lower"),
            Figure(
                "recall at 20 % effort",
                get("recall_at_20pct_effort"),
                {"smallest first": get("baseline_smallest_first_recall_at_20pct_effort")},
            ),
        ]
        n_test = int(get("n_test"))
        limits.append(
            f"One time-ordered split: the newest {n_test} deployments (from "
            f"{str(get('tested_from', '?'))[:10]}) with {round(test_rate * n_test)} failures; "
            "no interval is given for these figures, and with few failures a difference of a "
            "few hundredths between the model and a baseline can be chance."
        )
    if calibration is not None and len(calibration):
        thin = int((calibration["deployments"] < THIN_BIN).sum())
        if thin:
            limits.append(
                f"{thin} of {len(calibration)} calibration bins hold fewer than {THIN_BIN} "
                "held-out deployments: their observed rates are uncertain (the 95 % bounds are "
                "in `calibration`)."
            )
    # An evaluation stored before the features were recorded says nothing about them.
    used = evaluation.get("features")
    unused = [f for f in FILE_HISTORY_FEATURES if used is not None and f not in used]
    if unused:
        limits.append(
            f"It does not use the touched files' history ({' and '.join(unused)}): it takes "
            "one value, or none, across the training deployments. Only commits read from git "
            "by `cicd/commits` carry it (the sample organisation's commits have no files)."
        )
    limits += [
        "The model's settings were chosen on public just-in-time defect datasets of "
        "open-source projects (ml/risk/model.py, docs/benchmarks.md), and its deployment "
        "features (build, flakiness, incidents, timing, the touched files' history) have no "
        "public benchmark: the figures above, on this organisation's own history, are the "
        "only ones for this model.",
        "A failure is what the warehouse records: a failed or rolled-back deployment or one "
        "linked to an incident; a problem never recorded counts as a success.",
    ]
    return ModelCard(
        name=MODEL_NAME,
        version=f"v{version} (code {RISK_CODE_VERSION})",
        window=window,
        data_size={"deployments": len(table), "failed": failed, "succeeded": len(table) - failed},
        figures=figures,
        not_evaluated=not_evaluated,
        selection="the model's fixed settings were chosen on public development projects "
        "(ml/risk/model.py); its blend weights are chosen on each training set by "
        "time-ordered inner validation of its own rows"
        + _blend_weights(evaluation.get("settings_weights"))
        + "; it is evaluated on one time-ordered split, "
        f"oldest {round(TRAIN_FRACTION * 100)} % of deployments to train and the newest to "
        "test, then refitted on every deployment. Calibration: Platt scaling on the newest "
        "training rows.",
        plots=[plot] if plot else [],
        limits=limits,
    )


def bottleneck_card(
    code_version: str, executions: pd.DataFrame, stages: pd.DataFrame, report: dict[str, Any]
) -> ModelCard:
    """The bottleneck analysis's card: the executions it read (`data.load_frames`) and its
    report (`BottleneckReport.to_records`, with `series_points`)."""
    points = list(report.get("series_points", []))
    shortest = 2 * SHIPPED_RULE.min_segment
    window = None
    if len(executions) and executions["started_at"].notna().any():
        window = (executions["started_at"].min(), executions["started_at"].max())
    figures = [
        Figure("pipelines analysed", len(report["critical_paths"]), better=""),
        Figure("duration regressions found", len(report["regressions"]), better=""),
        Figure("flaky stages found", len(report["flaky"]), better=""),
        Figure("suggestions", len(report["suggestions"]), better=""),
    ]
    limits = [
        f"The change-point rule ({SHIPPED_RULE.label}) was chosen on 16 public TCPD series, "
        "where by leave-one-series-out it scores above TCPDBench's default binary "
        "segmentation; it reports only change points binary segmentation also finds, so it "
        "misses slowdowns that one misses, and it has not been scored on the TCPD series "
        "held out from development (issue 16, ml/changepoints/detect.py): a reported "
        "regression is a lead to check, not a proof.",
        f"A slowdown under {MIN_REGRESSION * 100:g} % of the median before it is not "
        f"reported, and a series gets at most {SHIPPED_RULE.max_changes} change points.",
    ]
    short = sum(1 for n in points if n < shortest)
    if short:
        limits.append(
            f"{short} of {len(points)} duration series have fewer than {shortest} successful "
            "runs: no change point can be found in them."
        )
    limits.append(
        "Savings are computed on typical (median) stage durations: a change saves that much "
        "per run only if the stages keep their durations."
    )
    return ModelCard(
        name="pipeline_bottlenecks",
        version=f"{code_version}, change-point rule {SHIPPED_RULE.label}",
        window=window,
        data_size={
            "executions": len(executions),
            "stage attempts": len(stages),
            "duration series": len(points),
            "points in them": sum(points),
        },
        figures=figures,
        not_evaluated="no baseline in this run: these pipelines have no annotated change "
        "points, so the rule's F1 and cover against binary segmentation are measured on the "
        "public TCPD series only (`timbel ml evaluate-changepoints`).",
        selection=f"one rule for every series, chosen by leave-one-series-out over a grid of "
        f"{len(GRID)} rules declared in advance (ml/changepoints/selection.py): "
        f"{SELECTION_RULE}. Nothing is tuned on this warehouse's pipelines.",
        window_name="Analysed window (the rule learns nothing from it)",
        limits=limits,
    )


def forecast_card(code_version: str, total: dict[str, Any] | None, series: int) -> ModelCard:
    """The cost forecaster's card from `CostForecast.total_cost` (None: no cost yet) and the
    number of series forecast."""
    if total is None:
        return ModelCard(
            name="cost_forecast",
            version=code_version,
            window=None,
            data_size={"series": series},
            not_evaluated="no cluster cost in the warehouse yet: nothing was forecast",
            limits=["No forecast, so nothing to trust yet."],
        )
    tests = total.get("backtest")
    figures, not_evaluated = [], None
    limits = [
        f"Settings (the candidates, the median of the best {TOP}, the intervals) were chosen on "
        "the public Bitbrains trace, where the forecast misses issue 16's goal of MASE < 0.75 "
        "on held-out weeks and week-to-week swings were beyond what the history predicted. "
        "There even each week's own median per hour of day, known only afterwards, misses "
        "that goal: `timbel ml evaluate-forecast` prints this bound for any series "
        "(ml/forecast/eval.py, docs/benchmarks.md).",
        "Only the total cost chooses among every candidate; clusters, namespaces, tenants and "
        "usage use the fast ones (profile, hour-of-day profile, 7-day mean), not evaluated here.",
    ]
    if tests is None:
        not_evaluated = (
            f"{total['hours']} hours of history: fewer than {MIN_BACKTESTS} backtests fit, so "
            f"the profile forecaster runs alone ({total['method']}), with intervals from "
            f"{total['interval_method']}"
        )
        limits.append(
            "Without backtests the intervals come from in-sample residuals: narrower than "
            "the truth."
        )
    else:
        figures = [
            Figure(
                "MASE (backtests)",
                tests["mase"],
                {
                    "last-7-days mean": tests["baseline_mean7d_mase"],
                    "seasonal naive (weekly)": tests["baseline_seasonal_naive_mase"],
                },
                "lower",
            ),
        ]
        for level in (80, 95):
            if f"coverage{level}" in tests:
                figures.append(
                    Figure(
                        f"hourly {level} % interval coverage",
                        tests[f"coverage{level}"],
                        {"nominal": level / 100},
                        "closer",
                    )
                )
        if tests.get("coverage80") is None:
            not_evaluated = (
                "interval coverage: no backtest window has two earlier windows that ended before it"
            )
        limits.append(
            f"MASE over {tests['backtests']} backtests of {tests['window_steps']} hours "
            f"(origins {str(tests['first_origin'])[:10]} to {str(tests['last_origin'])[:10]}) "
            "that also chose the candidates: a little optimistic. Coverage counts each "
            f"window against an interval from earlier windows only, over "
            f"{tests['coverage_windows']} windows."
        )
    ranking = total.get("ranking") or {}
    ranked = ", ".join(f"{name} {mase:.3f}" for name, mase in sorted(ranking.items(), key=_rank))
    return ModelCard(
        name="cost_forecast (total cost)",
        version=f"{code_version}: {total['model']} ({total['method']})",
        window=(total["first_hour"], total["last_hour"]),
        data_size={"hours": int(total["hours"]), "series forecast": series},
        figures=figures,
        not_evaluated=not_evaluated,
        selection=f"at each run, candidates ranked by mean MASE over up to {BACKTESTS} one-week "
        f"backtests inside the history; the forecast is the median of the best {TOP}"
        + (f" (backtest MASE: {ranked})" if ranked else " (no backtests: profile alone)")
        + f"; intervals: {total['interval_method']}.",
        limits=limits,
    )


def _rank(item: tuple[str, float]) -> tuple[float, str]:
    return (item[1] if item[1] == item[1] else float("inf"), item[0])
