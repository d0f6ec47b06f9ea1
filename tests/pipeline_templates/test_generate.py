"""Generated Jenkinsfiles and .gitlab-ci.yml files: fitted to each stack, and every one of them
passes our own validators (all generated Jenkinsfiles compiled in one JVM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from timbel_dagster.pipeline_templates.generate import (
    builtin_template,
    generate,
    groovy_string,
    preview,
    render,
)
from timbel_dagster.pipeline_templates.gitlab_ci_semantics import GLOBAL_KEYWORDS
from timbel_dagster.pipeline_templates.jenkinsfile_check import jvm_launches
from timbel_dagster.pipeline_templates.stacks import choose_tools, plan
from timbel_dagster.pipeline_templates.validate import validate_many

# One worker builds the module fixture, not each (tests/conftest.py):
# the generated files, checked by one JVM.
pytestmark = pytest.mark.xdist_group("template_generate")

DOCKERFILE = [{"path": "Dockerfile", "stages": ["build", "runtime"], "base_images": ["alpine"]}]
STACKS: dict[str, dict[str, Any]] = {
    "maven": {"name": "orders", "languages": {"Java": 90_000}, "build_tools": ["maven"],
              "manifests": ["pom.xml", "k8s/deployment.yaml", "k8s/service.yaml"],
              "dockerfiles": DOCKERFILE},
    "gradle": {"name": "billing", "build_tools": ["gradle"], "manifests": ["build.gradle.kts"]},
    "npm": {"name": "web", "build_tools": ["npm"], "dockerfiles": DOCKERFILE,
            "manifests": [{"path": "charts/web/Chart.yaml"}, "package.json"]},
    "yarn": {"name": "admin", "build_tools": ["yarn"]},
    "pnpm": {"name": "portal", "build_tools": ["pnpm", "npm"], "dockerfiles": DOCKERFILE},
    "pip": {"name": "etl", "build_tools": ["pip"], "manifests": ["requirements.txt"]},
    "poetry": {"name": "api", "build_tools": ["poetry", "pip"], "manifests": ["pyproject.toml"],
               "dockerfiles": DOCKERFILE, "manifests_k8s": []},
    "uv": {"name": "ml", "build_tools": ["uv"], "manifests": ["pyproject.toml", "uv.lock"]},
    "go": {"name": "gateway", "languages": {"Go": 50_000}, "dockerfiles": DOCKERFILE,
           "manifests": ["go.mod", "deploy/gateway.yaml"]},
    "cargo": {"name": "indexer", "build_tools": ["cargo"]},
    "dotnet": {"name": "ledger", "build_tools": ["dotnet"], "dockerfiles": DOCKERFILE},
    "polyglot": {"name": "Shop Suite", "build_tools": ["maven", "npm", "go"],
                 "dockerfiles": [{"path": "docker/api.Dockerfile"}]},
    "dockerfile-only": {"name": "static-site", "dockerfiles": DOCKERFILE},
}  # fmt: skip
KINDS = {"jenkinsfile": "Jenkinsfile", "gitlab-ci": ".gitlab-ci.yml"}


@pytest.fixture(scope="module")
def generated(groovy: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every stack in both kinds, validated in one call (one groovy JVM)."""
    folder = tmp_path_factory.mktemp("generated")
    paths, texts = [], {}
    for stack, analysis in STACKS.items():
        for kind, file_name in KINDS.items():
            text = generate(analysis, kind)
            path = folder / stack / file_name
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
            paths.append(path)
            texts[stack, kind] = text
    before = jvm_launches()
    results = validate_many(paths, groovy)
    return {
        "launches": jvm_launches() - before,
        "texts": texts,
        "results": {(p.parent.name, r["kind"].split("-scripted")[0]): r for p, r in
                    zip(paths, results, strict=True)},
    }  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stack", STACKS)
def test_generated_files_pass_our_validators(
    generated: dict[str, Any], stack: str, kind: str
) -> None:
    checked = generated["results"][stack, kind]
    assert checked["errors"] == [], generated["texts"][stack, kind]
    assert checked["valid"] and checked["warnings"] == []
    assert checked["kind"] == kind  # declarative, not scripted
    assert generated["launches"] == 1


