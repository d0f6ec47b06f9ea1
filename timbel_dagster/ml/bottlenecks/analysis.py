"""Where pipelines lose time: critical path, time shares, regressions, flaky stages, and what
to change, with the seconds each change would save per run.

Input frames (see `data.load_frames`):
- executions: id, pipeline, status, started_at, duration, queue_seconds, commit_sha;
- stages (one row per attempt): execution_id, name, parent_name, position, status, duration,
  queue_seconds, attempt (`pipeline` is taken from the executions when missing).

A stage's run in one execution takes the sum of its attempts' durations; its typical duration
is the median over the executions in which it ran (status success or failed). The critical
path and every saving are computed on those typical durations with `paths`, so a
saving is the drop in the typical wall time of one run.

Per stage: `wall_share` = typical duration / median duration of the pipeline's successful
executions (parallel branches overlap, so the shares of a pipeline can add up to more than 1);
`queue_share` = the stage's queue seconds / all stages' queue seconds in the pipeline;
`critical_share` = typical duration / critical path length, for stages on the path (else 0).
Regressions: `detect_changepoints` on each stage's durations in its successful runs and on the
successful executions' durations, in start order; a change point is reported when the median
after it is at least `MIN_REGRESSION` above the median before it (segments between change
points).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.bottlenecks.flaky import OUTCOMES, flaky_stages
from timbel_dagster.ml.bottlenecks.paths import StageKey, build_layout
from timbel_dagster.ml.bottlenecks.regressions import median, regressions
from timbel_dagster.ml.bottlenecks.rules import suggest

if TYPE_CHECKING:
    import pandas as pd

EXECUTION_REQUIRED = ("id", "pipeline", "status", "started_at", "duration", "commit_sha")
STAGE_REQUIRED = (
    "execution_id",
    "name",
    "parent_name",
    "position",
    "status",
    "duration",
    "attempt",
)


@dataclass(frozen=True)
class Suggestion:
    """One change to a pipeline and the wall time it would save per run."""

    kind: str  # parallelise | cache | split | quarantine
    pipeline: str
    stages: tuple[str, ...]
    seconds_saved_per_run: float
    reason: str


@dataclass
class BottleneckReport:
    """The analysis of every pipeline in the input frames."""

    stages: pd.DataFrame  # one row per (pipeline, stage)
    critical_paths: list[dict[str, Any]] = field(default_factory=list)
    regressions: list[dict[str, Any]] = field(default_factory=list)
    flaky: list[dict[str, Any]] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    # The length of every duration series searched for change points (the model card's
    # data size).
    series_points: list[int] = field(default_factory=list)

    def to_records(self) -> dict[str, list[dict[str, Any]]]:
        """Plain JSON-ready lists, one per part of the report."""
        stage_rows = [
            {k: (None if v != v else v) for k, v in row.items()}  # NaN -> None
            for row in self.stages.to_dict(orient="records")
        ]
        return {
            "stages": stage_rows,
            "critical_paths": self.critical_paths,
            "regressions": self.regressions,
            "flaky": self.flaky,
            "suggestions": [asdict(s) | {"stages": list(s.stages)} for s in self.suggestions],
            "series_points": self.series_points,
        }


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame is missing column(s): {', '.join(missing)}")


def _stage_runs(stages: pd.DataFrame) -> pd.DataFrame:
    """One row per (execution, stage): summed attempts, final status, queue."""
    import pandas as pd

    ordered = stages.sort_values(
        ["execution_id", "parent_name", "name", "attempt"], na_position="first"
    )
    keys = ["pipeline", "execution_id", "parent_name", "name"]
    runs = ordered.groupby(keys, dropna=False, sort=False).agg(
        position=("position", "min"),
        seconds=("duration", "sum"),
        timed=("duration", "count"),
        queue=("queue_seconds", "sum"),
        queued=("queue_seconds", "count"),
        status=("status", "last"),
        attempts=("attempt", "max"),
    )
    runs = runs.reset_index()
    # a run none of whose attempts has a duration (or queue time) has none, not 0
    runs["seconds"] = runs["seconds"].astype(float).where(runs["timed"] > 0)
    runs["queue"] = runs["queue"].astype(float).where(runs["queued"] > 0)
    runs["parent_name"] = (
        runs["parent_name"].astype(object).where(runs["parent_name"].notna(), None)
    )
    return pd.DataFrame(runs.drop(columns=["timed", "queued"]))


def analyse_pipelines(executions: pd.DataFrame, stages: pd.DataFrame) -> BottleneckReport:
    """Analyse every pipeline in `executions` (see the module docstring for the frames).

    Args:
        executions: one row per pipeline execution.
        stages: one row per stage attempt.

    Returns:
        Per-stage rows, critical paths, duration regressions, flaky stages and suggestions
        (sorted by the seconds they save per run).

    Raises:
        ValueError: when a frame lacks a required column.
    """
    import pandas as pd

    _require(executions, EXECUTION_REQUIRED, "executions")
    _require(stages, STAGE_REQUIRED, "stages")
    executions = executions.assign(started_at=pd.to_datetime(executions["started_at"], utc=True))
    if "queue_seconds" not in executions.columns:
        executions = executions.assign(queue_seconds=float("nan"))
    if "queue_seconds" not in stages.columns:
        stages = stages.assign(queue_seconds=float("nan"))
    stages = stages.drop(columns=["pipeline"], errors="ignore").merge(
        executions[["id", "pipeline", "started_at"]].rename(
            columns={"id": "execution_id", "started_at": "execution_started_at"}
        ),
        on="execution_id",
    )
    runs = _stage_runs(stages).merge(
        executions[["id", "started_at"]].rename(columns={"id": "execution_id"}), on="execution_id"
    )
    report = BottleneckReport(stages=pd.DataFrame())
    rows: list[dict[str, Any]] = []
    for pipeline in sorted(executions["pipeline"].dropna().unique()):
        pipeline_executions = executions[executions["pipeline"] == pipeline]
        pipeline_runs = runs[runs["pipeline"] == pipeline]
        rows += _analyse_one(pipeline, pipeline_executions, pipeline_runs, stages, report)
    report.stages = pd.DataFrame(rows, columns=STAGE_ROW_COLUMNS)
    report.suggestions.sort(key=lambda s: (-s.seconds_saved_per_run, s.pipeline, s.kind))
    return report


STAGE_ROW_COLUMNS = [
    "pipeline",
    "stage",
    "parent_name",
    "position",
    "runs",
    "median_seconds",
    "wall_share",
    "median_queue_seconds",
    "queue_share",
    "on_critical_path",
    "critical_share",
    "failure_rate",
    "flakiness",
]


def _analyse_one(
    pipeline: str,
    executions: pd.DataFrame,
    runs: pd.DataFrame,
    stages: pd.DataFrame,
    report: BottleneckReport,
) -> list[dict[str, Any]]:
    ran = runs[runs["status"].isin(OUTCOMES) & runs["seconds"].notna()]
    successful = executions[executions["status"] == "success"]
    wall = median(successful["duration"].dropna()) if successful["duration"].notna().any() else None
    if wall is None and executions["duration"].notna().any():
        wall = median(executions["duration"].dropna())

    typical: dict[StageKey, float] = {}
    positions: dict[StageKey, float] = {}
    for (parent, name), group in runs.groupby(["parent_name", "name"], dropna=False):
        key = (None if parent != parent else parent, name)
        positions[key] = float(group["position"].median())
        done = ran[(ran["name"] == name) & _same_parent(ran, key[0])]
        typical[key] = median(done["seconds"]) if len(done) else 0.0
    layout = build_layout(positions)
    length = layout.length(typical)
    path = layout.path(typical)
    report.critical_paths.append(
        {
            "pipeline": pipeline,
            "stages": [name for _, name in path],
            "seconds": round(float(length), 1),
            "median_execution_seconds": None if wall is None else round(wall, 1),
        }
    )

    pipeline_stages = stages[stages["pipeline"] == pipeline]
    leaves = {key for unit in layout.units for key in unit.leaves()}
    # a Jenkins block row fails with its branches: only the branches are scored
    flaky = [
        f
        for f in flaky_stages(pipeline_stages, executions)
        if (f["parent_name"], f["stage"]) in leaves
    ]
    report.flaky += [{"pipeline": pipeline, **f} for f in flaky]
    flakiness = {(f["parent_name"], f["stage"]): f["score"] for f in flaky}

    total_queue = float(runs["queue"].fillna(0).sum())
    rows = []
    for key in sorted(typical, key=lambda k: (positions[k], k[1])):
        parent, name = key
        stage_runs = runs[(runs["name"] == name) & _same_parent(runs, parent)]
        done = ran[(ran["name"] == name) & _same_parent(ran, parent)]
        queue_total = float(stage_runs["queue"].fillna(0).sum())
        on_path = key in path
        rows.append(
            {
                "pipeline": pipeline,
                "stage": name,
                "parent_name": parent,
                "position": positions[key],
                "runs": len(done),
                "median_seconds": round(typical[key], 1),
                "wall_share": round(typical[key] / wall, 4) if wall else None,
                "median_queue_seconds": round(median(stage_runs["queue"].dropna()), 1)
                if stage_runs["queue"].notna().any()
                else None,
                "queue_share": round(queue_total / total_queue, 4) if total_queue > 0 else 0.0,
                "on_critical_path": on_path,
                "critical_share": round(typical[key] / length, 4) if on_path and length else 0.0,
                "failure_rate": round(float((done["status"] == "failed").mean()), 4)
                if len(done)
                else 0.0,
                "flakiness": flakiness.get(key, 0.0),
            }
        )
        passed = done[done["status"] == "success"]
        if len(passed):
            report.series_points.append(int(passed["seconds"].notna().sum()))
            report.regressions += regressions(
                pipeline, name, passed[["started_at", "seconds", "execution_id"]]
            )
    report.series_points.append(int(successful["duration"].notna().sum()))
    report.regressions += regressions(
        pipeline,
        None,
        successful[["started_at", "duration", "id"]].rename(
            columns={"duration": "seconds", "id": "execution_id"}
        ),
    )
    report.suggestions += [
        Suggestion(**s) for s in suggest(pipeline, layout, typical, ran, executions, flaky)
    ]
    return rows


def _same_parent(frame: pd.DataFrame, parent: str | None) -> pd.Series:
    return frame["parent_name"].isna() if parent is None else frame["parent_name"] == parent
