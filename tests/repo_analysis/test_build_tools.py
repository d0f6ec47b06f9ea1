"""Build tools: every one a repository holds, with the files that show it, and which one its
scripts use (issue 12: a repository with both package-lock.json and yarn.lock was reported as
Yarn only)."""

from __future__ import annotations

import json

import pytest

from tests.repo_analysis.helpers import manifest
from timbel_dagster.repo_analysis.analysis import RepositoryAnalysis
from timbel_dagster.repo_analysis.tool_usage import command_lines, tools_run

PACKAGE = {"name": "web", "dependencies": {"express": "^4.18.2"}}
NPM_LOCK = json.dumps(
    {
        "name": "web",
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "web", "dependencies": {"express": "^4.18.2"}},
            "node_modules/express": {"version": "4.18.2"},
        },
    }
)
YARN_LOCK = '# yarn lockfile v1\n\n\nexpress@^4.18.2:\n  version "4.18.3"\n'
BOTH = {"package-lock.json": NPM_LOCK, "yarn.lock": YARN_LOCK}


def tool(analysis: RepositoryAnalysis, name: str) -> dict:
    (found,) = [t for t in analysis.build_tools if t["name"] == name]
    return found


def direct_version(analysis: RepositoryAnalysis, name: str) -> str | None:
    (found,) = [d for d in analysis.dependencies if d.name == name and d.direct]
    return found.version


def kinds(entry: dict) -> list[tuple[str, str, int | None]]:
    return [(e["path"], e["kind"], e["line"]) for e in entry["evidence"]]


def test_both_lockfiles_both_tools_and_the_one_the_scripts_use(analyse) -> None:
    scripts = {"build": "yarn tsc -p .", "test": "jest --ci", "lint": "npx eslint ."}
    analysis = analyse(
        {
            "package.json": json.dumps({**PACKAGE, "scripts": scripts}),
            **BOTH,
            "Dockerfile": "FROM node:20\nRUN yarn install --frozen-lockfile \\\n  && yarn build\n",
            ".gitlab-ci.yml": "# npm is not used\ntest:\n  name: npm-free\n  script:\n"
            "    - yarn test\n",
        }
    )

    assert [t["name"] for t in analysis.build_tools] == ["docker", "npm", "yarn"]
    npm, yarn = tool(analysis, "npm"), tool(analysis, "yarn")
    assert npm == {
        "name": "npm",
        "paths": ["package-lock.json"],
        "used": False,  # `npx` runs a package; it installs nothing
        "evidence": [
            {"path": "package-lock.json", "kind": "lockfile", "detail": "package-lock.json",
             "line": None},
        ],
    }  # fmt: skip
    assert yarn["used"] is True
    assert yarn["paths"] == [".gitlab-ci.yml", "Dockerfile", "package.json", "yarn.lock"]
    assert kinds(yarn) == [
        (".gitlab-ci.yml", "ci", 5),
        ("Dockerfile", "Dockerfile RUN", 2),
        ("package.json", "package.json script", None),
        ("yarn.lock", "lockfile", None),
    ]
    assert yarn["evidence"][2]["detail"] == "build: yarn tsc -p ."
    package = manifest(analysis, "package.json")
    assert package["package_manager"] == "yarn"
    assert package["package_manager_reason"] == "package.json scripts"
    assert (package["lockfile"], package["lockfiles"]) == (
        "yarn.lock",
        ["yarn.lock", "package-lock.json"],
    )
    assert direct_version(analysis, "express") == "4.18.3"  # from the lockfile Yarn uses


def test_both_lockfiles_the_dockerfile_breaks_the_tie(analyse) -> None:
    analysis = analyse(
        {"package.json": json.dumps(PACKAGE), **BOTH, "Dockerfile": "FROM node:20\nRUN npm ci\n"}
    )

    assert (tool(analysis, "npm")["used"], tool(analysis, "yarn")["used"]) == (True, False)
    package = manifest(analysis, "package.json")
    assert (package["package_manager"], package["package_manager_reason"]) == (
        "npm",
        "Dockerfile/CI scripts",
    )
    assert direct_version(analysis, "express") == "4.18.2"  # from package-lock.json


