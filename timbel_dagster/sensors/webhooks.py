"""`webhook_build_sensor` and `webhook_push_sensor`: act on the deliveries the webhook
routes recorded.

The routes never act (issue 15): they record a delivery, and these sensors, evaluated on
every pass of the Dagster daemon's sensor loop (every 5 s), turn the pending ones into the
runs the polling sensors would have requested a minute or more later:
- GitLab and Jenkins: `ci_ingestion_job` runs per CI system, over the days the deliveries'
  builds started on (one run per span of consecutive days), so logs, artifacts and what a
  hook does not carry are read;
  a build that is running now also gets its `follow_build` run (the same run key the build
  sensors use, so it is followed once).
- The registry: one `scan_images` run per pushed digest (the run key `registry_image_sensor`
  uses, so a digest is scanned once whichever sensor saw it first).
Each delivery is marked taken with its run key. The polling sensors stay as the safety net.
"""

# No `from __future__ import annotations`: Dagster reads the sensor's resource annotations.
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from timbel_dagster.assets.cicd.executions import CI_SYSTEMS_TAG
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.builds import follow_build
from timbel_dagster.jobs.definitions import ci_ingestion_job
from timbel_dagster.partitions import range_tags
from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.sensors.builds import follow_requests
from timbel_dagster.sensors.registry import take_registry_pushes
from timbel_dagster.warehouse.engine import get_engine

CI_SOURCES = ("gitlab", "jenkins")
MAX_PER_TICK = 200
_RUNNING_GITLAB = ("running",)
_RUNNING_JENKINS = ("STARTED",)
_ONE_DAY = dt.timedelta(days=1)
# Below the daemon's 5 s loop on purpose: an interval equal to the loop skips every other pass
# (the last evaluation was 4.99 s ago), which doubled the wait. A tick is one indexed query.
WEBHOOK_SENSOR_INTERVAL_SECONDS = 2


@dataclass
class Plan:
    """The runs to request, and which deliveries each run key takes."""

    requests: list[dg.RunRequest] = field(default_factory=list)
    takes: dict[str, list[Any]] = field(default_factory=dict)  # run key -> delivery ids


def _day(value: Any) -> str | None:
    """The day (YYYY-MM-DD) of an ISO-ish time or epoch milliseconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC).date().isoformat()
    if isinstance(value, str) and len(value) >= 10 and value[4] == "-":
        return value[:10]
    return None


def _build(delivery: dict[str, Any]) -> tuple[int | None, str | None, str | None]:
    """The delivery's build number, its state and the day it started, where it says them."""
    payload = delivery["payload"] or {}
    if delivery["source"] == "gitlab":
        attributes = payload.get("object_attributes") or {}
        if delivery["event"] == "Pipeline Hook":
            number = attributes.get("id")
            return number, attributes.get("status"), _day(attributes.get("created_at"))
        return None, None, _day(payload.get("build_created_at"))
    build = payload.get("build") or {}
    return build.get("number"), build.get("phase"), _day(build.get("timestamp"))


def contiguous_spans(days: set[str]) -> list[tuple[str, str]]:
    """`days` (YYYY-MM-DD) as the fewest (first, last) spans of consecutive days, in order."""
    spans: list[tuple[str, str]] = []
    for day in sorted(days):
        if spans and dt.date.fromisoformat(day) - dt.date.fromisoformat(spans[-1][1]) == _ONE_DAY:
            spans[-1] = (spans[-1][0], day)
        else:
            spans.append((day, day))
    return spans


def plan_ci(source: str, deliveries: Sequence[dict[str, Any]]) -> Plan:
    """Ingestion runs over the deliveries' days, and a follow run per running build.

    The days are the day each delivery was received and the day its build started. They are
    grouped into spans of consecutive days, one run each: a hook GitLab resends for a
    pipeline of 2016 asks for 2016-08-12 and today, not for the 3,767 days between (a run
    over a partition range plans every partition of it, which took Dagster minutes)."""
    plan = Plan()
    if not deliveries:
        return plan
    days, running, first_day = set(), {}, {}
    for delivery in deliveries:
        number, state, started = _build(delivery)
        received = delivery["received_at"].astimezone(dt.UTC).date().isoformat()
        days.add(received)
        if started:
            days.add(started)
        first_day[delivery["id"]] = min(received, started or received)
        if isinstance(number, int) and state in (_RUNNING_GITLAB + _RUNNING_JENKINS):
            running[delivery["subject"]] = max(number, running.get(delivery["subject"], 0))
    for first, last in contiguous_spans(days):
        run_key = f"webhook-{source}-{deliveries[0]['id']}-{first}"
        plan.requests.append(
            dg.RunRequest(
                run_key=run_key,
                job_name=ci_ingestion_job.name,
                tags=range_tags(first, last) | {CI_SYSTEMS_TAG: source},
            )
        )
        # Each delivery is taken by the run of the earliest day it asked for.
        plan.takes[run_key] = [d["id"] for d in deliveries if first <= first_day[d["id"]] <= last]
    plan.requests += follow_requests(source, running)
    return plan


def take_ci_deliveries(warehouse_url: str) -> list[dg.RunRequest]:
    """Ingestion and follow requests for the pending GitLab and Jenkins deliveries."""
    # lazy: warehouse.deliveries loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.deliveries import pending_deliveries, take_deliveries

    requests = []
    with get_engine(warehouse_url).begin() as connection:
        pending = pending_deliveries(connection, CI_SOURCES, MAX_PER_TICK)
        for source in CI_SOURCES:
            plan = plan_ci(source, [d for d in pending if d["source"] == source])
            for run_key, ids in plan.takes.items():
                take_deliveries(connection, ids, run_key)
            requests += plan.requests
    return requests


@dg.sensor(
    jobs=[ci_ingestion_job, follow_build],
    minimum_interval_seconds=WEBHOOK_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Act on recorded GitLab and Jenkins webhook deliveries: ingest the CI system "
    "that sent them, follow running builds.",
)
def webhook_build_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult:
    requests = take_ci_deliveries(warehouse.url())
    if requests:
        context.log.info(f"{len(requests)} runs requested for CI webhook deliveries")
    return dg.SensorResult(
        run_requests=requests,
        skip_reason=None if requests else "no pending GitLab or Jenkins deliveries",
    )


# No `jobs=`: scan_images is defined with the scanner and requested by name, as
# registry_image_sensor requests it.
@dg.sensor(
    minimum_interval_seconds=WEBHOOK_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Scan each image the registry's webhook reported pushed: one scan_images run "
    "per digest, without waiting for registry_image_sensor's listing.",
)
def webhook_push_sensor(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
) -> dg.SensorResult:
    try:
        host = sources.image_source().host
    except SourceNotConfiguredError as error:
        return dg.SensorResult(skip_reason=f"pushes stay pending: {error}")
    requests = take_registry_pushes(warehouse.url(), host)
    if requests:
        context.log.info(f"{len(requests)} scans requested for pushed images")
    return dg.SensorResult(
        run_requests=requests, skip_reason=None if requests else "no pending registry pushes"
    )
