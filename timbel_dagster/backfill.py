"""`timbel ingest`: one ingestion of a CI server, through Dagster in process.

Materializes `cicd/pipelines` and the daily `cicd/pipeline_executions` / `stage_executions`
partitions from `since` to today as one run (a backfill is one run), against the configured
server only, in the instance the UI shows.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from timbel_dagster.partitions import range_tags
from timbel_dagster.runs import QUIET, materialization_metadata, open_instance
from timbel_dagster.settings import Settings

SYSTEMS = ("jenkins", "gitlab")


def run_ingest(
    settings: Settings,
    system: str,
    since: dt.datetime,
    echo: Callable[[str], None],
    stages: str = "recent",
) -> dict[str, Any]:
    """Ingest `system` from `since` to now and report what was stored."""
    import dagster as dg

    from timbel_dagster.definitions import defs
    from timbel_dagster.resources.gitlab.source import GitLabResource
    from timbel_dagster.resources.jenkins.source import JenkinsResource
    from timbel_dagster.resources.sources import DeliverySourcesResource
    from timbel_dagster.resources.warehouse import WarehouseResource
    from timbel_dagster.warehouse import migrate

    if system not in SYSTEMS:
        raise ValueError(f"system must be one of {', '.join(SYSTEMS)}, not {system!r}")
    migrate.upgrade(settings.database_url, actor=settings.timbel_user)
    first = since.date().isoformat()
    last = dt.datetime.now(dt.UTC).date().isoformat()
    resources = {
        "warehouse": WarehouseResource(database_url=settings.database_url),
        "sources": DeliverySourcesResource(
            mode="live",
            systems=[system],
            jenkins=JenkinsResource(stages=stages),
            gitlab=GitLabResource(),
        ),
    }
    selection = [
        dg.AssetKey(["cicd", "pipelines"]),
        dg.AssetKey(["cicd", "pipeline_executions"]),
        dg.AssetKey(["cicd", "stage_executions"]),
    ]
    instance = open_instance(settings.dagster_home)
    echo(f"Ingesting {system} executions started since {first} (days {first} to {last}) ...")
    started = time.perf_counter()
    try:
        result = dg.materialize(
            list(defs.assets or []),
            instance=instance,
            resources=resources,
            selection=selection,
            run_config=QUIET | {"ops": {"ci_executions": {"config": {"lookback_days": 0}}}},
            tags=range_tags(first, last)
            | {
                "timbel/launched_by": f"timbel ingest {system}",
                "timbel/actor": settings.timbel_user,
            },
        )
    finally:
        instance.dispose()
    report: dict[str, Any] = {
        "system": system,
        "since": first,
        "until": last,
        "run_id": result.run_id,
        "seconds": round(time.perf_counter() - started, 2),
    }
    for table in ("pipelines", "pipeline_executions", "stage_executions"):
        metadata = materialization_metadata(result, f"cicd/{table}")
        report[table] = {
            "offered": metadata.get("dagster/row_count", 0),
            "written": metadata.get("rows_written", 0),
        }
        if "source_requests" in metadata:
            report["requests"] = metadata["source_requests"]
    return report
