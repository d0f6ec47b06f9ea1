"""Cost of one `jenkins_build_sensor` tick.

Figures: a tick that finds 10,000 new builds (100 jobs x 100): wall time and requests
(targets: at most 15 s and 120 requests); and a tick that confirms a batch of 100 new builds
with 100,000 builds already stored, against the same tick with 1,000 stored, measured side by
side (target: at most 1.5 times).
"""

from __future__ import annotations

import datetime as dt
import statistics
import time

from benchmarks.common import report, scratch_postgres

JOBS = 100


def _fake(builds_per_job: int):
    from tests.fakes.jenkins_server import FakeJenkins

    fake = FakeJenkins()
    first = int((dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).timestamp() * 1000)
    for n in range(JOBS):
        fake.add_job(
            f"team/service-{n}/main", builds=builds_per_job, first_timestamp=first, every_ms=1_000
        )
    fake.start()
    return fake


def _tick(fake, url: str, cursor: str | None, instance) -> tuple[float, object]:
    import dagster as dg

    from timbel_dagster.bindings.warehouse import WarehouseResource
    from timbel_dagster.resources.jenkins.source import JenkinsResource
    from timbel_dagster.sensors.builds import jenkins_build_sensor

    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        resources={
            "jenkins": JenkinsResource(url=fake.url, user=fake.user, token=fake.token, jobs=[]),
            "warehouse": WarehouseResource(database_url=url),
        },
    )
    started = time.perf_counter()
    result = jenkins_build_sensor(context)
    return time.perf_counter() - started, result


def _store(url: str, per_job: int) -> None:
    """`per_job` finished builds of every job, as the ingestion would have stored them."""
    from timbel_dagster.records.delivery import ExecutionRecord, PipelineRecord
    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.store.loaders import store_executions, store_pipelines

    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    with get_engine(url).begin() as connection:
        store_pipelines(
            connection,
            "jenkins",
            [
                PipelineRecord(
                    "jenkins", f"team/service-{n}/main", f"service-{n}", None, None, None
                )
                for n in range(JOBS)
            ],
        )
        store_executions(
            connection,
            "jenkins",
            [
                ExecutionRecord(
                    pipeline=f"team/service-{n}/main",
                    external_id=str(b),
                    sequence=b,
                    status="success",
                    triggered_by=None,
                    started_at=start,
                    completed_at=start,
                    duration=1.0,
                    commit_sha=None,
                    branch=None,
                    url=None,
                )
                for n in range(JOBS)
                for b in range(1, per_job + 1)
            ],
        )


def confirm_ticks(stored_per_job: tuple[int, ...], samples: int = 15) -> list[float]:
    """Median tick time to confirm a batch of one new build per job, for each history size,
    the sizes' ticks alternating so that machine noise hits them alike."""
    from contextlib import ExitStack

    import dagster as dg

    from timbel_dagster.sensors.marks import BuildCursor, Pending
    from timbel_dagster.warehouse import migrate

    with ExitStack() as stack:
        setups = []
        for stored in stored_per_job:
            fake = _fake(stored + 1)
            stack.callback(fake.stop)
            url = stack.enter_context(scratch_postgres())
            migrate.upgrade(url)
            _store(url, stored + 1)  # the batch's builds are stored too
            setups.append((fake, url, stored))
        instance = dg.DagsterInstance.ephemeral()
        long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).isoformat()
        timings: list[list[float]] = [[] for _ in setups]
        for sample in range(samples + 1):
            for index, (fake, url, stored) in enumerate(setups):
                marks = {f"team/service-{n}/main": stored for n in range(JOBS)}
                upto = dict.fromkeys(marks, stored + 1)
                cursor = BuildCursor(marks, {}, Pending(f"k{sample}", upto, long_ago), 1)
                seconds, _result = _tick(fake, url, cursor.to_json(), instance)
                if sample:  # the first round warms connections and caches
                    timings[index].append(seconds)
        return [statistics.median(t) for t in timings]


def main() -> None:
    import dagster as dg

    from timbel_dagster.sensors.marks import BuildCursor
    from timbel_dagster.warehouse import migrate

    fake = _fake(200)
    try:
        with scratch_postgres() as url:
            migrate.upgrade(url)
            marks = {f"team/service-{n}/main": 100 for n in range(JOBS)}
            before = len(fake.requests)
            seconds, result = _tick(
                fake, url, BuildCursor(marks).to_json(), dg.DagsterInstance.ephemeral()
            )
            requests = len(fake.requests) - before
            [request] = [r for r in result.run_requests if r.job_name == "ci_ingestion"]
            assert request.run_key
            report("tick_10k_new_builds_seconds", seconds, "s (target <= 15 s)")
            report("tick_10k_new_builds_requests", requests, "requests (target <= 120)")
    finally:
        fake.stop()
    small, large = confirm_ticks((10, 1000))
    report("tick_confirm_with_1k_stored_seconds", small, "s")
    report(
        "tick_confirm_with_100k_stored_seconds",
        large,
        "s",
        large / small,
        "1,000 stored (target <= 1.5)",
    )


if __name__ == "__main__":
    main()
