"""Backfill of 100 Jenkins jobs x 1,000 builds from the fake Jenkins into PostgreSQL.

Figures: requests used by the real ingestion path (`read_ci` through
`JenkinsSource`) against the baseline of one call per build, and wall time; for builds only
(`--stages none`) and with the default stage policy (`recent`: the newest runs' stages in one
`wfapi/runs` request per job). Target (issue 3): at least 90 times fewer requests.
"""

from __future__ import annotations

import datetime as dt
import time

from benchmarks.common import report, scratch_postgres

JOBS, BUILDS = 100, 1000


def main(jobs: int = JOBS, builds: int = BUILDS) -> None:
    from tests.fakes.jenkins_server import FakeJenkins
    from timbel_dagster.assets.ingestion import read_ci
    from timbel_dagster.resources.jenkins.api import JenkinsAPI
    from timbel_dagster.resources.jenkins.client import JenkinsHTTP
    from timbel_dagster.resources.jenkins.source import JenkinsSource
    from timbel_dagster.warehouse import migrate
    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.store.ingest import store_ci

    fake = FakeJenkins()
    first = int(dt.datetime(2026, 6, 1, tzinfo=dt.UTC).timestamp() * 1000)
    for n in range(jobs):
        fake.add_job(
            f"team-{n % 10}/service-{n}/main",
            builds=builds,
            first_timestamp=first,
            every_ms=300_000,
        )
    fake.start()
    since, until = dt.datetime(2026, 5, 1, tzinfo=dt.UTC), dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    try:
        for stages in ("none", "recent"):
            with scratch_postgres() as url:
                migrate.upgrade(url)
                api = JenkinsAPI(JenkinsHTTP(fake.url, fake.user, fake.token))
                source = JenkinsSource(api, [], stages=stages)
                started = time.perf_counter()
                read = read_ci(get_engine(url, read_only=True), source, since, until)
                with get_engine(url).begin() as connection:  # read first, then one write
                    stored = store_ci(connection, source.name, read)
                seconds = time.perf_counter() - started
                total = jobs * builds
                assert stored["pipeline_executions"].written == total
                requests = api.http.requests_made
                report(
                    f"backfill_{stages}_stages_requests",
                    requests,
                    f"requests for {total:,} builds",
                    total / requests,
                    "one call per build",
                )
                report(
                    f"backfill_{stages}_stages_seconds",
                    seconds,
                    f"s ({stored['stage_executions'].written:,} stage rows)",
                )
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
