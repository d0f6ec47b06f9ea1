"""`registry_image_sensor`: its planning function on tables, then ticks against a real
`docker-registry`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from tests.api.webhooks.conftest import deliveries
from tests.services import oci_registry as service
from tests.services.oci_push import OCI_MANIFEST
from tests.services.oci_registry import Registry
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.registry import RegistryResource
from timbel_dagster.resources.registry_records import Image
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.sensors.registry import (
    MAX_DIGESTS_PER_TICK,
    SCAN_JOB,
    dump_cursor,
    load_cursor,
    new_or_changed_images,
    registry_image_sensor,
    scan_requests,
)
from timbel_dagster.settings import get_settings
from timbel_dagster.warehouse.deliveries import Delivery, receive
from timbel_dagster.warehouse.engine import get_engine

oci_registry = service.oci_registry
A, B, C = ("sha256:" + c * 64 for c in "abc")


def image(repository: str, tag: str, digest: str) -> Image:
    return Image("r.example:5000", repository, tag, digest, OCI_MANIFEST)


@pytest.mark.parametrize(
    ("previous", "listed", "limit", "taken", "cursor"),
    [
        # first tick: everything is new
        ({}, [("x", "1", A), ("y", "1", B)], None, ["x:1", "y:1"], {"x:1": A, "y:1": B}),
        # nothing changed
        ({"x:1": A}, [("x", "1", A)], None, [], {"x:1": A}),
        # a tag moved to a new digest; a deleted tag drops out
        ({"x:1": A, "x:2": B}, [("x", "1", C)], None, ["x:1"], {"x:1": C}),
        # two tags of one digest are taken together, even past the limit of one digest
        (
            {},
            [("x", "1", A), ("y", "1", A), ("z", "1", B)],
            1,
            ["x:1", "y:1"],
            {"x:1": A, "y:1": A},
        ),
        # over the limit: the cursor keeps the old digest of a moved tag not taken
        (
            {"x:1": A, "z:1": A},
            [("x", "1", B), ("z", "1", C)],
            1,
            ["x:1"],
            {"x:1": B, "z:1": A},
        ),
    ],
)
def test_new_or_changed_images(
    previous: dict, listed: list, limit: int | None, taken: list, cursor: dict
) -> None:
    found, moved = new_or_changed_images(previous, [image(*i) for i in listed], limit)
    assert [f"{i.repository}:{i.tag}" for i in found] == taken
    assert moved == cursor


def test_images_not_requested_are_requested_on_a_later_tick() -> None:
    listed = [image(f"app{i}", "1", "sha256:" + f"{i:064x}") for i in range(5)]
    cursor: dict[str, str] = {}
    batches = []
    while True:
        found, cursor = new_or_changed_images(cursor, listed, max_digests=2)
        if not found:
            break
        batches.append([i.repository for i in found])
    assert batches == [["app0", "app1"], ["app2", "app3"], ["app4"]]


def test_scan_requests_one_per_digest() -> None:
    requests = scan_requests([image("x", "1", A), image("y", "2", A), image("x", "3", B)])
    assert [r.run_key for r in requests] == [f"scan:{A}", f"scan:{B}"]
    assert all(r.job_name == SCAN_JOB for r in requests)
    assert requests[0].run_config == {
        "ops": {
            "scan_images": {
                "config": {"images": [f"r.example:5000/x@{A}", f"r.example:5000/y@{A}"]}
            }
        }
    }
    assert requests[0].tags["timbel/image_digest"] == A


@pytest.mark.parametrize("text", [None, "", "not json", "[1]", '{"x:1": 3}'])
def test_unreadable_cursors_start_afresh(text: str | None) -> None:
    assert load_cursor(text) == {}


@pytest.fixture
def warehouse(_sqlite_template: Path, tmp_path: Path) -> WarehouseResource:
    """A warehouse with no pending webhook deliveries: the sensor reads them every tick."""
    path = tmp_path / "warehouse.db"
    shutil.copyfile(_sqlite_template, path)
    return WarehouseResource(database_url=f"sqlite:///{path}")


def _tick(
    resource: RegistryResource, cursor: str | None, warehouse: WarehouseResource
) -> dg.SensorResult:
    sources = DeliverySourcesResource(mode="live", registry=resource)
    with dg.build_sensor_context(
        cursor=cursor,
        instance=dg.DagsterInstance.ephemeral(),
        resources={"sources": sources, "warehouse": warehouse},
    ) as context:  # nested resources: the context must be entered
        result = registry_image_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_sensor_against_a_real_registry(oci_registry: Registry, warehouse) -> None:
    api = oci_registry.push("team/api", "1.0")
    web = oci_registry.push_index("team/web", "latest")
    oci_registry.push("team/web", "same-as-api", content="team/api:1.0:linux/amd64")
    resource = RegistryResource(url=oci_registry.url, page_size=1)
    host = oci_registry.host

    first = _tick(resource, None, warehouse)
    assert sorted(r.run_key for r in first.run_requests or []) == sorted(
        [f"scan:{api}", f"scan:{web}"]
    )
    by_key = {r.run_key: r for r in first.run_requests or []}
    assert by_key[f"scan:{api}"].run_config["ops"]["scan_images"]["config"]["images"] == [
        f"{host}/team/api@{api}",
        f"{host}/team/web@{api}",  # the same bytes under another repository
    ]
    assert json.loads(first.cursor or "{}") == {
        "team/api:1.0": api,
        "team/web:latest": web,
        "team/web:same-as-api": api,
    }

    quiet = _tick(resource, first.cursor, warehouse)
    assert not quiet.run_requests and quiet.cursor == first.cursor
    assert quiet.skip_reason is not None and "no new or changed digests in 3 tags" in str(
        quiet.skip_reason
    )

    new = oci_registry.push("team/api", "1.1")
    after_push = _tick(resource, first.cursor, warehouse)
    [request] = after_push.run_requests or []
    assert request.run_key == f"scan:{new}" and request.job_name == "scan_images"
    assert request.run_config["ops"]["scan_images"]["config"]["images"] == [
        f"{host}/team/api@{new}"
    ]
    assert load_cursor(after_push.cursor) == load_cursor(first.cursor) | {"team/api:1.1": new}


def test_unconfigured_registry_skips(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, warehouse
) -> None:
    monkeypatch.delenv("HARBOR_REGISTRY", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env file to read it from either
    get_settings.cache_clear()
    try:
        result = _tick(RegistryResource(), dump_cursor({"x:1": A}), warehouse)
    finally:
        get_settings.cache_clear()
    assert not result.run_requests and result.cursor is None  # the cursor stays
    assert "not configured" in str(result.skip_reason)


def test_sample_mode_requests_scans_of_the_sample_images(warehouse) -> None:
    sources = DeliverySourcesResource(mode="sample", sample_end_date="2026-11-01")
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        resources={"sources": sources, "warehouse": warehouse},
    ) as context:
        result = registry_image_sensor(context)
    assert isinstance(result, dg.SensorResult)
    requests = result.run_requests or []
    assert len(requests) == MAX_DIGESTS_PER_TICK < 5 * 12  # the rest on later ticks
    refs = [r.run_config["ops"][SCAN_JOB]["config"]["images"] for r in requests]
    assert all(ref.startswith("registry.sample.invalid/") for same in refs for ref in same)
    assert len(load_cursor(result.cursor)) == MAX_DIGESTS_PER_TICK


def test_recorded_pushes_are_taken_first_and_once(warehouse: WarehouseResource) -> None:
    engine = get_engine(warehouse.database_url)
    event = {"id": "e1", "action": "push",
             "target": {"mediaType": OCI_MANIFEST, "digest": C, "repository": "team/new",
                        "tag": "2.0"}}  # fmt: skip
    receive(engine, Delivery("registry", "e1", "push", "team/new:2.0", event))
    sources = DeliverySourcesResource(mode="sample", sample_end_date="2026-11-01")
    resources = {"sources": sources, "warehouse": warehouse}
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources=resources
    ) as context:
        first = registry_image_sensor(context)
    assert isinstance(first, dg.SensorResult)
    requests = first.run_requests or []
    assert requests[0].run_key == f"scan:{C}"  # before the listing's, beside them
    assert len(requests) == MAX_DIGESTS_PER_TICK + 1
    assert [d["status"] for d in deliveries(engine, "registry")] == ["taken"]
    with dg.build_sensor_context(
        cursor=first.cursor, instance=dg.DagsterInstance.ephemeral(), resources=resources
    ) as context:
        second = registry_image_sensor(context)
    assert f"scan:{C}" not in [r.run_key for r in second.run_requests or []]
