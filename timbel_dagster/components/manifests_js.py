"""package.json files and their lockfiles: npm, Yarn or pnpm, direct and locked packages.

The lockfile next to a package.json, or in the closest directory above it (a workspace
root), decides the build tool and resolves versions; without one, `packageManager` decides,
else npm. Every package a lockfile holds that no package.json declares is listed once as an
indirect dependency of that lockfile.
"""

from __future__ import annotations

import json
from typing import Any

from timbel_dagster.components.lockfiles_js import LOCKFILE_TOOLS, Lock, parse_lock
from timbel_dagster.components.model import Findings
from timbel_dagster.components.walk import Tree, parent_of

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


def _lockfile_for(tree: Tree, directory: str) -> str | None:
    """The closest lockfile at or above `directory`; pnpm before Yarn before npm when one
    directory has several."""
    current = directory
    while True:
        for name in LOCKFILE_TOOLS:
            candidate = f"{current}/{name}" if current else name
            if candidate in tree.files:
                return candidate
        if not current:
            return None
        current = parent_of(current)


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
    lockfile = _lockfile_for(tree, directory)
    lock = _lock(tree, findings, lockfile, locks) if lockfile else None
    tool = _tool(data, lockfile)
    findings.tool(tool, lockfile or path)
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
            "lockfile": lockfile if lock else None,
            "workspaces": workspaces if isinstance(workspaces, list) else [],
            "dependencies": counts,
        }
    )


def _tool(data: dict[str, Any], lockfile: str | None) -> str:
    if lockfile:
        return LOCKFILE_TOOLS[lockfile.rpartition("/")[2]]
    declared = str(data.get("packageManager") or "").partition("@")[0]
    return declared if declared in ("npm", "yarn", "pnpm") else "npm"


def _indirect(findings: Findings, lock: Lock, declared: set[tuple[str, str | None]]) -> None:
    direct_names = {name for name, _ in declared}
    for name, version, dev in sorted(lock.packages):
        if (name, version) in declared or (name in direct_names and (name, None) in declared):
            continue
        findings.depend("npm", name, version, "dev" if dev else "runtime", lock.path, False)
