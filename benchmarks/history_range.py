"""`timbel ingest gitlab` over ten years of a server whose builds fall in 30 of those days.

Figures, measured side by side in one run: the wall time of the ingestion (`run_ingest`: one
`ci_history` run in process, warehouse on PostgreSQL, Dagster instance on SQLite as the `timbel`
command has it) and the time of its HTTP requests alone (summed around the client's session),
with the days it recorded as materialized. Target (issue 12): wall time at most 3x the HTTP
time. (Before `ci_history`, the same ten years of a 3-project server with 90 builds took 154 s
for 12 requests: 14,600 Dagster event-log writes, a planned event and a materialization per
asset and day.)

Process start-up is not in the figures (see import_time): a one-day ingestion first imports
the code, creates the Dagster instance and migrates the warehouse. The client's request-rate
limit is lifted so that the HTTP figure is the requests' own time.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time

from benchmarks.common import report, scratch_postgres

PROJECTS, DAYS_WITH_BUILDS, PIPELINES_PER_DAY, YEARS = 87, 30, 1, 10


def _fake(today: dt.datetime):
    from tests.fakes.gitlab_server import FakeGitLab

    fake = FakeGitLab()
    # The 30 days with builds are spread over the ten years (the newest 2 days ago).
    days = [
        today - dt.timedelta(days=2 + n * (365 * YEARS - 10) // DAYS_WITH_BUILDS)
        for n in range(DAYS_WITH_BUILDS)
    ]
    paths = [f"team-{n % 9}/service-{n}" for n in range(PROJECTS)]
    for path in paths:
        project = fake.add_project(path)
        for day in days:
            for k in range(PIPELINES_PER_DAY):
                fake.add_pipeline(
                    project, created=day + dt.timedelta(hours=9 + k), status="success"
                )
    fake.start()
    return fake, paths


class _HTTPClock:
    """Adds up the time spent in HTTP requests (sent, answered, body read) by the GitLab
    client: the `requests` session under python-gitlab."""

    def __init__(self) -> None:
        from timbel_dagster.resources.gitlab.client import RateCappedSession

        self.seconds, self.requests = 0.0, 0
        send = RateCappedSession.request
        clock = self

        def timed(session: RateCappedSession, *args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return send(session, *args, **kwargs)
            finally:
                clock.seconds += time.perf_counter() - started
                clock.requests += 1

        RateCappedSession.request = timed  # type: ignore[method-assign]


def main() -> None:
    from timbel_dagster.backfill import run_ingest
    from timbel_dagster.settings import get_settings, load_settings

    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - dt.timedelta(days=365 * YEARS)
    fake, paths = _fake(today)
    try:
        with scratch_postgres() as url, tempfile.TemporaryDirectory() as home:
            os.environ.update(
                TIMBEL_HOME=home,
                TIMBEL_DATABASE_URL=url,
                GITLAB_URL=fake.url,
                GITLAB_TOKEN=fake.token,
                GITLAB_PROJECTS=",".join(paths),
                GITLAB_MAX_REQUESTS_PER_SECOND="100000",
            )
            get_settings.cache_clear()
            settings = load_settings()
            # Warm-up: imports, the Dagster instance, the warehouse schema (an empty day).
            run_ingest(settings, "gitlab", today - dt.timedelta(days=1), echo=lambda _: None)
            clock = _HTTPClock()
            started = time.perf_counter()
            stored = run_ingest(settings, "gitlab", since, echo=lambda _: None)
            wall = time.perf_counter() - started
    finally:
        fake.stop()
    executions = PROJECTS * DAYS_WITH_BUILDS * PIPELINES_PER_DAY
    assert stored["pipeline_executions"]["written"] == executions, stored
    assert stored["days_with_executions"] == DAYS_WITH_BUILDS, stored
    assert clock.requests == stored["requests"], (clock.requests, stored)
    days = (today - since).days + 1
    report(
        "history_http_seconds",
        clock.seconds,
        f"s ({clock.requests} requests, {executions:,} executions)",
    )
    report(
        "history_ingest_wall_seconds",
        wall,
        f"s ({stored['stage_executions']['written']:,} stages stored)",
        wall / clock.seconds,
        "its HTTP requests alone",
    )
    report(
        "history_days_materialized",
        stored["days_with_executions"],
        f"days of {days:,} in the range",
        stored["days_with_executions"] / days,
        "one per day",
    )


if __name__ == "__main__":
    main()
