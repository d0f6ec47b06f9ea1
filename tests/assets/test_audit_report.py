"""`audit/audit_report`, materialized for one week against each backend."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import insert, update

from timbel_dagster.assets.audit.report import (
    AUDIT_WEEKLY,
    audit_report,
    audit_report_schedule,
    summarise,
)
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.warehouse.audit.chain import GENESIS_HASH, event_hash, verify_chain
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent

WEEK = "2026-10-05"  # Monday 2026-10-05 to Monday 2026-10-12
MONDAY = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
# (hours after the week starts, actor, action, target)
EVENTS = [
    (-2, "minji.kim", "deploy.request", "payments-api"),  # the week before
    (1, "minji.kim", "deploy.request", "payments-api"),
    (2, "jun.park", "deploy.approve", "payments-api"),
    (3, "dagster", "ingest", "cicd/pipeline_executions"),
    (4, "dagster", "ingest", "cicd/pipeline_executions"),
    (5, "timbel", "deploy.expire", "req-7"),
    (6, "jun.park", "deploy.approve.refused", "req-8"),
    (7, "dagster", "deploy.rollout.failed", "orders"),
    (24 * 7, "minji.kim", "alerts.silence", "s-1"),  # the next week
]


def _write_chain(url: str) -> None:
    """The events above with their real hashes, at chosen times (append_event uses now)."""
    prev = GENESIS_HASH
    with get_engine(url).begin() as connection:
        for hours, actor, action, target in EVENTS:
            at = MONDAY + dt.timedelta(hours=hours)
            digest = event_hash(prev, at, actor, action, target, {})
            connection.execute(
                insert(AuditEvent).values(
                    at=at,
                    actor=actor,
                    action=action,
                    target=target,
                    details={},
                    prev_hash=prev,
                    hash=digest,
                )
            )
            prev = digest


def _report(url: str) -> dict[str, Any]:
    result = dg.materialize(
        [audit_report],
        partition_key=WEEK,
        resources={"warehouse": WarehouseResource(database_url=url)},
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("audit__audit_report")
    return {key: value.value for key, value in materialization.metadata.items()}


def test_weekly_report(warehouse_url: str) -> None:
    _write_chain(warehouse_url)
    report = _report(warehouse_url)
    assert (report["week_start"], report["week_end"]) == ("2026-10-05", "2026-10-12")
    assert report["events"] == 7
    assert report["changes_by_people"] == 2  # request and approve
    assert report["changes_by_automation"] == 3  # two ingests and the expiry
    assert report["failed_or_refused"] == 2
    assert "| ingest | 2 |" in report["by_action"]
    assert "| dagster | automation | 3 |" in report["by_actor"]
    assert "| jun.park | person | 2 |" in report["by_actor"]
    assert "deploy.approve.refused" in report["failed_or_refused_attempts"]
    assert "alerts.silence" not in report["by_action"]
    assert report["chain_intact"] is True and report["chain_events"] == len(EVENTS)
    assert report["chain_problem"] == "none" and report["complete"] is True
    with get_engine(warehouse_url).connect() as connection:
        assert report["head_anchor"] == verify_chain(connection).anchor

    with get_engine(warehouse_url).begin() as connection:
        connection.execute(
            update(AuditEvent).where(AuditEvent.action == "deploy.approve").values(actor="eve")
        )
    tampered = _report(warehouse_url)
    assert tampered["chain_intact"] is False
    assert "content does not match its hash" in tampered["chain_problem"]


def test_an_empty_week(warehouse_url: str) -> None:
    report = _report(warehouse_url)
    assert report["events"] == 0 and report["chain_intact"] is True
    assert report["head_anchor"] == "none"


@pytest.mark.parametrize(
    ("rows", "people", "automation", "unsuccessful"),
    [
        ([], 0, 0, 0),
        ([("a", "x", 2), ("dagster", "x", 3), ("timbel", "y.failed", 1)], 2, 3, 1),
        ([("a", "deploy.refused", 4), ("b", "deploy.approve", 1)], 1, 0, 4),
    ],
)
def test_summarise(rows: list, people: int, automation: int, unsuccessful: int) -> None:
    summary = summarise(rows, ("dagster", "timbel"))
    assert summary["changes_by_people"] == people
    assert summary["changes_by_automation"] == automation
    assert summary["unsuccessful"] == unsuccessful
    assert summary["events"] == people + automation + unsuccessful


def test_schedule_is_weekly_and_off() -> None:
    assert AUDIT_WEEKLY.get_first_partition_key() == "2024-01-01"
    assert audit_report_schedule.name == "audit_report_weekly"
    assert audit_report_schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_a_partly_archived_week_says_so(warehouse_url: str, tmp_path) -> None:
    from timbel_dagster.warehouse.audit.archive import archive_before

    _write_chain(warehouse_url)
    cutoff = MONDAY + dt.timedelta(hours=3)
    archived = archive_before(get_engine(warehouse_url), cutoff, tmp_path / "archive", "minji")
    assert archived.events == 3
    report = _report(warehouse_url)
    assert report["complete"] is False and report["chain_intact"] is True
    assert report["events"] == 5