@pytest.mark.parametrize(
    ("stack", "commands"),
    [
        ("maven", ["mvn -B verify", "-Dmaven.repo.local=$CI_PROJECT_DIR/.cache/maven"]),
        ("gradle", ["./gradlew --no-daemon build", "GRADLE_USER_HOME"]),
        ("npm", ["npm ci", "npm test"]),
        ("yarn", ["yarn install --frozen-lockfile", "yarn test"]),
        ("pnpm", ["pnpm install --frozen-lockfile", "pnpm test"]),
        ("pip", [".venv/bin/pip install -r requirements.txt", ".venv/bin/python -m pytest"]),
        ("poetry", ["poetry install --no-interaction", "poetry run pytest"]),
        ("uv", ["uv sync --frozen", "uv run pytest"]),
        ("go", ["go test ./...", "GOMODCACHE"]),
        ("cargo", ["cargo test", "CARGO_HOME"]),
        ("dotnet", ["dotnet test --no-restore", "NUGET_PACKAGES"]),
    ],
)
def test_commands_fit_the_stack(generated: dict[str, Any], stack: str, commands: list[str]) -> None:
    gitlab = generated["texts"][stack, "gitlab-ci"]
    jenkins = generated["texts"][stack, "jenkinsfile"]
    for command in commands:
        assert command in gitlab
        assert command.replace("$CI_PROJECT_DIR/.cache", "/cache") in jenkins


def _jobs(text: str) -> dict[str, Any]:
    config = yaml.safe_load(text)
    return {k: v for k, v in config.items() if k not in GLOBAL_KEYWORDS and k[0] != "."}


def test_gitlab_pipeline_shape(generated: dict[str, Any]) -> None:
    config = yaml.safe_load(generated["texts"]["maven", "gitlab-ci"])
    assert config["stages"] == ["build", "test", "scan", "image", "deploy"]
    assert config["test:maven"]["needs"] == ["build:maven"]
    assert config["scan:image"]["needs"] == ["image:build"]
    assert "trivy fs --exit-code 1" in config["scan:filesystem"]["script"][0]
    assert "trivy image --exit-code 1" in config["scan:image"]["script"][0]
    assert config["deploy"]["rules"] == [{"if": '$CI_COMMIT_BRANCH == "main"'}]
    assert config["deploy"]["script"] == ["kubectl apply --namespace orders -f k8s"]
    helm = yaml.safe_load(generated["texts"]["npm", "gitlab-ci"])["deploy"]["script"][0]
    assert helm.startswith("helm upgrade --install web charts/web --namespace web")
    # no manifests or chart: no deploy; no Dockerfile: no image
    assert yaml.safe_load(generated["texts"]["yarn", "gitlab-ci"])["stages"] == [
        "build", "test", "scan"
    ]  # fmt: skip
    polyglot = _jobs(generated["texts"]["polyglot", "gitlab-ci"])
    assert {"build:maven", "build:npm", "build:go"} <= set(polyglot)
    assert set(_jobs(generated["texts"]["dockerfile-only", "gitlab-ci"])) == {
        "scan:filesystem", "image:build", "scan:image"
    }  # fmt: skip


def test_jenkins_pipeline_shape(generated: dict[str, Any]) -> None:
    maven = generated["texts"]["maven", "jenkinsfile"]
    assert "image 'maven:3.9-eclipse-temurin-17'" in maven
    assert "when {\n        beforeAgent true\n        branch 'main'" in maven
    assert "trivy fs --exit-code 1" in maven and "image --exit-code 1" in maven
    polyglot = generated["texts"]["polyglot", "jenkinsfile"]
    assert "parallel {" in polyglot and "stage('Build go')" in polyglot
    assert 'docker build -f docker/api.Dockerfile -t "$IMAGE" docker' in polyglot


def test_parameters_override_the_plan() -> None:
    text = generate(
        STACKS["maven"],
        "gitlab-ci",
        {"default_branch": "trunk", "java_version": "21", "trivy_severity": "CRITICAL"},
    )
    assert "maven:3.9-eclipse-temurin-21" in text
    assert '$CI_COMMIT_BRANCH == "trunk"' in text
    assert 'TRIVY_SEVERITY: "CRITICAL"' in text
    assert "deploy" not in yaml.safe_load(
        generate(STACKS["maven"], "gitlab-ci", {"deploy": "false"})
    )


