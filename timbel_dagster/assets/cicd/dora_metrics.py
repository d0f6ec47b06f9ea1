"""`cicd/dora_metrics`: weekly DORA metrics per service and for the organisation."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.assets import plots
from timbel_dagster.assets.ingestion import OWNERS
from timbel_dagster.assets.metadata import cell_text, rounded
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.deploy.dora import ORGANISATION, compute_dora
from timbel_dagster.warehouse.read import frames
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.store.upsert import bulk_upsert


def _trend_markdown(rows: list[dict]) -> str:
    lines = [
        "| week | deploys | lead time h | CFR | restore h | rework |",
        "|---|---|---|---|---|---|",
    ]
    columns = (
        "deployments",
        "lead_time_hours_median",
        "change_failure_rate",
        "time_to_restore_hours_median",
        "rework_rate",
    )
    for r in rows:
        cells = [str(r["week_start"])[:10], *(cell_text(r[c]) for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dg.asset(
    key=["cicd", "dora_metrics"],
    group_name="cicd",
    kinds={"pandas", "sql"},
    owners=OWNERS,
    deps=[["deploy", "deployments"], ["deploy", "incidents"], ["cicd", "commits"]],
    description="One row per week, service (`*` for all) and environment with the DORA metrics.",
)
def dora_metrics(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Recompute the weekly DORA metrics from the stored deployments and incidents."""
    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import DoraMetric

    with warehouse.begin() as connection:
        rows = compute_dora(
            frames.deployments_frame(connection),
            frames.shipped_commits_frame(connection),
            frames.incidents_frame(connection),
        )
        for row in rows:
            row["id"] = stable_id(
                "dora_metrics", row["week_start"], row["service"], row["environment"]
            )
        result = bulk_upsert(
            connection, DoraMetric.__table__, rows, ["week_start", "service", "environment"]
        )
    organisation = [r for r in rows if r["service"] == ORGANISATION]
    latest = organisation[-1] if organisation else {}
    context.log.info(f"{len(rows)} weekly rows, {result.written} changed")
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(len(rows)),
        "rows_written": dg.MetadataValue.int(result.written),
        "weeks": dg.MetadataValue.int(len(organisation)),
        "latest_week": dg.MetadataValue.text(str(latest.get("week_start", "-"))),
        "latest_deployments_per_day": dg.MetadataValue.float(
            float(latest.get("deployments_per_day") or 0.0)
        ),
        "organisation_trend": dg.MetadataValue.md(_trend_markdown(organisation[-12:])),
    }
    trend = plots.dora_trend(organisation[-26:])
    if trend is not None:
        metadata["organisation_trend_plot"] = trend
    return dg.MaterializeResult(metadata=rounded(metadata))
