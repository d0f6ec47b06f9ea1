"""`security/images`: every tag of the OCI registry and the image it points at.

The images come from `sources.image_source()`: the OCI registry of HARBOR_REGISTRY, or in
sample mode the images the sample organisation's builds pushed (rows `source='sample'`).
The registry is read completely before anything is written, and everything is written in one
transaction, so a registry that fails half-way leaves the table as it was.
"""

# No `from __future__ import annotations`: Dagster reads the asset's annotations at definition.
import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS, markdown_table
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.registry_records import Image
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.store.upsert import bulk_upsert

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

TABLE = "registry_images"
KEY = ("registry", "repository", "tag")
_KEYS_PER_UPDATE = 3_000  # 3 bind parameters a key, well under SQLite's 32,766


def image_rows(images: Iterable[Image], source: str) -> dict[tuple[str, str, str], dict]:
    """Warehouse rows by natural key, without the first/last-seen times (the last of
    duplicate tags wins)."""

    return {
        (i.registry, i.repository, i.tag): {
            "id": stable_id(TABLE, i.registry, i.repository, i.tag),
            "source": source,
            "registry": i.registry,
            "repository": i.repository,
            "tag": i.tag,
            "digest": i.digest,
            "media_type": i.media_type,
            "created": i.created,
            "size": i.size,
            "revision": i.revision,
        }
        for i in images
    }


def store_images(
    connection: "Connection",
    images: Iterable[Image],
    source: str = "registry",
    now: dt.datetime | None = None,
) -> dict[str, int]:
    """Upsert image tags into `registry_images` inside the caller's transaction.

    New tags are inserted with `first_seen` = `last_seen` = `now`; stored tags keep their
    `first_seen`, get their digest, media type, created time, size and revision updated only
    where they differ, and their `last_seen` moved to `now`. Set-based statements only: one
    SELECT of the registries' stored keys, one bulk upsert (which rewrites only rows whose
    image changed), a `last_seen` UPDATE per 3,000 keys, one COUNT. A re-run with the same
    listing changes nothing but `last_seen`.

    Returns:
        Counts: `offered` (distinct tags given), `new`, `changed` (digest or details moved),
        `unchanged`, and `not_seen` (stored tags of the same registries not given: deleted
        from the registry, or outside the repositories read).
    """
    from sqlalchemy import func, select, tuple_, update

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Base

    table = Base.metadata.tables[TABLE]
    now = now or dt.datetime.now(dt.UTC)
    rows = image_rows(images, source)
    registries = sorted({key[0] for key in rows})
    # What is stored of these registries: existing rows keep their first/last-seen times in
    # the upsert, so it rewrites only rows whose image really changed.
    stored = {
        (row.registry, row.repository, row.tag): (row.first_seen, row.last_seen)
        for row in connection.execute(
            select(*(table.c[k] for k in KEY), table.c.first_seen, table.c.last_seen).where(
                table.c.registry.in_(registries)
            )
        )
    }
    seen = sorted(key for key in rows if key in stored)
    for key, row in rows.items():
        first, last = stored.get(key, (now, now))
        row |= {"first_seen": first, "last_seen": last}
    written = bulk_upsert(connection, table, list(rows.values()), KEY).written
    new = len(rows) - len(seen)
    changed = written - new
    key_columns = tuple_(*(table.c[k] for k in KEY))
    for start in range(0, len(seen), _KEYS_PER_UPDATE):
        connection.execute(
            update(table)
            .where(key_columns.in_(seen[start : start + _KEYS_PER_UPDATE]))
            .values(last_seen=now)
        )
    total = connection.execute(
        select(func.count()).select_from(table).where(table.c.registry.in_(registries))
    ).scalar_one()
    return {
        "offered": len(rows),
        "new": new,
        "changed": changed,
        "unchanged": len(seen) - changed,
        "not_seen": total - len(rows),
    }


def images_metadata(counts: dict[str, int], found: list[Image], source: str) -> dict[str, Any]:
    newest = sorted(
        (i for i in found if i.created),
        key=lambda i: i.created or dt.datetime.min.replace(tzinfo=dt.UTC),
        reverse=True,
    )
    return {
        "dagster/row_count": dg.MetadataValue.int(counts["offered"]),
        "rows_written": dg.MetadataValue.int(counts["new"] + counts["changed"]),
        "rows_unchanged": dg.MetadataValue.int(counts["unchanged"]),
        "rows_new": dg.MetadataValue.int(counts["new"]),
        "rows_changed": dg.MetadataValue.int(counts["changed"]),
        "tags_not_seen": dg.MetadataValue.int(counts["not_seen"]),
        "source": dg.MetadataValue.text(source),
        "repositories": dg.MetadataValue.int(len({i.repository for i in found})),
        "digests": dg.MetadataValue.int(len({i.digest for i in found})),
        # Tags whose config labels name the commit they were built from (deploy rows use it).
        "with_revision": dg.MetadataValue.int(sum(1 for i in found if i.revision)),
        "newest": markdown_table(
            [
                {"image": f"{i.repository}:{i.tag}", "created": i.created, "size": i.size}
                for i in newest
            ],
            ["image", "created", "size"],
        ),
    }


@dg.asset(
    key=["security", "images"],
    group_name="security",
    kinds={"docker", "sql"},
    owners=OWNERS,
    description="One row per image tag in the OCI registry: the digest it points at, its "
    "media type, build time, size and source revision, and when the tag was first and last "
    "seen.",
)
def images(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
) -> dg.MaterializeResult:
    registry = sources.image_source()
    found = list(registry.images())
    with warehouse.begin() as connection:
        counts = store_images(connection, found, source=registry.name)
    context.log.info(
        f"{counts['offered']} tags from {registry.host}: {counts['new']} new, "
        f"{counts['changed']} changed, {counts['not_seen']} stored tags not seen"
    )
    return dg.MaterializeResult(metadata=images_metadata(counts, found, registry.name))
