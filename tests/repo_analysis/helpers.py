"""Repositories written into a directory from {relative path: text} tables, and look-ups
into an analysis."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from timbel_dagster.repo_analysis.analysis import RepositoryAnalysis


def write_files(root: Path, files: dict[str, str]) -> Path:
    """Write each file (dedented) under `root`, creating directories."""
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def deps(analysis: RepositoryAnalysis, ecosystem: str | None = None) -> dict[str, tuple]:
    """name -> (version, scope, manifest, direct) of the analysis's dependencies."""
    return {
        d.name: (d.version, d.scope, d.manifest, d.direct)
        for d in analysis.dependencies
        if ecosystem is None or d.ecosystem == ecosystem
    }


def manifest(analysis: RepositoryAnalysis, path: str) -> dict[str, Any]:
    """The one manifest entry for `path`."""
    found = [m for m in analysis.manifests if m["path"] == path]
    assert len(found) == 1, found
    return found[0]


def tool_paths(analysis: RepositoryAnalysis) -> list[dict[str, Any]]:
    """{name, paths} of each build tool (without its evidence and use)."""
    return [{"name": t["name"], "paths": t["paths"]} for t in analysis.build_tools]


def frameworks(analysis: RepositoryAnalysis) -> set[tuple[str, str | None]]:
    """(name, version) of every framework found."""
    return {(f["name"], f["version"]) for f in analysis.frameworks}
