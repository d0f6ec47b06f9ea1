"""The rules that turn a pipeline's typical layout into suggestions, each with its saving.

Savings are the drop in the typical wall time of one run (the critical path recomputed with
the changed stage), except for quarantine, which saves the time lost to flaky failures.

- parallelise: two or more consecutive top-level units (a stage, or a parallel block) that
  are all checks (tests, lint, scans ... by name, `CHECK_PATTERN`) only read what the build
  produced, so they can run side by side: saving = sum of their times - the longest.
  Independence is inferred from names because the CI data has no dependency graph.
- cache: a dependency/build stage (`BUILD_PATTERN`) that takes at least `CACHE_MIN_SECONDS`
  and whose duration is stable across commits (interquartile range of the per-commit medians
  at most `CACHE_MAX_SPREAD` of their median, over at least `CACHE_MIN_COMMITS` commits)
  does the same work whatever changed, which a cache keyed on the lock file or build inputs
  skips; assumed to save `CACHE_SAVED_FRACTION` of its time.
- split: a leaf stage taking at least `SPLIT_MIN_SHARE` of the critical path, split into
  `SPLIT_WAYS` parallel shards of equal length.
- quarantine: a flaky stage (see `flaky`) whose failures cost time; saving = that
  expected retry time per run.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from timbel_dagster.ml.bottlenecks.paths import Layout, Node, StageKey

CHECK_PATTERN = re.compile(
    r"test|spec|lint|check|scan|audit|sonar|quality|analy[sz]|style|format|coverage|verify|"
    r"sast|dast|trivy|vet",
    re.IGNORECASE,
)
BUILD_PATTERN = re.compile(
    r"build|compile|install|depend|deps|restore|setup|bundle|assemble|resolve|download|"
    r"bootstrap|vendor|npm|yarn|pip|maven|gradle|cargo",
    re.IGNORECASE,
)
NOT_CACHEABLE = re.compile(r"publish|deploy|push|release|upload", re.IGNORECASE)
CACHE_MIN_SECONDS = 60.0
CACHE_MAX_SPREAD = 0.25
CACHE_MIN_COMMITS = 5
CACHE_SAVED_FRACTION = 0.5
SPLIT_MIN_SHARE = 0.4
SPLIT_WAYS = 2
MIN_SAVING_SECONDS = 1.0


def _is_check(unit: Node) -> bool:
    if unit.is_block:
        return all(_is_check(child) for child in unit.children)
    return bool(CHECK_PATTERN.search(unit.label))


def _parallelise(
    pipeline: str, layout: Layout, typical: dict[StageKey, float]
) -> list[dict[str, Any]]:
    found, run = [], []
    for unit in [*layout.units, None]:  # None flushes the last run
        if unit is not None and _is_check(unit):
            run.append(unit)
            continue
        if len(run) >= 2:
            times = [layout.unit_seconds(u, typical) for u in run]
            saving = sum(times) - max(times)
            found.append(
                {
                    "kind": "parallelise",
                    "pipeline": pipeline,
                    "stages": tuple(u.label for u in run),
                    "seconds_saved_per_run": round(saving, 1),
                    "reason": (
                        f"{len(run)} check stages run one after another "
                        f"({' + '.join(f'{t:.0f}s' for t in times)}); side by side they take "
                        f"{max(times):.0f}s"
                    ),
                }
            )
        run = []
    return found


def _saving(layout: Layout, typical: dict[StageKey, float], key: StageKey, seconds: float) -> float:
    return layout.length(typical) - layout.length({**typical, key: seconds})


def _stable(ran: pd.DataFrame, executions: pd.DataFrame, key: StageKey) -> tuple[bool, float]:
    """Whether the stage's duration hardly depends on the commit; and the spread measured."""
    parent, name = key
    same = ran["parent_name"].isna() if parent is None else ran["parent_name"] == parent
    passed = ran[same & (ran["name"] == name) & (ran["status"] == "success")]
    with_commit = passed.merge(
        executions[["id", "commit_sha"]].rename(columns={"id": "execution_id"}), on="execution_id"
    ).dropna(subset=["commit_sha"])
    per_commit = with_commit.groupby("commit_sha")["seconds"].median()
    if len(per_commit) < CACHE_MIN_COMMITS or per_commit.median() <= 0:
        return False, float("nan")
    spread = float((per_commit.quantile(0.75) - per_commit.quantile(0.25)) / per_commit.median())
    return spread <= CACHE_MAX_SPREAD, spread


def suggest(
    pipeline: str,
    layout: Layout,
    typical: dict[StageKey, float],
    ran: pd.DataFrame,
    executions: pd.DataFrame,
    flaky: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Suggestions for one pipeline (see the module docstring for the rules).

    Args:
        pipeline: the pipeline's name.
        layout: its stage layout.
        typical: typical seconds of each leaf stage.
        ran: its stage runs that finished (execution_id, parent_name, name, status, seconds).
        executions: its executions (id, commit_sha).
        flaky: its flaky stages as `flaky.flaky_stages` returns them.

    Returns:
        Suggestion fields (kind, pipeline, stages, seconds_saved_per_run, reason).
    """
    found = _parallelise(pipeline, layout, typical)
    length = layout.length(typical)
    for key, seconds in sorted(typical.items(), key=lambda kv: -kv[1]):
        name = key[1]
        if (
            seconds >= CACHE_MIN_SECONDS
            and BUILD_PATTERN.search(name)
            and not NOT_CACHEABLE.search(name)
        ):
            stable, spread = _stable(ran, executions, key)
            saving = _saving(layout, typical, key, seconds * (1 - CACHE_SAVED_FRACTION))
            if stable:
                found.append(
                    {
                        "kind": "cache",
                        "pipeline": pipeline,
                        "stages": (name,),
                        "seconds_saved_per_run": round(saving, 1),
                        "reason": (
                            f"'{name}' takes {seconds:.0f}s whatever the commit (spread "
                            f"{spread:.0%}): cache its inputs; assumed to save "
                            f"{CACHE_SAVED_FRACTION:.0%} of it"
                        ),
                    }
                )
        if length and seconds / length >= SPLIT_MIN_SHARE:
            saving = _saving(layout, typical, key, seconds / SPLIT_WAYS)
            found.append(
                {
                    "kind": "split",
                    "pipeline": pipeline,
                    "stages": (name,),
                    "seconds_saved_per_run": round(saving, 1),
                    "reason": (
                        f"'{name}' is {seconds / length:.0%} of the critical path "
                        f"({seconds:.0f}s of {length:.0f}s): split it into {SPLIT_WAYS} "
                        "parallel shards"
                    ),
                }
            )
    for f in flaky:
        if f["wasted_seconds_per_run"] > 0:
            found.append(
                {
                    "kind": "quarantine",
                    "pipeline": pipeline,
                    "stages": (f["stage"],),
                    "seconds_saved_per_run": f["wasted_seconds_per_run"],
                    "reason": (
                        f"'{f['stage']}' is flaky (score {f['score']:.3f}: "
                        f"{f['retried_passes']} retries passed, {f['commits_with_flips']} "
                        "commits both passed and failed): quarantine it and fix it"
                    ),
                }
            )
    return [s for s in found if s["seconds_saved_per_run"] >= MIN_SAVING_SECONDS]
