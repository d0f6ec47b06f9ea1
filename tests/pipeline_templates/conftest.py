"""The real Groovy compiler for Jenkinsfile tests: Debian's `groovy` on its JDK 17.

Each JVM start costs about a second, so tests batch their Jenkinsfiles into module-scoped
fixtures (one `check_jenkinsfiles` call, one JVM) and assert on the collected results.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import missing_service
from timbel_dagster.pipeline_templates.jenkinsfile_check import find_groovy, find_java_home

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jenkinsfiles"


@pytest.fixture(scope="session")
def groovy() -> str:
    """The groovy executable; skips locally and fails under CI=true when it is missing."""
    executable = find_groovy()
    if executable is None:
        missing_service("groovy is not installed (apt-get install groovy)")
    if find_java_home() is None:
        missing_service("no Debian OpenJDK under /usr/lib/jvm (apt-get install openjdk-17-jre)")
    assert executable is not None
    return executable
