"""Who acts in a run (issue #13, finding 7): only the `timbel` command's own in-process runs
name a person; a `timbel/actor` tag is a claim anyone launching from the Dagster UI can make."""

# No `from __future__ import annotations`: Dagster reads the op's annotations.
import threading

import dagster as dg
import pytest

from timbel_dagster.jobs.run_actor import RunActor, acting_as, run_actor

CASES = [
    ("a UI launch with a claim", {"timbel/actor": "anyone"}, None,
     RunActor("dagster-ui", False, "anyone"),
     {"launched_from": "dagster-ui", "unverified_claim": "anyone"}),
    ("a UI launch without one", {}, None, RunActor("dagster-ui", False),
     {"launched_from": "dagster-ui"}),
    ("a sensor's run", {"dagster/sensor_name": "build_sensor"}, None,
     RunActor("dagster", False), {}),
    ("a sensor's run that claims someone", {"dagster/sensor_name": "s", "timbel/actor": "x"},
     None, RunActor("dagster-ui", False, "x"),
     {"launched_from": "dagster-ui", "unverified_claim": "x"}),
    ("the command, whatever the tag says", {"timbel/actor": "admin"}, "minji.kim",
     RunActor("minji.kim", True), {}),
    ("a long claim is cut", {"timbel/actor": "a" * 1000}, None,
     RunActor("dagster-ui", False, "a" * 256),
     {"launched_from": "dagster-ui", "unverified_claim": "a" * 256}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "tags", "acting", "actor", "details"), CASES)
def test_run_actor(case: str, tags: dict, acting: str | None, actor: RunActor, details) -> None:
    if acting:
        with acting_as(acting):
            found = run_actor(tags)
    else:
        found = run_actor(tags)
    assert found == actor and found.details == details


@dg.op
def _who(context: dg.OpExecutionContext) -> str:
    return run_actor(context.run.tags).name


@dg.job(executor_def=dg.in_process_executor)
def _job() -> None:
    _who()


def test_only_runs_inside_acting_as_are_verified() -> None:
    """The command's in-process run sees its user; a run executed elsewhere (another thread
    here; a run worker process for a UI launch) does not, whatever it is tagged."""
    tags = {"timbel/actor": "minji.kim"}
    with acting_as("minji.kim"):
        assert _job.execute_in_process(tags=tags).output_for_node("_who") == "minji.kim"
        found: list[str] = []
        other = threading.Thread(
            target=lambda: found.append(_job.execute_in_process(tags=tags).output_for_node("_who"))
        )
        other.start()
        other.join()
    assert found == ["dagster-ui"]
    assert _job.execute_in_process(tags=tags).output_for_node("_who") == "dagster-ui"
