"""`request_expiry_sensor`: record deployment requests that expired, audited.

A pending request past its `expires_at` already reads as expired everywhere
(`deploy.lookup.as_of`) and cannot be decided; HTTP reads never write. This sensor writes it
down (`status = expired`, `decided_at = expires_at`) with a `deploy.expire` audit event, so
the warehouse and the audit log say so too, within a few minutes of the expiry.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import datetime as dt

import dagster as dg

from timbel_dagster.bindings.warehouse import WarehouseResource

EXPIRY_CHECK_SECONDS = 300


@dg.sensor(
    minimum_interval_seconds=EXPIRY_CHECK_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Record pending deployment requests past their expiry as expired (audited "
    "deploy.expire); reads already show them expired.",
)
def request_expiry_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SkipReason:
    # lazy: deploy.requests loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.requests import expire_requests

    expired = expire_requests(warehouse.engine(), dt.datetime.now(dt.UTC))
    if expired:
        context.log.info(f"{expired} deployment requests expired")
    return dg.SkipReason(f"{expired} requests recorded as expired (no runs to request)")