def test_both_lockfiles_and_no_script_keeps_both_unused(analyse) -> None:
    analysis = analyse({"package.json": json.dumps(PACKAGE), **BOTH})

    assert [(t["name"], t["used"]) for t in analysis.build_tools] == [
        ("npm", False),
        ("yarn", False),
    ]
    package = manifest(analysis, "package.json")
    assert package["package_manager"] == "yarn"
    assert package["package_manager_reason"] == "lockfile priority (pnpm, yarn, npm)"


def test_package_manager_field_decides_and_counts_as_use(analyse) -> None:
    analysis = analyse(
        {
            "package.json": json.dumps({**PACKAGE, "packageManager": "pnpm@9.1.0+sha256.abc"}),
            "package-lock.json": NPM_LOCK,
        }
    )

    pnpm, npm = tool(analysis, "pnpm"), tool(analysis, "npm")
    assert pnpm["used"] and not npm["used"]
    assert pnpm["evidence"] == [
        {"path": "package.json", "kind": "packageManager", "detail": "pnpm@9.1.0+sha256.abc",
         "line": None},
    ]  # fmt: skip
    package = manifest(analysis, "package.json")
    assert (package["package_manager"], package["package_manager_reason"]) == (
        "pnpm",
        "packageManager",
    )
    # pnpm has no lockfile here: the one there is still resolves the versions
    assert package["lockfile"] == "package-lock.json"
    assert direct_version(analysis, "express") == "4.18.2"


def test_other_tools_are_marked_used_by_ci_and_dockerfiles(analyse) -> None:
    analysis = analyse(
        {
            "pom.xml": "<project><artifactId>a</artifactId></project>",
            "Dockerfile": "FROM maven:3.9\nRUN ./mvnw -B package\n",
            ".github/workflows/ci.yml": "jobs:\n  b:\n    steps:\n      - name: build with gradle\n"
            "        run: docker build -t app .\n",
        }
    )

    assert [(t["name"], t["used"]) for t in analysis.build_tools] == [
        ("docker", True),
        ("maven", True),
    ]  # gradle is only named in a step name, and the repository has no Gradle build


def test_analyze_repo_json_shape(analyse) -> None:
    data = analyse({"package.json": json.dumps(PACKAGE), **BOTH}).to_dict()

    assert [set(t) for t in data["build_tools"]] == [{"name", "paths", "used", "evidence"}] * 2
    assert {tuple(e) for t in data["build_tools"] for e in t["evidence"]} == {
        ("path", "kind", "detail", "line")
    }
    json.dumps(data)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("yarn install --frozen-lockfile", ["yarn"]),
        ("cd web && npm ci", ["npm"]),
        ("sh 'npm run build'", ["npm"]),
        ("npx eslint .", []),
        ("cat yarn.lock .yarn/cache", []),
        ("corepack enable && pnpm i --frozen-lockfile", ["pnpm"]),
        ("./gradlew build", ["gradle"]),
        ("mvn -B verify", ["maven"]),
        ("python -m pip install -r requirements.txt", ["pip"]),
        ("uv sync --frozen", ["uv"]),
        ("go test ./...", ["go"]),
        ("let us go home", []),
        ("docker build -t x . && helm upgrade --install x chart", ["docker", "helm"]),
    ],
)
def test_tools_run(command: str, expected: list[str]) -> None:
    assert tools_run(command) == expected


def test_ci_prose_lines_are_not_commands() -> None:
    text = (
        "# runs npm ci\nbuild:\n  name: yarn build\n  script:\n    - echo 'npm is not used'\n"
        "    - pnpm install\n"
    )
    assert list(command_lines(text)) == [(6, "- pnpm install", ["pnpm"])]
    jenkinsfile = "stage('yarn build') {\n    steps {\n        sh 'npm ci'\n    }\n}\n"
    assert list(command_lines(jenkinsfile)) == [(3, "sh 'npm ci'", ["npm"])]
