"""Fixtures for the repository-analysis tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.repo_analysis.helpers import write_files
from timbel_dagster.repo_analysis.analysis import RepositoryAnalysis, analyze_repository


@pytest.fixture
def analyse(tmp_path: Path) -> Callable[[dict[str, str]], RepositoryAnalysis]:
    """Write a repository from a table of files and analyse it."""

    def run(files: dict[str, str]) -> RepositoryAnalysis:
        return analyze_repository(write_files(tmp_path / "repo", files))

    return run
