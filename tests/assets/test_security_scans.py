"""`security/scan_results` and `security/vulnerability_findings` through `dg.materialize`,
with the Trivy stand-in and the warehouse on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import dagster as dg
from sqlalchemy import select

from tests.services.trivy import (
    TrivyService,
    trivy_standin_fixture,  # noqa: F401
)
from timbel_dagster.assets.security.scans import scan_results, vulnerability_findings
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.security.findings_summary import vulnerability_summary
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.security import VulnerabilityFinding

API = "registry.example/shop/api@sha256:" + "a1" * 32
WEB = "registry.example/shop/web@sha256:" + "b2" * 32


def materialize(
    warehouse_url: str, trivy: TrivyService, images: list[str], timeout: float = 60.0
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [scan_results, vulnerability_findings],
        resources={
            "sources": DeliverySourcesResource(
                mode="live", trivy=trivy.resource(timeout_seconds=timeout)
            ),
            "warehouse": WarehouseResource(database_url=warehouse_url),
        },
        run_config={"ops": {"security__scan_results": {"config": {"images": images}}}},
        raise_on_error=False,
    )


def metadata(result: dg.ExecuteInProcessResult, table: str) -> dict:
    [event] = result.asset_materializations_for_node(f"security__{table}")
    return {k: v.value for k, v in event.metadata.items()}


def test_scans_stored_then_summarised(warehouse_url: str, trivy_standin: TrivyService) -> None:
    trivy_standin.replay(API, "alpine-39-high-critical.json")
    trivy_standin.replay(WEB, "ubuntu-1804.json")
    result = materialize(warehouse_url, trivy_standin, [API, WEB])
    assert result.success
    scans = metadata(result, "scan_results")
    assert (scans["scans"], scans["vulnerabilities"]) == (2, 7)
    assert scans["by_severity"] == {"CRITICAL": 2, "HIGH": 0, "MEDIUM": 4, "LOW": 1, "UNKNOWN": 0}
    findings = metadata(result, "vulnerability_findings")
    assert findings["dagster/row_count"] == 7 and findings["distinct_open_ids"] == 3
    assert findings["open_by_severity"]["CRITICAL"] == 2
    assert "| " + API + " | 2 | 2 | 2 |" in findings["artifacts"]


def test_summary_counts_fixed_findings_apart(
    warehouse_url: str, trivy_standin: TrivyService
) -> None:
    trivy_standin.replay(API, "alpine-39-high-critical.json")
    assert materialize(warehouse_url, trivy_standin, [API]).success
    with get_engine(warehouse_url).begin() as connection:
        connection.execute(
            VulnerabilityFinding.__table__.update()
            .where(VulnerabilityFinding.pkg_name == "musl")
            .values(fixed_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        )
    with get_engine(warehouse_url).connect() as connection:
        summary = vulnerability_summary(connection)
        assert connection.execute(select(VulnerabilityFinding.pkg_name)).scalars().all()
    assert (summary["open"], summary["fixed_recently"]) == (1, 1)
    assert summary["artifacts"] == [{"artifact": API, "critical": 1, "critical_or_high": 1,
                                     "open": 1}]  # fmt: skip


def test_a_failed_image_fails_the_materialization(
    warehouse_url: str, trivy_standin: TrivyService
) -> None:
    trivy_standin.replay(API, "alpine-39-high-critical.json")
    trivy_standin.hang(WEB)
    result = materialize(warehouse_url, trivy_standin, [WEB, API], timeout=0.5)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith(f"1 of 2 image scans failed: trivy image {WEB}: timed out")
    with get_engine(warehouse_url).connect() as connection:
        assert connection.execute(select(VulnerabilityFinding.artifact_name)).scalars().all() == [
            API,
            API,
        ]
