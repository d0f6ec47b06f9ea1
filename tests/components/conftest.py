"""Fixtures for the repository-analysis tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.components.helpers import write_files
from timbel_dagster.components.analysis import RepositoryAnalysis, analyze_repository


@pytest.fixture
def analyse(tmp_path: Path) -> Callable[[dict[str, str]], RepositoryAnalysis]:
    """Write a repository from a table of files and analyse it."""

    def run(files: dict[str, str]) -> RepositoryAnalysis:
        return analyze_repository(write_files(tmp_path / "repo", files))

    return run
