"""The code location: every sub-package's definitions, merged.

Loading this module builds definitions only: no settings are read, no connection is opened,
and heavy libraries (pandas, scikit-learn, SQLAlchemy, the clients) load inside the runs.
"""

from __future__ import annotations

import dagster as dg

from timbel_dagster.assets import definitions as assets
from timbel_dagster.jobs import definitions as jobs
from timbel_dagster.resources import definitions as resources
from timbel_dagster.sensors import definitions as sensors

# Daemon-launched runs: one process per step, forked from a server that has already imported
# the code location, so a step does not pay Dagster's multi-second import again (DESIGN §5).
executor = dg.multiprocess_executor.configured(
    {
        "max_concurrent": 2,
        "start_method": {"forkserver": {"preload_modules": ["timbel_dagster.definitions"]}},
    }
)

defs = dg.Definitions.merge(
    assets.defs(),
    jobs.defs(),
    sensors.defs(),
    resources.defs(),
    dg.Definitions(executor=executor),
)
