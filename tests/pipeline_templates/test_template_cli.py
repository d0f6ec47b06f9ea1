"""`timbel template validate | generate | preview` through click's CliRunner."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.pipeline_templates.conftest import FIXTURES
from timbel_dagster.cli.app import main
from timbel_dagster.pipeline_templates import jenkinsfile_check
from timbel_dagster.pipeline_templates.jenkinsfile_check import jvm_launches

ANALYSIS = {
    "languages": {"Python": 12_000},
    "frameworks": [{"name": "fastapi", "version": "0.115", "evidence": "pyproject.toml"}],
    "build_tools": ["uv"],
    "manifests": ["pyproject.toml", "uv.lock", "k8s/api.yaml"],
    "dependencies": [],
    "dockerfiles": [{"path": "Dockerfile", "stages": ["runtime"], "base_images": ["python"]}],
    "ci_files": [],
}
GOOD_CI = "build:\n  stage: build\n  script: [make]\n"
BAD_CI = "build:\n  stage: compile\n  script: [make]\n"


def invoke(*args: str | Path) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def no_groovy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jenkinsfile_check, "find_groovy", lambda: None)


def test_validate_one_file_prints_one_object(tmp_path: Path) -> None:
    ci = tmp_path / ".gitlab-ci.yml"
    ci.write_text(GOOD_CI)
    result = invoke("template", "validate", ci, "--json")
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    assert {k: printed[k] for k in ("valid", "kind", "errors")} == {
        "valid": True, "kind": "gitlab-ci", "errors": []
    }  # fmt: skip


def test_validate_several_files_in_one_jvm(groovy: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gitlab-ci.yml"
    bad.write_text(BAD_CI)
    broken = tmp_path / "Jenkinsfile"
    broken.write_text("pipeline {\n  agent any\n  stages {\n")
    files = [FIXTURES / "maven-docker.Jenkinsfile", bad, broken, FIXTURES / "matrix.Jenkinsfile"]
    before = jvm_launches()
    result = invoke("template", "validate", *files, "--json")
    assert jvm_launches() - before == 1
    assert result.exit_code == 1
    printed = json.loads(result.stdout)
    assert [r["valid"] for r in printed] == [True, False, False, True]
    assert printed[1]["errors"][0]["line"] == 2
    assert [(e["line"], e["column"]) for e in printed[2]["errors"]] == [(4, 1)]
    assert printed[2]["errors"][0]["message"].startswith("unexpected token")


def test_validate_text_output(tmp_path: Path, no_groovy: None) -> None:
    bad = tmp_path / "bad.gitlab-ci.yml"
    bad.write_text(BAD_CI)
    result = invoke("template", "validate", bad)
    assert result.exit_code == 1
    assert f"{bad}:2:10: error: job 'build': stage 'compile' is not declared" in result.stderr
    assert "1 error(s) (gitlab-ci, checked by yaml+schema)" in result.stderr


def test_validate_without_groovy_says_so(no_groovy: None) -> None:
    result = invoke("template", "validate", FIXTURES / "post-in-stage.Jenkinsfile", "--json")
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    assert printed["checker"] == "fallback-tokeniser"
    assert "groovy is not installed" in printed["warnings"][0]


def test_validate_groups_a_warning_several_files_got(no_groovy: None, tmp_path: Path) -> None:
    """Without groovy every Jenkinsfile gets the same warning: it is printed once, with the
    number of files and their list; a file's own warnings stay beside it."""
    names = ("matrix", "maven-docker", "post-in-stage")
    files = [FIXTURES / f"{name}.Jenkinsfile" for name in names]
    broken = tmp_path / "Jenkinsfile"
    broken.write_text("pipeline {\n  agent any\n  stages {\n")
    result = invoke("template", "validate", *files, broken)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    shared = [i for i, line in enumerate(lines) if "groovy is not installed" in line]
    assert len(shared) == 1
    assert lines[shared[0]].startswith("4 files: warning: groovy is not installed")
    assert lines[shared[0] + 1 :] == [f"  {f}" for f in [*files, broken]]
    for file in files:
        assert f"{file}: valid (jenkinsfile, checked by fallback-tokeniser)" in lines
    # The broken file's own warning is not shared: it stays on the file's line.
    assert f"{broken}: warning: declarative structure not checked: fix the syntax errors first" in (
        lines
    )
    # --json keeps each file's own list, unchanged.
    printed = json.loads(invoke("template", "validate", *files, "--json").stdout)
    assert all("groovy is not installed" in r["warnings"][0] for r in printed)


