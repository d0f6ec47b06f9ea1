"""`timbel scan import` and `timbel scan image` through click's CliRunner, against the
warehouse on SQLite and PostgreSQL and the Trivy stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from tests.services.trivy import (
    FIXTURES,
    TrivyService,
    trivy_standin_fixture,  # noqa: F401
)
from timbel_dagster.cli.app import main
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent
from timbel_dagster.warehouse.schema.security import ScanResult, VulnerabilityFinding

USER = "minji.kim"
IMAGE = "registry.example/shop/api@sha256:" + "c4" * 32


@pytest.fixture
def env(
    warehouse_url: str,
    trivy_standin: TrivyService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in {
        "TIMBEL_DATABASE_URL": warehouse_url,
        "TIMBEL_USER": USER,
        "TRIVY_BINARY": trivy_standin.executable,
        "TRIVY_CACHE_DIR": str(tmp_path / "cache"),
        "TRIVY_TIMEOUT_SECONDS": "60",
    }.items():
        monkeypatch.setenv(name, value)
    return warehouse_url


def timbel(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def audit(url: str) -> list[tuple]:
    with get_engine(url).connect() as connection:
        return connection.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.target)
            .where(AuditEvent.action.like("scan.%"))
            .order_by(AuditEvent.id)
        ).all()


def count(url: str, model: type) -> int:
    with get_engine(url).connect() as connection:
        return connection.execute(select(func.count()).select_from(model)).scalar_one()


def test_import_prints_the_summary_and_audits(env: str) -> None:
    result = timbel("scan", "import", str(FIXTURES / "ubuntu-1804.json"), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["vulnerabilities"], summary["distinct_ids"]) == (5, 2)
    assert summary["by_severity"] == {"CRITICAL": 0, "HIGH": 0, "MEDIUM": 4, "LOW": 1,
                                      "UNKNOWN": 0}  # fmt: skip
    assert audit(env) == [(USER, "scan.import", "testdata/fixtures/images/ubuntu-1804.tar.gz")]
    assert count(env, VulnerabilityFinding) == 5

    renamed = timbel("scan", "import", str(FIXTURES / "test-repo.json"), "--artifact", "shop-repo")
    assert renamed.exit_code == 0, renamed.output
    assert renamed.stdout.splitlines()[0].startswith("shop-repo (shop-repo), scan ")
    assert "2 vulnerabilities (2 distinct; CRITICAL 0, HIGH 1, MEDIUM 1" in renamed.stdout


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("legacy-array-distroless-base.json", "$: a bare JSON array of results is the report "
         "format of Trivy before 0.20"),
        ("missing.json", "missing.json: cannot read the report"),
    ],
)  # fmt: skip
def test_a_bad_report_is_one_line_and_writes_nothing(env: str, name: str, message: str) -> None:
    result = timbel("scan", "import", str(FIXTURES / name), "--json")
    assert result.exit_code == 2
    assert result.stderr.startswith("timbel: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert count(env, ScanResult) == 0 and audit(env) == []


def test_scan_image_runs_trivy_and_stores(env: str, trivy_standin: TrivyService) -> None:
    trivy_standin.replay(IMAGE, "alpine-39-high-critical.json")
    result = timbel("scan", "image", IMAGE, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["artifact"] == IMAGE and summary["artifact_key"] == "sha256:" + "c4" * 32
    assert summary["by_severity"]["CRITICAL"] == 2
    assert audit(env) == [(USER, "scan.image", IMAGE)]
    [argv] = trivy_standin.calls()
    assert argv[argv.index("--cache-dir") + 1].endswith("cache")


def test_a_failed_scan_is_one_line_recorded_and_audited(
    env: str, trivy_standin: TrivyService
) -> None:
    trivy_standin.crash(IMAGE, "unable to initialize the image source: 401 Unauthorized")
    result = timbel("scan", "image", IMAGE)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"timbel: error: trivy image {IMAGE}: `")
    assert result.stderr.rstrip().endswith("401 Unauthorized")
    assert result.stderr.count("\n") == 1
    with get_engine(env).connect() as connection:
        status, error = connection.execute(select(ScanResult.status, ScanResult.error)).one()
    assert status == "failed" and "401 Unauthorized" in error
    assert audit(env) == [(USER, "scan.image", IMAGE)]


@pytest.mark.timeout(30)
def test_an_option_as_image_is_refused_before_trivy_and_writes_nothing(
    env: str, trivy_standin: TrivyService
) -> None:
    """Issue #13, finding 8: after `--`, click passes `--server=...` on as the reference."""
    result = timbel("scan", "image", "--", "--server=http://127.0.0.1:9")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        "timbel: error: '--server=http://127.0.0.1:9' is not an image reference "
        "(it starts with '-')\n"
    )
    assert trivy_standin.calls() == []
    assert count(env, ScanResult) == 0 and audit(env) == []
