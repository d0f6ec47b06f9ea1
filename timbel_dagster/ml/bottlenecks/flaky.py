"""Flaky stages: outcomes that change while the code does not.

The flakiness score of a stage is its rate of non-reproducible failures: the share of its runs
(every attempt counts as a run) that failed on a commit on which the same stage also passed,

    score = sum over commits c with passes_c > 0 of fails_c  /  sum over commits of runs_c.

So a stage that only passes scores 0, and so does one that only ever fails on a commit (that
commit is broken, not flaky); a failure that a retry, or a re-run of the pipeline on the same
commit, turns into a pass counts. The score is the chance that a run is lost to a flake, which
is what the time a quarantine saves depends on. Runs without a commit sha are grouped with
the other attempts of their own execution only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

OUTCOMES = ("success", "failed")


def flake_rate(outcomes_by_commit: Iterable[tuple[int, int]]) -> float:
    """The share of runs that failed on a commit where the same stage also passed.

    Args:
        outcomes_by_commit: (passes, fails) of the runs on each commit.

    Returns:
        The flakiness score in [0, 1); 0 when there are no runs.

    Raises:
        ValueError: on a negative count.
    """
    flaky = runs = 0
    for passes, fails in outcomes_by_commit:
        if passes < 0 or fails < 0:
            raise ValueError(f"negative run count ({passes}, {fails})")
        flaky += fails if passes else 0
        runs += passes + fails
    return flaky / runs if runs else 0.0


def flaky_stages(attempts: pd.DataFrame, executions: pd.DataFrame) -> list[dict[str, Any]]:
    """Score every stage of one pipeline and keep the flaky ones (score > 0).

    Args:
        attempts: the pipeline's stage rows (one per attempt) with `execution_id`,
            `parent_name`, `name`, `status`, `duration`, `attempt`.
        executions: the pipeline's executions with `id`, `status`, `started_at`, `duration`,
            `commit_sha`.

    Returns:
        One dict per flaky stage: parent_name, stage, score, runs, commits_with_flips,
        retried_passes, wasted_seconds_per_run (time lost to failed attempts that a retry, or
        a re-run of the pipeline on the same commit, then passed), sorted by score.
    """
    import pandas as pd

    columns = ["execution_id", "parent_name", "name", "status", "duration", "attempt"]
    ran = attempts.loc[attempts["status"].isin(OUTCOMES), columns].merge(
        executions[["id", "commit_sha", "started_at", "duration"]].rename(
            columns={"id": "execution_id", "duration": "execution_seconds"}
        ),
        on="execution_id",
    )
    if ran.empty:
        return []
    ran = ran.assign(
        commit=ran["commit_sha"].where(
            ran["commit_sha"].notna(), "exec:" + ran["execution_id"].astype(str)
        ),
        passed=ran["status"].eq("success"),
    )
    n_executions = max(len(executions), 1)
    rows = []
    for (parent, name), stage in ran.groupby(["parent_name", "name"], dropna=False, sort=True):
        counts = stage.groupby("commit")["passed"].agg(["sum", "count"])
        score = flake_rate(zip(counts["sum"], counts["count"] - counts["sum"], strict=True))
        if score <= 0:
            continue
        wasted = _wasted_seconds(stage)
        rows.append(
            {
                "parent_name": None if pd.isna(parent) else parent,
                "stage": name,
                "score": round(score, 4),
                "runs": len(stage),
                "commits_with_flips": int(
                    ((counts["sum"] > 0) & (counts["sum"] < counts["count"])).sum()
                ),
                "retried_passes": _retried_passes(stage),
                "wasted_seconds_per_run": round(wasted / n_executions, 1),
            }
        )
    return sorted(rows, key=lambda r: (-r["score"], r["stage"]))


def _retried_passes(stage: pd.DataFrame) -> int:
    """Executions where the stage failed and then passed on a later attempt."""
    count = 0
    for _, runs in stage.groupby("execution_id"):
        ordered = runs.sort_values("attempt")["passed"].tolist()
        if any(not a and b for i, a in enumerate(ordered) for b in ordered[i + 1 :]):
            count += 1
    return count


def _wasted_seconds(stage: pd.DataFrame) -> float:
    """Seconds spent on failures that turned into passes without a code change.

    A failed attempt followed by a passing attempt of the same execution costs its own
    duration; an execution whose stage ended failed, followed by a later execution on the same
    commit where the stage passed, costs that whole execution.
    """
    wasted = 0.0
    finals = []
    for execution_id, runs in stage.groupby("execution_id"):
        ordered = runs.sort_values("attempt")
        passed = ordered["passed"].tolist()
        for i, ok in enumerate(passed):
            if not ok and any(passed[i + 1 :]):
                wasted += float(ordered["duration"].iloc[i] or 0.0)
        last = ordered.iloc[-1]
        finals.append(
            (
                last["commit"],
                last["started_at"],
                bool(last["passed"]),
                last["execution_seconds"],
                execution_id,
            )
        )
    for commit, started, ok, seconds, _ in finals:
        if ok or str(commit).startswith("exec:"):
            continue
        later_pass = any(c == commit and s > started and p for c, s, p, _, _ in finals)
        if later_pass and seconds is not None and seconds == seconds:  # skip NaN
            wasted += float(seconds)
    return wasted
