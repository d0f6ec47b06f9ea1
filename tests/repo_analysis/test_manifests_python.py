"""requirements files, pyproject.toml (PEP 621, PEP 735, Poetry, uv), poetry.lock, uv.lock."""

from __future__ import annotations

import pytest

from tests.repo_analysis.helpers import deps, frameworks, manifest, tool_paths
from timbel_dagster.repo_analysis.requirements_txt import parse_requirement


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Django==4.2.7", ("django", "4.2.7")),
        ("requests>=2.31,<3", ("requests", ">=2.31,<3")),
        ("uvicorn[standard] ~= 0.24.0", ("uvicorn", "~=0.24.0")),
        ('pywin32==306; sys_platform == "win32"', ("pywin32", "306")),
        ("Flask_Login", ("flask-login", None)),
        ("zope.interface (>=6.0)", ("zope-interface", ">=6.0")),
        ("mylib @ https://example.com/mylib-1.0.tar.gz", ("mylib", None)),
        ("git+https://github.com/org/repo.git@v1.0#egg=repo_pkg", ("repo-pkg", None)),
        ("numpy==1.*", ("numpy", "==1.*")),
        ("not a requirement!", None),
        ("package >= ", None),
    ],
)
def test_parse_requirement(line: str, expected: tuple[str, str | None] | None) -> None:
    assert parse_requirement(line) == expected


def test_requirements_files_follow_includes_and_skip_options(analyse) -> None:
    analysis = analyse(
        {
            "requirements.txt": """
                # production
                -r requirements/base.txt
                --index-url https://pypi.example.com/simple
                Django==4.2.7 \\
                    --hash=sha256:abc \\
                    --hash=sha256:def
                gunicorn>=21  # the server
                -e ./local-package
                -c constraints.txt
            """,
            "requirements/base.txt": "celery[redis]==5.3.6\nbroken line here!\n-r missing.txt\n",
            "requirements-dev.txt": "pytest==7.4.3\nblack\n",
            "requirements-test.txt": "coverage==7.3.2\n",
        }
    )

    assert deps(analysis) == {
        "django": ("4.2.7", "runtime", "requirements.txt", True),
        "gunicorn": (">=21", "runtime", "requirements.txt", True),
        "celery": ("5.3.6", "runtime", "requirements/base.txt", True),
        "pytest": ("7.4.3", "dev", "requirements-dev.txt", True),
        "black": (None, "dev", "requirements-dev.txt", True),
        "coverage": ("7.3.2", "test", "requirements-test.txt", True),
    }
    assert manifest(analysis, "requirements.txt")["includes"] == ["requirements/base.txt"]
    base = manifest(analysis, "requirements/base.txt")
    assert base["dependencies"] == 1
    assert base["error"] == (
        "requirements/base.txt: line 2: not a requirement: 'broken line here!'; "
        "line 3: included file missing.txt not found"
    )
    assert frameworks(analysis) == {("Django", "4.2.7")}
    assert analysis.build_tools[0]["name"] == "pip"


PEP_621 = """
    [build-system]
    requires = ["hatchling"]
    build-backend = "hatchling.build"

    [project]
    name = "Shop_API"
    version = "0.3.0"
    requires-python = ">=3.11"
    dependencies = ["fastapi>=0.104", "pydantic==2.5.2", "shop-api[extra]"]

    [project.optional-dependencies]
    test = ["pytest>=7"]
    dev = ["ruff"]
    postgres = ["psycopg[binary]>=3.1"]

    [dependency-groups]
    lint = ["mypy==1.7.1", {include-group = "test"}]
"""
UV_LOCK = """
    version = 1
    requires-python = ">=3.11"

    [[package]]
    name = "fastapi"
    version = "0.104.1"
    source = { registry = "https://pypi.org/simple" }

    [[package]]
    name = "starlette"
    version = "0.27.0"
    source = { registry = "https://pypi.org/simple" }

    [[package]]
    name = "shop-api"
    version = "0.3.0"
    source = { editable = "." }
"""
POETRY = """
    [tool.poetry]
    name = "blog"
    version = "1.0.0"

    [tool.poetry.dependencies]
    python = "^3.11"
    Flask = "^3.0.0"
    SQLAlchemy = { version = "^2.0", extras = ["asyncio"] }
    internal = { git = "https://example.com/internal.git" }

    [tool.poetry.group.test.dependencies]
    pytest = "^7.4"

    [tool.poetry.group.dev.dependencies]
    black = "*"

    [build-system]
    requires = ["poetry-core"]
    build-backend = "poetry.core.masonry.api"
"""
POETRY_LOCK = """
    [[package]]
    name = "flask"
    version = "3.0.0"
    optional = false
    groups = ["main"]

    [[package]]
    name = "werkzeug"
    version = "3.0.1"
    groups = ["main"]

    [[package]]
    name = "pytest"
    version = "7.4.3"
    groups = ["test"]

    [[package]]
    name = "iniconfig"
    version = "2.0.0"
    groups = ["test"]

    [metadata]
    lock-version = "2.1"
"""


def test_pep_621_with_uv_lock(analyse) -> None:
    analysis = analyse({"pyproject.toml": PEP_621, "uv.lock": UV_LOCK})

    assert deps(analysis) == {
        "fastapi": ("0.104.1", "runtime", "pyproject.toml", True),
        "pydantic": ("2.5.2", "runtime", "pyproject.toml", True),
        "pytest": (">=7", "test", "pyproject.toml", True),
        "ruff": (None, "dev", "pyproject.toml", True),
        "psycopg": (">=3.1", "runtime", "pyproject.toml", True),
        "mypy": ("1.7.1", "dev", "pyproject.toml", True),
        "starlette": ("0.27.0", "runtime", "uv.lock", False),
    }
    entry = manifest(analysis, "pyproject.toml")
    assert (entry["name"], entry["build_backend"], entry["lockfile"]) == (
        "Shop_API",
        "hatchling.build",
        "uv.lock",
    )
    assert tool_paths(analysis) == [{"name": "uv", "paths": ["pyproject.toml"]}]
    assert frameworks(analysis) == {("FastAPI", "0.104.1")}


def test_poetry_with_poetry_lock(analyse) -> None:
    analysis = analyse({"pyproject.toml": POETRY, "poetry.lock": POETRY_LOCK})

    assert deps(analysis) == {
        "flask": ("3.0.0", "runtime", "pyproject.toml", True),
        "sqlalchemy": ("^2.0", "runtime", "pyproject.toml", True),
        "internal": (None, "runtime", "pyproject.toml", True),
        "pytest": ("7.4.3", "test", "pyproject.toml", True),
        "black": (None, "dev", "pyproject.toml", True),
        "werkzeug": ("3.0.1", "runtime", "poetry.lock", False),
        "iniconfig": ("2.0.0", "dev", "poetry.lock", False),
    }
    assert tool_paths(analysis) == [{"name": "poetry", "paths": ["pyproject.toml"]}]
    assert manifest(analysis, "poetry.lock")["lockfile_version"] == "2.1"
    assert frameworks(analysis) == {("Flask", "3.0.0")}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[project\nname = 'x'", "invalid TOML"),
        ("[project]\ndependencies = ['fastapi >= !']", "not a PEP 508 requirement"),
    ],
)
def test_malformed_pyproject(analyse, text: str, problem: str) -> None:
    analysis = analyse({"pyproject.toml": text, "requirements.txt": "flask==3.0.0\n"})

    assert problem in manifest(analysis, "pyproject.toml")["error"]
    assert "flask" in deps(analysis)
