"""Every asset of the code location, by domain."""

from __future__ import annotations

import dagster as dg

from timbel_dagster.assets.cicd.dora_metrics import dora_metrics
from timbel_dagster.assets.cicd.executions import ci_executions, pipelines
from timbel_dagster.assets.cicd.logs import execution_logs
from timbel_dagster.assets.deploy.history import delivery_history
from timbel_dagster.assets.org.directory import directory


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[directory, pipelines, ci_executions, execution_logs, delivery_history, dora_metrics]
    )
