"""The cluster-metrics automation: keep the `clusters` dynamic partitions equal to the
configured clusters, and read each completed hour shortly after it ends."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import datetime as dt

import dagster as dg

from timbel_dagster.jobs.definitions import cluster_metrics_job
from timbel_dagster.partitions import CLUSTERS, hour_key, range_tags
from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.sources import DeliverySourcesResource


def plan_clusters(wanted: list[str], existing: list[str]) -> tuple[list[str], list[str]]:
    """Which cluster partitions to add and which to delete (in a stable order)."""
    return (
        [c for c in wanted if c not in set(existing)],
        [c for c in existing if c not in set(wanted)],
    )


@dg.sensor(
    name="cluster_discovery_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Add a `clusters` partition for each configured cluster and remove the ones "
    "no longer configured (their warehouse rows stay).",
)
def cluster_discovery_sensor(
    context: dg.SensorEvaluationContext, sources: DeliverySourcesResource
) -> dg.SensorResult:
    try:
        source = sources.metrics_source()
        wanted = source.cluster_names()
    except SourceNotConfiguredError as error:
        return dg.SensorResult(skip_reason=str(error))
    for notice in source.notices:
        context.log.warning(notice)
    add, delete = plan_clusters(
        wanted, list(context.instance.get_dynamic_partitions(CLUSTERS.name))
    )
    requests = []
    if add:
        requests.append(CLUSTERS.build_add_request(add))
    if delete:
        requests.append(CLUSTERS.build_delete_request(delete))
    if add or delete:
        context.log.info(f"clusters added {add or 'none'}, removed {delete or 'none'}")
    return dg.SensorResult(dynamic_partitions_requests=requests)


def hour_request(clusters: list[str], hour: dt.datetime) -> dg.RunRequest | None:
    """One run for `hour` over every cluster (a range over the cluster dimension)."""
    if not clusters:
        return None
    key = hour_key(hour)
    return dg.RunRequest(
        run_key=f"cluster-metrics-{key}",
        tags=range_tags(f"{clusters[0]}|{key}", f"{clusters[-1]}|{key}"),
    )


# Off until an operator turns it on (in live mode it needs Prometheus).
@dg.schedule(
    name="cluster_metrics_hourly",
    job=cluster_metrics_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Five minutes past each hour, read the hour that just ended for every cluster.",
)
def cluster_metrics_schedule(context: dg.ScheduleEvaluationContext):
    clusters = list(context.instance.get_dynamic_partitions(CLUSTERS.name))
    hour = context.scheduled_execution_time.astimezone(dt.UTC).replace(
        minute=0, second=0, microsecond=0
    ) - dt.timedelta(hours=1)
    request = hour_request(clusters, hour)
    return request or dg.SkipReason("no clusters yet: the cluster_discovery_sensor adds them")
