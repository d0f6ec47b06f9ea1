"""A rollback to a chosen revision: which past deployment `to_revision` names, and whether
it may be rolled back to.

`to_revision` is either a deployment request number (`41` or `#41`), or the image of one:
the full reference as it was requested (`registry.example.com/shop/api:1.4.1`), or only its
tag (`1.4.1`) or digest (`sha256:...`), which name the newest such deployment. Kubernetes'
own revision numbers are not accepted: a rollback bumps them and old ones disappear, so they
do not name a past deployment for long.

A past deployment may be rolled back to when it is of the same service, earlier than the
deployment being rolled back, rolled out to the cluster successfully and never rolled back
from there (its rollout target is still `succeeded`), and of another image than the one
being rolled back. The grant's writer checks this (`launch.grant_rollback`) and the
`rollback` job checks it again when it claims the grant, since a deployment that qualified
when the grant was written may have been rolled back from since.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from timbel_dagster.warehouse.schema.deploy import DeploymentRequest as R
from timbel_dagster.warehouse.schema.deploy import RolloutTarget as T

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.engine import Connection

FIELD = "to_revision"
_NUMBER = re.compile(r"^#?([0-9]{1,9})$")


class RevisionNotFoundError(LookupError):
    """`to_revision` names a deployment request that does not exist (the API's 404)."""


class RevisionRefusedError(ValueError):
    """`to_revision` names no deployment the service may be rolled back to (the API's 422
    on `to_revision`); the message says why."""


def _target_status(connection: Connection, request_id: Any, cluster: str) -> str | None:
    return connection.execute(
        select(T.status).where(T.request_id == request_id, T.cluster == cluster)
    ).scalar()


def _why_not(
    connection: Connection, row: Mapping[str, Any], rolled_back: Mapping[str, Any], cluster: str
) -> str | None:
    """Why deployment `row` may not be rolled back to, or None when it may."""
    number, service = row["number"], rolled_back["service"]
    if row["service"] != service:
        return f"request #{number} is of {row['service']}, not {service}"
    if number >= rolled_back["number"]:
        return (
            f"request #{number} is not earlier than request #{rolled_back['number']}, the one "
            "being rolled back"
        )
    if row["image"] == rolled_back["image"]:
        return f"request #{number} has the image being rolled back ({row['image']})"
    status = _target_status(connection, row["id"], cluster)
    if status is None:
        return f"request #{number} of {service} was not rolled out to {cluster}"
    if status != "succeeded":
        return (
            f"request #{number} of {service} is not a successful deployment in {cluster} "
            f"(its rollout there is {status})"
        )
    return None


def _by_number(connection: Connection, number: int) -> dict[str, Any]:
    row = connection.execute(select(R.__table__).where(R.number == number)).mappings().first()
    if row is None:
        raise RevisionNotFoundError(f"{FIELD}: no deployment request #{number}")
    return dict(row)


def _by_image(connection: Connection, service: str, image: str) -> list[dict[str, Any]]:
    """The deployments of `service` whose image is `image`, or ends in `:image` (a tag) or
    `@image` (a digest); newest first."""
    rows = connection.execute(
        select(R.__table__).where(R.service == service).order_by(R.number.desc())
    ).mappings()
    return [
        dict(r)
        for r in rows
        if r["image"] == image or r["image"].endswith((f":{image}", f"@{image}"))
    ]


def resolve(
    connection: Connection, rolled_back: Mapping[str, Any], cluster: str, to_revision: str
) -> dict[str, Any]:
    """The past deployment `to_revision` names, checked (see the module docstring).

    Args:
        rolled_back: the deployment request being rolled back (a `deployment_requests` row).

    Returns:
        {"request": its number, "image": its image}.

    Raises:
        RevisionNotFoundError: a request number that does not exist.
        RevisionRefusedError: anything else that is not a deployment to go back to.
    """
    text = to_revision.strip()
    if not text:
        raise RevisionRefusedError(f"{FIELD} is empty: give a request number or an image")
    number = _NUMBER.match(text)
    if number:
        row = _by_number(connection, int(number.group(1)))
        why = _why_not(connection, row, rolled_back, cluster)
        if why:
            raise RevisionRefusedError(f"{FIELD}: {why}")
        return {"request": row["number"], "image": row["image"]}
    service = rolled_back["service"]
    found = _by_image(connection, service, text)
    if not found:
        raise RevisionRefusedError(
            f"{FIELD}: no deployment of {service} has the image, tag or digest {text!r}"
        )
    reasons = []
    for row in found:
        why = _why_not(connection, row, rolled_back, cluster)
        if why is None:
            return {"request": row["number"], "image": row["image"]}
        reasons.append(why)
    raise RevisionRefusedError(f"{FIELD} {text!r}: " + "; ".join(reasons))


def recheck(
    connection: Connection,
    rolled_back: Mapping[str, Any],
    cluster: str,
    to_request: int | None,
    to_image: str | None,
) -> None:
    """The `rollback` job's check of the target its grant carries, before it changes
    anything: both given, the request still qualifies, and its image is the granted one.

    Raises:
        RevisionNotFoundError, RevisionRefusedError: as `resolve`.
    """
    if to_request is None or to_image is None:
        raise RevisionRefusedError("a chosen revision needs both to_request and to_image")
    found = resolve(connection, rolled_back, cluster, str(to_request))
    if found["image"] != to_image:
        raise RevisionRefusedError(
            f"request #{to_request} deployed {found['image']}, not {to_image}"
        )
