"""POST /api/v1/rollbacks: ask for a rollback. The API never runs a job (import-linter keeps
it from orchestration): it writes a run grant, and `run_grant_sensor` launches `rollback`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ApiError, problems
from timbel_dagster.api.guard import invalid, not_found
from timbel_dagster.api.schemas.grants import RollbackIn, RunGrantOut
from timbel_dagster.deploy.launch import NotFoundError, grant_rollback
from timbel_dagster.deploy.rollback_target import RevisionNotFoundError, RevisionRefusedError
from timbel_dagster.identity.principal import Principal

router = APIRouter(tags=["rollbacks"])


@router.post(
    "/rollbacks",
    status_code=202,
    summary="Ask for a rollback of a service in a cluster (answered with its run grant)",
    response_model=RunGrantOut,
    responses=problems(400, 401, 403, 404, 422),
)
def request_rollback(
    body: RollbackIn,
    who: Annotated[Principal, Depends(require("rollbacks.request"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
) -> RunGrantOut:
    """Operations (or admin) only. Writes a run grant for the `rollback` job with exactly
    this config, acting as the caller (audited as `run.grant`), and answers 202: within the
    sensor's interval (30 s) `run_grant_sensor` launches it, and the run claims the grant
    once. The job rolls the service back to its last known-good image, or to `to_revision`.
    404 when no deployment of the service rolled out to the cluster, or `to_revision` is a
    request number that does not exist; 422 on `["body", "to_revision"]` when it names no
    past deployment of the service that succeeded in the cluster (nothing is granted)."""
    try:
        granted = grant_rollback(
            warehouse, who.user, body.service, body.cluster, body.reason,
            request=body.request, to_revision=body.to_revision, dry_run=body.dry_run,
        )  # fmt: skip
    except (NotFoundError, RevisionNotFoundError) as error:
        raise not_found(str(error)) from None
    except RevisionRefusedError as error:
        raise invalid(("body", "to_revision"), str(error)) from None
    except ValueError as error:
        raise ApiError(422, str(error), kind="validation") from None
    return RunGrantOut(**granted)
