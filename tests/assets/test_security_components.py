"""`security/components` through `dg.materialize`: Timbel's own checkout in sample mode,
configured repositories in live mode (paths, a git URL, a missing path), and the SBOM scan
with the Trivy stand-in, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import func, select

from tests.fakes.git_http_server import BACKEND, GitHttpServer, record_git_calls
from tests.services.trivy import (
    FIXTURES,
    TrivyService,
    trivy_standin_fixture,  # noqa: F401
)
from timbel_dagster.assets.security.components import components
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.resources.trivy import TrivyResource
from timbel_dagster.settings import get_settings
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.components import RepositoryAnalysis, RepositoryDependency
from timbel_dagster.warehouse.schema.security import ScanResult, VulnerabilityFinding

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_JSON = {
    "name": "shop-web",
    "dependencies": {"express": "4.18.2", "lodash": "^4.17.21"},
    "devDependencies": {"jest": "^29.7.0"},
}
DOCKERFILE = 'FROM node:20-alpine\nWORKDIR /app\nCOPY . .\nCMD ["node", "server.js"]\n'
POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>com.example</groupId>
  <artifactId>shop-api</artifactId>
  <version>1.0.0</version>
  <dependencies>
    <dependency>
      <groupId>com.google.guava</groupId>
      <artifactId>guava</artifactId>
      <version>32.1.3-jre</version>
    </dependency>
    <dependency>
      <groupId>junit</groupId>
      <artifactId>junit</artifactId>
      <version>4.13.2</version>
      <scope>test</scope>
    </dependency>
  </dependencies>
</project>
"""


