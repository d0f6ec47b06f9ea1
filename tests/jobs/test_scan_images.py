"""The `scan_images` op job, executed in process against the Trivy stand-in."""

from __future__ import annotations

from contextlib import nullcontext

import dagster as dg
from sqlalchemy import select

from tests.services.trivy import (
    TrivyService,
    trivy_standin_fixture,  # noqa: F401
)
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.run_actor import acting_as
from timbel_dagster.jobs.security import scan_images
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent
from timbel_dagster.warehouse.schema.security import ScanResult

API = "registry.example/shop/api@sha256:" + "a1" * 32
WEB = "registry.example/shop/web@sha256:" + "b2" * 32
BROKEN = "registry.example/shop/broken@sha256:" + "c3" * 32


def execute(
    warehouse_url: str,
    trivy: TrivyService,
    images: list[str],
    actor: str | None = "minji.kim",
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """Run the job as the `timbel` command does (acting as `actor`), or, with None, as a
    launch from the Dagster UI does: the same `timbel/actor` tag, but only as a claim."""
    with acting_as(actor) if actor else nullcontext():
        return scan_images.execute_in_process(
            run_config={"ops": {"scan_images": {"config": {"images": images}}}},
            resources={
                "sources": DeliverySourcesResource(mode="live", trivy=trivy.resource()),
                "warehouse": WarehouseResource(database_url=warehouse_url),
            },
            tags={"timbel/actor": "minji.kim"},
            instance=instance,
            raise_on_error=False,
        )


def scans(warehouse_url: str) -> dict[str, str]:
    with get_engine(warehouse_url).connect() as connection:
        return dict(connection.execute(select(ScanResult.artifact_name, ScanResult.status)).all())


def test_every_image_is_scanned_and_stored(warehouse_url: str, trivy_standin: TrivyService) -> None:
    trivy_standin.replay(API, "alpine-39-high-critical.json")
    trivy_standin.replay(WEB, "alpine-39-skip.json")
    result = execute(warehouse_url, trivy_standin, [API, WEB])
    assert result.success
    stored = result.output_for_node("scan_images")
    assert [(s["artifact"], s["status"]) for s in stored] == [(API, "findings"), (WEB, "clean")]
    assert scans(warehouse_url) == {API: "findings", WEB: "clean"}
    [output] = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert (metadata["images"].value, metadata["critical"].value) == (2, 2)
    with get_engine(warehouse_url).connect() as connection:
        events = connection.execute(
            select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
        ).all()
    assert events.count(("minji.kim", "scan.image")) == 2
    # The scans count as a materialization of security/scan_results (its freshness).
    [materialized] = result.asset_materializations_for_node("scan_images")
    assert materialized.asset_key == dg.AssetKey(["security", "scan_results"])
    assert materialized.metadata["rows_written"].value == 2


def test_a_ui_launch_is_audited_as_dagster_ui_with_the_tag_as_a_claim(
    warehouse_url: str, trivy_standin: TrivyService
) -> None:
    """Issue #13, finding 7: a run tagged `timbel/actor=minji.kim` from the UI used to be
    audited as minji.kim."""
    trivy_standin.replay(API, "alpine-39-high-critical.json")
    instance = dg.DagsterInstance.ephemeral()
    result = execute(warehouse_url, trivy_standin, [API], actor=None, instance=instance)
    assert result.success
    with get_engine(warehouse_url).connect() as connection:
        events = connection.execute(
            select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
        ).all()
    assert events == [("dagster-ui", "scan.image")]
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    assert (
        "timbel/actor='minji.kim' is an unverified claim (the run was not launched by the "
        "timbel command): the audit log records dagster-ui"
    ) in logged


def test_one_failure_does_not_stop_the_others_but_fails_the_op(
    warehouse_url: str, trivy_standin: TrivyService
) -> None:
    trivy_standin.replay(API, "alpine-39-high-critical.json")
    trivy_standin.crash(BROKEN, "unable to initialize the image source: 404 Not Found")
    trivy_standin.replay(WEB, "alpine-310-registry.json")
    result = execute(warehouse_url, trivy_standin, [API, BROKEN, WEB])
    assert not result.success
    assert scans(warehouse_url) == {API: "findings", BROKEN: "failed", WEB: "findings"}
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    data = failure.step_failure_data.user_failure_data
    assert data.description == f"1 of 3 image scans failed: {BROKEN}"
    [failed] = data.metadata["failed"].value
    assert failed["image"] == BROKEN and "404 Not Found" in failed["error"]
    assert [call[-1] for call in trivy_standin.calls()] == [API, BROKEN, WEB]


def test_an_option_as_image_is_refused_and_the_others_still_scan(
    warehouse_url: str, trivy_standin: TrivyService
) -> None:
    """Issue #13, finding 8: an image reference in the run config that Trivy would read as
    an option is refused before Trivy runs, and stored nowhere."""
    trivy_standin.replay(API, "alpine-39-high-critical.json")
    bad = "--server=http://127.0.0.1:9"
    result = execute(warehouse_url, trivy_standin, [bad, API])
    assert not result.success
    assert scans(warehouse_url) == {API: "findings"}
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    [failed] = failure.step_failure_data.user_failure_data.metadata["failed"].value
    assert failed == {
        "image": bad,
        "error": f"{bad!r} is not an image reference (it starts with '-')",
    }
    assert [call[-2:] for call in trivy_standin.calls()] == [["--", API]]


def test_sample_mode_scans_with_the_sample_scanner(warehouse_url: str) -> None:
    sources = DeliverySourcesResource(
        mode="sample", sample_end_date="2026-11-01", sample_tags_per_repository=1
    )
    [image, *_] = list(sources.image_source().images())
    result = scan_images.execute_in_process(
        run_config={"ops": {"scan_images": {"config": {"images": [image.reference, API]}}}},
        resources={"sources": sources, "warehouse": WarehouseResource(database_url=warehouse_url)},
        raise_on_error=False,
    )
    assert not result.success  # no sample build pushed API: a loud failure, never made up
    with get_engine(warehouse_url).connect() as connection:
        rows = connection.execute(
            select(ScanResult.artifact_name, ScanResult.source, ScanResult.status)
        ).all()
    assert sorted((name, source, status == "failed") for name, source, status in rows) == [
        (API, "sample", True),
        (image.reference, "sample", False),
    ]
