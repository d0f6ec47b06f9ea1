"""The code location: every sub-package's definitions, merged.

Importing this module builds nothing; loading the code location (`defs`) reads the settings
that place the partitions' first day (TIMBEL_HISTORY_START, and in sample mode the sample's
window) and configure every resource (secrets as `dg.EnvVar`, `bindings.configured`), and
builds the definitions: no connection is opened, and heavy libraries (pandas, scikit-learn,
SQLAlchemy, the clients) load inside the runs.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import dagster as dg

from timbel_dagster.assets import definitions as assets
from timbel_dagster.bindings import definitions as resources
from timbel_dagster.jobs import definitions as jobs
from timbel_dagster.partitions import DEFAULT_HISTORY_START
from timbel_dagster.resources.sample.source import SampleSource
from timbel_dagster.sensors import definitions as sensors
from timbel_dagster.settings import get_settings
from timbel_dagster.settings.freshness import asset_windows

if TYPE_CHECKING:  # the model loads pydantic-settings, which loading needs only in defs()
    from timbel_dagster.settings import Settings

# Daemon-launched runs: one process per step, forked from a server that has already imported
# the code location, so a step does not pay Dagster's multi-second import again (DESIGN §5).
executor = dg.multiprocess_executor.configured(
    {
        "max_concurrent": 2,
        "start_method": {"forkserver": {"preload_modules": ["timbel_dagster.definitions"]}},
    }
)


def build_definitions(
    history_start: dt.date = DEFAULT_HISTORY_START, settings: Settings | None = None
) -> dg.Definitions:
    """The code location, its daily and hourly partitions starting on `history_start`, its
    resources configured from `settings`.

    Commands that already hold the settings build it with theirs; tests build it with the
    default start and no settings: resources bound bare, reading the settings when a run
    first uses them. The ingestion assets' freshness policies follow the windows of
    `settings` (the defaults without); `slo/slo_status` has one when `settings` name an SLO
    file outside sample mode.
    """
    return dg.Definitions.merge(
        assets.defs(history_start, asset_windows(settings)),
        jobs.defs(history_start, settings.timbel_ml_executor if settings else "multiprocess"),
        sensors.defs(),
        resources.defs(settings),
        dg.Definitions(executor=executor),
    )


def history_start(settings: Settings, sample: bool | None = None) -> dt.date:
    """The partitions' first day: TIMBEL_HISTORY_START; in sample mode (`sample`, by default
    TIMBEL_SAMPLE_DATA) with that setting unset, the sample's first day, so that the asset
    pages count the sample's 90 days as partitions rather than every day since 2010."""
    sample = settings.timbel_sample_data if sample is None else sample
    if not sample or settings.timbel_history_start != DEFAULT_HISTORY_START:
        return settings.timbel_history_start
    end = settings.timbel_sample_end_date or dt.datetime.now(dt.UTC).date()
    return SampleSource(end_date=end, seed=settings.timbel_sample_seed).window[0].date()


# Where history starts (the partitions' first day) and how resources are configured are
# settings, and nothing reads settings at import time. So Dagster's entry point is a function
# that Dagster calls when it loads the code location (`@dg.definitions`: the webserver, the
# daemon and each run worker call it; importing this module, as the forkserver preload does,
# builds nothing and reads nothing).
@dg.definitions
def defs() -> dg.Definitions:
    settings = get_settings()
    return build_definitions(history_start(settings), settings)
