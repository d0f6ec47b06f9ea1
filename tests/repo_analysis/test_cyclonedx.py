"""The CycloneDX 1.5 SBOM: purls per ecosystem, structure, and the official JSON schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import missing_service
from tests.repo_analysis.helpers import write_files
from timbel_dagster.repo_analysis.analysis import RepositoryAnalysis, analyze_repository
from timbel_dagster.repo_analysis.cyclonedx import concrete, purl, to_cyclonedx, write_cyclonedx
from timbel_dagster.repo_analysis.model import Dependency


def _dependency(ecosystem: str, name: str, version: str | None) -> Dependency:
    return Dependency(ecosystem, name, version, "runtime", "m", True)


@pytest.mark.parametrize(
    ("ecosystem", "name", "version", "expected"),
    [
        ("npm", "express", "4.18.2", "pkg:npm/express@4.18.2"),
        ("npm", "@angular/core", "17.0.5", "pkg:npm/%40angular/core@17.0.5"),
        ("npm", "react", "^18.2.0", "pkg:npm/react"),
        (
            "maven",
            "org.springframework.boot:spring-boot-starter-web",
            "3.2.0",
            "pkg:maven/org.springframework.boot/spring-boot-starter-web@3.2.0",
        ),
        ("maven", "com.google.guava:guava", None, "pkg:maven/com.google.guava/guava"),
        ("pypi", "django", "4.2.7", "pkg:pypi/django@4.2.7"),
        ("pypi", "requests", ">=2.31", "pkg:pypi/requests"),
        (
            "golang",
            "github.com/gin-gonic/gin",
            "v1.9.1",
            "pkg:golang/github.com/gin-gonic/gin@v1.9.1",
        ),
        (
            "golang",
            "github.com/labstack/echo/v4",
            "v4.11.3",
            "pkg:golang/github.com/labstack/echo/v4@v4.11.3",
        ),
        ("cargo", "serde_json", "1.0.108", "pkg:cargo/serde_json@1.0.108"),
        ("nuget", "Newtonsoft.Json", "13.0.3", "pkg:nuget/Newtonsoft.Json@13.0.3"),
        ("maven", "a:b", "1.0+build.5", "pkg:maven/a/b@1.0%2Bbuild.5"),
    ],
)
def test_purl(ecosystem: str, name: str, version: str | None, expected: str) -> None:
    assert purl(_dependency(ecosystem, name, version)) == expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.2.3", True),
        ("v0.0.0-20231010-abcdef123456", True),
        ("3.2.0-SNAPSHOT", True),
        ("^1.2.3", False),
        (">=2.1", False),
        ("1.x", False),
        ("*", False),
        ("latest", False),
        ("${guava.version}", False),
        (None, False),
    ],
)
def test_concrete(version: str | None, expected: bool) -> None:
    assert concrete(version) is expected


@pytest.fixture
def analysis(tmp_path: Path) -> RepositoryAnalysis:
    root = write_files(
        tmp_path / "shop",
        {
            "package.json": json.dumps(
                {"dependencies": {"express": "^4.18.2"}, "devDependencies": {"jest": "^29"}}
            ),
            "package-lock.json": json.dumps(
                {
                    "lockfileVersion": 3,
                    "packages": {
                        "node_modules/express": {"version": "4.18.2"},
                        "node_modules/accepts": {"version": "1.3.8"},
                        "node_modules/jest": {"version": "29.7.0", "dev": True},
                    },
                }
            ),
            "api/requirements.txt": "django==4.2.7\nrequests>=2.31\n",
            "worker/requirements.txt": "django==4.2.7\n",
            "go.mod": "module x\n\nrequire github.com/gin-gonic/gin v1.9.1\n",
            "Cargo.toml": '[dependencies]\nserde = "1.0.193"\n',
            "App.csproj": '<Project Sdk="Microsoft.NET.Sdk"><ItemGroup><PackageReference '
            'Include="Dapper" Version="2.1.24" /></ItemGroup></Project>',
            "pom.xml": "<project><artifactId>a</artifactId><dependencies><dependency>"
            "<groupId>com.google.guava</groupId><artifactId>guava</artifactId>"
            "<version>33.0.0-jre</version></dependency></dependencies></project>",
        },
    )
    return analyze_repository(root)


def test_sbom_structure(analysis: RepositoryAnalysis) -> None:
    bom = to_cyclonedx(analysis)

    assert (bom["bomFormat"], bom["specVersion"], bom["version"]) == ("CycloneDX", "1.5", 1)
    assert re.fullmatch(r"urn:uuid:[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", bom["serialNumber"])
    assert bom["serialNumber"] != to_cyclonedx(analysis)["serialNumber"]
    assert bom["metadata"]["component"]["name"] == "shop"
    assert bom["metadata"]["component"]["type"] == "application"
    refs = [c["bom-ref"] for c in bom["components"]]
    assert len(refs) == len(set(refs))
    assert sorted(refs) == [
        "pkg:cargo/serde@1.0.193",
        "pkg:golang/github.com/gin-gonic/gin@v1.9.1",
        "pkg:maven/com.google.guava/guava@33.0.0-jre",
        "pkg:npm/accepts@1.3.8",
        "pkg:npm/express@4.18.2",
        "pkg:npm/jest@29.7.0",
        "pkg:nuget/Dapper@2.1.24",
        "pkg:pypi/django@4.2.7",
        "pkg:pypi/requests",
    ]
    by_ref = {c["bom-ref"]: c for c in bom["components"]}
    assert by_ref["pkg:npm/jest@29.7.0"]["scope"] == "excluded"
    assert by_ref["pkg:npm/express@4.18.2"]["scope"] == "required"
    maven = by_ref["pkg:maven/com.google.guava/guava@33.0.0-jre"]
    assert (maven["group"], maven["name"], maven["version"]) == (
        "com.google.guava",
        "guava",
        "33.0.0-jre",
    )
    assert "version" not in by_ref["pkg:pypi/requests"]
    assert {"name": "timbel:declared-version", "value": ">=2.31"} in by_ref["pkg:pypi/requests"][
        "properties"
    ]
    manifests = [p["value"] for p in by_ref["pkg:pypi/django@4.2.7"]["properties"]]
    assert manifests == ["api/requirements.txt", "worker/requirements.txt"]
    graph = {d["ref"]: d.get("dependsOn") for d in bom["dependencies"]}
    assert set(graph["repository"]) == set(refs) - {"pkg:npm/accepts@1.3.8"}  # accepts: indirect
    assert set(graph["repository"]) <= set(refs)


def test_write_cyclonedx_writes_the_whole_file(
    analysis: RepositoryAnalysis, tmp_path: Path
) -> None:
    target = tmp_path / "sbom.json"

    bom = write_cyclonedx(analysis, target)

    assert json.loads(target.read_text()) == bom
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(ValueError, match="nowhere"):
        write_cyclonedx(analysis, tmp_path / "nowhere" / "sbom.json")


def _official_validator():  # type: ignore[no-untyped-def]
    """CycloneDX's own strict JSON-schema validator, which ships the official 1.5 schema
    (with spdx.schema.json and jsf-0.82.schema.json) inside cyclonedx-python-lib."""
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError:
        missing_service(
            "cyclonedx-python-lib (the official CycloneDX 1.5 JSON schema) is not installed"
        )
        raise
    return JsonStrictValidator(SchemaVersion.V1_5)


def test_sbom_is_valid_against_the_official_schema(analysis: RepositoryAnalysis) -> None:
    validator = _official_validator()

    error = validator.validate_str(json.dumps(to_cyclonedx(analysis)))

    assert error is None, error
