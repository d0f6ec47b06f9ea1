"""Component analysis of a repository: languages, frameworks, build tools, manifests,
dependencies, Dockerfiles and CI files, from one walk of its tree."""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timbel_dagster.repo_analysis import (
    ci_files,
    containers,
    dockerfiles,
    manifests_dotnet,
    manifests_go_rust,
    manifests_gradle,
    manifests_js,
    manifests_maven,
    manifests_python,
    requirements_txt,
    tool_usage,
)
from timbel_dagster.repo_analysis.frameworks import detect
from timbel_dagster.repo_analysis.languages import language_bytes
from timbel_dagster.repo_analysis.lockfiles_js import LOCKFILE_TOOLS
from timbel_dagster.repo_analysis.model import Dependency, Findings
from timbel_dagster.repo_analysis.walk import DEFAULT_MAX_FILE_BYTES, walk
from timbel_dagster.resources.git_repositories import failure, is_git_url, public_url, run_git

log = logging.getLogger(__name__)

CLONE_TIMEOUT_SECONDS = 600.0


@dataclass
class RepositoryAnalysis:
    """What a repository is made of. `to_dict()` is the `timbel analyze-repo --json` shape."""

    repository: str
    files_scanned: int
    languages: dict[str, int] = field(default_factory=dict)
    frameworks: list[dict[str, Any]] = field(default_factory=list)
    build_tools: list[dict[str, Any]] = field(default_factory=list)
    manifests: list[dict[str, Any]] = field(default_factory=list)
    dependencies: list[Dependency] = field(default_factory=list)
    dockerfiles: list[dict[str, Any]] = field(default_factory=list)
    ci_files: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The analysis as JSON-ready data, with exactly the documented keys."""
        return {
            "repository": self.repository,
            "files_scanned": self.files_scanned,
            "languages": self.languages,
            "frameworks": self.frameworks,
            "build_tools": self.build_tools,
            "manifests": self.manifests,
            "dependencies": [d.to_dict() for d in self.dependencies],
            "dockerfiles": self.dockerfiles,
            "ci_files": self.ci_files,
        }


def analyze_repository(
    path: Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, name: str | None = None
) -> RepositoryAnalysis:
    """Analyse the repository checked out at `path`.

    Args:
        path: The repository's top directory.
        max_file_bytes: Files larger than this are never read (a manifest that large is
            reported with an error).
        name: What to call the repository in the result (default: the path).

    Returns:
        The analysis. A malformed manifest is one entry with an `error`; it does not stop
        the rest.

    Raises:
        ValueError: `path` does not exist or is not a directory.
    """
    started = time.perf_counter()
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory")
    tree = walk(path, max_file_bytes)
    findings = Findings()
    ci_files.collect(tree, findings)
    dockerfiles.collect(tree, findings)  # before package.json: its RUN lines break lockfile ties
    manifests_js.collect(tree, findings)
    manifests_maven.collect(tree, findings)
    manifests_gradle.collect(tree, findings)
    requirements_txt.collect(tree, findings)
    manifests_python.collect(tree, findings)
    manifests_go_rust.collect(tree, findings)
    manifests_dotnet.collect(tree, findings)
    not_kubernetes = {f["path"] for f in findings.ci_files} | {
        p for p in tree.files if p.rpartition("/")[2] in LOCKFILE_TOOLS
    }
    containers.collect(tree, findings, not_kubernetes)
    analysis = RepositoryAnalysis(
        repository=name or str(path.resolve()),
        files_scanned=len(tree.files),
        languages=language_bytes(tree.files),
        frameworks=detect(findings.dependencies, findings.framework_hints),
        build_tools=tool_usage.report(findings),
        manifests=sorted(findings.manifests, key=lambda m: (m["path"], m["kind"])),
        dependencies=sorted(
            set(findings.dependencies),
            key=lambda d: (d.ecosystem, d.name, d.manifest, d.version or "", d.scope),
        ),
        dockerfiles=findings.dockerfiles,
        ci_files=sorted(findings.ci_files, key=lambda c: c["path"]),
    )
    analysis.seconds = time.perf_counter() - started
    log.info(
        "analysed %s: %d files, %d manifests, %d dependencies in %.2fs",
        analysis.repository,
        analysis.files_scanned,
        len(analysis.manifests),
        len(analysis.dependencies),
        analysis.seconds,
    )
    return analysis


def analyze_source(
    path_or_git_url: str,
    workdir: Path | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    timeout_seconds: float = CLONE_TIMEOUT_SECONDS,
) -> RepositoryAnalysis:
    """Analyse a local checkout, or a git URL cloned (`--depth 1`) into a temporary directory.

    Args:
        path_or_git_url: A directory, or a URL git can clone (https, ssh, file, scp-like).
        workdir: Where the temporary clone goes (default: the system's temporary directory).
        max_file_bytes: See `analyze_repository`.
        timeout_seconds: The longest the clone may take.

    Returns:
        The analysis; for a URL, `repository` is the URL without its credentials
        (`public_url`) and the clone is removed afterwards.

    Raises:
        ValueError: The path does not exist, or the clone failed (the message names the URL,
            without its credentials, and git's reason).
    """
    if not is_git_url(path_or_git_url):
        return analyze_repository(Path(path_or_git_url), max_file_bytes)
    with tempfile.TemporaryDirectory(prefix="timbel-repo-", dir=workdir) as scratch:
        checkout = Path(scratch) / "repository"
        _clone(path_or_git_url, checkout, timeout_seconds)
        return analyze_repository(checkout, max_file_bytes, name=public_url(path_or_git_url))


def _clone(url: str, checkout: Path, timeout_seconds: float) -> None:
    # `--` keeps a URL from being read as an option; `run_git` refuses `ext::` and prompts,
    # and gives git the URL's credentials through its environment, never its arguments.
    shown = public_url(url)
    command = ["clone", "--depth", "1", "--quiet", "--no-tags", "--", shown, str(checkout)]
    try:
        completed = run_git(command, timeout=timeout_seconds, url=url)
    except FileNotFoundError:
        raise ValueError(f"cannot clone {shown}: git is not installed") from None
    except subprocess.TimeoutExpired:
        raise ValueError(f"cloning {shown} took longer than {timeout_seconds:.0f}s") from None
    if completed.returncode != 0:
        raise ValueError(f"git clone of {shown} failed: {failure(completed)}")
