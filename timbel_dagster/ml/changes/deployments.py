"""Change metrics per deployment: the commits a deployment shipped, summarised.

Deployments are given in order as the commit each one deployed. A deployment ships the
non-merge commits reachable from its commit and not from the previous deployment's
(`git rev-list --no-merges prev..this`); the first ships everything reachable from its commit.
Only commits present in the metrics passed in are aggregated (a list cut by `since` leaves the
older ones out). Aggregation rules, per field of `DeploymentChangeMetrics`:

- n_commits, n_fixes: how many commits, and how many of them are fixes; fix: any is a fix.
- n_developers: distinct authors.
- la, ld: sums. nf, nd, ns: distinct files, directories and subsystems over all commits.
- entropy, lt, ndev, nuc, prior_fixes, recent_churn: the largest commit value (the most
  scattered change, the largest code base touched, the most-shared files, the most-changed,
  most-fixed and most recently churned files; a sum would count the same earlier commits
  once per commit of the deployment that touches their files).
- age, exp, rexp, sexp: the mean over commits; exp_min: the least experienced author's exp.
- first/last_committed_at: the earliest and latest commit time.

With no commits, counts and sums are 0, `fix` is false and the max/mean/min fields are None.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from timbel_dagster.ml.changes import git_history
from timbel_dagster.ml.changes.metrics import CommitMetrics, directory, subsystem


@dataclass(frozen=True)
class DeploymentChangeMetrics:
    """The commits one deployment shipped, aggregated (rules in the module docstring)."""

    ref: str
    sha: str
    previous_sha: str | None
    n_commits: int
    n_fixes: int
    n_developers: int
    first_committed_at: dt.datetime | None
    last_committed_at: dt.datetime | None
    fix: bool
    ns: int
    nd: int
    nf: int
    la: int
    ld: int
    entropy: float | None
    lt: int | None
    ndev: int | None
    nuc: int | None
    age: float | None
    exp: float | None
    exp_min: int | None
    rexp: float | None
    sexp: float | None
    prior_fixes: int | None
    recent_churn: int | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 strings."""
        data = dict(self.__dict__)
        for name in ("first_committed_at", "last_committed_at"):
            moment = data[name]
            data[name] = moment.isoformat() if moment else None
        return data


def _aggregate(
    ref: str, sha: str, previous: str | None, commits: list[CommitMetrics]
) -> DeploymentChangeMetrics:
    files = {path for c in commits for path in c.files}
    some = bool(commits)
    return DeploymentChangeMetrics(
        ref=ref,
        sha=sha,
        previous_sha=previous,
        n_commits=len(commits),
        n_fixes=sum(c.fix for c in commits),
        n_developers=len({c.author for c in commits}),
        first_committed_at=min(c.committed_at for c in commits) if some else None,
        last_committed_at=max(c.committed_at for c in commits) if some else None,
        fix=any(c.fix for c in commits),
        ns=len({subsystem(path) for path in files}),
        nd=len({directory(path) for path in files}),
        nf=len(files),
        la=sum(c.la for c in commits),
        ld=sum(c.ld for c in commits),
        entropy=max(c.entropy for c in commits) if some else None,
        lt=max(c.lt for c in commits) if some else None,
        ndev=max(c.ndev for c in commits) if some else None,
        nuc=max(c.nuc for c in commits) if some else None,
        age=fmean(c.age for c in commits) if some else None,
        exp=fmean(c.exp for c in commits) if some else None,
        exp_min=min(c.exp for c in commits) if some else None,
        rexp=fmean(c.rexp for c in commits) if some else None,
        sexp=fmean(c.sexp for c in commits) if some else None,
        prior_fixes=max(c.prior_fixes for c in commits) if some else None,
        recent_churn=max(c.recent_churn for c in commits) if some else None,
    )


