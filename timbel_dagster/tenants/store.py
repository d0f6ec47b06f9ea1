"""The `tenants` table: reads, and writes that append their audit event in the same
transaction, including the audit of attempts that were refused before anything changed."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.tenants.manifests import TenantSpec
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.people import membership
from timbel_dagster.warehouse.people.users import UserRefusedError, require_users
from timbel_dagster.warehouse.schema.deploy import Tenant
from timbel_dagster.warehouse.schema.ids import stable_id

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


class UnknownUsersError(LookupError):
    """Users named for a tenant (or acting) are not in the warehouse's `users` table."""


class TenantNotFoundError(LookupError):
    """No provisioned tenant of that name."""


@dataclass(frozen=True)
class TenantRow:
    id: uuid.UUID
    name: str
    cpu_cores: float
    memory_bytes: float
    users: list[str]
    clusters: list[str]
    status: str
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "id": str(self.id)}


def _table() -> Any:
    return Tenant.__table__


def check_users(
    connection: Connection, names: list[str] | tuple[str, ...], *, acting: bool = False
) -> None:
    """Raise `UnknownUsersError` when a user named (`acting`: the acting user) is not in the
    users table or is disabled (`warehouse.people.users.require_users`)."""
    try:
        require_users(connection, names, acting=acting)
    except UserRefusedError as error:
        raise UnknownUsersError(str(error)) from None


def _row(connection: Connection, mapping: Mapping[str, Any]) -> TenantRow:
    """The tenant of a `tenants` row, with its users from `tenant_members`."""
    users = list(membership.members_of_tenant(connection, mapping["name"]))
    fields = {f: mapping[f] for f in TenantRow.__dataclass_fields__ if f != "users"}
    return TenantRow(**fields, users=users)


def get_tenant(connection: Connection, name: str, for_update: bool = False) -> TenantRow | None:
    from sqlalchemy import select

    table = _table()
    query = select(table).where(table.c.name == name)
    if for_update:
        query = query.with_for_update()
    found = connection.execute(query).mappings().first()
    return _row(connection, found) if found else None


def list_tenants(connection: Connection, include_deleted: bool = False) -> list[TenantRow]:
    from sqlalchemy import select

    table = _table()
    query = select(table).order_by(table.c.name)
    if not include_deleted:
        query = query.where(table.c.status == "provisioned")
    return [_row(connection, r) for r in connection.execute(query).mappings().all()]


def record_provisioned(
    engine: Engine, spec: TenantSpec, clusters: list[str], actor: str, details: dict[str, Any]
) -> tuple[TenantRow, str]:
    """Insert or update the tenant's row and audit it, in one transaction.

    A provisioned tenant keeps the clusters it already had (a run for one more cluster adds
    it); a deleted one starts afresh. Returns the row and the audit action:
    `tenant.create` for a new (or re-created) tenant, `tenant.update` otherwise.
    """
    from sqlalchemy import insert, update

    table, now = _table(), dt.datetime.now(dt.UTC)
    values = {
        "cpu_cores": spec.cpu_cores,
        "memory_bytes": float(spec.memory_bytes),
        "status": "provisioned",
        "updated_at": now,
    }
    with engine.begin() as connection:
        old = get_tenant(connection, spec.name, for_update=True)
        if old is None:
            action = "tenant.create"
            connection.execute(
                insert(table).values(
                    id=stable_id("tenants", spec.name),
                    name=spec.name,
                    clusters=sorted(set(clusters)),
                    created_by=actor,
                    created_at=now,
                    **values,
                )
            )
        else:
            recreated = old.status == "deleted"
            action = "tenant.create" if recreated else "tenant.update"
            kept = [] if recreated else old.clusters
            changes = {**values, "clusters": sorted({*kept, *clusters})}
            if recreated:
                changes |= {"created_by": actor, "created_at": now}
            connection.execute(update(table).where(table.c.id == old.id).values(**changes))
        membership.set_tenant_members(connection, spec.name, spec.users)
        append_event(
            connection, actor=actor, action=action, target=f"tenant {spec.name}", details=details
        )
        row = get_tenant(connection, spec.name)
    assert row is not None
    return row, action


def record_deleted(engine: Engine, name: str, actor: str, details: dict[str, Any]) -> TenantRow:
    """Mark the tenant deleted and audit it, in one transaction."""
    from sqlalchemy import update

    table = _table()
    with engine.begin() as connection:
        old = get_tenant(connection, name, for_update=True)
        if old is None or old.status != "provisioned":
            raise TenantNotFoundError(f"no provisioned tenant {name!r}")
        connection.execute(
            update(table)
            .where(table.c.id == old.id)
            .values(status="deleted", updated_at=dt.datetime.now(dt.UTC))
        )
        append_event(
            connection,
            actor=actor,
            action="tenant.delete",
            target=f"tenant {name}",
            details=details,
        )
        row = get_tenant(connection, name)
    assert row is not None
    return row


def record_attempt(
    engine: Engine, action: str, name: str, actor: str, error: BaseException, details: dict
) -> None:
    """Audit an attempt that failed or was refused (`tenant.create.refused`, ...) with the
    error; nothing else is written."""

    # What was typed may be anything: the target column holds 512 characters.
    target = f"tenant {name if len(name) <= 200 else name[:200] + '...'}"
    with engine.begin() as connection:
        append_event(
            connection,
            actor=actor[:256],
            action=action,
            target=target,
            details={**details, "error": str(error), "error_type": type(error).__name__},
        )
