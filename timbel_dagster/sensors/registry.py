"""`registry_image_sensor`: one `scan_images` run per image digest that is new in the registry
or that a tag moved to.

A tick lists the registry cheaply (catalog, tag lists, one HEAD per tag). The cursor is a
JSON object `{"repository:tag": digest}` of what has been asked to be scanned; a tag whose
digest differs from it is new or changed. At most `MAX_DIGESTS_PER_TICK` digests are
requested a tick and the cursor moves only for the tags those requests cover: the rest stay
changed and are requested on later ticks.

The images are listed by `sources.image_source()`: the OCI registry of HARBOR_REGISTRY (an
unconfigured one skips the tick), or in sample mode the sample organisation's images.
"""

# No `from __future__ import annotations`: Dagster reads the sensor's resource annotations.
import json
from collections.abc import Iterable, Sequence
from typing import Any

import dagster as dg

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.registry_records import Image
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.engine import get_engine

SCAN_JOB = "scan_images"  # defined with the scanner; referenced by name only
MAX_DIGESTS_PER_TICK = 25


def cursor_key(image: Image) -> str:
    return f"{image.repository}:{image.tag}"  # neither part may contain a colon


def load_cursor(text: str | None) -> dict[str, str]:
    """The cursor's `{repository:tag: digest}`; an unreadable cursor starts afresh."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def dump_cursor(cursor: dict[str, str]) -> str:
    return json.dumps(cursor, sort_keys=True, separators=(",", ":"))


def new_or_changed_images(
    previous: dict[str, str],
    images: Iterable[Image],
    max_digests: int | None = MAX_DIGESTS_PER_TICK,
) -> tuple[list[Image], dict[str, str]]:
    """The tags to scan now, and the cursor once they have been requested.

    Args:
        previous: the cursor, `{repository:tag: digest}` already requested.
        images: every tag the registry lists now.
        max_digests: how many distinct digests to take this tick (None: all); every tag
            of a digest taken is taken with it.

    Returns:
        The tags taken, in `repository:tag` order, and the new cursor: the listing's tags
        with their current digest where unchanged or taken, their previous digest where
        changed but not taken (so they stay changed), absent where new and not taken.
        Tags no longer listed drop out.
    """
    current = {cursor_key(image): image for image in images}
    changed = [current[k] for k in sorted(current) if previous.get(k) != current[k].digest]
    digests = list(dict.fromkeys(image.digest for image in changed))
    if max_digests is not None:
        digests = digests[:max_digests]
    wanted = set(digests)
    taken = [image for image in changed if image.digest in wanted]
    cursor = {k: previous[k] for k in current if k in previous}
    cursor |= {k: image.digest for k, image in current.items() if previous.get(k) == image.digest}
    cursor |= {cursor_key(image): image.digest for image in taken}
    return taken, dict(sorted(cursor.items()))


def scan_requests(images: list[Image]) -> list[dg.RunRequest]:
    """One `scan_images` run per digest, naming every repository that holds it. The run key
    is the digest's, so the same bytes are scanned once, whatever tags them later."""
    by_digest: dict[str, list[Image]] = {}
    for image in images:
        by_digest.setdefault(image.digest, []).append(image)
    return [
        dg.RunRequest(
            run_key=f"scan:{digest}",
            job_name=SCAN_JOB,
            run_config={
                "ops": {
                    SCAN_JOB: {
                        "config": {"images": sorted({i.reference for i in same})},
                    }
                }
            },
            tags={
                "timbel/registry": same[0].registry,
                "timbel/image_digest": digest,
                "timbel/image_tags": ",".join(cursor_key(i) for i in same)[:200],
            },
        )
        for digest, same in by_digest.items()
    ]


def pushed_images(host: str, deliveries: Sequence[dict[str, Any]]) -> dict[Any, Image]:
    """The image each recorded registry push names (by delivery id)."""
    images = {}
    for delivery in deliveries:
        target = (delivery["payload"] or {}).get("target") or {}
        images[delivery["id"]] = Image(
            host,
            target.get("repository", ""),
            target.get("tag") or "",
            target.get("digest", ""),
            target.get("mediaType", ""),
        )
    return images


def take_registry_pushes(warehouse_url: str, host: str, limit: int = 200) -> list[dg.RunRequest]:
    """Scan requests for the pushes the registry's webhook recorded, each marked taken with
    its run key (`scan:<digest>`, as a listed image gets: a digest is scanned once)."""
    # lazy: warehouse.deliveries loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.deliveries import pending_deliveries, take_deliveries

    with get_engine(warehouse_url).begin() as connection:
        images = pushed_images(host, pending_deliveries(connection, ["registry"], limit))
        for delivery_id, image in images.items():
            take_deliveries(connection, [delivery_id], f"scan:{image.digest}")
    return scan_requests(list(images.values()))


@dg.sensor(
    name="registry_image_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Scan each image digest that is new in the OCI registry or that a tag moved "
    "to: one scan_images run per digest.",
)
def registry_image_sensor(
    context: dg.SensorEvaluationContext,
    sources: DeliverySourcesResource,
    warehouse: WarehouseResource,
) -> dg.SensorResult:
    try:
        registry = sources.image_source()
    except SourceNotConfiguredError as error:
        return dg.SensorResult(skip_reason=str(error))
    # Pushes the webhook recorded first (when webhook_push_sensor is off they wait for this).
    pushed = take_registry_pushes(warehouse.url(), registry.host)
    previous = load_cursor(context.cursor)
    listed = list(registry.images(details=False))
    taken, cursor = new_or_changed_images(previous, listed)
    keys = {request.run_key for request in pushed}
    requests = pushed + [r for r in scan_requests(taken) if r.run_key not in keys]
    if requests:
        context.log.info(
            f"{len(taken)} new or changed tags of {len(listed)}: {len(requests)} scans requested"
        )
    return dg.SensorResult(
        run_requests=requests,
        cursor=dump_cursor(cursor),
        skip_reason=None if requests else f"no new or changed digests in {len(listed)} tags",
    )