def aggregate_per_deployment(
    commits: Sequence[CommitMetrics], deployment_shas: Sequence[str], repo: Path
) -> list[DeploymentChangeMetrics]:
    """Aggregate commit metrics per deployment.

    Args:
        commits: metrics from `commit_metrics` on `repo`.
        deployment_shas: what each deployment deployed, oldest deployment first: full or
            abbreviated shas, tags or branch names.
        repo: the repository the commits come from (ancestry is asked from git).

    Returns:
        One aggregate per deployment, in the order given; commits inside each in walk order.

    Raises:
        ValueError: `repo` is not a git repository, or a deployment names no commit in it.
    """
    git_history.require_repository(repo)
    resolved = [git_history.resolve_commit(repo, ref) for ref in deployment_shas]
    position = {c.sha: index for index, c in enumerate(commits)}
    found: list[DeploymentChangeMetrics] = []
    previous: str | None = None
    for ref, sha in zip(deployment_shas, resolved, strict=True):
        shipped = sorted(
            position[s] for s in git_history.rev_list(repo, sha, previous) if s in position
        )
        found.append(_aggregate(ref, sha, previous, [commits[i] for i in shipped]))
        previous = sha
    return found


def check_tag_pattern(pattern: str) -> None:
    """Refuse a tag pattern that starts with `-`: no tag name can (git refuses one), and git
    would read it as an option.

    Raises:
        ValueError: naming the pattern.
    """
    if pattern.startswith("-"):
        raise ValueError(f"tag pattern {pattern!r} starts with '-', which no tag name can")


def deployment_tags(repo: Path, pattern: str) -> list[tuple[str, str, dt.datetime]]:
    """The tags matching the glob `pattern`, as deployments: (tag, commit sha, commit time),
    ordered by the tagged commit's committer time (ties by tag name).

    Raises:
        ValueError: `repo` is not a git repository, or `pattern` starts with `-` (no tag
            name can: git refuses one).
        LookupError: no tag matches `pattern`.
    """
    check_tag_pattern(pattern)
    git_history.require_repository(repo)
    found = [
        (name, sha, dt.datetime.fromtimestamp(time, dt.UTC))
        for name, sha, time in git_history.tags(repo, pattern)
    ]
    if not found:
        raise LookupError(f"no tag of a commit in {repo} matches {pattern!r}")
    return found


@dataclass(frozen=True)
class DeploymentCommitRef:
    """A stored deployment, as far as linking it to its commits needs."""

    id: Any
    service: str
    environment: str
    status: str
    started_at: dt.datetime
    commit_to: str


def shipped_commits(
    repo: Path,
    deployments: Sequence[DeploymentCommitRef],
    wanted: set[Any],
    known: set[str],
) -> dict[Any, list[str]]:
    """The commits each wanted deployment shipped (or tried to ship), as in
    `aggregate_per_deployment`: reachable from its commit and not from the commit the last
    earlier successful deployment of the same service and environment deployed (everything
    reachable for the first one).

    Args:
        repo: the repository the deployments' commits are in.
        deployments: every deployment of the repository (the chains' earlier members decide
            what a later one shipped); any order.
        wanted: ids of the deployments to link (one `git rev-list` each).
        known: shas that may be linked (the repository's stored commits).

    Returns:
        deployment id -> shas, for the wanted deployments whose commit is in `known`.
    """
    chains: dict[tuple[str, str], list[DeploymentCommitRef]] = {}
    for deployment in deployments:
        chains.setdefault((deployment.service, deployment.environment), []).append(deployment)
    found: dict[Any, list[str]] = {}
    for chain in chains.values():
        previous: str | None = None
        for deployment in sorted(chain, key=lambda d: (d.started_at, str(d.id))):
            if deployment.id in wanted and deployment.commit_to in known:
                shas = git_history.rev_list(repo, deployment.commit_to, previous)
                found[deployment.id] = [sha for sha in shas if sha in known]
            if deployment.status == "success" and deployment.commit_to in known:
                previous = deployment.commit_to
    return found
