"""analyze_repository / analyze_source: the walk, languages, frameworks and build tools
across ecosystems, git URLs, and this project's own repository."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.repo_analysis.helpers import deps, frameworks, manifest, write_files
from timbel_dagster.repo_analysis.analysis import analyze_repository, analyze_source, is_git_url
from timbel_dagster.repo_analysis.languages import language_bytes, language_of

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
KEYS = [
    "repository",
    "files_scanned",
    "languages",
    "frameworks",
    "build_tools",
    "manifests",
    "dependencies",
    "dockerfiles",
    "ci_files",
]


def _package(**dependencies: str) -> str:
    return json.dumps({"name": "app", "dependencies": dependencies})


# files -> the frameworks (name, version) and build tools the analysis must report
CASES = [
    ({"package.json": _package(react="18.2.0")}, {("React", "18.2.0")}, ["npm"]),
    ({"package.json": _package(vue="^3.3.8")}, {("Vue", "^3.3.8")}, ["npm"]),
    ({"package.json": _package(**{"@angular/core": "17.0.5"})}, {("Angular", "17.0.5")}, ["npm"]),
    (
        {"package.json": _package(next="14.0.4", react="18.2.0"), "yarn.lock": ""},
        {("Next.js", "14.0.4"), ("React", "18.2.0")},
        ["yarn"],
    ),
    ({"package.json": _package(express="4.18.2")}, {("Express", "4.18.2")}, ["npm"]),
    (
        {"package.json": _package(**{"@nestjs/core": "10.2.10"}), "pnpm-lock.yaml": "{}"},
        {("NestJS", "10.2.10")},
        ["pnpm"],
    ),
    ({"requirements.txt": "Django==5.0\n"}, {("Django", "5.0")}, ["pip"]),
    ({"requirements.txt": "flask>=3\n"}, {("Flask", ">=3")}, ["pip"]),
    (
        {"pyproject.toml": '[project]\nname = "x"\ndependencies = ["fastapi==0.104.1"]\n'},
        {("FastAPI", "0.104.1")},
        ["pip"],
    ),
    (
        {"go.mod": "module x\n\nrequire github.com/gin-gonic/gin v1.9.1\n"},
        {("Gin", "v1.9.1")},
        ["go"],
    ),
    (
        {"go.mod": "module x\n\nrequire github.com/labstack/echo/v4 v4.11.3\n"},
        {("Echo", "v4.11.3")},
        ["go"],
    ),
    ({"Cargo.toml": '[dependencies]\nactix-web = "4"\n'}, {("Actix", "4")}, ["cargo"]),
    ({"Cargo.toml": '[dependencies]\naxum = "0.7.2"\n'}, {("Axum", "0.7.2")}, ["cargo"]),
    (
        {
            "a/A.csproj": '<Project Sdk="Microsoft.NET.Sdk.Web"><PropertyGroup>'
            "<TargetFramework>net7.0</TargetFramework></PropertyGroup></Project>"
        },
        {("ASP.NET Core", "7.0")},
        ["dotnet"],
    ),
    (
        {
            "A.csproj": '<Project Sdk="Microsoft.NET.Sdk"><ItemGroup><PackageReference '
            'Include="Microsoft.AspNetCore.Mvc.Core" Version="2.2.5" /></ItemGroup></Project>'
        },
        {("ASP.NET Core", "2.2.5")},
        ["dotnet"],
    ),
    (
        {
            "pom.xml": "<project><parent><groupId>org.springframework.boot</groupId>"
            "<artifactId>spring-boot-starter-parent</artifactId><version>2.7.18</version>"
            "</parent><artifactId>a</artifactId></project>"
        },
        {("Spring Boot", "2.7.18")},
        ["maven"],
    ),
    (
        {"build.gradle.kts": 'plugins {\n  id("org.springframework.boot") version "3.2.0"\n}\n'},
        {("Spring Boot", "3.2.0")},
        ["gradle"],
    ),
    (
        {
            "pom.xml": "<project><artifactId>a</artifactId><build><plugins><plugin><groupId>"
            "io.quarkus.platform</groupId><artifactId>quarkus-maven-plugin</artifactId>"
            "<version>3.6.0</version></plugin></plugins></build></project>"
        },
        {("Quarkus", "3.6.0")},
        ["maven"],
    ),
    ({"Dockerfile": "FROM alpine:3.19\n"}, set(), ["docker"]),
    ({"charts/a/Chart.yaml": "apiVersion: v2\nname: a\nversion: 1.0.0\n"}, set(), ["helm"]),
    ({"setup.py": "from setuptools import setup\nsetup()\n"}, set(), ["pip"]),
]


@pytest.mark.parametrize(("files", "expected_frameworks", "expected_tools"), CASES)
def test_frameworks_and_build_tools(
    analyse, files: dict[str, str], expected_frameworks: set, expected_tools: list[str]
) -> None:
    analysis = analyse(files)

    assert frameworks(analysis) == expected_frameworks
    assert [t["name"] for t in analysis.build_tools] == expected_tools


def test_transitive_packages_do_not_count_as_frameworks(analyse) -> None:
    analysis = analyse(
        {
            "package.json": _package(**{"left-pad": "1.3.0"}),
            "package-lock.json": json.dumps(
                {
                    "lockfileVersion": 3,
                    "packages": {
                        "node_modules/left-pad": {"version": "1.3.0"},
                        "node_modules/react": {"version": "18.2.0"},
                    },
                }
            ),
        }
    )

    assert deps(analysis)["react"] == ("18.2.0", "runtime", "package-lock.json", False)
    assert analysis.frameworks == []


def test_walk_skips_tool_directories_links_and_counts_languages(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "repo",
        {
            "src/app.py": "print('hello')\n" * 10,
            "src/app_pb2.py": "# generated\n" * 100,
            "web/index.ts": "export const a = 1;\n",
            "web/bundle.min.js": "var a=1;" * 100,
            "web/node_modules/react/package.json": _package(scheduler="0.23.0"),
            "vendor/github.com/x/y/go.mod": "module y\n",
            ".venv/lib/site.py": "x = 1\n" * 100,
            "pkg.egg-info/requires.txt": "flask\n",
            ".git/config": "[core]\n",
            "README.md": "# readme\n",
            "logo.png": "not really a png",
        },
    )
    (root / "outside.py").symlink_to(tmp_path / "elsewhere.py")
    (tmp_path / "elsewhere.py").write_text("import os\n" * 1000)
    (root / "loop").symlink_to(root, target_is_directory=True)

    analysis = analyze_repository(root)

    assert analysis.files_scanned == 6  # app.py, app_pb2.py, index.ts, bundle.min.js, ...
    assert analysis.languages == {"Python": 150, "TypeScript": 20}
    assert analysis.manifests == []
    assert analysis.repository == str(root.resolve())


@pytest.mark.parametrize(
    ("name", "language"),
    [
        ("main.go", "Go"),
        ("App.tsx", "TypeScript"),
        ("Program.cs", "C#"),
        ("build.gradle.kts", "Kotlin"),
        ("Dockerfile", "Dockerfile"),
        ("Dockerfile.prod", "Dockerfile"),
        ("Jenkinsfile", "Groovy"),
        ("Makefile", "Makefile"),
        ("script.SH", "Shell"),
        ("data.json", None),
        ("notes.md", None),
        ("values.yaml", None),
        ("jquery.min.js", None),
        ("api.pb.go", None),
        ("Form1.Designer.cs", None),
        (".bashrc", None),
    ],
)
def test_language_of(name: str, language: str | None) -> None:
    assert language_of(name) == language


def test_language_bytes_orders_by_size() -> None:
    assert list(language_bytes({"a.py": 10, "b.go": 30, "c.go": 5, "d.txt": 99})) == [
        "Go",
        "Python",
    ]


def test_a_manifest_over_the_size_cap_is_reported_not_read(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "repo",
        {"package.json": _package(express="4.18.2") + " " * 2000, "go.mod": "module x\n"},
    )

    analysis = analyze_repository(root, max_file_bytes=1000)

    error = manifest(analysis, "package.json")["error"]
    assert error.startswith("package.json: ")
    assert "over the 1,000-byte limit" in error
    assert manifest(analysis, "go.mod")["module"] == "x"


def test_one_malformed_manifest_does_not_stop_the_rest(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "repo",
        {
            "package.json": "{not json",
            "requirements.txt": "flask==3.0.0\n",
            "go.mod": "module x\nrequire (\n",
            "Cargo.toml": "[dependencies\n",
            "a/A.csproj": "<Project><ItemGroup></Project>",
            "Chart.yaml": "name: [",
            "pom.xml": "<notaproject/>",
            "build.gradle": "dependencies { implementation 'a:b:1.0' }",
        },
    )
    (root / "binary").mkdir()
    (root / "binary" / "package.json").write_bytes(b"\xff\xfe{}")

    analysis = analyze_repository(root)

    errors = {m["path"]: m["error"] for m in analysis.manifests if "error" in m}
    assert set(errors) == {
        "package.json",
        "go.mod",
        "Cargo.toml",
        "a/A.csproj",
        "Chart.yaml",
        "pom.xml",
        "binary/package.json",
    }
    assert all(error.startswith(f"{path}: ") for path, error in errors.items())
    assert "not UTF-8" in errors["binary/package.json"]
    assert set(deps(analysis)) == {"flask", "a:b"}


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def git_repository(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.fail("git is not installed")  # the clone path cannot be tested without it
    origin = write_files(
        tmp_path / "origin",
        {
            "go.mod": "module x\n\nrequire github.com/gin-gonic/gin v1.9.1\n",
            "main.go": "package main\n",
        },
    )
    _git("init", "--quiet", "--initial-branch=main", cwd=origin)
    _git("add", ".", cwd=origin)
    _git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init", cwd=origin)
    return origin


def test_analyze_source_clones_a_git_url(git_repository: Path, tmp_path: Path) -> None:
    url = git_repository.as_uri()
    work = tmp_path / "work"
    work.mkdir()

    analysis = analyze_source(url, workdir=work)

    assert analysis.repository == url
    assert analysis.files_scanned == 2  # .git is not walked
    assert frameworks(analysis) == {("Gin", "v1.9.1")}
    assert list(work.iterdir()) == []  # the clone is removed afterwards


def test_analyze_source_takes_a_local_path(git_repository: Path) -> None:
    analysis = analyze_source(str(git_repository))

    assert analysis.repository == str(git_repository)
    assert "Go" in analysis.languages


@pytest.mark.parametrize("kind", ["missing", "file", "bad-url"])
def test_analyze_source_errors_name_what_was_wrong(tmp_path: Path, kind: str) -> None:
    source = {
        "missing": str(tmp_path / "nowhere"),
        "file": str(write_files(tmp_path, {"f.txt": "x"}) / "f.txt"),
        "bad-url": (tmp_path / "no-such-repo.git").as_uri(),
    }[kind]

    with pytest.raises(ValueError, match=source) as raised:
        analyze_source(source)

    reason = {"missing": "does not exist", "file": "is not a directory", "bad-url": "failed"}
    assert reason[kind] in str(raised.value)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("https://github.com/acme/api.git", True),
        ("file:///srv/git/api", True),
        ("ssh://git@host/api.git", True),
        ("git@github.com:acme/api.git", True),
        ("/srv/checkouts/api", False),
        ("relative/dir", False),
        ("C:/not/a/url", False),
    ],
)
def test_is_git_url(source: str, expected: bool) -> None:
    assert is_git_url(source) is expected


def test_this_project_is_analysed_sanely() -> None:
    analysis = analyze_repository(REPOSITORY_ROOT)
    data = analysis.to_dict()

    assert list(data) == KEYS
    assert next(iter(data["languages"])) == "Python"
    assert "pip" in [tool["name"] for tool in data["build_tools"]]
    pyproject = [d for d in data["dependencies"] if d["manifest"] == "pyproject.toml"]
    assert {
        "ecosystem": "pypi",
        "name": "dagster",
        "version": "1.13.27",
        "scope": "runtime",
        "manifest": "pyproject.toml",
        "direct": True,
    } in pyproject
    assert {d["name"] for d in pyproject} >= {"pandas", "sqlalchemy", "click", "pytest"}
    assert not [m for m in data["manifests"] if "error" in m]
    assert {"path": "deploy/Dockerfile", "kind": "Dockerfile"}.items() <= manifest(
        analysis, "deploy/Dockerfile"
    ).items()
    json.dumps(data)  # JSON-ready as it is
