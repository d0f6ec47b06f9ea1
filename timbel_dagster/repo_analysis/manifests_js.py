"""package.json files and their lockfiles: npm, Yarn or pnpm, direct and locked packages.

The lockfiles next to a package.json, or in the closest directory above it that has any (a
workspace root), are its candidates; every one is reported as evidence of its tool. Which
tool the package uses: its `packageManager` field, else the only candidate, else the one
its own scripts run, else the one the repository's Dockerfiles and CI files run, else pnpm
before Yarn before npm (with no lockfile: npm). That tool's lockfile resolves versions.
Every package a lockfile holds that no package.json declares is listed once as an indirect
dependency of that lockfile.
"""

from __future__ import annotations

import json
from typing import Any

from timbel_dagster.repo_analysis.lockfiles_js import LOCKFILE_TOOLS, Lock, parse_lock
from timbel_dagster.repo_analysis.model import Findings
from timbel_dagster.repo_analysis.tool_usage import JS_TOOLS, tools_run
from timbel_dagster.repo_analysis.walk import Tree, parent_of

SECTIONS = (
    ("dependencies", "runtime"),
    ("optionalDependencies", "runtime"),
    ("devDependencies", "dev"),
)


def collect(tree: Tree, findings: Findings) -> None:
    """Parse every package.json and every npm/Yarn/pnpm lockfile in `tree`."""
    locks: dict[str, Lock | None] = {}
    declared: dict[str, set[tuple[str, str | None]]] = {}
    for path in tree.files:
        if path.rpartition("/")[2] == "package.json":
            with findings.guarded(path, "package.json"):
                _package(tree, findings, path, locks, declared)
    for path in tree.files:
        if path.rpartition("/")[2] in LOCKFILE_TOOLS:
            lock = _lock(tree, findings, path, locks)
            if lock is not None:
                _indirect(findings, lock, declared.get(path, set()))


def _lock(tree: Tree, findings: Findings, path: str, locks: dict[str, Lock | None]) -> Lock | None:
    """Parse a lockfile once; a malformed one is recorded and then treated as absent."""
    if path not in locks:
        locks[path] = None
        name = path.rpartition("/")[2]
        with findings.guarded(path, name):
            lock = parse_lock(path, tree.read_text(path))
            findings.manifests.append(
                {
                    "path": path,
                    "kind": name,
                    "lockfile_version": lock.lockfile_version,
                    "packages": len(lock.packages),
                }
            )
            locks[path] = lock
    return locks[path]


def _lockfiles_for(tree: Tree, directory: str) -> list[str]:
    """The lockfiles of the closest directory at or above `directory` that has any, in
    LOCKFILE_TOOLS order (pnpm, Yarn, npm)."""
    current = directory
    while True:
        found = [
            candidate
            for name in LOCKFILE_TOOLS
            if (candidate := f"{current}/{name}" if current else name) in tree.files
        ]
        if found or not current:
            return found
        current = parent_of(current)


def _scripts(findings: Findings, path: str, data: dict[str, Any]) -> set[str]:
    """Record the build tools the package's scripts run (and `packageManager` declares);
    the JavaScript package managers among them."""
    run: set[str] = set()
    scripts = data.get("scripts")
    for name, command in (scripts if isinstance(scripts, dict) else {}).items():
        if isinstance(command, str):
            for tool in tools_run(command):
                findings.ran(tool, path, "package.json script", f"{name}: {command}")
                run.add(tool)
    declared = _declared(data)
    if declared is not None:
        findings.ran(declared, path, "packageManager", str(data["packageManager"]))
    return run & set(JS_TOOLS)


def _declared(data: dict[str, Any]) -> str | None:
    name = str(data.get("packageManager") or "").partition("@")[0]
    return name if name in JS_TOOLS else None


def choose_tool(
    data: dict[str, Any], candidates: list[str], run: set[str], elsewhere: set[str]
) -> tuple[str, str]:
    """(the package manager a package uses, why). `candidates`: its lockfiles' tools in
    priority order; `run`: the package managers its own scripts run; `elsewhere`: those the
    repository's Dockerfiles and CI files run (a tie-breaker only)."""
    declared = _declared(data)
    if declared is not None:
        return declared, "packageManager"
    distinct = list(dict.fromkeys(candidates))
    if len(distinct) == 1:
        return distinct[0], "lockfile"
    for scripts, why in ((run, "package.json scripts"), (elsewhere, "Dockerfile/CI scripts")):
        invoked = [tool for tool in distinct or JS_TOOLS if tool in scripts]
        if len(invoked) == 1:
            return invoked[0], why
    if distinct:
        return distinct[0], "lockfile priority (pnpm, yarn, npm)"
    return "npm", "default"


def _package(
    tree: Tree,
    findings: Findings,
    path: str,
    locks: dict[str, Lock | None],
    declared: dict[str, set[tuple[str, str | None]]],
) -> None:
    try:
        data = json.loads(tree.read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"invalid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    directory = parent_of(path)
    lockfiles = _lockfiles_for(tree, directory)
    elsewhere = {
        tool
        for tool, run in findings.runs
        if tool in JS_TOOLS and run["kind"] in ("ci", "Dockerfile RUN")
    }
    candidates = [LOCKFILE_TOOLS[f.rpartition("/")[2]] for f in lockfiles]
    tool, reason = choose_tool(data, candidates, _scripts(findings, path, data), elsewhere)
    for candidate in lockfiles:
        findings.tool(LOCKFILE_TOOLS[candidate.rpartition("/")[2]], candidate, "lockfile")
    if not lockfiles:
        findings.tool(tool, path, "manifest", f"package.json without a lockfile ({reason})")
    own = [f for f in lockfiles if LOCKFILE_TOOLS[f.rpartition("/")[2]] == tool]
    lockfile = (own or lockfiles or [None])[0]
    lock = _lock(tree, findings, lockfile, locks) if lockfile else None
    member = directory[len(parent_of(lockfile)) :].lstrip("/") if lockfile else ""
    counts = {"runtime": 0, "dev": 0}
    own_name = data.get("name")
    for section, scope in SECTIONS:
        entries = data.get(section) or {}
        if not isinstance(entries, dict):
            raise ValueError(f"{section} is not an object")
        for name, spec in entries.items():
            if name == own_name:
                continue
            version = lock.resolve(name, str(spec), member) if lock else None
            findings.depend("npm", name, version or str(spec), scope, path)
            counts[scope] += 1
            if lockfile:
                declared.setdefault(lockfile, set()).add((name, version))
    workspaces = data.get("workspaces")
    if isinstance(workspaces, dict):
        workspaces = workspaces.get("packages")
    findings.manifests.append(
        {
            "path": path,
            "kind": "package.json",
            "name": own_name,
            "version": data.get("version"),
            "package_manager": tool,
            "package_manager_reason": reason,
            "lockfile": lockfile if lock else None,
            "lockfiles": lockfiles,
            "workspaces": workspaces if isinstance(workspaces, list) else [],
            "dependencies": counts,
        }
    )


def _indirect(findings: Findings, lock: Lock, declared: set[tuple[str, str | None]]) -> None:
    direct_names = {name for name, _ in declared}
    for name, version, dev in sorted(lock.packages):
        if (name, version) in declared or (name in direct_names and (name, None) in declared):
            continue
        findings.depend("npm", name, version, "dev" if dev else "runtime", lock.path, False)
