"""When the SLOs are evaluated: every 5 minutes, so that the 5-minute window of the page
condition is at most one evaluation old."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.jobs.definitions import slo_evaluation_job
from timbel_dagster.settings import get_settings


# Running by default, skipping until TIMBEL_SLO_FILE is set: configuring SLOs is all it takes
# to have them evaluated and alerted on. Sample mode's SLOs are not evaluated on schedule:
# the sample is a fixed history that `timbel demo` evaluates once.
@dg.schedule(
    name="slo_status_every_5m",
    job=slo_evaluation_job,
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Evaluate every SLO of TIMBEL_SLO_FILE (SLI, error budget, burn rates) every "
    "5 minutes; skips while the setting is unset.",
)
def slo_status_schedule(context: dg.ScheduleEvaluationContext):
    if not get_settings().timbel_slo_file:
        return dg.SkipReason("no SLOs: set TIMBEL_SLO_FILE to evaluate them (docs/slos.md)")
    at = context.scheduled_execution_time
    return dg.RunRequest(
        run_key=f"slo-status-{at:%Y-%m-%dT%H:%M}",
        run_config={"ops": {"slo__slo_status": {"config": {"at": at.isoformat()}}}},
    )
