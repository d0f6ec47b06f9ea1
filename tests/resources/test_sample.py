"""The sample organisation: deterministic, and with the signals the analytics must find."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter

from timbel_dagster.resources.sample.history import generate_history
from timbel_dagster.resources.sample.organisation import (
    CLUSTERS,
    FLAKY,
    REGRESSED,
    REGRESSION_DAY,
    SERVICES,
)
from timbel_dagster.resources.sample.source import SampleSource

END = dt.date(2026, 11, 1)


def test_same_seed_and_end_date_give_the_same_history(sample_source: SampleSource) -> None:
    assert generate_history(END, seed=7) == sample_source.history
    assert generate_history(END, seed=8).executions != sample_source.history.executions


def test_shape_of_the_organisation(sample_source: SampleSource) -> None:
    history = sample_source.history
    assert len(SERVICES) == len(history.pipelines) == 12
    assert sorted(c.environment_group for c in CLUSTERS) == ["dev", "prod", "staging"]
    assert {p.ci_system for p in history.pipelines} == {"jenkins", "gitlab"}
    starts = [e.started_at for e in history.executions]
    assert (max(starts) - min(starts)).days >= 85
    assert len(history.executions) > 1000
    assert any(s.parent_name for e in history.executions for s in e.stages)
    assert Counter(d.environment for d in history.deployments).keys() == {"dev", "staging", "prod"}
    assert {d.kind for d in history.deployments} == {"release", "hotfix", "rollback"}
    assert history.incidents and all(i.resolved_at > i.opened_at for i in history.incidents)


def test_failures_grow_with_change_size(sample_source: SampleSource) -> None:
    history = sample_source.history
    churn = {c.sha: c.metrics["la"] + c.metrics["ld"] for c in history.commits}
    finished = [e for e in history.executions if e.status in ("success", "failed")]
    finished.sort(key=lambda e: churn[e.commit_sha])
    quarter = len(finished) // 4

    def failure_rate(executions: list) -> float:
        return sum(e.status == "failed" for e in executions) / len(executions)

    assert failure_rate(finished[-quarter:]) > 2 * failure_rate(finished[:quarter])


def test_night_releases_fail_more_often(sample_source: SampleSource) -> None:
    prod = [
        d
        for d in sample_source.history.deployments
        if d.environment == "prod" and d.kind == "release"
    ]
    caused = {i.caused_by_deployment for i in sample_source.history.incidents}

    def failure_rate(deployments: list) -> float:
        return sum(d.external_id in caused for d in deployments) / len(deployments)

    night = [d for d in prod if (d.started_at.hour + 9) % 24 >= 21]
    day = [d for d in prod if (d.started_at.hour + 9) % 24 < 21]
    assert night and failure_rate(night) > failure_rate(day)


def test_the_injected_regression_is_there(sample_source: SampleSource) -> None:
    service, stage = REGRESSED
    start = dt.datetime.combine(
        END - dt.timedelta(days=90 - REGRESSION_DAY), dt.time(), dt.timezone(dt.timedelta(hours=9))
    )
    before, after = [], []
    for e in sample_source.history.executions:
        if e.pipeline.startswith(service):
            for s in e.stages:
                if s.name == stage and s.status == "success":
                    (after if e.started_at >= start else before).append(s.duration)
    assert statistics.median(after) > 1.5 * statistics.median(before)


def test_the_flaky_stage_fails_and_passes_on_retry(sample_source: SampleSource) -> None:
    service, stage = FLAKY
    retried = [
        e
        for e in sample_source.history.executions
        if e.pipeline.endswith(service)
        and any(s.name == stage and s.attempt == 2 for s in e.stages)
    ]
    assert len(retried) > 10
    passed_on_retry = [
        e
        for e in retried
        if any(s.name == stage and s.attempt == 2 and s.status == "success" for s in e.stages)
    ]
    assert len(passed_on_retry) > len(retried) / 2


def test_deployments_ship_commits_and_link_executions(sample_source: SampleSource) -> None:
    history = sample_source.history
    shas = {(c.repository, c.sha) for c in history.commits}
    executions = {(e.pipeline, e.external_id) for e in history.executions}
    releases = [d for d in history.deployments if d.kind == "release"]
    assert all(set(d.commits) <= shas for d in history.deployments)
    assert sum(bool(d.commits) for d in releases) > 0.9 * len(releases)
    linked = [d.execution for d in history.deployments if d.execution]
    assert linked and set(linked) <= executions


def test_window_filters_by_start(sample_source: SampleSource) -> None:
    since = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    until = dt.datetime(2026, 10, 8, tzinfo=dt.UTC)
    week = list(sample_source.executions(since, until))
    assert week and all(since <= e.started_at < until for e in week)
