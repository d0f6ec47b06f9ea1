"""SonarQube quality gates from a loopback Web API (pytest-httpserver) replaying the response
shapes of SonarQube's own Web API examples (`project_status-example.json`,
`measures/ws/component-example.json`, `component/ws/show-example.json`): token as the
basic-auth user, typed errors, idempotent storing, `timbel scan sonar import`."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from timbel_dagster.cli.app import main
from timbel_dagster.resources.errors import (
    SourceAuthError,
    SourceDataError,
    SourceNotFoundError,
    TransientSourceError,
)
from timbel_dagster.security.sonarqube import METRICS, SonarQubeClient, import_quality_gate
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.security_issues import QualityGate

KEY = "com.example:shop-api"
TOKEN = "squ_0123456789abcdef"
AUTH = "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode()
SHOW = {
    "component": {
        "key": KEY,
        "name": "Shop API",
        "qualifier": "TRK",
        "analysisDate": "2026-11-02T10:15:03+0100",
        "leakPeriodDate": "2026-10-01T11:39:03+0100",
        "version": "1.4.2",
        "visibility": "private",
    },
    "ancestors": [],
}
STATUS = {
    "projectStatus": {
        "status": "ERROR",
        "ignoredConditions": False,
        "caycStatus": "non-compliant",
        "conditions": [
            {"status": "ERROR", "metricKey": "new_coverage", "comparator": "LT",
             "errorThreshold": "85", "actualValue": "82.50562381034781"},
            {"status": "OK", "metricKey": "new_sqale_debt_ratio", "comparator": "GT",
             "errorThreshold": "5", "actualValue": "0.6562109862671661"},
        ],
        "period": {"mode": "last_version", "date": "2026-10-01T11:39:03+0100",
                   "parameter": "1.4.0"},
    }
}  # fmt: skip
MEASURES = {
    "component": {
        "key": KEY,
        "name": "Shop API",
        "qualifier": "TRK",
        "measures": [
            {"metric": "bugs", "value": "3", "bestValue": False},
            {"metric": "vulnerabilities", "value": "0", "bestValue": True},
            {"metric": "code_smells", "value": "117", "bestValue": False},
            {"metric": "coverage", "value": "78.4", "bestValue": False},
            {"metric": "duplicated_lines_density", "value": "2.1", "bestValue": False},
            {"metric": "security_hotspots", "value": "4", "bestValue": False},
        ],
    }
}
ANALYSED = dt.datetime(2026, 11, 2, 9, 15, 3, tzinfo=dt.UTC)


def serve(server: HTTPServer, show: dict = SHOW, status: dict = STATUS, auth: bool = True) -> None:
    headers = {"Authorization": AUTH} if auth else {}
    server.expect_request(
        "/api/components/show", query_string={"component": KEY}, headers=headers
    ).respond_with_json(show)
    server.expect_request(
        "/api/qualitygates/project_status", query_string={"projectKey": KEY}, headers=headers
    ).respond_with_json(status)
    server.expect_request(
        "/api/measures/component",
        query_string={"component": KEY, "metricKeys": ",".join(METRICS)},
        headers=headers,
    ).respond_with_json(MEASURES)


def stored(url: str) -> list[dict[str, Any]]:
    with get_engine(url).connect() as connection:
        return [dict(r) for r in connection.execute(select(QualityGate.__table__)).mappings()]


def test_import_stores_one_row_per_analysis(warehouse_url: str, httpserver: HTTPServer) -> None:
    serve(httpserver)
    client = SonarQubeClient(httpserver.url_for(""), TOKEN)
    with get_engine(warehouse_url).begin() as connection:
        first = import_quality_gate(connection, client, KEY)
    assert (first["status"], first["analysed_at"], first["written"]) == (
        "ERROR", ANALYSED.isoformat(), 1,
    )  # fmt: skip
    [row] = stored(warehouse_url)
    assert (row["project_key"], row["analysed_at"], row["status"]) == (KEY, ANALYSED, "ERROR")
    assert [c["metricKey"] for c in row["conditions"]] == ["new_coverage", "new_sqale_debt_ratio"]
    assert row["measures"] == {
        "bugs": 3.0, "vulnerabilities": 0.0, "code_smells": 117.0, "coverage": 78.4,
        "duplicated_lines_density": 2.1, "security_hotspots": 4.0,
    }  # fmt: skip
    with get_engine(warehouse_url).begin() as connection:
        assert import_quality_gate(connection, client, KEY)["written"] == 0
    httpserver.clear()
    later = SHOW | {"component": SHOW["component"] | {"analysisDate": "2026-11-03T08:00:00Z"}}
    serve(httpserver, later, {"projectStatus": {"status": "OK", "conditions": []}})
    with get_engine(warehouse_url).begin() as connection:
        assert import_quality_gate(connection, client, KEY)["written"] == 1
    assert [r["status"] for r in sorted(stored(warehouse_url), key=lambda r: r["analysed_at"])] == [
        "ERROR",
        "OK",
    ]


def test_a_project_never_analysed_stores_nothing(httpserver: HTTPServer) -> None:
    never = {"component": {"key": KEY, "name": "Shop API", "qualifier": "TRK"}}
    serve(httpserver, never, {"projectStatus": {"status": "NONE", "ignoredConditions": False}},
          auth=False)  # fmt: skip
    report = SonarQubeClient(httpserver.url_for("")).quality_gate(KEY)
    assert (report.analysed_at, report.status, report.conditions) == (None, "NONE", [])


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (401, b"", SourceAuthError, "sonarqube project com.example:shop-api: access refused "
         "(401); check SONARQUBE_TOKEN"),
        (403, {"errors": [{"msg": "Insufficient privileges"}]}, SourceAuthError,
         "access refused (403): Insufficient privileges; the token needs Browse"),
        (404, {"errors": [{"msg": "Component key 'com.example:shop-api' not found"}]},
         SourceNotFoundError, "not found (404): Component key 'com.example:shop-api' not found"),
        (200, b"<html>login</html>", SourceDataError, "expected JSON, got text/html"),
        (400, {"errors": [{"msg": "The 'component' parameter is missing"}]}, Exception,
         "request failed (400): The 'component' parameter is missing"),
    ],
)  # fmt: skip
def test_errors_name_the_project(
    httpserver: HTTPServer, status: int, body: Any, error: type, message: str
) -> None:
    respond = httpserver.expect_request("/api/components/show")
    if isinstance(body, dict):
        respond.respond_with_json(body, status=status)
    else:
        respond.respond_with_data(body, status=status, content_type="text/html")
    with pytest.raises(error) as raised:
        SonarQubeClient(httpserver.url_for(""), TOKEN, retries=0).quality_gate(KEY)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"projectStatus": {"status": "MAYBE"}}, "projectStatus.status"),
        ({"projectStatus": {"status": "OK", "conditions": {}}}, "projectStatus.conditions"),
        ({"projectStatus": {"status": "OK", "conditions": [{"status": "OK"}]}},
         "projectStatus.conditions[0]"),
        ({"gate": "OK"}, "projectStatus"),
    ],
)  # fmt: skip
def test_a_malformed_gate_names_the_field(
    httpserver: HTTPServer, payload: dict, field: str
) -> None:
    serve(httpserver, status=payload)
    with pytest.raises(SourceDataError, match=re.escape(f"field '{field}'")):
        SonarQubeClient(httpserver.url_for(""), TOKEN).quality_gate(KEY)


def test_server_errors_are_retried_then_reported(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/components/show").respond_with_data("busy", status=503)
    with pytest.raises(TransientSourceError, match="server error 503 after retries"):
        SonarQubeClient(httpserver.url_for(""), TOKEN, retries=2, backoff=0).quality_gate(KEY)
    assert len(httpserver.log) == 3


def test_scan_sonar_import_cli(
    warehouse_url: str, httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TIMBEL_DATABASE_URL", warehouse_url)
    monkeypatch.setenv("TIMBEL_USER", "minji.kim")
    missing = CliRunner().invoke(main, ["scan", "sonar", "import", KEY])
    assert missing.exit_code == 2 and "SonarQube is not configured" in missing.stderr
    serve(httpserver, auth=False)  # SONARQUBE_TOKEN is not a setting yet: anonymous
    done = CliRunner().invoke(
        main, ["scan", "sonar", "import", KEY, "--url", httpserver.url_for(""), "--json"]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["measures"]["coverage"] == 78.4
    shown = CliRunner().invoke(main, ["scan", "sonar", "import", KEY, "--url",
                                      httpserver.url_for("")])  # fmt: skip
    assert shown.stdout.startswith(f"{KEY}: ERROR (analysed 2026-11-02T09:15:03+00:00), bugs=3")
    assert len(stored(warehouse_url)) == 1
