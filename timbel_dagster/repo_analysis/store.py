"""Repository analyses in the warehouse: `repository_analyses` and `repository_dependencies`.

An analysis replaces what was stored of its repository, inside the caller's transaction: the
repository's dependency rows are deleted and the new ones inserted, and its analysis row is
upserted (so it keeps its id and `created_at`).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbel_dagster.child_env import git_environment
from timbel_dagster.repo_analysis.analysis import (
    CLONE_TIMEOUT_SECONDS,
    RepositoryAnalysis,
    _clone,
    analyze_repository,
    is_git_url,
)
from timbel_dagster.repo_analysis.walk import DEFAULT_MAX_FILE_BYTES
from timbel_dagster.resources.git_repositories import public_url
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.store.upsert import bulk_upsert

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

ANALYSES = "repository_analyses"
DEPENDENCIES = "repository_dependencies"
DEPENDENCY_KEY = ("repository", "ecosystem", "name", "version", "manifest")
# When one manifest names a package under several scopes, the row keeps the one that ships.
_SCOPE_RANK = {"runtime": 0, "dev": 1, "test": 2}
_GIT_TIMEOUT_SECONDS = 30.0


def head_commit(path: Path) -> str | None:
    """The HEAD commit of the git work tree whose top is `path`, else None (not a git
    checkout, a directory inside another repository's tree, git missing or refusing)."""
    try:
        completed = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
            env=git_environment(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = completed.stdout.split()
    if completed.returncode != 0 or len(lines) != 2:
        return None
    top, commit = lines
    return commit if Path(top).resolve() == path.resolve() else None


def analyse(
    path_or_git_url: str,
    *,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    clone_timeout_seconds: float = CLONE_TIMEOUT_SECONDS,
    workdir: Path | None = None,
) -> tuple[RepositoryAnalysis, str | None]:
    """Analyse a checkout, or a git URL cloned (`--depth 1`) into a temporary directory, and
    read the commit analysed.

    Args:
        path_or_git_url: A directory, or a URL git can clone.
        max_file_bytes: Files larger than this are never read.
        clone_timeout_seconds: The longest the clone may take.
        workdir: Where the temporary clone goes (default: the system's temporary directory).

    Returns:
        The analysis (its `repository` is the resolved path or the URL without credentials)
        and the HEAD commit, or None when the directory is not the top of a git work tree.

    Raises:
        ValueError: The path does not exist or is not a directory, or the clone failed.
    """
    if not is_git_url(path_or_git_url):
        path = Path(path_or_git_url)
        analysis = analyze_repository(path, max_file_bytes)
        return analysis, head_commit(path)
    with tempfile.TemporaryDirectory(prefix="timbel-repo-", dir=workdir) as scratch:
        checkout = Path(scratch) / "repository"
        _clone(path_or_git_url, checkout, clone_timeout_seconds)
        commit = head_commit(checkout)
        name = public_url(path_or_git_url)
        return analyze_repository(checkout, max_file_bytes, name=name), commit


def dependency_rows(analysis: RepositoryAnalysis, source: str) -> list[dict[str, Any]]:
    """One row per (ecosystem, name, version, manifest) of the analysis: a package a manifest
    names under several scopes keeps the one that ships, and is direct if any entry is."""

    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for d in analysis.dependencies:
        key = (analysis.repository, d.ecosystem, d.name, d.version, d.manifest)
        row = rows.get(key)
        if row is None:
            rows[key] = {
                "id": stable_id(DEPENDENCIES, *key),
                "source": source,
                **dict(zip(DEPENDENCY_KEY, key, strict=True)),
                "scope": d.scope,
                "direct": d.direct,
            }
            continue
        if _SCOPE_RANK.get(d.scope, 3) < _SCOPE_RANK.get(row["scope"], 3):
            row["scope"] = d.scope
        row["direct"] = row["direct"] or d.direct
    return list(rows.values())


def analysis_row(
    analysis: RepositoryAnalysis,
    *,
    source: str,
    commit: str | None,
    sbom: dict[str, Any],
    analysed_at: dt.datetime,
) -> dict[str, Any]:
    """The `repository_analyses` row of an analysis."""

    return {
        "id": stable_id(ANALYSES, analysis.repository),
        "source": source,
        "repository": analysis.repository,
        "analysed_at": analysed_at,
        "commit": commit,
        "files_scanned": analysis.files_scanned,
        "languages": analysis.languages,
        "frameworks": analysis.frameworks,
        "build_tools": analysis.build_tools,
        "dockerfiles": analysis.dockerfiles,
        "ci_files": analysis.ci_files,
        "manifests": analysis.manifests,
        "sbom": sbom,
    }


def _check_lengths(table: Table, rows: list[dict[str, Any]], repository: str) -> None:
    """Refuse a value longer than its column (PostgreSQL would fail mid-write; SQLite would
    store it), naming the repository and the row."""
    limits = [(c.name, c.type.length) for c in table.c if getattr(c.type, "length", None)]
    for row in rows:
        for column, limit in limits:
            value = row.get(column)
            if isinstance(value, str) and len(value) > limit:
                what = f"dependency {row['name']!r} ({row['manifest']})" if "name" in row else ""
                raise ValueError(
                    f"{repository}: {table.name}.{column} of {what or 'the analysis'} is "
                    f"{len(value)} characters long, more than the {limit} the warehouse stores"
                )


def store_analysis(
    connection: Connection,
    analysis: RepositoryAnalysis,
    *,
    source: str,
    commit: str | None,
    sbom: dict[str, Any],
    analysed_at: dt.datetime | None = None,
) -> dict[str, int]:
    """Replace what is stored of `analysis.repository`, inside the caller's transaction.

    Args:
        connection: An open connection inside a transaction.
        analysis: A finished analysis.
        source: What the rows say in `source` (`sample`, `local`, `git`).
        commit: The commit analysed, when known.
        sbom: The analysis's CycloneDX document.
        analysed_at: When it was analysed (default: now).

    Returns:
        `dependencies` (rows stored now) and `dependencies_before` (rows replaced).

    Raises:
        ValueError: A value does not fit its column; nothing is written.
    """
    from sqlalchemy import delete

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Base

    analyses = Base.metadata.tables[ANALYSES]
    dependencies = Base.metadata.tables[DEPENDENCIES]
    moment = (analysed_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    row = analysis_row(analysis, source=source, commit=commit, sbom=sbom, analysed_at=moment)
    rows = dependency_rows(analysis, source)
    _check_lengths(analyses, [row], analysis.repository)
    _check_lengths(dependencies, rows, analysis.repository)
    removed = connection.execute(
        delete(dependencies).where(dependencies.c.repository == analysis.repository)
    ).rowcount
    bulk_upsert(connection, dependencies, rows, DEPENDENCY_KEY)
    bulk_upsert(connection, analyses, [row], ("repository",))
    return {"dependencies": len(rows), "dependencies_before": removed}
