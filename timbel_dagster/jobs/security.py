"""Op job `scan_images`: scan images with Trivy and store each report in the warehouse.

The scanner is `sources.scanner()`: Trivy, or in sample mode the sample's scanner (rows
`source='sample'`).

Launched from the Launchpad, by a sensor, or by the CLI with
`{"ops": {"scan_images": {"config": {"images": ["host/repo@sha256:..."]}}}}`. Each image is
stored in its own transaction with its audit event; a failed scan is stored as failed and
the next image still runs; the op fails at the end if any scan failed.

Stored scans are reported as a materialization of `security/scan_results` (the table they
were written to), so the asset's freshness, in the UI and for the `ingestion-stale` alert,
counts the scans the registry sensors launch, not only `security_inventory` runs.
"""

# No `from __future__ import annotations`: Dagster reads the op's annotations.
import dagster as dg

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.run_actor import note_unverified, run_actor
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.security import scan_run

SCAN_RESULTS = dg.AssetKey(["security", "scan_results"])


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
    sources: DeliverySourcesResource,
    warehouse: WarehouseResource,
) -> list:
    actor = run_actor(context.run.tags)
    note_unverified(context.log, actor)
    stored, failed = scan_run.scan_images(
        sources.scanner(),  # any ImageScanner: scan_run only calls scan_image
        warehouse.engine(),
        list(config.images),
        actor=actor.name,
        log=context.log.info,
        source=sources.scanner_name(),
    )
    if stored:
        context.log_event(
            dg.AssetMaterialization(
                asset_key=SCAN_RESULTS,
                description=f"{len(stored)} scans stored by scan_images",
                metadata={"rows_written": dg.MetadataValue.int(len(stored))},
            )
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


@dg.graph(name="scan_images_graph")
def _scan_images_graph() -> None:
    scan_images_op()


# The graph needs a name of its own: a graph and its op both named `scan_images` cannot be
# registered in one Definitions (op/graph names must be unique), and the op keeps its name
# because run configs and the sensor address it as `ops.scan_images`.
scan_images = _scan_images_graph.to_job(
    name="scan_images",
    executor_def=dg.in_process_executor,
    description="Scan container images (Trivy, or the sample's scanner in sample mode) and "
    "store the findings in the warehouse.",
)
