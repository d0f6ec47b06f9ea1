"""pyproject.toml (PEP 621, PEP 735 groups, Poetry, uv) with poetry.lock and uv.lock.

The build tool of a pyproject.toml is uv when a uv.lock lies beside it or it has a
`[tool.uv]` table, Poetry when a poetry.lock lies beside it, it has `[tool.poetry]` or its
build backend is poetry-core, and pip otherwise; a setup.py or setup.cfg alone also means pip.
A lockfile beside the pyproject.toml resolves the declared versions, and its other packages
are listed as indirect dependencies.
"""

from __future__ import annotations

import tomllib
from typing import Any

from timbel_dagster.repo_analysis.model import Findings, pinned
from timbel_dagster.repo_analysis.requirements_txt import normalise, parse_requirement, scope_for
from timbel_dagster.repo_analysis.walk import Tree, parent_of

LOCKFILES = ("uv.lock", "poetry.lock")


def collect(tree: Tree, findings: Findings) -> None:
    """Parse every pyproject.toml (and the lockfile beside it) in `tree`."""
    for path in tree.files:
        name = path.rpartition("/")[2]
        if name == "pyproject.toml":
            with findings.guarded(path, "pyproject.toml"):
                _pyproject(tree, path, findings)
        elif name in ("setup.py", "setup.cfg"):
            directory = parent_of(path)
            if f"{directory}/pyproject.toml".lstrip("/") not in tree.files:
                findings.tool("pip", path)


def _load_toml(tree: Tree, path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(tree.read_text(path))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"invalid TOML: {error}") from None


def _declared(data: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """(name, version specification, scope) of every dependency the file declares."""
    found: list[tuple[str, str | None, str]] = []
    project = data.get("project", {})

    def add(requirements: Any, scope: str) -> None:
        for line in requirements or []:
            if isinstance(line, str):  # PEP 735 `{include-group = ...}` tables are not packages
                requirement = parse_requirement(line)
                if requirement is None:
                    raise ValueError(f"not a PEP 508 requirement: {line!r}")
                found.append((*requirement, scope))

    add(project.get("dependencies"), "runtime")
    for extra, requirements in (project.get("optional-dependencies") or {}).items():
        add(requirements, scope_for(extra))
    for group, requirements in (data.get("dependency-groups") or {}).items():
        add(requirements, "test" if scope_for(group) == "test" else "dev")
    tool = data.get("tool", {})
    add((tool.get("uv") or {}).get("dev-dependencies"), "dev")
    poetry = tool.get("poetry") or {}
    tables = [("runtime", poetry.get("dependencies")), ("dev", poetry.get("dev-dependencies"))]
    for group, table in (poetry.get("group") or {}).items():
        tables.append(("test" if scope_for(group) == "test" else "dev", table.get("dependencies")))
    for scope, table in tables:
        for name, spec in (table or {}).items():
            if name.lower() != "python":
                found.append((normalise(name), _poetry_spec(spec), scope))
    return found


def _poetry_spec(spec: Any) -> str | None:
    """`"^1.2"`, `{version = "^1.2", ...}` or a list of those -> `^1.2`; git/path -> None."""
    if isinstance(spec, list):
        spec = spec[0] if spec else None
    if isinstance(spec, dict):
        spec = spec.get("version")
    return pinned(spec) if isinstance(spec, str) and spec != "*" else None


def _lock(tree: Tree, directory: str, findings: Findings) -> tuple[str, dict[str, Any]] | None:
    for name in LOCKFILES:
        path = f"{directory}/{name}".lstrip("/")
        if path in tree.files:
            with findings.guarded(path, name):
                data = _load_toml(tree, path)
                findings.manifests.append(
                    {
                        "path": path,
                        "kind": name,
                        "lockfile_version": str(data.get("version") or "")
                        or str((data.get("metadata") or {}).get("lock-version") or "")
                        or None,
                        "packages": len(data.get("package", [])),
                    }
                )
                return path, data
    return None


def _locked(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Normalised name -> (version, scope) from a uv.lock or poetry.lock; projects themselves
    (uv's editable and virtual sources) left out."""
    locked: dict[str, tuple[str, str]] = {}
    for package in data.get("package", []):
        source = package.get("source") or {}
        if (
            not isinstance(package.get("version"), str)
            or source.get("editable")
            or (source.get("virtual"))
        ):
            continue
        groups = package.get("groups")
        development = package.get("category") == "dev" or (
            isinstance(groups, list) and "main" not in groups
        )
        locked[normalise(package["name"])] = (
            package["version"],
            "dev" if development else "runtime",
        )
    return locked


def _pyproject(tree: Tree, path: str, findings: Findings) -> None:
    data = _load_toml(tree, path)
    directory = parent_of(path)
    project = data.get("project", {})
    poetry = data.get("tool", {}).get("poetry") or {}
    own = normalise(str(project.get("name") or poetry.get("name") or ""))
    backend = (data.get("build-system") or {}).get("build-backend")
    lock = _lock(tree, directory, findings)
    lock_name = lock[0].rpartition("/")[2] if lock else ""
    if lock_name == "uv.lock" or "uv" in data.get("tool", {}):
        tool = "uv"
    elif lock_name == "poetry.lock" or poetry or str(backend).startswith("poetry"):
        tool = "poetry"
    else:
        tool = "pip"
    findings.tool(tool, path)
    locked = _locked(lock[1]) if lock else {}
    declared = [d for d in _declared(data) if d[0] != own]
    for name, spec, scope in declared:
        version = locked[name][0] if name in locked else spec
        findings.depend("pypi", name, version, scope, path)
    if lock:
        direct = {name for name, _, _ in declared} | {own}
        for name, (version, scope) in sorted(locked.items()):
            if name not in direct:
                findings.depend("pypi", name, version, scope, lock[0], False)
    findings.manifests.append(
        {
            "path": path,
            "kind": "pyproject.toml",
            "name": project.get("name") or poetry.get("name"),
            "version": project.get("version") or poetry.get("version"),
            "build_backend": backend,
            "build_tool": tool,
            "requires_python": project.get("requires-python"),
            "lockfile": lock[0] if lock else None,
            "dependencies": len(declared),
        }
    )
