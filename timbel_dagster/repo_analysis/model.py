"""What the manifest parsers find, gathered in one place while a repository is analysed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)

ECOSYSTEMS = ("npm", "maven", "pypi", "golang", "cargo", "nuget")
SCOPES = ("runtime", "dev", "test")


@dataclass(frozen=True)
class Dependency:
    """One package a manifest or lockfile names.

    `version` is the version a lockfile resolved when there is one, else the declared
    specification (`^1.2.0`, `>=2.1`), else None (managed elsewhere, e.g. by a BOM).
    """

    ecosystem: str
    name: str
    version: str | None
    scope: str
    manifest: str
    direct: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FrameworkHint:
    """Evidence of a framework that is not a plain dependency (a Maven parent, a Gradle
    plugin, a .NET SDK)."""

    name: str
    version: str | None
    path: str


@dataclass
class Findings:
    """Everything the parsers found so far; each parser appends to it."""

    manifests: list[dict[str, Any]] = field(default_factory=list)
    dependencies: list[Dependency] = field(default_factory=list)
    build_tools: dict[str, set[str]] = field(default_factory=dict)
    # tool -> [{path, kind, detail, line}]: the files that show it
    tool_evidence: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # (tool, {path, kind, detail, line}): scripts that run it (see tool_usage.report)
    runs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    framework_hints: list[FrameworkHint] = field(default_factory=list)
    dockerfiles: list[dict[str, Any]] = field(default_factory=list)
    ci_files: list[dict[str, Any]] = field(default_factory=list)

    def tool(
        self,
        name: str,
        path: str,
        kind: str = "manifest",
        detail: str | None = None,
        line: int | None = None,
    ) -> None:
        """Record that build tool `name` is present, as `path` shows (`kind`: manifest,
        lockfile, ...; `detail`: what in it, by default its file name)."""
        self.build_tools.setdefault(name, set()).add(path)
        evidence = {"path": path, "kind": kind, "detail": detail or path.rpartition("/")[2]}
        self.tool_evidence.setdefault(name, []).append({**evidence, "line": line})

    def ran(self, name: str, path: str, kind: str, detail: str, line: int | None = None) -> None:
        """Record that a script in `path` runs (or, `packageManager`, declares) tool `name`."""
        self.runs.append((name, {"path": path, "kind": kind, "detail": detail, "line": line}))

    def depend(
        self,
        ecosystem: str,
        name: str,
        version: str | None,
        scope: str,
        manifest: str,
        direct: bool = True,
    ) -> None:
        self.dependencies.append(
            Dependency(ecosystem, name, version or None, scope, manifest, direct)
        )

    @contextmanager
    def guarded(self, path: str, kind: str) -> Iterator[None]:
        """Parse one file; if it is malformed, record an entry naming the file and the
        problem and carry on with the rest of the repository."""
        try:
            yield
        except Exception as error:  # untrusted input: no single file may stop the analysis
            problem = str(error) or type(error).__name__
            if not isinstance(error, ValueError):
                problem = f"{type(error).__name__}: {problem}"
            log.debug("malformed %s %s", kind, path, exc_info=True)
            self.manifests.append({"path": path, "kind": kind, "error": f"{path}: {problem}"})


def pinned(spec: str | None) -> str | None:
    """`==1.2.3` -> `1.2.3`; any other specification unchanged."""
    if spec is None:
        return None
    spec = spec.strip()
    if spec.startswith("===") and "," not in spec:
        return spec[3:].strip()
    if spec.startswith("==") and "," not in spec and "*" not in spec:
        return spec[2:].strip()
    return spec or None
