"""`security/images` -> `security/scan_results` -> `security/vulnerability_findings` on the
sample organisation, into the warehouse on SQLite and PostgreSQL: no registry, no Trivy."""

from __future__ import annotations

from typing import Any

import dagster as dg
from sqlalchemy import func, select

from timbel_dagster.assets.security.images import images
from timbel_dagster.assets.security.scans import scan_results, vulnerability_findings
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent
from timbel_dagster.warehouse.schema.registry import RegistryImage
from timbel_dagster.warehouse.schema.security import ScanResult, VulnerabilityFinding

SERVICES = 12


def _materialize(url: str, tags: int, max_images: int | None = None) -> dict[str, dict]:
    config = {} if max_images is None else {"max_images": max_images}
    result = dg.materialize(
        [images, scan_results, vulnerability_findings],
        instance=dg.DagsterInstance.ephemeral(),
        resources={
            "warehouse": WarehouseResource(database_url=url),
            "sources": DeliverySourcesResource(
                mode="sample",
                sample_seed=7,
                sample_end_date="2026-11-01",
                sample_tags_per_repository=tags,
            ),
        },
        run_config={"ops": {"security__scan_results": {"config": config}}},
    )
    assert result.success
    return {
        event.asset_key.path[-1]: {k: v.value for k, v in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
    }


def _state(url: str) -> dict[str, Any]:
    with get_engine(url).connect() as connection:

        def rows(*columns: Any) -> list[tuple]:
            return sorted(connection.execute(select(*columns)).tuples().all(), key=str)

        return {
            "images": rows(RegistryImage.source, RegistryImage.digest),
            "scans": rows(
                ScanResult.source, ScanResult.artifact_key, ScanResult.scanned_at, ScanResult.status
            ),
            "findings": rows(
                VulnerabilityFinding.source,
                VulnerabilityFinding.id,
                VulnerabilityFinding.first_seen,
                VulnerabilityFinding.last_seen,
                VulnerabilityFinding.fixed_at,
            ),
            "audit": connection.execute(
                select(func.count()).where(AuditEvent.action == "scan.image")
            ).scalar_one(),
        }


def test_sample_images_scanned_and_a_rerun_writes_nothing(warehouse_url: str) -> None:
    first = _materialize(warehouse_url, tags=2, max_images=100)
    assert (first["images"]["rows_new"], first["images"]["source"]) == (2 * SERVICES, "sample")
    assert (first["scan_results"]["scans"], first["scan_results"]["source"]) == (24, "sample")
    assert first["vulnerability_findings"]["dagster/row_count"] > 0
    assert first["vulnerability_findings"]["open_by_severity"]["CRITICAL"] > 0
    state = _state(warehouse_url)
    digests = {digest for _, digest in state["images"]}
    assert len(digests) == 2 * SERVICES and {s for s, _ in state["images"]} == {"sample"}
    assert {key for _, key, _, _ in state["scans"]} == digests
    assert {s for s, *_ in state["scans"]} == {"sample"}
    assert {status for *_, status in state["scans"]} <= {"findings", "clean"}
    assert state["findings"] and {s for s, *_ in state["findings"]} == {"sample"}
    assert state["audit"] == 24

    again = _materialize(warehouse_url, tags=2)
    assert (again["images"]["rows_written"], again["images"]["rows_unchanged"]) == (0, 24)
    assert again["scan_results"]["scans"] == 0
    assert _state(warehouse_url) == state  # no scan, finding or audit event more


def test_each_run_scans_the_newest_unscanned_digests(warehouse_url: str) -> None:
    first = _materialize(warehouse_url, tags=2, max_images=5)
    assert first["scan_results"]["scans"] == 5
    with get_engine(warehouse_url).connect() as connection:
        newest = (
            connection.execute(
                select(RegistryImage.digest).order_by(RegistryImage.created.desc()).limit(5)
            )
            .scalars()
            .all()
        )
    assert {key for _, key, _, _ in _state(warehouse_url)["scans"]} == set(newest)

    assert _materialize(warehouse_url, tags=2)["scan_results"]["scans"] == 19  # the rest
    assert _materialize(warehouse_url, tags=2)["scan_results"]["scans"] == 0