def test_shared_warnings_need_two_files() -> None:
    from timbel_dagster.pipeline_templates.results import result, shared_warnings

    checked = [
        result("a", "gitlab-ci", "yaml+schema", [], ["w1", "w2"]),
        result("b", "gitlab-ci", "yaml+schema", [], ["w2", "w3"]),
        result("b", "gitlab-ci", "yaml+schema", [], ["w3"]),  # the same file twice
        result("c", "gitlab-ci", "yaml+schema", [], ["w2"]),
    ]
    assert shared_warnings(checked) == {"w2": ["a", "b", "c"]}


def test_validate_missing_file_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["template", "validate", str(tmp_path / "Jenkinsfile")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"timbel: error: {tmp_path / 'Jenkinsfile'}: no such file"


def test_generate_from_an_analysis_file(tmp_path: Path) -> None:
    analysis = tmp_path / "analysis.json"
    analysis.write_text(json.dumps({**ANALYSIS, "name": "orders-api"}))
    result = invoke(
        "template", "generate", "--analysis", analysis, "--kind", "gitlab-ci",
        "--param", "default_branch=trunk", "--param", "python_version=3.13",
    )  # fmt: skip
    assert result.exit_code == 0
    assert "ghcr.io/astral-sh/uv:python3.13-bookworm-slim" in result.stdout
    assert '$CI_COMMIT_BRANCH == "trunk"' in result.stdout
    assert "kubectl apply --namespace orders-api -f k8s" in result.stdout


def test_generate_output_is_written_and_validated(tmp_path: Path, no_groovy: None) -> None:
    analysis = tmp_path / "analysis.json"
    analysis.write_text(json.dumps(ANALYSIS))
    output = tmp_path / "Jenkinsfile"
    result = invoke(
        "template", "generate", "--analysis", analysis, "--kind", "jenkinsfile", "-o", output
    )
    assert result.exit_code == 0, result.stderr
    assert output.read_text().startswith("// Generated by timbel for app:")
    assert f"{output}: valid (jenkinsfile, checked by fallback-tokeniser)" in result.stderr


def test_generate_uses_the_repository_analysis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path] = []

    def analyze_repository(path: Path) -> dict[str, Any]:
        seen.append(path)
        return ANALYSIS

    module = types.ModuleType("timbel_dagster.repo_analysis.analysis")
    module.analyze_repository = analyze_repository  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "timbel_dagster.repo_analysis.analysis", module)
    repo = tmp_path / "Payments_Service"
    repo.mkdir()
    result = invoke("template", "generate", "--repo", repo, "--kind", "gitlab-ci")
    assert result.exit_code == 0
    assert seen == [repo]
    assert "kubectl apply --namespace payments-service" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "gitlab-ci"], "give exactly one of --repo PATH or --analysis JSON_FILE"),
        (["--kind", "gitlab-ci", "--repo", "."], "not installed: pass --analysis JSON_FILE"),
    ],
)
def test_generate_input_errors(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "timbel_dagster.repo_analysis.analysis", None)
    result = CliRunner().invoke(main, ["template", "generate", *args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_generate_bad_analysis_and_param(tmp_path: Path) -> None:
    analysis = tmp_path / "analysis.json"
    analysis.write_text("[1, 2]")
    result = CliRunner().invoke(
        main, ["template", "generate", "--analysis", str(analysis), "--kind", "jenkinsfile"]
    )
    assert result.exit_code == 2
    assert "the analysis must be a JSON object" in result.stderr
    analysis.write_text("{}")
    result = CliRunner().invoke(
        main,
        ["template", "generate", "--analysis", str(analysis), "--kind", "jenkinsfile",
         "--param", "novalue"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "'novalue' is not KEY=VALUE" in result.stderr


def test_preview(tmp_path: Path) -> None:
    template = tmp_path / "python.gitlab-ci.yml.j2"
    template.write_text("test:\n  image: python:{{ python }}\n  script: [pytest]\n")
    missing = CliRunner().invoke(main, ["template", "preview", str(template)])
    assert missing.exit_code == 2
    assert "template parameter 'python' is missing" in missing.stderr
    result = invoke("template", "preview", template, "--param", "python=3.12", "--json")
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    assert printed["text"] == "test:\n  image: python:3.12\n  script: [pytest]\n"
    assert printed["validation"]["valid"] and printed["validation"]["kind"] == "gitlab-ci"


def test_preview_invalid_result_exits_1(tmp_path: Path, no_groovy: None) -> None:
    template = tmp_path / "Jenkinsfile.j2"
    template.write_text("pipeline {\n  agent {{ agent }}\n}\n")
    result = invoke("template", "preview", template, "--param", "agent=any")
    assert result.exit_code == 1
    assert result.stdout == "pipeline {\n  agent any\n}\n"
    assert 'Missing required section "stages" in pipeline' in result.stderr
