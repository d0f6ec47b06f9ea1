"""Commits and CI executions of one sample service (Jenkins- or GitLab-shaped).

Failures are drawn from a logistic model of change size, so the sample history has the same
kind of signal that real histories have: bigger and more scattered changes break more often.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from dataclasses import dataclass, field

from timbel_dagster.records.delivery import CommitRecord, ExecutionRecord, StageRecord
from timbel_dagster.resources.sample.organisation import (
    FLAKY,
    FLAKY_FAILURE_RATE,
    REGRESSED,
    REGRESSION_DAY,
    REGRESSION_FACTOR,
    SampleService,
    pipeline_name_of,
    pipeline_url_of,
    repository_of,
)

LOCAL = dt.timezone(dt.timedelta(hours=9), "KST")  # the sample company works in Seoul


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass
class ServiceHistory:
    """What happened to one service; filled day by day by `SampleBuilder`."""

    commits: list[CommitRecord] = field(default_factory=list)
    executions: list[ExecutionRecord] = field(default_factory=list)
    # index into `commits` of each successful main-branch build, with its execution id
    green_builds: list[tuple[int, str, dt.datetime]] = field(default_factory=list)


@dataclass(frozen=True)
class _StagePlan:
    name: str
    minutes: float
    parent: str | None = None


class SampleBuilder:
    """Writes the commits and CI executions of one service, one day at a time."""

    def __init__(self, service: SampleService, rng: random.Random, authors: list[str]) -> None:
        self.service = service
        self.rng = rng
        self.authors = authors
        self.history = ServiceHistory()
        self._author_commits: dict[str, int] = {}
        self._build_number = 0 if service.ci_system == "jenkins" else 48_000
        self._node_id = 1_000_000

    # -- commits --------------------------------------------------------------------------
    def commit(self, at: dt.datetime, *, fix: bool | None = None, small: bool = False) -> int:
        """Create one commit at `at` and return its index in the history."""
        rng, n = self.rng, len(self.history.commits)
        author = rng.choice(self.authors)
        experience = self._author_commits.get(author, 0)
        self._author_commits[author] = experience + 1
        nf = 1 if small else 1 + int(rng.lognormvariate(0.6, 0.9))
        la = rng.lognormvariate(1.5, 0.8) if small else rng.lognormvariate(3.4, 1.3)
        is_fix = rng.random() < 0.25 if fix is None else fix
        metrics = {
            "nf": float(nf),
            "ns": float(min(nf, 1 + int(rng.lognormvariate(0.0, 0.5)))),
            "nd": float(min(nf, 1 + int(rng.lognormvariate(0.3, 0.6)))),
            "entropy": 0.0 if nf == 1 else round(rng.uniform(0.3, 1.0) * math.log2(nf), 4),
            "la": round(la, 1),
            "ld": round(la * rng.uniform(0.05, 0.8), 1),
            "lt": round(rng.lognormvariate(5.3, 1.0), 1),
            "ndev": float(1 + int(rng.lognormvariate(1.0, 0.7))),
            "age": round(rng.lognormvariate(2.0, 1.2), 2),
            "nuc": float(min(nf, 1 + int(rng.lognormvariate(0.2, 0.6)))),
            "exp": float(40 + experience),
            "rexp": round(rng.uniform(0.5, 6.0), 2),
            "sexp": float(int((40 + experience) * rng.uniform(0.2, 0.7))),
        }
        sha = hashlib.sha1(f"{self.service.name}:{n}".encode(), usedforsecurity=False).hexdigest()
        verb = "fix" if is_fix else rng.choice(["feat", "refactor", "chore", "perf"])
        self.history.commits.append(
            CommitRecord(
                repository=repository_of(self.service),
                sha=sha,
                author=author,
                committed_at=at,
                message=f"{verb}({self.service.name}): change {n}",
                fix=is_fix,
                metrics=metrics,
            )
        )
        return n

    def failure_log_odds(self, index: int) -> float:
        m = self.history.commits[index].metrics
        churn = math.log1p(m["la"] + m["ld"])
        return -4.1 + 0.5 * churn + 0.25 * m["entropy"] + self.service.risk_bias

    # -- CI executions --------------------------------------------------------------------
    def _stages(self, day_index: int) -> list[_StagePlan]:
        s = self.service
        regression = (
            REGRESSION_FACTOR
            if ((s.name, "integration-tests") == REGRESSED and day_index >= REGRESSION_DAY)
            else 1.0
        )
        block = "Tests" if s.ci_system == "jenkins" else "test"
        plan = [
            _StagePlan("checkout", 0.4),
            _StagePlan("build", s.build_minutes),
            _StagePlan("unit-tests", s.test_minutes * 0.6, block),
            _StagePlan("integration-tests", s.test_minutes * regression, block),
            _StagePlan("lint", 1.2, block),
        ]
        if s.name == FLAKY[0]:
            plan.append(_StagePlan("e2e-tests", s.test_minutes * 1.3, block))
        plan += [
            _StagePlan("security-scan", 2.5),
            _StagePlan("publish-image", 1.6),
            _StagePlan("deploy-dev", 1.2),
        ]
        return plan

    def _next_node(self) -> str:
        self._node_id += 1
        return str(self._node_id)

    def build(self, commit_index: int, day_index: int) -> ExecutionRecord:
        """Run the pipeline for one commit and record the execution and its stages."""
        rng, s = self.rng, self.service
        commit = self.history.commits[commit_index]
        self._build_number += 1
        queue = rng.expovariate(1 / 25.0)
        started = commit.committed_at + dt.timedelta(seconds=30 + queue)
        fails = rng.random() < sigmoid(self.failure_log_odds(commit_index))
        failing = rng.choice(["build", "unit-tests", "integration-tests", "security-scan"])
        aborted = rng.random() < 0.015

        stages: list[StageRecord] = []
        clock, block_start, block_end = started, None, started
        status, error = "success", None
        for position, plan in enumerate(self._stages(day_index)):
            if status != "success":
                stages.append(
                    StageRecord(
                        self._next_node(), plan.name, position, "skipped", None, 0.0, plan.parent
                    )
                )
                continue
            if plan.parent and block_start is None:
                block_start = clock
            if not plan.parent and block_start is not None:
                clock, block_start = block_end, None
            stage_start = block_start or clock
            stage_queue = rng.expovariate(1 / 6.0) if plan.parent else 0.0
            seconds = 60 * plan.minutes * rng.lognormvariate(0.0, 0.15)
            stage_status = "failed" if fails and plan.name == failing else "success"
            attempt = 1
            if (s.name, plan.name) == FLAKY and rng.random() < FLAKY_FAILURE_RATE:
                # A flaky failure: the CI retries the job, which usually passes.
                stages.append(
                    StageRecord(
                        self._next_node(),
                        plan.name,
                        position,
                        "failed",
                        stage_start,
                        round(seconds, 1),
                        plan.parent,
                        round(stage_queue, 1),
                        1,
                    )
                )
                stage_start += dt.timedelta(seconds=seconds + 5)
                attempt = 2
                if rng.random() > 0.85:
                    stage_status = "failed"
            stages.append(
                StageRecord(
                    self._next_node(),
                    plan.name,
                    position,
                    stage_status,
                    stage_start + dt.timedelta(seconds=stage_queue),
                    round(seconds, 1),
                    plan.parent,
                    round(stage_queue, 1),
                    attempt,
                )
            )
            stage_end = stage_start + dt.timedelta(seconds=stage_queue + seconds)
            if plan.parent:
                block_end = max(block_end, stage_end)
            else:
                clock = block_end = stage_end
            if stage_status == "failed":
                status, error = "failed", f"stage '{plan.name}' failed (exit code 1)"
            elif aborted and plan.name == "build":
                status, error = "aborted", "superseded by a newer build"
        completed = max(clock, block_end)
        external_id = str(self._build_number)
        url = pipeline_url_of(s).rstrip("/") + f"/{external_id}/"
        execution = ExecutionRecord(
            pipeline=pipeline_name_of(s),
            external_id=external_id,
            sequence=self._build_number,
            status=status,
            triggered_by=commit.author,
            started_at=started,
            completed_at=completed,
            duration=round((completed - started).total_seconds(), 1),
            commit_sha=commit.sha,
            branch="main",
            url=url,
            queue_seconds=round(queue, 1),
            error_message=error,
            artifacts={"image": f"{s.team}/{s.name}:{commit.sha[:7]}"}
            if status == "success"
            else None,
            stages=tuple(stages),
        )
        self.history.executions.append(execution)
        if status == "success":
            self.history.green_builds.append((commit_index, external_id, completed))
        return execution
