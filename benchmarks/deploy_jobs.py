"""The `deploy` job as `benchmarks.deploy_rollout` runs it, importable by the step processes
of Dagster's multiprocess executor (`dg.reconstructable` needs module-level functions).

The warehouse and the clusters file reach the steps through run config (`resources:`), so
one forkserver serves every run of the benchmark whatever its clusters.
"""

from __future__ import annotations

import dagster as dg

PARALLEL = 3  # one step per cluster of the benchmark's group


def code_location_deploy() -> dg.JobDefinition:
    """`deploy` exactly as the code location defines it: its resources and its executor."""
    from timbel_dagster.definitions import build_definitions

    return build_definitions().get_job_def("deploy")


def deploy_three_at_once() -> dg.JobDefinition:
    """The same job, resources and process start method, with `max_concurrent` 3: the code
    location's executor is configured with a fixed dict, so run config cannot raise it."""
    from timbel_dagster.definitions import build_definitions
    from timbel_dagster.jobs.deploy import deploy

    executor = dg.multiprocess_executor.configured(
        {
            "max_concurrent": PARALLEL,
            "start_method": {"forkserver": {"preload_modules": ["timbel_dagster.definitions"]}},
        },
        name="multiprocess_three",
    )
    resources = dict(build_definitions().get_job_def("deploy").resource_defs)
    return dg.Definitions(jobs=[deploy], resources=resources, executor=executor).get_job_def(
        "deploy"
    )
