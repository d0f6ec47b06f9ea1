"""Following a 200 MB Jenkins log that grows while it is read, with 3 forced disconnects.

The fake Jenkins runs in its own process (its copy of the log must not count); this process
follows the build with the real code (`follow_jenkins_log` into PostgreSQL). Figures: peak
memory growth of the follower (target: at most 64 MB), wall time, and whether the stored log
is byte-identical to the source (sha256).
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import subprocess
import sys
import time
from collections.abc import Iterator

from benchmarks.common import report, scratch_postgres

JOB = "shop/api/main"
TOTAL_MB = 200
LINE_BYTES = 120


def log_lines(count: int) -> Iterator[bytes]:
    """The build's log, line by line: the same bytes whenever and however it is cut."""
    for n in range(count):
        head = f"{n:09d} [stage-{n % 7}] "
        yield (head + "x" * (LINE_BYTES - len(head) - 1) + "\n").encode()


def _line_count(megabytes: int) -> int:
    return megabytes * 1024 * 1024 // LINE_BYTES


def serve(total_mb: int) -> None:
    """Run the fake Jenkins: the log starts at a fifth of its size and grows by a tenth on
    every read until it is whole; three reads are cut off part-way."""
    from tests.fakes.jenkins_server import FakeJenkins

    fake = FakeJenkins()
    fake.add_job(JOB, builds=1)
    build = fake.add_build(JOB, building=True, result=None)
    total = _line_count(total_mb)
    lines = log_lines(total)
    step = total // 10
    written = 0

    def grow(count: int) -> None:
        nonlocal written
        for _ in range(min(count, total - written)):
            build.log += next(lines)
            written += 1
        if written >= total:
            build.building = False
            build.result = "SUCCESS"

    grow(total // 5)
    fake.cut_log_after.extend([3_000_001, 11_000_007, 5_000_003])
    original = fake.build

    def growing(job: str, number: int):  # every log read lets the build write more
        found = original(job, number)
        if found is build and found.building:
            grow(step)
        return found

    fake.build = growing  # type: ignore[method-assign]
    fake.start()
    print(fake.url, flush=True)
    sys.stdin.read()  # serve until the benchmark closes our stdin
    fake.stop()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(total_mb: int = TOTAL_MB) -> None:
    import uuid

    from timbel_dagster.jobs.follow import follow_jenkins_log
    from timbel_dagster.jobs.record import store_build
    from timbel_dagster.resources.jenkins.source import JenkinsResource
    from timbel_dagster.warehouse import migrate
    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.store.logs import read_log

    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.log_follow", "--serve", "--megabytes", str(total_mb)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = server.stdout.readline().strip()  # type: ignore[union-attr]
        with scratch_postgres() as database:
            migrate.upgrade(database)
            engine = get_engine(database)
            source = JenkinsResource(
                url=url, user="timbel", token="api-token-123", jobs=[JOB], retry_backoff_seconds=0
            ).source()
            execution = source.execution(JOB, 2, read_stages=False)
            execution_id = uuid.UUID(
                store_build(
                    engine, "jenkins", source.pipeline(JOB), execution, "bench", "build.follow"
                )
            )
            baseline = _peak_rss_mb()
            started = time.perf_counter()
            follow = follow_jenkins_log(
                source.api, engine, execution_id, JOB, 2, emit=lambda _text: None, poll_seconds=0.05
            )
            seconds = time.perf_counter() - started
            growth = _peak_rss_mb() - baseline
            stored = hashlib.sha256()
            with engine.connect() as connection:
                for text in read_log(connection, execution_id):
                    stored.update(text.encode())
        expected = hashlib.sha256()
        for line in log_lines(_line_count(total_mb)):
            expected.update(line)
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=60)
    report("follow_log_megabytes", follow.bytes_stored / 1024 / 1024, "MB stored")
    report("follow_reconnects", follow.reconnects, "forced disconnects survived")
    report("follow_peak_memory_growth", growth, "MB (target <= 64)")
    report("follow_seconds", seconds, "s")
    identical = stored.hexdigest() == expected.hexdigest()
    report(
        "follow_sha256_identical",
        1.0 if identical else 0.0,
        f"(stored {stored.hexdigest()[:12]}, source {expected.hexdigest()[:12]})",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true", help="run the fake Jenkins (internal)")
    parser.add_argument("--megabytes", type=int, default=TOTAL_MB)
    arguments = parser.parse_args()
    if arguments.serve:
        serve(arguments.megabytes)
    else:
        main(arguments.megabytes)
