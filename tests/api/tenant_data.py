"""Two tenants and their data for the read routes' scope tests: `acme` (service `cart`),
`globex` (service `ledger`), and a service in no tenant (`wiki`). `dev_a` is a developer in
acme, `dev_b` a developer in globex, `ops` sees everything.

`store_images` adds scanned images, each linked to services a different way (see IMAGES)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import uuid

from sqlalchemy import insert

from tests.identity.people import PEOPLE, store_people
from tests.security.findings import FIXTURES, VULNERABLE
from timbel_dagster.resources.trivy_report import load_report
from timbel_dagster.security.scan_import import import_report
from timbel_dagster.warehouse.people.membership import set_tenant_members
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest, Tenant
from timbel_dagster.warehouse.schema.identity import ServiceOwner, Team
from timbel_dagster.warehouse.schema.models import (
    Deployment,
    ExecutionLog,
    ExecutionLogChunk,
    Pipeline,
    PipelineExecution,
    StageExecution,
)
from timbel_dagster.warehouse.schema.registry import RegistryImage

T0 = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
SERVICES = {"cart": "acme", "ledger": "globex", "wiki": None}
PIPELINE_OF = {"cart": "acme/cart", "ledger": "globex/ledger", "wiki": "docs/wiki"}


def store_tenants(engine, url: str) -> dict[str, list[uuid.UUID]]:
    """The people, the tenants, and 3 executions per service (each with 2 stages and a log
    whose lines name the service); the execution ids by service."""
    store_people(url, [*PEOPLE, ("dev_a", "developer", None), ("dev_b", "developer", None)])
    now = dt.datetime.now(dt.UTC)
    ids: dict[str, list[uuid.UUID]] = {}
    with engine.begin() as connection:
        connection.execute(insert(Team), [{"name": "shop", "created_at": now}])
        for tenant in ("acme", "globex"):
            connection.execute(
                insert(Tenant).values(
                    id=uuid.uuid4(), name=tenant, cpu_cores=1, memory_bytes=1, clusters=[],
                    created_by="ops",
                )
            )  # fmt: skip
        set_tenant_members(connection, "acme", ["dev_a"])
        set_tenant_members(connection, "globex", ["dev_b"])
        for service, tenant in SERVICES.items():
            connection.execute(
                insert(ServiceOwner).values(service=service, team="shop", tenant=tenant)
            )
            pipeline = uuid.uuid4()
            connection.execute(
                insert(Pipeline).values(
                    id=pipeline, source="gitlab", ci_system="gitlab",
                    name=PIPELINE_OF[service], service=service,
                )
            )  # fmt: skip
            for number in range(3):
                ident = uuid.uuid4()
                ids.setdefault(service, []).append(ident)
                started = T0 + dt.timedelta(hours=number)
                connection.execute(
                    insert(PipelineExecution).values(
                        id=ident, source="gitlab", pipeline_id=pipeline,
                        external_id=str(number), status="success" if number else "failed",
                        started_at=started, duration=60.0 * (number + 1),
                    )
                )  # fmt: skip
                for position, name in enumerate(("build", "test")):
                    connection.execute(
                        insert(StageExecution).values(
                            id=uuid.uuid4(), execution_id=ident, external_id=f"{number}-{name}",
                            name=name, position=position, status="success", started_at=started,
                        )
                    )  # fmt: skip
                connection.execute(
                    insert(ExecutionLog).values(
                        execution_id=ident, stream="", size=10, lines=2, complete=True,
                        updated_at=now,
                    )
                )  # fmt: skip
                for offset, text in ((0, f"start {service}\n"), (100, f"boom {service} failed\n")):
                    connection.execute(
                        insert(ExecutionLogChunk).values(
                            execution_id=ident, stream="", start_offset=offset,
                            first_line=1 + offset // 100, length=len(text), content=text,
                        )
                    )  # fmt: skip
    return ids


HOST = "registry.example.com"


def digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


# Per image (its repository): the services whose deployments (`deployed`) or requests
# (`requested`) name it and how they write it; whether `registry_images` lists its tag
# `1.0`; the name its scan recorded. Each way the scope links an image to a tenant is used:
#   cart:   deployed by tag, the tag listed, scanned by digest (only the listing links it)
#   ledger: requested by tag, not listed, scanned by that tag (only the scan's name links it)
#   shared: cart deployed it by digest, ledger asked for `tag@digest` (listing forms)
#   wiki:   deployed by wiki, a service in no tenant (operations only)
#   orphan: scanned, named by nothing (operations only)
IMAGES = {
    "cart": {"deployed": [("cart", "tag")], "requested": [], "listed": True, "scan": "digest"},
    "ledger": {"deployed": [], "requested": [("ledger", "tag")], "listed": False,
               "scan": "tag"},
    "shared": {"deployed": [("cart", "digest")], "requested": [("ledger", "tag@digest")],
               "listed": True, "scan": "tag"},
    "wiki": {"deployed": [("wiki", "tag")], "requested": [], "listed": True, "scan": "tag"},
    "orphan": {"deployed": [], "requested": [], "listed": True, "scan": "tag"},
}  # fmt: skip
# The images each user's findings are of (users in no tenant see none).
IMAGES_SEEN = {
    "dev_a": {"cart", "shared"},
    "dev_b": {"ledger", "shared"},
    "ops": set(IMAGES),
    "admin": set(IMAGES),
    "viewer": set(),
}


def reference(image: str, form: str) -> str:
    """Image `image` (tag 1.0) written as `tag`, `digest` or `tag@digest`."""
    name = f"{HOST}/team/{image}"
    return {"tag": f"{name}:1.0", "digest": f"{name}@{digest(image)}",
            "tag@digest": f"{name}:1.0@{digest(image)}"}[form]  # fmt: skip


def store_images(engine) -> dict[str, str]:
    """The IMAGES: a scan of each (the recorded VULNERABLE report under the image's digest)
    with its findings, the registry's tags, the deployments and requests; their artifact
    keys (digests) by image. Call after `store_tenants`."""
    report = load_report(FIXTURES / VULNERABLE)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        for number, (image, how) in enumerate(IMAGES.items()):
            scanned = dataclasses.replace(
                report, artifact_name=reference(image, how["scan"]), artifact_digest=digest(image)
            )
            import_report(connection, scanned, source="trivy", scanned_at=T0)
            if how["listed"]:
                connection.execute(
                    insert(RegistryImage).values(
                        id=uuid.uuid4(), source="test", registry=HOST, repository=f"team/{image}",
                        tag="1.0", digest=digest(image), media_type="m", first_seen=T0,
                        last_seen=T0,
                    )
                )  # fmt: skip
            for service, form in how["deployed"]:
                connection.execute(
                    insert(Deployment).values(
                        id=uuid.uuid4(), source="test", external_id=f"{image}-{service}",
                        service=service, environment="prod", image=reference(image, form),
                        status="success", started_at=T0,
                    )
                )  # fmt: skip
            for service, form in how["requested"]:
                connection.execute(
                    insert(DeploymentRequest).values(
                        id=uuid.uuid4(), number=100 + number, service=service,
                        image=reference(image, form), environment_group="prod", reason="r",
                        requested_by="dev_b", status="pending",
                        expires_at=now + dt.timedelta(days=1),
                    )
                )  # fmt: skip
    return {image: digest(image) for image in IMAGES}
