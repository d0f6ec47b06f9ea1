"""Op job `scan_images`: scan images with Trivy and store each report in the warehouse.

Launched from the Launchpad, by a sensor, or by the CLI with
`{"ops": {"scan_images": {"config": {"images": ["host/repo@sha256:..."]}}}}`. Each image is
stored in its own transaction with its audit event; a failed scan is stored as failed and
the next image still runs; the op fails at the end if any scan failed.
"""

# No `from __future__ import annotations`: Dagster reads the op's annotations.
import dagster as dg

from timbel_dagster.resources.trivy import TrivyResource
from timbel_dagster.resources.warehouse import WarehouseResource

ACTOR_TAG = "timbel/actor"


class ScanImagesConfig(dg.Config):
    images: list[str]  # `host/repo@sha256:...` (or `host/repo:tag`)


@dg.op(
    name="scan_images",
    description="Scan each image with Trivy and store its report; a failed image is reported "
    "and the others still run.",
)
def scan_images_op(
    context: dg.OpExecutionContext,
    config: ScanImagesConfig,
    trivy: TrivyResource,
    warehouse: WarehouseResource,
) -> list:
    from timbel_dagster.security.scan_run import scan_images

    stored, failed = scan_images(
        trivy,
        warehouse.engine(),
        list(config.images),
        actor=context.run.tags.get(ACTOR_TAG, "dagster"),
        log=context.log.info,
    )
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} of {len(config.images)} image scans failed: "
            + ", ".join(f["image"] for f in failed),
            metadata={
                "failed": dg.MetadataValue.json(failed),
                "stored": dg.MetadataValue.int(len(stored)),
            },
        )
    context.add_output_metadata(
        {
            "images": len(stored),
            "vulnerabilities": sum(s["vulnerabilities"] for s in stored),
            "critical": sum(s["by_severity"]["CRITICAL"] for s in stored),
            "high": sum(s["by_severity"]["HIGH"] for s in stored),
        }
    )
    return stored


@dg.job(
    executor_def=dg.in_process_executor,
    description="Scan container images with Trivy and store the findings in the warehouse.",
)
def scan_images():
    scan_images_op()
