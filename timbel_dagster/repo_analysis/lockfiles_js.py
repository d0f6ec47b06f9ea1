"""npm, Yarn and pnpm lockfiles: which version each declared range resolved to.

Supported: package-lock.json / npm-shrinkwrap.json v1 (nested `dependencies`) and v2/v3
(`packages`), yarn.lock v1 (Yarn's own format) and Berry (YAML, with `__metadata`), and
pnpm-lock.yaml 5.x, 6.x and 9.x. Only npm lockfiles mark development packages; packages of
the other lockfiles count as runtime.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from timbel_dagster.safe_yaml import load_yaml

LOCKFILE_TOOLS = {
    "pnpm-lock.yaml": "pnpm",
    "yarn.lock": "yarn",
    "package-lock.json": "npm",
    "npm-shrinkwrap.json": "npm",
}
_YARN_VERSION = re.compile(r'^\s+version:?\s+"?([^"\s]+)"?\s*$')


@dataclass
class Lock:
    """A parsed lockfile. `by_path` keys npm v2/v3 install paths; `by_range` keys
    (name, declared range) for Yarn; `importers` maps pnpm workspace directories."""

    path: str
    tool: str
    lockfile_version: str | None
    packages: set[tuple[str, str, bool]] = field(default_factory=set)  # name, version, dev
    by_path: dict[str, str] = field(default_factory=dict)
    by_range: dict[tuple[str, str], str] = field(default_factory=dict)
    importers: dict[str, dict[str, str]] = field(default_factory=dict)

    def resolve(self, name: str, spec: str, member: str) -> str | None:
        """The locked version of dependency `name` (declared as `spec`) of the package in
        `member`, the package.json directory relative to the lockfile's ('' if the same)."""
        if self.tool == "npm":
            prefix = f"{member}/" if member else ""
            return self.by_path.get(f"{prefix}node_modules/{name}") or self.by_path.get(
                f"node_modules/{name}"
            )
        if self.tool == "pnpm":
            return self.importers.get(member or ".", {}).get(name)
        found = self.by_range.get((name, spec)) or self.by_range.get((name, f"npm:{spec}"))
        if found is None:  # a range written differently: one locked version is unambiguous
            versions = {v for n, v, _ in self.packages if n == name}
            found = versions.pop() if len(versions) == 1 else None
        return found


def parse_lock(path: str, text: str) -> Lock:
    """Parse a lockfile named by `path` (its file name picks the format)."""
    name = path.rpartition("/")[2]
    if name == "yarn.lock":
        return _yarn(path, text)
    if name == "pnpm-lock.yaml":
        return _pnpm(path, text)
    return _npm(path, text)


def _npm(path: str, text: str) -> Lock:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"invalid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    lock = Lock(path, "npm", str(data.get("lockfileVersion", 1)))
    packages = data.get("packages")
    if isinstance(packages, dict):
        for key, entry in packages.items():
            if "node_modules/" not in key or not isinstance(entry, dict) or entry.get("link"):
                continue
            version = entry.get("version")
            if isinstance(version, str):
                lock.by_path[key] = version
                package = key.rpartition("node_modules/")[2]
                lock.packages.add((package, version, bool(entry.get("dev"))))
        return lock
    _npm_v1(lock, data.get("dependencies") or {}, "")
    return lock


def _npm_v1(lock: Lock, dependencies: dict[str, Any], prefix: str) -> None:
    for package, entry in dependencies.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("version"), str):
            continue
        key = f"{prefix}node_modules/{package}"
        lock.by_path[key] = entry["version"]
        lock.packages.add((package, entry["version"], bool(entry.get("dev"))))
        _npm_v1(lock, entry.get("dependencies") or {}, f"{key}/")


def _descriptor(descriptor: str) -> tuple[str, str]:
    """`@scope/name@^1.0.0` -> (`@scope/name`, `^1.0.0`)."""
    descriptor = descriptor.strip().strip('"')
    at = descriptor.find("@", 1)
    return (descriptor, "") if at < 0 else (descriptor[:at], descriptor[at + 1 :])


def _yarn(path: str, text: str) -> Lock:
    if "__metadata:" in text:
        return _yarn_berry(path, text)
    lock = Lock(path, "yarn", "1")
    descriptors: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            if not line.rstrip().endswith(":"):
                raise ValueError(f"line {number}: expected a package header ending in ':'")
            descriptors = [_descriptor(d) for d in line.rstrip()[:-1].split(", ")]
        elif descriptors and (match := _YARN_VERSION.match(line)):
            for package, spec in descriptors:
                lock.by_range[(package, spec)] = match.group(1)
                lock.packages.add((package, match.group(1), False))
            descriptors = []
    return lock


def _yarn_berry(path: str, text: str) -> Lock:
    data = load_yaml(text)
    if not isinstance(data, dict):
        raise ValueError("not a YAML mapping")
    metadata = data.pop("__metadata", {}) or {}
    lock = Lock(path, "yarn", str(metadata.get("version", "")) or None)
    for key, entry in data.items():
        if not isinstance(entry, dict) or "@workspace:" in str(entry.get("resolution", "")):
            continue
        version = entry.get("version")
        if version is None:
            continue
        for descriptor in str(key).split(", "):
            package, spec = _descriptor(descriptor)
            lock.by_range[(package, spec)] = str(version)
            lock.packages.add((package, str(version), False))
    return lock


def _pnpm_version(value: Any) -> str | None:
    """`1.2.3(react@18.2.0)` or `1.2.3_react@18.2.0` -> `1.2.3`; links -> None."""
    if isinstance(value, dict):
        value = value.get("version")
    if value is None or str(value).startswith(("link:", "file:", "workspace:")):
        return None
    return re.split(r"[(_]", str(value), maxsplit=1)[0]


def _pnpm(path: str, text: str) -> Lock:
    data = load_yaml(text)
    if not isinstance(data, dict):
        raise ValueError("not a YAML mapping")
    version = str(data.get("lockfileVersion", ""))
    lock = Lock(path, "pnpm", version or None)
    importers = data.get("importers") or {".": data}
    for directory, importer in importers.items():
        resolved: dict[str, str] = {}
        for section in ("dependencies", "devDependencies", "optionalDependencies"):
            for package, value in ((importer or {}).get(section) or {}).items():
                if (locked := _pnpm_version(value)) is not None:
                    resolved[package] = locked
        lock.importers[str(directory)] = resolved
    modern = not version.startswith(("5", "4", "3"))
    for key, entry in (data.get("packages") or {}).items():
        key = re.split(r"[(]", str(key).lstrip("/"), maxsplit=1)[0]
        if modern:  # `/name@1.2.3` (6.x) or `name@1.2.3` (9.x)
            package, locked = _descriptor(key)
        else:  # `/name/1.2.3_peer@1.0.0` (5.x)
            package, _, locked = key.rpartition("/")
            locked = locked.split("_", 1)[0]
        if package and locked:
            dev = bool(isinstance(entry, dict) and entry.get("dev"))
            lock.packages.add((package, locked, dev))
    return lock
