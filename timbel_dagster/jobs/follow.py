"""Following a running build's log into the warehouse (and, through `emit`, the run log).

Plain functions, driven by the `follow_build` op, `timbel logs follow` and the tests. Each
reconnects after a dropped connection or a transient server error and resumes exactly where
the received bytes end, so the stored log is the source log byte for byte, up to the
execution's cap (`TIMBEL_LOG_MAX_BYTES_PER_EXECUTION`): past it a marker line names the CI
server's page for the rest, and following stops reading that execution's logs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.resources.errors import TransientSourceError
from timbel_dagster.resources.gitlab.parse import JOB_STATUSES
from timbel_dagster.settings import get_settings
from timbel_dagster.warehouse.store.logs import LogCap, LogWriter

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from timbel_dagster.resources.gitlab.source import GitLabSource, JobState
    from timbel_dagster.resources.jenkins.api import JenkinsAPI

Emit = Callable[[str], None]


@dataclass
class FollowReport:
    bytes_stored: int = 0
    lines: int = 0
    reconnects: int = 0
    streams: int = 0
    truncated: bool = False  # the log passed the execution's cap while this follower read it


def _dropped() -> tuple[type[BaseException], ...]:
    import requests

    return (TransientSourceError, requests.RequestException)


def _cap(engine: Engine, execution_id: uuid.UUID, max_bytes: int | None) -> LogCap:
    """The execution's log budget: `max_bytes`, else TIMBEL_LOG_MAX_BYTES_PER_EXECUTION."""
    if max_bytes is None:
        max_bytes = get_settings().timbel_log_max_bytes_per_execution
    return LogCap(engine, execution_id, max_bytes)


class _Retry:
    """Consecutive-failure budget with exponential backoff; a success resets it."""

    def __init__(self, sleep: Callable[[float], None], max_failures: int) -> None:
        self.sleep, self.max_failures, self.failures, self.total = sleep, max_failures, 0, 0

    def failed(self, error: BaseException, emit: Emit) -> None:
        self.failures += 1
        self.total += 1
        if self.failures > self.max_failures:
            raise error
        emit(f"[timbel] connection lost ({error}); resuming (attempt {self.failures})")
        self.sleep(min(30.0, 0.5 * 2 ** (self.failures - 1)))

    def ok(self) -> None:
        self.failures = 0


def follow_jenkins_log(
    api: JenkinsAPI,
    engine: Engine,
    execution_id: uuid.UUID,
    job: str,
    number: int,
    emit: Emit,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = 2.0,
    max_failures: int = 8,
    chunk_bytes: int | None = None,
    max_bytes: int | None = None,
) -> FollowReport:
    """Stream a Jenkins console log (`progressiveText`) until the build ends or the log
    passes the execution's cap (`max_bytes`, default from settings)."""
    cap = _cap(engine, execution_id, max_bytes)
    writer = LogWriter(
        engine,
        execution_id,
        "",
        name="console",
        **({"chunk_bytes": chunk_bytes} if chunk_bytes else {}),
        cap=cap,
        url=api.build_url(job, number) + "console",
    )
    retry = _Retry(sleep, max_failures)
    while not writer.complete:
        start = writer.next_offset
        try:
            with api.log_stream(job, number, start) as stream:
                for block in stream.blocks:
                    if text := writer.write(block):
                        emit(text)
                    if writer.complete:  # truncated: read no further
                        break
                more = stream.more
        except _dropped() as error:
            retry.failed(error, emit)
            continue
        retry.ok()
        if text := writer.flush(final=not more):
            emit(text)
        if more and writer.next_offset == start:
            sleep(poll_seconds)  # nothing new yet: the build is still running
    return FollowReport(writer.stored, writer.lines, retry.total, 1, cap.exceeded)


def _gitlab_done() -> frozenset[str]:
    """GitLab job statuses after which a trace no longer grows (parse.py maps them)."""

    return frozenset(
        s for s, ours in JOB_STATUSES.items() if ours in ("success", "failed", "aborted", "skipped")
    )


