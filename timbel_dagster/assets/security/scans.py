"""`security/scan_results` and `security/vulnerability_findings`: Trivy scans of images and
the findings they leave in the warehouse.

`scan_results` scans each configured image and stores its report in one transaction (the
scan row, the findings of every kind, the audit event); a failed scan is stored as such and
the others still run, and the materialization fails at the end if any did.
`vulnerability_findings` then reports what the findings table adds up to.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS, markdown_table
from timbel_dagster.resources.trivy import TrivyResource
from timbel_dagster.resources.warehouse import WarehouseResource

GROUP = "security"
ACTOR = "dagster"


class ScanConfig(dg.Config):
    """Which images to scan: references such as `host/repo@sha256:...` or `host/repo:tag`."""

    images: list[str] = []


@dg.asset(
    key=["security", "scan_results"],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"trivy", "sql"},
    description="One row per Trivy scan of an image: vulnerabilities per severity, "
    "misconfigurations, secrets and status; its findings are stored in the same transaction.",
)
def scan_results(
    context: dg.AssetExecutionContext,
    config: ScanConfig,
    trivy: TrivyResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    from timbel_dagster.security.scan_run import scan_images

    stored, failed = scan_images(
        trivy, warehouse.engine(), list(config.images), actor=ACTOR, log=context.log.info
    )
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} of {len(config.images)} image scans failed: "
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
            "source": dg.MetadataValue.text("trivy"),
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
    from timbel_dagster.security.findings_summary import vulnerability_summary

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
