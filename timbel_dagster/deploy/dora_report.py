"""`dora_report`: DORA over the warehouse's rows, for `timbel dora` and
`GET /api/v1/metrics/dora` (the computation is `deploy.dora`'s)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from timbel_dagster.deploy.dora import ORGANISATION, recent_dora
from timbel_dagster.deploy.known import check_service
from timbel_dagster.warehouse.read import frames

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def dora_report(
    connection: Connection, service: str | None = None, weeks: int = 4
) -> dict[str, Any] | None:
    """`recent_dora` over the warehouse's prod deployments, commits and incidents: what
    `timbel dora --json` prints. `service` None: the organisation.

    Raises:
        RequestError: `service` is named by no pipeline or deployment (a typo is an error,
            not an empty report).
    """
    if service:
        check_service(connection, service)
    return recent_dora(
        frames.deployments_frame(connection),
        frames.shipped_commits_frame(connection),
        frames.incidents_frame(connection),
        weeks,
        service or ORGANISATION,
    )
