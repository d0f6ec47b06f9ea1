"""`timbel ingest`: one ingestion of a CI server, through Dagster in process.

Runs the `ci_history` job: `cicd/pipelines` and the executions started from `since` to today,
as one run whose cost follows the data (the days that hold executions are recorded as
materialized partitions of `cicd/pipeline_executions` / `stage_executions`), against the
configured server only, in the instance the UI shows.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.definitions import build_definitions
from timbel_dagster.jobs.history import OP, TABLES
from timbel_dagster.partitions import check_history_start
from timbel_dagster.resources.gitlab.source import GitLabResource
from timbel_dagster.resources.jenkins.source import JenkinsResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.runs import QUIET, open_instance
from timbel_dagster.settings import Settings
from timbel_dagster.warehouse import migrate

SYSTEMS = ("jenkins", "gitlab")


def run_ingest(
    settings: Settings,
    system: str,
    since: dt.datetime,
    echo: Callable[[str], None],
    stages: str = "recent",
) -> dict[str, Any]:
    """Ingest `system` from `since` to now and report what was stored."""

    if system not in SYSTEMS:
        raise ValueError(f"system must be one of {', '.join(SYSTEMS)}, not {system!r}")
    first = since.astimezone(dt.UTC).date()
    # Before any work, so that the answer is one line naming the setting.
    check_history_start(first, settings.timbel_history_start)
    last = dt.datetime.now(dt.UTC).date()
    if first > last:
        raise ValueError(f"--since {first} is in the future (today is {last} UTC)")
    sources = DeliverySourcesResource(
        mode="live",
        systems=[system],
        jenkins=JenkinsResource(stages=stages),
        gitlab=GitLabResource(),
    )
    # Configuration first: an unconfigured server is one line, before any run is launched.
    sources.ci_sources()
    migrate.upgrade(settings.database_url, actor=settings.timbel_user)
    resources = {
        "warehouse": WarehouseResource(database_url=settings.database_url),
        "sources": sources,
    }
    job = build_definitions(settings.timbel_history_start).resolve_job_def("ci_history")
    instance = open_instance(settings.dagster_home)
    echo(f"Ingesting {system} executions started since {first} (days {first} to {last}) ...")
    started = time.perf_counter()
    try:
        result = job.execute_in_process(
            run_config=QUIET
            | {
                "ops": {
                    OP: {
                        "config": {
                            "first_day": first.isoformat(),
                            "last_day": last.isoformat(),
                            "systems": [system],
                        }
                    }
                }
            },
            instance=instance,
            resources=resources,
            tags={
                "timbel/launched_by": f"timbel ingest {system}",
                "timbel/actor": settings.timbel_user,
            },
        )
    finally:
        instance.dispose()
    stored = result.output_for_node(OP)
    return {
        "system": system,
        "since": first.isoformat(),
        "until": last.isoformat(),
        "run_id": result.run_id,
        "seconds": round(time.perf_counter() - started, 2),
        **{table: stored[table] for table in TABLES},
        "requests": stored["requests"],
        "days_with_executions": stored["days_with_executions"],
        "rejected": stored.get("rejected", 0),  # records kept in `ingestion_rejects`
    }
