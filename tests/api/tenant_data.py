"""Two tenants and their data for the read routes' scope tests: `acme` (service `cart`),
`globex` (service `ledger`), and a service in no tenant (`wiki`). `dev_a` is a developer in
acme, `dev_b` a developer in globex, `ops` sees everything."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import insert

from tests.identity.people import PEOPLE, store_people
from timbel_dagster.warehouse.people.membership import set_tenant_members
from timbel_dagster.warehouse.schema.deploy import Tenant
from timbel_dagster.warehouse.schema.identity import ServiceOwner, Team
from timbel_dagster.warehouse.schema.models import (
    ExecutionLog,
    ExecutionLogChunk,
    Pipeline,
    PipelineExecution,
    StageExecution,
)

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