_GITLAB_DONE = _gitlab_done()


def _gitlab_job_done(job: JobState) -> bool:
    """A known final status, or any status (one GitLab added, or none) once GitLab gives the
    job a `finished_at`: following never waits forever on a status it does not know."""
    return job.status in _GITLAB_DONE or job.ended


def follow_gitlab_logs(
    source: GitLabSource,
    engine: Engine,
    execution_id: uuid.UUID,
    project: str,
    pipeline_id: int,
    emit: Emit,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = 2.0,
    max_failures: int = 8,
    max_bytes: int | None = None,
) -> FollowReport:
    """Stream the traces of a GitLab pipeline's jobs (one stream per job) until it ends or
    its logs pass the execution's cap (`max_bytes`, default from settings).

    Each poll asks for a trace from the first byte not received yet (GitLab may still send
    it whole; the client then skips what was received); a job's stream is complete once the
    job has finished and its whole trace is stored.
    """
    writers: dict[int, LogWriter] = {}
    cap = _cap(engine, execution_id, max_bytes)
    retry = _Retry(sleep, max_failures)
    while True:
        try:
            jobs = source.pipeline_jobs(project, pipeline_id)
            progressed = False
            for job in jobs:
                progressed |= _gitlab_job(
                    source, engine, execution_id, project, job, writers, emit, cap
                )
                if cap.exceeded:
                    break
        except _dropped() as error:
            retry.failed(error, emit)
            continue
        retry.ok()
        if cap.exceeded:  # every open stream ends with the marker; nothing more is read
            for writer in writers.values():
                if text := writer.truncate():
                    emit(text)
            break
        if (
            jobs
            and all(_gitlab_job_done(j) for j in jobs)
            and all(w.complete for w in writers.values())
        ):
            break
        if not progressed:
            sleep(poll_seconds)
    stored = sum(w.stored for w in writers.values())
    lines = sum(w.lines for w in writers.values())
    return FollowReport(stored, lines, retry.total, len(writers), cap.exceeded)


def _gitlab_job(
    source: GitLabSource,
    engine: Engine,
    execution_id: uuid.UUID,
    project: str,
    job: JobState,
    writers: dict[int, LogWriter],
    emit: Emit,
    cap: LogCap,
) -> bool:
    job_id = job.id
    if job.status in ("created", "pending", "waiting_for_resource", "preparing"):
        return False
    writer = writers.get(job_id)
    if writer is None:
        writer = writers[job_id] = LogWriter(
            engine, execution_id, str(job_id), name=job.name, cap=cap, url=job.web_url
        )
    if writer.complete:
        return False
    before = writer.next_offset
    with source.trace(project, job_id, start=before) as blocks:
        for block in blocks:
            if text := writer.write(block):
                emit(text)
            if writer.complete:  # truncated: read no further
                return True
    finished = _gitlab_job_done(job)
    if text := writer.flush(final=finished):
        emit(text)
    return writer.next_offset > before or finished


def store_finished_log(
    source: Any,
    engine: Engine,
    execution_id: uuid.UUID,
    pipeline: str,
    build: str,
    max_bytes: int | None = None,
) -> FollowReport:
    """Store the whole log of a build that has ended (the `execution_logs` asset), up to the
    execution's cap (`max_bytes`, default from settings)."""
    if source.name == "jenkins":
        return follow_jenkins_log(
            source.api,
            engine,
            execution_id,
            pipeline,
            int(build),
            emit=lambda _text: None,
            max_bytes=max_bytes,
        )
    if source.name == "gitlab":
        return follow_gitlab_logs(
            source,
            engine,
            execution_id,
            pipeline,
            int(build),
            emit=lambda _text: None,
            max_bytes=max_bytes,
        )
    cap = _cap(engine, execution_id, max_bytes)
    writer = LogWriter(engine, execution_id, "", name="console", cap=cap)  # the sample source
    if not writer.complete:
        writer.write(source.log(pipeline, build).encode())
        writer.flush(final=True)
    return FollowReport(writer.stored, writer.lines, 0, 1, cap.exceeded)
