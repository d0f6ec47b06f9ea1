"""`security/scan_results` and `security/vulnerability_findings`: Trivy scans of images and
the findings they leave in the warehouse.

`scan_results` scans the configured images or, when none are configured, the newest digests
of `security/images` that have no scan yet, with `sources.scanner()`: Trivy, or in sample
mode the sample's scanner (rows `source='sample'`). Each report is stored in one transaction
(the scan row, the findings of every kind, the audit event); a failed scan is stored as such
and the others still run, and the materialization fails at the end if any did.
`vulnerability_findings` then reports what the findings table adds up to.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
from typing import TYPE_CHECKING

import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS, markdown_table
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.sample.organisation import SAMPLE_SOURCE
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.security.findings_summary import vulnerability_summary
from timbel_dagster.security.scan_run import scan_images

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

GROUP = "security"
ACTOR = "dagster"
MAX_IMAGES = 20


class ScanConfig(dg.Config):
    """Which images to scan: references such as `host/repo@sha256:...` or `host/repo:tag`.
    Empty: the newest digests of `security/images` without a scan, at most `max_images`."""

    images: list[str] = []
    max_images: int = MAX_IMAGES


def unscanned_images(connection: "Connection", *, sample: bool, limit: int) -> list[str]:
    """`registry/repository@digest` of the newest stored image digests that no scan has
    reported on yet, at most `limit`.

    A digest counts as scanned once a scan of it stored a report: a failed scan does not
    count, so the next run tries it again. Only the sample's images are taken in sample mode
    and only the others in live mode, so neither scanner sees the other's images.
    Newest means by build time (unknown last), then by when the tag was first seen.
    """
    from sqlalchemy import exists, select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Base

    images = Base.metadata.tables["registry_images"]
    scans = Base.metadata.tables["scan_results"]
    if limit < 1:
        return []
    scanned = exists().where(scans.c.artifact_key == images.c.digest, scans.c.status != "failed")
    mode = images.c.source == SAMPLE_SOURCE if sample else images.c.source != SAMPLE_SOURCE
    rows = connection.execute(
        select(images.c.registry, images.c.repository, images.c.digest)
        .where(mode, ~scanned)
        .order_by(
            images.c.created.is_(None),
            images.c.created.desc(),
            images.c.first_seen.desc(),
            images.c.repository,
            images.c.tag,
        )
    ).tuples()
    refs: dict[str, str] = {}
    for registry, repository, digest in rows:
        refs.setdefault(digest, f"{registry}/{repository}@{digest}")
        if len(refs) == limit:
            break
    return list(refs.values())


@dg.asset(
    key=["security", "scan_results"],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"trivy", "sql"},
    deps=[dg.AssetKey(["security", "images"])],
    description="One row per Trivy scan of an image: vulnerabilities per severity, "
    "misconfigurations, secrets and status; its findings are stored in the same transaction.",
)
def scan_results(
    context: dg.AssetExecutionContext,
    config: ScanConfig,
    sources: DeliverySourcesResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    source = sources.scanner_name()
    engine = warehouse.engine()
    refs = list(config.images)
    if not refs:
        with engine.connect() as connection:
            refs = unscanned_images(
                connection, sample=source == SAMPLE_SOURCE, limit=config.max_images
            )
        context.log.info(
            f"{len(refs)} stored image digests without a scan (at most {config.max_images} a run)"
        )
    stored, failed = ([], [])
    if refs:  # the sample's scanner reads the sample's history: only when there is work
        stored, failed = scan_images(
            sources.scanner(),  # any ImageScanner: scan_run only calls scan_image
            engine,
            refs,
            actor=ACTOR,
            log=context.log.info,
            source=source,
        )
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} of {len(refs)} image scans failed: "
            + "; ".join(f["error"] for f in failed),
            metadata={"failed": dg.MetadataValue.json(failed), "stored": len(stored)},
        )
    totals = {
        s: sum(summary["by_severity"][s] for summary in stored)
        for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
    }
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(stored)),
            "scans": dg.MetadataValue.int(len(stored)),
            "vulnerabilities": dg.MetadataValue.int(sum(s["vulnerabilities"] for s in stored)),
            "by_severity": dg.MetadataValue.json(totals),
            "source": dg.MetadataValue.text(source),
            "images": markdown_table(
                [
                    {"image": s["artifact"], "status": s["status"]}
                    | {
                        k.lower(): n
                        for k, n in s["by_severity"].items()
                        if k in ("CRITICAL", "HIGH")
                    }
                    for s in stored
                ],
                ["image", "status", "critical", "high"],
            ),
        }
    )


@dg.asset(
    key=["security", "vulnerability_findings"],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"sql"},
    deps=[scan_results],
    description="One row per vulnerability of a package version in a scanned artifact, with "
    "when scans first and last reported it and when it was fixed.",
)
def vulnerability_findings(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    with warehouse.engine().connect() as connection:
        summary = vulnerability_summary(connection)
    context.log.info(
        f"{summary['open']} open vulnerability findings; "
        f"{summary['fixed_recently']} fixed in {summary['fixed_window_days']} days"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(summary["open"]),
            "open_by_severity": dg.MetadataValue.json(summary["open_by_severity"]),
            "distinct_open_ids": dg.MetadataValue.int(summary["distinct_open_ids"]),
            "fixed_recently": dg.MetadataValue.int(summary["fixed_recently"]),
            "artifacts": markdown_table(
                summary["artifacts"], ["artifact", "critical", "critical_or_high", "open"]
            ),
        }
    )
