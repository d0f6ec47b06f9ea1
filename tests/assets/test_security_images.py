"""`security/images` materialized against a real `docker-registry` into the warehouse."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
import requests
from sqlalchemy import select

from tests.services import oci_registry as service
from tests.services.oci_push import CREATED, OCI_INDEX, OCI_MANIFEST
from tests.services.oci_registry import Registry
from timbel_dagster.assets.security.images import images, store_images
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.registry import RegistryResource
from timbel_dagster.resources.registry_records import Image
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import Base

oci_registry = service.oci_registry
TABLE = Base.metadata.tables["registry_images"]


def _rows(url: str) -> list[dict[str, Any]]:
    with get_engine(url).connect() as connection:
        found = connection.execute(select(TABLE).order_by(TABLE.c.repository, TABLE.c.tag))
        return [dict(row._mapping) for row in found]


def _materialize(
    url: str, registry: Registry, repositories: list[str] | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [images],
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        resources={
            "warehouse": WarehouseResource(database_url=url),
            "sources": DeliverySourcesResource(
                mode="live",
                registry=RegistryResource(
                    url=registry.url, page_size=2, repositories=repositories or ["team/*"]
                ),
            ),
        },
    )


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    assert result.success
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_images_asset_stores_every_tag_and_a_rerun_changes_nothing(
    warehouse_url: str, oci_registry: Registry
) -> None:
    api_1 = oci_registry.push("team/api", "1.0")
    oci_registry.push("team/api", "1.1", created=None)
    web = oci_registry.push_index("team/web", "latest")
    oci_registry.push("other/tool", "3")  # outside team/*

    first = _metadata(_materialize(warehouse_url, oci_registry))
    assert (first["dagster/row_count"], first["rows_new"], first["rows_changed"]) == (3, 3, 0)
    assert (first["repositories"], first["tags_not_seen"]) == (2, 0)
    rows = _rows(warehouse_url)
    assert [(r["repository"], r["tag"], r["digest"], r["media_type"]) for r in rows] == [
        ("team/api", "1.0", api_1, OCI_MANIFEST),
        ("team/api", "1.1", oci_registry.pushed["team/api:1.1"], OCI_MANIFEST),
        ("team/web", "latest", web, OCI_INDEX),
    ]
    assert [r["created"] for r in rows] == [CREATED, None, CREATED]
    assert all(r["size"] > 0 and r["first_seen"] == r["last_seen"] for r in rows)
    assert {(r["registry"], r["source"]) for r in rows} == {(oci_registry.host, "registry")}

    again = _metadata(_materialize(warehouse_url, oci_registry))
    assert (again["rows_written"], again["rows_unchanged"]) == (0, 3)
    rerun = _rows(warehouse_url)
    moved = [r.pop("last_seen") >= s.pop("last_seen") for r, s in zip(rerun, rows, strict=True)]
    assert all(moved) and rerun == rows  # only last_seen moves


def test_moved_new_and_deleted_tags(warehouse_url: str, oci_registry: Registry) -> None:
    oci_registry.push("team/api", "1.0")
    old = oci_registry.push("team/api", "1.1")
    doomed = oci_registry.push("team/api", "rc", content="release candidate")
    _metadata(_materialize(warehouse_url, oci_registry))
    before = {r["tag"]: r for r in _rows(warehouse_url)}

    moved = oci_registry.push("team/api", "1.1", content="rebuilt", created=CREATED.replace(day=2))
    oci_registry.push("team/api", "1.2")
    deleted = requests.delete(f"{oci_registry.url}/v2/team/api/manifests/{doomed}", timeout=10)
    assert deleted.status_code == 202

    counts = _metadata(_materialize(warehouse_url, oci_registry))
    assert (counts["rows_new"], counts["rows_changed"], counts["rows_unchanged"]) == (1, 1, 1)
    assert counts["tags_not_seen"] == 1
    after = {r["tag"]: r for r in _rows(warehouse_url)}
    assert (after["1.1"]["digest"], after["1.1"]["created"]) == (moved, CREATED.replace(day=2))
    assert moved != old and after["1.1"]["first_seen"] == before["1.1"]["first_seen"]
    assert after["1.1"]["last_seen"] > before["1.1"]["last_seen"]
    assert after["rc"] == before["rc"]  # gone from the registry: kept, last_seen stops
    assert after["1.2"]["first_seen"] == after["1.2"]["last_seen"] > before["1.0"]["first_seen"]


def test_a_failing_registry_writes_nothing(warehouse_url: str, oci_registry: Registry) -> None:
    oci_registry.push("team/api", "1.0")
    result = _materialize(warehouse_url, oci_registry, ["team/api", "team/missing"])
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error.cause  # type: ignore[union-attr]
    assert error.cls_name == "SourceNotFoundError"
    assert f"registry {oci_registry.url} team/missing: not found (404 NAME_UNKNOWN" in error.message
    assert _rows(warehouse_url) == []


def test_store_images_directly(warehouse_url: str) -> None:
    now = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC)
    found = [
        Image("r.example:5000", "a/b", "1", "sha256:" + "1" * 64, OCI_MANIFEST, CREATED, 10),
        Image("r.example:5000", "a/b", "1", "sha256:" + "2" * 64, OCI_MANIFEST, CREATED, 11),
        Image("r.example:5000", "a/b", "2", "sha256:" + "3" * 64, OCI_INDEX, None, None),
    ]
    with get_engine(warehouse_url).begin() as connection:
        counts = store_images(connection, found, source="registry", now=now)
    assert counts == {"offered": 2, "new": 2, "changed": 0, "unchanged": 0, "not_seen": 0}
    rows = _rows(warehouse_url)
    assert [(r["tag"], r["digest"][-1], r["size"]) for r in rows] == [
        ("1", "2", 11),
        ("2", "3", None),
    ]
    later = now + dt.timedelta(hours=1)
    with get_engine(warehouse_url).begin() as connection:
        counts = store_images(connection, found[2:], source="registry", now=later)
    assert counts == {"offered": 1, "new": 0, "changed": 0, "unchanged": 1, "not_seen": 1}
    assert [(r["first_seen"], r["last_seen"]) for r in _rows(warehouse_url)] == [
        (now, now),
        (now, later),
    ]


def test_the_revision_label_is_stored_and_follows_a_rebuilt_tag(
    warehouse_url: str, oci_registry: Registry
) -> None:
    revision = "org.opencontainers.image.revision"
    oci_registry.push("team/api", "1.4.2", labels={revision: "a" * 40})
    oci_registry.push("team/api", "1.4.3", labels={"org.label-schema.vcs-ref": "b" * 40})
    oci_registry.push("team/api", "plain")  # no labels
    first = _metadata(_materialize(warehouse_url, oci_registry))
    assert (first["rows_new"], first["with_revision"]) == (3, 2)
    assert [(r["tag"], r["revision"]) for r in _rows(warehouse_url)] == [
        ("1.4.2", "a" * 40),
        ("1.4.3", "b" * 40),
        ("plain", None),
    ]

    # The same tag rebuilt from another commit: the row follows it, once.
    oci_registry.push("team/api", "1.4.2", content="rebuilt", labels={revision: "c" * 40})
    again = _metadata(_materialize(warehouse_url, oci_registry))
    assert (again["rows_changed"], again["rows_unchanged"]) == (1, 2)
    rows = {r["tag"]: r for r in _rows(warehouse_url)}
    assert rows["1.4.2"]["revision"] == "c" * 40
    assert rows["1.4.2"]["digest"] == oci_registry.pushed["team/api:1.4.2"]
