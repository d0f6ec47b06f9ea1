"""`child_environment`: a child process gets the allowed variables and the caller's values,
nothing else of Timbel's environment (issue 13, review finding)."""

from __future__ import annotations

import pytest

from timbel_dagster.child_env import child_environment


@pytest.fixture(autouse=True)
def parent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-secret")
    monkeypatch.setenv("TIMBEL_DATABASE_URL", "postgresql://u:db-secret@db/w")
    monkeypatch.setenv("TOOL_CACHE", "/cache")
    monkeypatch.setenv("TOOL_LEVEL", "3")
    monkeypatch.setenv("TOOLING", "no")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.delenv("ABSENT", raising=False)


def test_only_allowed_names_and_prefixes_are_copied() -> None:
    environment = child_environment({"LANG", "ABSENT"}, prefixes=("TOOL_",))
    assert environment == {"LANG": "de_DE.UTF-8", "TOOL_CACHE": "/cache", "TOOL_LEVEL": "3"}


def test_extra_values_are_added_and_win_over_the_parents() -> None:
    environment = child_environment({"LANG"}, extra={"LANG": "C.UTF-8", "HOME": "/tmp/empty"})
    assert environment == {"LANG": "C.UTF-8", "HOME": "/tmp/empty"}


def test_nothing_allowed_is_an_empty_environment() -> None:
    assert child_environment() == {}
