"""`timbel ml`, `timbel risk` and `timbel analyze-changes`: the ML models' entry points.

The evaluation commands run the same model code the assets use, on any CSV, so that the
numbers in the README can be reproduced on public data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from timbel_dagster.cli.common import friendly_errors, print_json

if TYPE_CHECKING:
    from timbel_dagster.ml.change_deployments import DeploymentChangeMetrics
    from timbel_dagster.ml.change_metrics import CommitMetrics


@click.group()
def ml() -> None:
    """Evaluate the risk model, change-point detector and cost forecaster on your data."""


@click.group()
def risk() -> None:
    """Deployment-risk advisor."""


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
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def analyze_changes(repo: Path, since: str | None, deploy_tags: str | None, as_json: bool) -> None:
    """Kamei et al.'s change metrics for every non-merge commit of the git repository REPO
    (earlier history still counts when --since cuts the list)."""
    import time

    from timbel_dagster.cli.common import parse_since
    from timbel_dagster.ml.change_deployments import aggregate_per_deployment, deployment_tags
    from timbel_dagster.ml.change_metrics import commit_metrics

    start = parse_since(since)
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
    _print_commit_table(shown)
    if deploy_tags:
        _print_deployment_table(deployments)
    fixes = sum(c.fix for c in shown)
    click.echo(
        f"{len(shown):,} commit(s) ({fixes:,} fixes) by {len({c.author for c in shown}):,} "
        f"developer(s), +{sum(c.la for c in shown):,} -{sum(c.ld for c in shown):,} lines"
        + (f", {len(deployments)} deployment(s)" if deploy_tags else "")
        + f"; {len(commits):,} commits analysed in {seconds:.1f}s"
    )


def _changes_progress(count: int) -> None:
    click.echo(f"... {count:,} commits analysed", err=True)


def _print_commit_table(commits: list[CommitMetrics]) -> None:
    click.echo(
        f"{'SHA':<10} {'COMMITTED':<16} {'AUTHOR':<16} {'FIX':<3} {'NS':>3} {'ND':>4} "
        f"{'NF':>5} {'ENT':>4} {'LA':>7} {'LD':>7} {'LT':>8} {'NDEV':>4} {'AGE':>7} "
        f"{'NUC':>5} {'EXP':>5} {'REXP':>7} {'SEXP':>5}"
    )
    for c in commits:
        click.echo(
            f"{c.sha[:10]:<10} {c.committed_at:%Y-%m-%d %H:%M} {c.author[:16]:<16} "
            f"{'yes' if c.fix else '':<3} {c.ns:>3} {c.nd:>4} {c.nf:>5} {c.entropy:>4.2f} "
            f"{c.la:>7} {c.ld:>7} {c.lt:>8} {c.ndev:>4} {c.age:>7.1f} {c.nuc:>5} {c.exp:>5} "
            f"{c.rexp:>7.1f} {c.sexp:>5}"
        )


def _print_deployment_table(deployments: list[DeploymentChangeMetrics]) -> None:
    click.echo(
        f"\n{'DEPLOYMENT':<20} {'SHA':<10} {'COMMITS':>7} {'FIXES':>5} {'DEVS':>4} {'LA':>7} "
        f"{'LD':>7} {'NF':>5} {'NS':>3} {'ENT':>4} {'NDEV':>4} {'AGE':>7} {'EXP':>7} "
        f"{'EXPMIN':>6}"
    )
    for d in deployments:
        click.echo(
            f"{d.ref[:20]:<20} {d.sha[:10]:<10} {d.n_commits:>7} {d.n_fixes:>5} "
            f"{d.n_developers:>4} {d.la:>7} {d.ld:>7} {d.nf:>5} {d.ns:>3} "
            f"{_maybe(d.entropy, 4, 2)} {_maybe(d.ndev, 4, 0)} {_maybe(d.age, 7, 1)} "
            f"{_maybe(d.exp, 7, 1)} {_maybe(d.exp_min, 6, 0)}"
        )


def _maybe(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"