@pytest.mark.parametrize(
    ("analysis", "only", "expected"),
    [
        ({"build_tools": ["pip", "poetry", "npm", "yarn"]}, None, ["yarn", "poetry"]),
        (  # both lockfiles: the tool the scripts use wins over the priority order
            {
                "build_tools": [
                    {"name": "npm", "paths": ["package-lock.json"], "used": True},
                    {"name": "yarn", "paths": ["yarn.lock"], "used": False},
                ]
            },
            None,
            ["npm"],
        ),
        (
            {
                "build_tools": [
                    {"name": "npm", "paths": ["package-lock.json"], "used": False},
                    {"name": "yarn", "paths": ["yarn.lock"], "used": False},
                ]
            },
            None,
            ["yarn"],
        ),
        ({"languages": {"Go": 1, "TypeScript": 2, "Java": 3}}, None, ["npm", "go"]),
        ({"build_tools": ["maven"]}, "gradle", ["gradle"]),
        ({}, None, []),
    ],
)
def test_choose_tools(analysis: dict[str, Any], only: str | None, expected: list[str]) -> None:
    assert choose_tools(analysis, only) == expected


def test_nothing_to_build_names_the_parameter() -> None:
    with pytest.raises(ValueError, match="build_tool=maven"):
        plan({"languages": {"Markdown": 10}}, {})
    with pytest.raises(ValueError, match="build_tool 'ant' is not one of"):
        plan({}, {"build_tool": "ant"})


def test_render_names_the_missing_parameter() -> None:
    assert render("agent {{ label }}\n", {"label": "linux"}) == "agent linux\n"
    with pytest.raises(ValueError, match="template parameter 'registry' is missing"):
        render("image: {{ registry }}/app\n", {})
    with pytest.raises(ValueError, match="template parameter 'port' is missing"):
        render("{{ service.port }}", {"service": {}})
    with pytest.raises(ValueError, match="template syntax error at line 2"):
        render("ok\n{% if %}\n", {})


def test_groovy_string_escapes() -> None:
    assert groovy_string("it's $HOME \\ ${x}") == "'it\\'s $HOME \\\\ ${x}'"


def test_preview_renders_and_validates() -> None:
    template = "build:\n  stage: {{ stage }}\n  script: [make]\n"
    text, checked = preview(template, {"stage": "build"})
    assert text == "build:\n  stage: build\n  script: [make]\n"
    assert checked["valid"] and checked["kind"] == "gitlab-ci"
    _, wrong = preview(template, {"stage": "compile"}, kind="gitlab-ci")
    assert [e["line"] for e in wrong["errors"]] == [2]


def test_builtin_templates_are_package_data() -> None:
    assert "pipeline {" in builtin_template("jenkinsfile")
    assert "stages:" in builtin_template("gitlab-ci")
    with pytest.raises(ValueError, match="kind 'circleci'"):
        builtin_template("circleci")


def test_generate_writes_nothing(tmp_path: Path) -> None:
    """Generation is pure: the text comes back, no file appears."""
    generate(STACKS["go"], "jenkinsfile")
    assert list(tmp_path.iterdir()) == []


def test_generates_from_the_repository_analysis(tmp_path: Path) -> None:
    """`timbel analyze-repo`'s own output (build tools as {name, paths}) drives generation."""
    from timbel_dagster.pipeline_templates.generate import generate
    from timbel_dagster.repo_analysis.analysis import analyze_repository

    (tmp_path / "pom.xml").write_text(
        "<project><modelVersion>4.0.0</modelVersion><groupId>g</groupId>"
        "<artifactId>a</artifactId><version>1</version></project>"
    )
    (tmp_path / "Dockerfile").write_text("FROM eclipse-temurin:21-jre\n")
    analysis = analyze_repository(tmp_path).to_dict()
    assert choose_tools(analysis) == ["maven"]
    text = generate(analysis, "gitlab-ci")
    assert "mvn" in text and "docker" in text.lower()
