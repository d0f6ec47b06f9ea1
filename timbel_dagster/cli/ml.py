"""`timbel ml` and `timbel analyze-changes`: the ML models' entry points.

The evaluation commands run the same model code the assets use, on any CSV, so that the
numbers in the README can be reproduced on public data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from timbel_dagster.cli.common import friendly_errors, parse_since, print_json, settings_or_exit
from timbel_dagster.cli.tables import (
    Column,
    count,
    days,
    duration,
    fraction,
    number,
    print_table,
    right,
    say,
    when,
)
from timbel_dagster.ml.changepoints.selection import evaluate_directory
from timbel_dagster.ml.changes.deployments import (
    aggregate_per_deployment,
    check_tag_pattern,
    deployment_tags,
)
from timbel_dagster.ml.changes.metrics import commit_metrics
from timbel_dagster.ml.forecast.eval import evaluate_csv
from timbel_dagster.ml.risk import files as risk_files
from timbel_dagster.ml.risk.data import PROFILE_NAMES
from timbel_dagster.ml.risk.scoring import costs_from

if TYPE_CHECKING:
    from timbel_dagster.ml.changes.deployments import DeploymentChangeMetrics
    from timbel_dagster.ml.changes.metrics import CommitMetrics


@click.group()
def ml() -> None:
    """Evaluate the risk model, change-point detector and cost forecaster on your data."""


@click.command("analyze-changes")
@click.argument("repo", type=click.Path(path_type=Path))
@click.option("--since", default=None, help="Only list commits since: 7d, 12h, or an ISO date.")
@click.option(
    "--deploy-tags",
    default=None,
    metavar="PATTERN",
    help="Treat the tags matching this glob (e.g. 'v*') as deployments, in commit-date order, "
    "and aggregate the commits each shipped.",
)
@click.option(
    "--all-metrics",
    is_flag=True,
    help="Also print the metrics the table leaves out (NS ND LT NDEV NUC REXP SEXP PRIORFIX "
    "CHURN30), in a second table.",
)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def analyze_changes(
    repo: Path, since: str | None, deploy_tags: str | None, all_metrics: bool, as_json: bool
) -> None:
    """Kamei et al.'s change metrics, and the touched files' earlier fixes and recent churn,
    for every non-merge commit of the git repository REPO (earlier history still counts when
    --since cuts the list)."""
    import time

    start = parse_since(since)
    if deploy_tags:
        check_tag_pattern(deploy_tags)  # before the history walk, which can take minutes
    began = time.perf_counter()
    progress = None if as_json else _changes_progress
    commits = commit_metrics(repo, progress=progress)
    shown = [c for c in commits if start is None or c.committed_at >= start]
    deployments = []
    if deploy_tags:
        tags = deployment_tags(repo, deploy_tags)
        aggregates = aggregate_per_deployment(commits, [sha for _, sha, _ in tags], repo)
        deployments = [
            replace(aggregate, ref=name)
            for aggregate, (name, _, moment) in zip(aggregates, tags, strict=True)
            if start is None or moment >= start
        ]
    seconds = time.perf_counter() - began
    if as_json:
        print_json(
            {
                "repository": str(repo.resolve()),
                "commits": [c.as_dict() for c in shown],
                "deployments": [d.as_dict() for d in deployments],
            }
        )
        return
    _print_commit_table(shown, all_metrics)
    if deploy_tags:
        _print_deployment_table(deployments, all_metrics)
    fixes = sum(c.fix for c in shown)
    click.echo(
        f"{len(shown):,} commit(s) ({fixes:,} fixes) by {len({c.author for c in shown}):,} "
        f"developer(s), +{sum(c.la for c in shown):,} -{sum(c.ld for c in shown):,} lines"
        + (f", {len(deployments)} deployment(s)" if deploy_tags else "")
        + f"; {len(commits):,} commits analysed in {duration(seconds)}"
    )
    if shown:
        say(LEGEND)
        if not all_metrics:
            say(MORE)


def _changes_progress(count: int) -> None:
    click.echo(f"... {count:,} commits analysed", err=True)


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


# The essential metrics fit 100 columns; --all-metrics adds the others in a second table,
# keyed like the first, and --json has all of them. Headers are Kamei's names, PRIORFIX and
# CHURN30 the file-history metrics' (the footer and docs/cli.md say what they mean).
COMMIT_COLUMNS = [
    Column("SHA", lambda c: c.sha[:10]),
    Column("COMMITTED", "committed_at", when),
    Column("AUTHOR", "author"),
    Column("FIX", lambda c: _yes_no(c.fix)),
    right("NF", "nf", count),
    right("LA", "la", count),
    right("LD", "ld", count),
    right("ENT", "entropy", fraction),
    right("AGE", "age", days),
    right("EXP", "exp", count),
]
MORE_COMMIT_COLUMNS = [
    Column("SHA", lambda c: c.sha[:10]),
    right("NS", "ns", count),
    right("ND", "nd", count),
    right("LT", "lt", count),
    right("NDEV", "ndev", count),
    right("NUC", "nuc", count),
    right("REXP", "rexp", number),
    right("SEXP", "sexp", count),
    right("PRIORFIX", "prior_fixes", count),
    right("CHURN30", "recent_churn", count),
]
DEPLOYMENT_COLUMNS = [
    Column("DEPLOYMENT", "ref"),
    Column("SHA", lambda d: d.sha[:10]),
    right("COMMITS", "n_commits", count),
    right("FIXES", "n_fixes", count),
    right("DEVS", "n_developers", count),
    right("NF", "nf", count),
    right("LA", "la", count),
    right("LD", "ld", count),
    right("ENT", "entropy", fraction),
    right("EXPMIN", "exp_min", count),
]
MORE_DEPLOYMENT_COLUMNS = [
    Column("DEPLOYMENT", "ref"),
    right("NS", "ns", count),
    right("ND", "nd", count),
    right("LT", "lt", count),
    right("NDEV", "ndev", count),
    right("NUC", "nuc", count),
    right("AGE", "age", days),
    right("EXP", "exp", number),
    right("REXP", "rexp", number),
    right("SEXP", "sexp", number),
    right("PRIORFIX", "prior_fixes", count),
    right("CHURN30", "recent_churn", count),
]
LEGEND = (
    "NF files, LA/LD lines added/deleted, ENT how spread the change is (bits, 0 to log2 NF), "
    "AGE mean days since its files last changed, EXP the author's earlier commits"
)
MORE = "--all-metrics adds NS ND LT NDEV NUC REXP SEXP PRIORFIX CHURN30; --json has every metric"


def _print_commit_table(commits: list[CommitMetrics], all_metrics: bool) -> None:
    empty = "no commits in this range (--since cuts the list, not the history analysed)"
    print_table(commits, COMMIT_COLUMNS, empty=empty)
    if all_metrics and commits:
        click.echo()
        print_table(commits, MORE_COMMIT_COLUMNS, empty=empty)


def _print_deployment_table(deployments: list[DeploymentChangeMetrics], all_metrics: bool) -> None:
    click.echo()
    empty = "no deployments: no tag matches --deploy-tags in this range"
    print_table(deployments, DEPLOYMENT_COLUMNS, empty=empty)
    if all_metrics and deployments:
        click.echo()
        print_table(deployments, MORE_DEPLOYMENT_COLUMNS, empty=empty)


@ml.command("evaluate-forecast")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--time-col", required=True, help="Unix seconds or date-times (UTC by default).")
@click.option("--value-col", required=True, help="The series to forecast.")
@click.option("--freq", default="1h", show_default=True, help="Step to resample to.")
@click.option("--horizon", default=168, show_default=True, type=click.IntRange(min=1))
@click.option("--origins", default=4, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--agg",
    type=click.Choice(["mean", "sum"]),
    default="mean",
    show_default=True,
    help="mean for levels (usage), sum for amounts per interval (cost spent, requests).",
)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def evaluate_forecast(
    csv_path: Path,
    time_col: str,
    value_col: str,
    freq: str,
    horizon: int,
    origins: int,
    agg: str,
    as_json: bool,
) -> None:
    """Score the cost forecaster on one column of a CSV: forecasts from ORIGINS origins one
    horizon apart at the end of the series, against the mean of the last 7 days and the
    seasonal-naive baselines (MASE with a one-day season, and the horizon total's error),
    per origin and in total, with the hourly intervals' coverage and whether each horizon
    total fell inside its 80 % interval. At each origin the method is chosen by backtests
    on the history before it only."""

    result = evaluate_csv(csv_path, time_col, value_col, freq, horizon, origins, agg)
    if as_json:
        print_json(result)
        return
    click.echo(
        f"{value_col} at {freq} ({agg}), horizon {horizon} steps, {result['n_origins']} origins"
    )
    click.echo(f"{'METHOD':<16} {'MASE':>7} {'TOTAL ERR %':>12}")
    for name, mase_key, total_key in (
        ("forecaster", "mase", "weekly_total_error_pct"),
        ("mean last 7d", "baseline_mean7d_mase", "baseline_mean7d_weekly_total_error_pct"),
        (
            "seasonal naive",
            "baseline_seasonal_naive_mase",
            "baseline_seasonal_naive_weekly_total_error_pct",
        ),
    ):
        click.echo(
            f"{name:<16} {_figure(result[mase_key], 7, 3)} {_figure(result[total_key], 12, 1)}"
        )
    click.echo(
        f"{'hindsight shape':<16} {_figure(result['hindsight_daily_shape_mase'], 7, 3)} "
        f"{'-':>12}  (each horizon's own median per time of day, known only afterwards: "
        "the lowest MASE a level and daily shape can score)"
    )
    click.echo(
        f"hourly interval coverage: 80% -> {_figure(result['hourly_coverage80'], 0, 2)}, "
        f"95% -> {_figure(result['hourly_coverage95'], 0, 2)}"
    )
    click.echo(
        f"horizon total inside its 80% interval: {result['weekly_total_in_interval80']} of "
        f"{result['n_origins']} origins"
    )
    click.echo(f"selection: {result['selection']}")
    click.echo()
    click.echo(
        f"{'ORIGIN':<11} {'MASE':>6} {'7D':>6} {'SNAIVE':>6} {'TOT%':>6} {'7D%':>6} "
        f"{'SN%':>6} {'TOTAL':>11} {'80% INTERVAL':>24}  MODEL"
    )
    for row in result["per_origin"]:
        low, high = row["weekly_total_interval80"]
        mark = "in" if row["weekly_total_in_interval80"] else "OUT"
        click.echo(
            f"{row['origin'][:10]:<11} {_figure(row['forecast_mase'], 6, 3)} "
            f"{_figure(row['mean7d_mase'], 6, 3)} {_figure(row['seasonal_naive_mase'], 6, 3)} "
            f"{_figure(row['forecast_total_error_pct'], 6, 1)} "
            f"{_figure(row['mean7d_total_error_pct'], 6, 1)} "
            f"{_figure(row['seasonal_naive_total_error_pct'], 6, 1)} "
            f"{row['actual_total']:>11.4g} {f'{low:.4g} - {high:.4g} {mark}':>24}  {row['model']}"
        )


def _figure(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


@ml.command("evaluate-changepoints")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def evaluate_changepoints(directory: Path, as_json: bool) -> None:
    """Score the change-point detector on a TCPD directory (annotations.json plus one folder
    per series) with TCPDBench's F1 and cover: the shipped rule in sample, the rule chosen by
    leave-one-series-out over the other series (the honest figure), TCPDBench's default binary
    segmentation and the detector that reports nothing, per series and on average."""

    result = evaluate_directory(directory)
    if as_json:
        print_json(result)
        return
    selection = result["selection"]
    click.echo(
        f"{'SERIES':<20} {'N':>5} {'F1':>6} {'COVER':>6} {'LOSO F1':>8} {'COVER':>6} "
        f"{'BINSEG F1':>10} {'COVER':>6} {'ZERO F1':>8} {'COVER':>6}  LOSO RULE"
    )
    for row in result["series"]:
        click.echo(
            f"{row['name'][:20]:<20} {row['n_obs']:>5} {row['f1']:>6.3f} {row['cover']:>6.3f} "
            f"{row['loso_f1']:>8.3f} {row['loso_cover']:>6.3f} "
            f"{row['baseline_binseg_f1']:>10.3f} {row['baseline_binseg_cover']:>6.3f} "
            f"{row['baseline_zero_f1']:>8.3f} {row['baseline_zero_cover']:>6.3f}  "
            f"{row['loso_rule']}"
        )
    loso = result["loso"]
    click.echo(
        f"{result['n_series']} series: shipped rule {selection['shipped']} in sample F1 "
        f"{result['f1']:.4f}, cover {result['cover']:.4f}; leave-one-series-out F1 "
        f"{loso['f1']:.4f}, cover {loso['cover']:.4f}; binseg F1 "
        f"{result['baseline_binseg_f1']:.4f}, cover {result['baseline_binseg_cover']:.4f}; "
        f"report nothing F1 {result['baseline_zero_f1']:.4f}, cover "
        f"{result['baseline_zero_cover']:.4f}"
    )
    versus = result["loso_vs_binseg"]
    click.echo(
        f"LOSO against binseg, (F1 + cover) / 2 per series: better on {versus['better']}, "
        f"worse on {versus['worse']}, equal on {versus['equal']}; mean difference "
        f"{versus['mean_difference']:+.4f} (90 % bootstrap over series "
        f"{versus['bootstrap90'][0]:+.4f} to {versus['bootstrap90'][1]:+.4f})"
    )
    click.echo(
        f"Selection: {selection['method']} over a grid of {len(selection['grid'])} detectors "
        f"({'; '.join(selection['grid'])}); "
        f"{selection['rule']}."
    )
    agree = "the shipped rule" if selection["shipped_is_chosen"] else "NOT the shipped rule"
    click.echo(
        f"Chosen on all {result['n_series']} series: {selection['chosen_on_all_series']} ({agree})."
    )


@ml.command("evaluate-risk")
@click.option("--train", "train", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--test", "test", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    help="One file, split in time order: oldest 80 % to train (instead of --train/--test).",
)
@click.option("--label", default=None, help="Outcome column (default: bug, buggy, failed...).")
@click.option("--time", "time_col", default=None, help="Time column (default: commitdate...).")
@click.option(
    "--columns-map",
    default=None,
    metavar="NEW=OLD,...",
    help="Map metric names (ns nd nf entropy la ld lt fix ndev age nuc exp rexp sexp) to the "
    "file's columns, over the detected profile's defaults.",
)
@click.option(
    "--profile",
    type=click.Choice(PROFILE_NAMES),
    default="auto",
    show_default=True,
    help="Dataset naming and scaling (kamei2013 undoes Kamei's normalisation; commitguru: "
    "Commit Guru files such as Zeng et al.'s ISSTA 2021 data, entropy spelt 'entrophy').",
)
@click.option(
    "--group",
    default="auto",
    show_default=True,
    help="Repository/project column the model may use ('none' to use the metrics only).",
)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def evaluate_risk(
    train: Path | None,
    test: Path | None,
    data: Path | None,
    label: str | None,
    time_col: str | None,
    columns_map: str | None,
    profile: str,
    group: str,
    as_json: bool,
) -> None:
    """Score the change-risk model on change metrics with defect labels, next to the
    baselines in the same run: ranking by lines added, reviewing the smallest changes first,
    and a default random forest."""
    result = risk_files.evaluate_csv(
        train=train,
        test=test,
        data=data,
        label=label,
        time=time_col,
        columns_map=columns_map,
        profile=profile,
        group=group,
        costs=costs_from(settings_or_exit()),
    )
    if as_json:
        print_json(result)
        return
    click.echo(
        f"{result['split']} (profile {result['profile']}): {result['n_train']:,} training and "
        f"{result['n_test']:,} test changes, {result['test_defect_rate']:.1%} defective"
    )
    click.echo(f"{'FIGURE':<26} {'MODEL':>7}  BASELINES")
    click.echo(
        f"{'AUC':<26} {result['auc']:>7.3f}  random forest {result['baseline_rf_auc']:.3f}, "
        f"lines added {result['baseline_la_auc']:.3f}"
    )
    click.echo(
        f"{'PR-AUC':<26} {result['pr_auc']:>7.3f}  random forest {result['baseline_rf_pr_auc']:.3f}"
    )
    click.echo(
        f"{'Brier':<26} {result['brier']:>7.3f}  calibration error "
        f"{result['expected_calibration_error']:.3f} (mean predicted "
        f"{result['mean_predicted']:.1%}, observed {result['test_defect_rate']:.1%})"
    )
    click.echo(
        f"{'recall at 20% effort':<26} {result['recall_at_20pct_effort']:>7.3f}  smallest "
        f"first {result['baseline_smallest_first_recall_at_20pct_effort']:.3f}"
    )
    shares = result["advice_shares"]
    click.echo(
        f"{'advice cost per change':<26} {result['advice_cost_per_change']:>7.3f}  approve all "
        f"{result['baseline_approve_all_cost_per_change']:.3f}, review all "
        f"{result['baseline_review_all_cost_per_change']:.3f}  (approve {shares['approve']:.0%}, "
        f"review {shares['review']:.0%}, reject {shares['reject']:.0%}; costs from "
        "TIMBEL_RISK_COST_*)"
    )
    click.echo(f"Settings: {result['settings']}.")
