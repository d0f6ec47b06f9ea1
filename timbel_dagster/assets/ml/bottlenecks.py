"""`ml/pipeline_bottlenecks`: per pipeline, the critical path through its stages, each stage's
share of wall and queue time, duration regressions, flaky stages and suggestions with the
time each would save."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS, markdown_table
from timbel_dagster.assets.metadata import rounded
from timbel_dagster.assets.ml.cards import bottleneck_card, card_metadata
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.ml.bottlenecks.data import load_frames

# Bumped whenever the analysis changes (ml/bottlenecks/*.py, ml/changepoints/detect.py).
BOTTLENECK_CODE_VERSION = "bottlenecks-2"


class BottleneckConfig(dg.Config):
    days: int = 90  # executions started in the last N days are analysed


def findings(report: dict) -> list[dict]:
    """The report as `bottleneck_findings` rows: one per critical path, regression, flaky
    stage and suggestion."""
    rows = []
    for path in report["critical_paths"]:
        rows.append(
            {
                "pipeline": path["pipeline"],
                "kind": "critical_path",
                "stage": None,
                "seconds_saved_per_run": None,
                "summary": f"{' -> '.join(path['stages'])}: {path['seconds']:.0f}s",
                "details": path,
            }
        )
    for item in report["regressions"]:
        rows.append(
            {
                "pipeline": item["pipeline"],
                "kind": "regression",
                "stage": item.get("stage"),
                "seconds_saved_per_run": None,
                "summary": f"{item.get('stage') or 'pipeline'} slower by {item['pct_change']:.0f}%"
                f" since {str(item['at'])[:10]} ({item['before_median_seconds']:.0f}s -> "
                f"{item['after_median_seconds']:.0f}s)",
                "details": item,
            }
        )
    for item in report["flaky"]:
        rows.append(
            {
                "pipeline": item["pipeline"],
                "kind": "flaky",
                "stage": item["stage"],
                "seconds_saved_per_run": item.get("wasted_seconds_per_run"),
                "summary": f"{item['stage']} flaky: score {item['score']:.3f} over "
                f"{item['runs']} runs",
                "details": item,
            }
        )
    for item in report["suggestions"]:
        rows.append(
            {
                "pipeline": item["pipeline"],
                "kind": f"suggest_{item['kind']}",
                "stage": ", ".join(item["stages"]),
                "seconds_saved_per_run": item["seconds_saved_per_run"],
                "summary": item["reason"],
                "details": item,
            }
        )
    return rows


@dg.asset(
    key=["ml", "pipeline_bottlenecks"],
    group_name="ml",
    kinds={"pandas", "sql"},
    owners=OWNERS,
    deps=[["cicd", "pipeline_executions"], ["cicd", "stage_executions"]],
    code_version=BOTTLENECK_CODE_VERSION,
    description="One row per finding of the latest analysis: a pipeline's critical path, a "
    "duration regression, a flaky stage, or a suggestion with the time it saves per run.",
)
def pipeline_bottlenecks(
    context: dg.AssetExecutionContext, config: BottleneckConfig, warehouse: WarehouseResource
):
    import datetime as dt
    import json

    from sqlalchemy import delete, insert

    # lazy: import-time budget: ml.bottlenecks.analysis adds ~10 ms to loading the code location
    from timbel_dagster.ml.bottlenecks.analysis import analyse_pipelines

    # lazy: warehouse.schema.ml loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.ml import BottleneckFinding

    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=config.days)
    with warehouse.engine().connect() as connection:
        executions, stages = load_frames(connection, since=since)
    # JSON round trip: numpy scalars and timestamps become what the JSON columns store.
    report = json.loads(json.dumps(analyse_pipelines(executions, stages).to_records(), default=str))
    rows = findings(report)
    now = dt.datetime.now(dt.UTC)
    with warehouse.engine().begin() as connection:
        connection.execute(delete(BottleneckFinding))
        if rows:
            connection.execute(insert(BottleneckFinding), [r | {"analysed_at": now} for r in rows])
    suggestions = sorted(
        report["suggestions"], key=lambda s: s["seconds_saved_per_run"], reverse=True
    )
    return dg.MaterializeResult(
        metadata=rounded(
            {
                "dagster/row_count": dg.MetadataValue.int(len(rows)),
                "pipelines": dg.MetadataValue.int(len(report["critical_paths"])),
                "regressions": dg.MetadataValue.int(len(report["regressions"])),
                "flaky_stages": dg.MetadataValue.int(len(report["flaky"])),
                "seconds_saved_per_run_top5": dg.MetadataValue.float(
                    float(sum(s["seconds_saved_per_run"] for s in suggestions[:5]))
                ),
                "suggestions": markdown_table(
                    [s | {"stages": ", ".join(s["stages"])} for s in suggestions],
                    ["pipeline", "kind", "stages", "seconds_saved_per_run"],
                ),
                "model_card": card_metadata(
                    bottleneck_card(BOTTLENECK_CODE_VERSION, executions, stages, report)
                ),
            }
        )
    )
