"""`timbel analyze-repo` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.repo_analysis.helpers import write_files
from tests.repo_analysis.test_analysis import KEYS
from timbel_dagster.cli.app import main

FILES = {
    "package.json": json.dumps({"dependencies": {"react": "18.2.0", "express": "4.18.2"}}),
    "src/App.tsx": "export const App = () => null;\n",
    "requirements.txt": "flask==3.0.0\nnot a requirement!\n",
    "Dockerfile": "FROM node:20 AS build\nFROM nginx:1.25\n",
    ".github/workflows/ci.yml": "on: push\n",
}


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    return write_files(tmp_path / "repo", FILES)


def test_json_output_has_exactly_the_documented_keys(repository: Path) -> None:
    result = CliRunner().invoke(main, ["analyze-repo", str(repository), "--json"])

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == KEYS
    assert data["repository"] == str(repository.resolve())
    assert data["files_scanned"] == len(FILES)
    assert {f["name"] for f in data["frameworks"]} == {"React", "Express", "Flask"}
    assert data["ci_files"] == [{"path": ".github/workflows/ci.yml", "system": "github-actions"}]
    assert data["dockerfiles"][0]["base_images"] == ["node:20", "nginx:1.25"]


def test_summary_and_sbom_file(repository: Path, tmp_path: Path) -> None:
    sbom = tmp_path / "sbom.cdx.json"

    result = CliRunner().invoke(main, ["analyze-repo", str(repository), "--sbom", str(sbom)])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{repository.resolve()}: 5 files scanned"
    assert lines[1] == "languages: Dockerfile 55.1%, TypeScript 44.9%"
    assert "React 18.2.0 (package.json)" in lines[2]
    assert lines[3] == "build tools: docker (1), npm (1), pip (1)"
    assert lines[4] == "manifests: 3 (1 with problems)"
    assert lines[5] == (
        "  problem: requirements.txt: line 2: not a requirement: 'not a requirement!'"
    )
    assert "dependencies: 3 (3 direct): npm 2, pypi 1" in lines
    assert "dockerfile Dockerfile: node:20, nginx:1.25" in lines
    assert lines[-2] == "ci github-actions: .github/workflows/ci.yml"
    assert lines[-1] == f"wrote {sbom}: 3 components"
    bom = json.loads(sbom.read_text())
    assert bom["specVersion"] == "1.5"
    assert len(bom["components"]) == 3


def test_sbom_with_json_keeps_stdout_pure_json(repository: Path, tmp_path: Path) -> None:
    sbom = tmp_path / "sbom.json"

    result = CliRunner().invoke(
        main, ["analyze-repo", str(repository), "--json", "--sbom", str(sbom)]
    )

    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)) == KEYS
    assert f"wrote {sbom}" in result.stderr


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{tmp}/nowhere", "{tmp}/nowhere does not exist"),
        ("file://{tmp}/no-repo.git", "git clone of file://{tmp}/no-repo.git failed"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(tmp_path: Path, source: str, message: str) -> None:
    result = CliRunner().invoke(main, ["analyze-repo", source.format(tmp=tmp_path), "--json"])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"timbel: error: {message.format(tmp=tmp_path)}")
    assert len(result.stderr.strip().splitlines()) == 1