@pytest.fixture(autouse=True)
def repositories_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No TIMBEL_ANALYZE_REPOSITORIES unless a test sets it; fresh settings before and after."""
    monkeypatch.chdir(tmp_path)  # settings also read `.env` from the working directory
    monkeypatch.delenv("TIMBEL_ANALYZE_REPOSITORIES", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def configure(monkeypatch: pytest.MonkeyPatch, *repositories: str) -> None:
    monkeypatch.setenv("TIMBEL_ANALYZE_REPOSITORIES", ", ".join(repositories))
    get_settings.cache_clear()


def git(*args: str, cwd: Path) -> str:
    command = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout


def web_repository(tmp_path: Path) -> Path:
    """An npm service with a Dockerfile; not a git checkout."""
    web = tmp_path / "shop-web"
    web.mkdir()
    (web / "package.json").write_text(json.dumps(PACKAGE_JSON))
    (web / "Dockerfile").write_text(DOCKERFILE)
    (web / "server.js").write_text("require('express')().listen(8080);\n")
    return web


def api_repository(tmp_path: Path) -> tuple[Path, str]:
    """A Maven service committed to git; returns it and its HEAD commit."""
    api = tmp_path / "shop-api"
    (api / "src" / "main" / "java").mkdir(parents=True)
    (api / "pom.xml").write_text(POM)
    (api / "src" / "main" / "java" / "App.java").write_text("class App {}\n")
    git("init", "--quiet", cwd=api)
    git("add", ".", cwd=api)
    git("commit", "--quiet", "-m", "initial", cwd=api)
    return api, git("rev-parse", "HEAD", cwd=api).strip()


def materialize(warehouse_url: str, sources: DeliverySourcesResource) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [components],
        resources={"warehouse": WarehouseResource(database_url=warehouse_url), "sources": sources},
        raise_on_error=False,
    )


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [event] = result.asset_materializations_for_node("security__components")
    return {k: v.value for k, v in event.metadata.items()}


def analyses(warehouse_url: str) -> dict[str, Any]:
    with get_engine(warehouse_url).connect() as connection:
        rows = connection.execute(select(RepositoryAnalysis.__table__)).mappings().all()
    return {row["repository"]: SimpleNamespace(**row) for row in rows}


def dependencies(warehouse_url: str, repository: str) -> set[tuple[Any, ...]]:
    d = RepositoryDependency
    with get_engine(warehouse_url).connect() as connection:
        rows = connection.execute(
            select(d.ecosystem, d.name, d.version, d.scope, d.manifest, d.direct, d.source).where(
                d.repository == repository
            )
        ).all()
    return {tuple(row) for row in rows}


def count(warehouse_url: str, model: Any) -> int:
    with get_engine(warehouse_url).connect() as connection:
        return connection.execute(select(func.count()).select_from(model)).scalar_one()


def test_sample_mode_analyses_timbels_own_checkout(warehouse_url: str) -> None:
    sources = DeliverySourcesResource(mode="sample")
    first = materialize(warehouse_url, sources)
    assert first.success
    meta = metadata(first)
    assert meta["dagster/row_count"] == 1 and meta["failed"] == []
    assert f"Timbel's own source checkout at {ROOT}" in meta["note"]
    assert "sample scanner scans images only" in meta["dependency_vulnerabilities"]
    [row] = analyses(warehouse_url).values()
    assert (row.repository, row.source) == (str(ROOT), "sample")
    head = git("rev-parse", "HEAD", cwd=ROOT).strip() if (ROOT / ".git").exists() else None
    assert row.commit == head
    assert row.languages["Python"] > 100_000 and row.files_scanned > 100
    assert ("pyproject.toml", "pyproject.toml") in {(m["path"], m["kind"]) for m in row.manifests}
    assert [d["path"] for d in row.dockerfiles] == ["deploy/Dockerfile"]
    stored = dependencies(warehouse_url, str(ROOT))
    dagster = [d for d in stored if d[:2] == ("pypi", "dagster")]
    assert dagster and dagster[0][3:] == ("runtime", "pyproject.toml", True, "sample")
    assert (
        row.sbom["bomFormat"] == "CycloneDX" and len(row.sbom["components"]) == meta["dependencies"]
    )
    assert any(c["purl"].startswith("pkg:pypi/dagster") for c in row.sbom["components"])

    # Again: the repository's rows are replaced, not added to.
    before = (count(warehouse_url, RepositoryAnalysis), count(warehouse_url, RepositoryDependency))
    assert materialize(warehouse_url, sources).success
    after = (count(warehouse_url, RepositoryAnalysis), count(warehouse_url, RepositoryDependency))
    assert after == before == (1, len(stored))
    assert analyses(warehouse_url)[str(ROOT)].analysed_at > row.analysed_at


def test_live_mode_analyses_the_configured_repositories(
    warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = web_repository(tmp_path)
    api, commit = api_repository(tmp_path)
    missing = tmp_path / "not-cloned"
    url = api.as_uri()  # file:// is cloned like any git URL
    configure(monkeypatch, str(web), str(missing), str(api), url)
    no_trivy = TrivyResource(executable=str(tmp_path / "no-such-trivy"))
    result = materialize(warehouse_url, DeliverySourcesResource(mode="live", trivy=no_trivy))
    assert result.success
    meta = metadata(result)
    assert meta["dagster/row_count"] == 3
    assert meta["failed"] == [{"repository": str(missing), "error": f"{missing} does not exist"}]
    assert meta["dependency_vulnerabilities"] == "dependency vulnerabilities: trivy not installed"

    stored = analyses(warehouse_url)
    assert set(stored) == {str(web), str(api), url}
    assert (stored[str(web)].source, stored[str(web)].commit) == ("local", None)
    assert (stored[str(api)].source, stored[str(api)].commit) == ("local", commit)
    assert (stored[url].source, stored[url].commit) == ("git", commit)
    assert [d["path"] for d in stored[str(web)].dockerfiles] == ["Dockerfile"]
    assert {t["name"] for t in stored[str(web)].build_tools} == {"docker", "npm"}
    assert {t["name"] for t in stored[str(api)].build_tools} == {"maven"}
    assert {f["name"] for f in stored[str(web)].frameworks} == {"Express"}
    assert dependencies(warehouse_url, str(web)) == {
        ("npm", "express", "4.18.2", "runtime", "package.json", True, "local"),
        ("npm", "lodash", "^4.17.21", "runtime", "package.json", True, "local"),
        ("npm", "jest", "^29.7.0", "dev", "package.json", True, "local"),
    }
    maven = {
        ("maven", "com.google.guava:guava", "32.1.3-jre", "runtime", "pom.xml", True),
        ("maven", "junit:junit", "4.13.2", "test", "pom.xml", True),
    }
    assert {d[:6] for d in dependencies(warehouse_url, str(api))} == maven
    assert {d[:6] for d in dependencies(warehouse_url, url)} == maven
    purls = {c["purl"] for c in stored[str(api)].sbom["components"]}
    assert purls == {"pkg:maven/com.google.guava/guava@32.1.3-jre", "pkg:maven/junit/junit@4.13.2"}

    # The web service drops lodash: its rows are replaced, the others' left alone.
    (web / "package.json").write_text(
        json.dumps(PACKAGE_JSON | {"dependencies": {"express": "4.18.2"}})
    )
    assert materialize(warehouse_url, DeliverySourcesResource(mode="live", trivy=no_trivy)).success
    assert {d[1] for d in dependencies(warehouse_url, str(web))} == {"express", "jest"}
    assert count(warehouse_url, RepositoryDependency) == 3 + 2 + 2 - 1


def test_live_mode_without_repositories_writes_nothing(warehouse_url: str) -> None:
    result = materialize(warehouse_url, DeliverySourcesResource(mode="live"))
    assert result.success
    meta = metadata(result)
    assert meta["dagster/row_count"] == 0
    assert "set TIMBEL_ANALYZE_REPOSITORIES" in meta["note"]
    assert count(warehouse_url, RepositoryAnalysis) == 0


def test_every_repository_failing_fails_the_materialization(
    warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_url = (tmp_path / "no-such-repository.git").as_uri()
    configure(monkeypatch, str(tmp_path / "missing"), bad_url)
    result = materialize(warehouse_url, DeliverySourcesResource(mode="live"))
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("all 2 repositories failed to analyse: ")
    assert f"{tmp_path / 'missing'} does not exist" in description
    assert f"git clone of {bad_url} failed" in description
    assert count(warehouse_url, RepositoryAnalysis) == 0


def sbom_replaying_trivy(service: TrivyService, fixture: str) -> str:
    """A `trivy` in front of the stand-in that answers `trivy sbom` of any file with the
    recorded `fixture` (the asset's SBOM file has a fresh temporary name each run) and keeps
    a copy of the SBOM it was given."""
    wrapper = service.workdir / "sbom_any_file.py"
    wrapper.write_text(
        "import json, os, shutil, sys\n"
        "from pathlib import Path\n"
        f"map_file = Path({str(service.map_file)!r})\n"
        "if sys.argv[1] == 'sbom':\n"
        "    table = json.loads(map_file.read_text())\n"
        f"    table[sys.argv[-1]] = {{'report': {str(FIXTURES / fixture)!r}}}\n"
        "    map_file.write_text(json.dumps(table))\n"
        f"    shutil.copy(sys.argv[-1], {str(service.workdir / 'scanned.cdx.json')!r})\n"
        f"os.execv({service.executable!r}, [{service.executable!r}, *sys.argv[1:]])\n"
    )
    launcher = service.workdir / "bin" / "trivy-sbom"
    launcher.write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(wrapper))} "$@"\n'
    )
    launcher.chmod(0o755)
    return str(launcher)


def test_sbom_findings_are_imported_under_the_repository(
    warehouse_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trivy_standin: TrivyService,
) -> None:
    web = web_repository(tmp_path)
    configure(monkeypatch, str(web))
    trivy = trivy_standin.resource(executable=sbom_replaying_trivy(trivy_standin, "test-repo.json"))
    result = materialize(warehouse_url, DeliverySourcesResource(mode="live", trivy=trivy))
    assert result.success
    meta = metadata(result)
    expected = "dependency vulnerabilities: 1 of 1 SBOMs scanned with trivy"
    assert meta["dependency_vulnerabilities"] == expected
    [call] = trivy_standin.calls()
    assert call[0] == "sbom"
    scanned = json.loads((trivy_standin.workdir / "scanned.cdx.json").read_text())
    assert scanned["components"] == analyses(warehouse_url)[str(web)].sbom["components"]

    artifact = f"repo:{web}"
    with get_engine(warehouse_url).connect() as connection:
        scans = connection.execute(
            select(
                ScanResult.artifact_name,
                ScanResult.artifact_type,
                ScanResult.source,
                ScanResult.status,
            )
        ).all()
        findings = connection.execute(
            select(VulnerabilityFinding.vulnerability_id, VulnerabilityFinding.pkg_name).where(
                VulnerabilityFinding.artifact_key == artifact
            )
        ).all()
    assert scans == [(artifact, "cyclonedx", "trivy", "findings")]
    assert sorted(findings) == [("CVE-2019-15542", "ammonia"), ("CVE-2021-38193", "ammonia")]
    assert f"| {web} |" in meta["repositories"] and "| 2 |" in meta["repositories"]


def test_a_clone_url_with_credentials_leaves_them_nowhere(
    warehouse_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    trivy_standin: TrivyService,
) -> None:
    """Issue #13, finding 4: `https://oauth2:TOKEN@host/repo.git` in
    TIMBEL_ANALYZE_REPOSITORIES. One such repository is cloned through the real
    `git http-backend` behind basic auth, one fails (nothing listens on the port): the token
    is in no warehouse row, SBOM, error, Dagster event, log record or git argument list."""
    from timbel_dagster.warehouse.schema.models import AuditEvent

    if not BACKEND.exists():
        pytest.skip("git-http-backend is not installed")
    secret = "glpat-Xy7SECRETtoken"
    api, commit = api_repository(tmp_path)
    (tmp_path / "served").mkdir()
    git("clone", "--quiet", "--bare", str(api), str(tmp_path / "served" / "shop-api.git"), cwd=api)
    server = GitHttpServer(root=tmp_path / "served", user="oauth2", password=secret)
    server.start()
    try:
        public = f"{server.url}/shop-api.git"
        unreachable = "http://127.0.0.1:9/shop/web.git"  # the discard port: nothing listens
        configure(
            monkeypatch,
            public.replace("http://", f"http://oauth2:{secret}@"),
            unreachable.replace("http://", f"http://oauth2:{secret}@"),
        )
        calls = record_git_calls(monkeypatch)
        caplog.set_level(logging.DEBUG)
        trivy = trivy_standin.resource(
            executable=sbom_replaying_trivy(trivy_standin, "test-repo.json")
        )
        instance = dg.DagsterInstance.ephemeral()
        result = dg.materialize(
            [components],
            resources={
                "warehouse": WarehouseResource(database_url=warehouse_url),
                "sources": DeliverySourcesResource(mode="live", trivy=trivy),
            },
            instance=instance,
        )
    finally:
        server.stop()
    assert result.success
    meta = metadata(result)
    [failed] = meta["failed"]
    assert failed["repository"] == unreachable
    assert failed["error"].startswith(
        f"git clone of {unreachable} failed: unable to access '{unreachable}/': "
    )
    stored = analyses(warehouse_url)
    assert set(stored) == {public} and stored[public].commit == commit
    assert {d[1] for d in dependencies(warehouse_url, public)} == {
        "com.google.guava:guava",
        "junit:junit",
    }
    with get_engine(warehouse_url).connect() as connection:
        rows = [
            connection.execute(select(model.__table__)).all()
            for model in (RepositoryAnalysis, RepositoryDependency, AuditEvent, ScanResult)
        ]
        targets = (
            connection.execute(select(AuditEvent.target).order_by(AuditEvent.id)).scalars().all()
        )
    assert f"repo:{public}" in targets
    scanned = (trivy_standin.workdir / "scanned.cdx.json").read_text()
    events = [repr(entry) for entry in instance.all_logs(result.run_id)]
    clones = [call for call in calls if "clone" in call["argv"]]
    assert len(clones) == 2 and all(c["env"]["TIMBEL_GIT_PASSWORD"] == secret for c in clones)
    argv = [arg for call in calls for arg in call["argv"]]
    for where, text in {
        "warehouse": repr(rows),
        "sbom": scanned,
        "metadata": repr(meta),
        "dagster events": "\n".join(events),
        "log records": caplog.text,
        "git argv": "\n".join(argv),
    }.items():
        assert secret not in text, where
