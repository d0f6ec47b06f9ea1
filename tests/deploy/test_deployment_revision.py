"""The commit of a Timbel deploy in live mode: the image's own revision label, as the
registry listing stored it (`registry_images.revision`), not the sample's build artifacts.

Live CI builds store their artifacts as files (`{"files": [...]}`), never the image they
pushed, and release tags are versions, not commit prefixes: before the label was read, such a
deploy got no commit, so DORA's lead time and the risk model's change features stayed empty.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from tests.deploy.test_deploy_job import _resources, _run
from tests.services import oci_registry as service
from tests.services.oci_registry import Registry
from timbel_dagster.assets.security.images import images, store_images
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.deploy.deployment_rows import record_release
from timbel_dagster.ml.risk.deployment_data import image_commit
from timbel_dagster.resources.registry import RegistryResource
from timbel_dagster.resources.registry_records import OCI_MANIFEST, Image
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest
from timbel_dagster.warehouse.schema.models import Deployment, Pipeline, PipelineExecution
from timbel_dagster.warehouse.store.loaders import execution_id, pipeline_id

oci_registry = service.oci_registry

SHAS = {"1.4.1": "1" * 8 + "a" * 32, "1.4.2": "2" * 8 + "b" * 32}
LABEL = "org.opencontainers.image.revision"
HOST = "registry.example.com"
DIGEST = "sha256:" + "e" * 64


def _live_builds(url: str) -> None:
    """shop-api's CI pipeline and a build per commit, shaped as Jenkins ingestion stores
    them: artifacts are the archived files; nothing names the image."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    with get_engine(url).begin() as connection:
        connection.execute(
            Pipeline.__table__.insert().values(
                id=pipeline_id("jenkins", "shop/api"), source="jenkins", ci_system="jenkins",
                name="shop/api", service="shop-api", repository=None,
            )
        )  # fmt: skip
        for number, sha in enumerate(SHAS.values(), start=1):
            connection.execute(
                PipelineExecution.__table__.insert().values(
                    id=execution_id("jenkins", "shop/api", str(number)), source="jenkins",
                    pipeline_id=pipeline_id("jenkins", "shop/api"), external_id=str(number),
                    status="success", started_at=now + dt.timedelta(minutes=number),
                    commit_sha=sha,
                    artifacts={"files": [{"name": "api.jar", "path": "target/api.jar",
                                          "url": None}]},
                )
            )  # fmt: skip


def _approved(url: str, number: int, image: str) -> None:
    now = dt.datetime.now(dt.UTC)
    with get_engine(url).begin() as connection:
        connection.execute(
            DeploymentRequest.__table__.insert().values(
                id=uuid.uuid4(), number=number, service="shop-api", image=image,
                environment_group="prod", reason="test", requested_by="dev", status="approved",
                expires_at=now + dt.timedelta(hours=1),
            )
        )  # fmt: skip


def _release(url: str, number: int) -> dict:
    with get_engine(url).connect() as connection:
        return dict(
            connection.execute(
                select(Deployment.__table__).where(
                    Deployment.source == "timbel", Deployment.external_id == f"request-{number}"
                )
            ).mappings().one()
        )  # fmt: skip


def test_a_deploy_of_a_version_tag_gets_its_commit_from_the_label(
    warehouse_url: str, oci_registry: Registry, fakes: dict, tmp_path: Path
) -> None:
    oci_registry.push("shop/api", "1.4.1", labels={"org.label-schema.vcs-ref": SHAS["1.4.1"]})
    oci_registry.push("shop/api", "1.4.2", labels={LABEL: SHAS["1.4.2"]})
    listed = dg.materialize(
        [images],
        instance=dg.DagsterInstance.ephemeral(),
        resources={
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "sources": DeliverySourcesResource(
                mode="live",
                registry=RegistryResource(url=oci_registry.url, repositories=["shop/*"]),
            ),
        },
    )
    assert listed.success
    _live_builds(warehouse_url)
    resources = _resources(warehouse_url, fakes, tmp_path)

    _approved(warehouse_url, 1, f"{oci_registry.host}/shop/api:1.4.1")
    assert _run(warehouse_url, resources, 1).success
    _approved(warehouse_url, 2, f"{oci_registry.host}/shop/api:1.4.2")
    assert _run(warehouse_url, resources, 2).success

    release = _release(warehouse_url, 2)
    assert (release["status"], release["version"]) == ("success", "1.4.2")
    assert release["commit_to"] == SHAS["1.4.2"]
    assert release["commit_from"] == SHAS["1.4.1"]  # request 1's, from its label-schema label
    assert release["execution_id"] == execution_id("jenkins", "shop/api", "2")


def _stored(url: str, revision: str | None, tag: str = "1.4.2") -> None:
    seen = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
    with get_engine(url).begin() as connection:
        store_images(
            connection,
            [Image(HOST, "shop/api", tag, DIGEST, OCI_MANIFEST, seen, 1, revision)],
            "registry",
            seen,
        )


@pytest.mark.parametrize(
    "image",
    [
        f"{HOST}/shop/api:1.4.2",  # by tag
        f"{HOST}/shop/api@{DIGEST}",  # by digest
        f"{HOST}/shop/api:other@{DIGEST}",  # the digest wins over the tag
        f"{HOST.upper()}/shop/api:1.4.2",  # host names compare without case
    ],
)
def test_the_stored_revision_is_found_by_tag_or_digest(warehouse_url: str, image: str) -> None:
    _live_builds(warehouse_url)
    _stored(warehouse_url, SHAS["1.4.2"])
    with get_engine(warehouse_url).connect() as connection:
        assert image_commit(connection, "shop-api", image) == SHAS["1.4.2"]


@pytest.mark.parametrize(
    ("revision", "expected"),
    [
        (SHAS["1.4.2"][:7], SHAS["1.4.2"]),  # abbreviated: expanded through the builds
        (SHAS["1.4.2"].upper(), SHAS["1.4.2"]),  # git ids compare without case
        ("d" * 12, "d" * 12),  # abbreviated and unknown to Timbel: kept as the image says
        ("v1.4.2", None),  # not a commit id: the other heuristics decide (none here)
        (None, None),  # an image built without labels: no commit, as before
    ],
)
def test_what_a_revision_label_is_taken_for(
    warehouse_url: str, revision: str | None, expected: str | None
) -> None:
    _live_builds(warehouse_url)
    _stored(warehouse_url, revision)
    with get_engine(warehouse_url).connect() as connection:
        assert image_commit(connection, "shop-api", f"{HOST}/shop/api:1.4.2") == expected


def test_a_release_whose_image_the_warehouse_does_not_know_has_no_commit(
    warehouse_url: str,
) -> None:
    # Only what is stored is read: the deploy transaction never waits on the registry.
    _live_builds(warehouse_url)
    _stored(warehouse_url, SHAS["1.4.2"], tag="1.4.2")
    request = {
        "number": 9, "service": "shop-api", "image": f"{HOST}/shop/api:1.4.3",
        "environment_group": "staging", "fast_track": False, "requested_by": "dev",
    }  # fmt: skip
    at = dt.datetime(2026, 11, 2, 10, tzinfo=dt.UTC)
    with get_engine(warehouse_url).begin() as connection:
        record_release(connection, request, "deploying", ["stage-a"], at, None)
    release = _release(warehouse_url, 9)
    assert (release["commit_to"], release["execution_id"]) == (None, None)
