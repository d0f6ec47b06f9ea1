"""A user's tag pattern or a stored commit never reaches git as an option (issue #13,
finding 8): `timbel ml analyze-changes --deploy-tags '--points-at=HEAD'`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.ml.test_change_metrics import _commit, _git, _write
from timbel_dagster.cli.app import main
from timbel_dagster.ml.changes import git_history
from timbel_dagster.ml.changes.deployments import deployment_tags

REFUSED = "tag pattern '--points-at=HEAD' starts with '-', which no tag name can"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    for day in range(2):
        _write(path, "app.py", f"v{day}\n")
        _commit(path, f"Change {day}", "alice", day)
    _git(path, "tag", "v1")  # at HEAD: `--points-at=HEAD` as an option would list it
    return path


def test_a_pattern_that_looks_like_an_option_is_a_pattern(repo: Path) -> None:
    assert [name for name, _, _ in git_history.tags(repo, "v*")] == ["v1"]
    assert git_history.tags(repo, "--points-at=HEAD") == []


def test_a_revision_that_looks_like_an_option_is_refused_by_git(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD").strip()
    assert git_history.rev_list(repo, head) == _git(repo, "rev-list", "HEAD").split()
    with pytest.raises(ValueError) as raised:
        git_history.rev_list(repo, "--all")
    assert str(raised.value) == (
        f"git rev-list failed in {repo}: fatal: option '--all' must come before non-option "
        "arguments"
    )


def test_deployment_tags_refuse_a_pattern_starting_with_a_dash(repo: Path) -> None:
    with pytest.raises(ValueError) as raised:
        deployment_tags(repo, "--points-at=HEAD")
    assert str(raised.value) == REFUSED


@pytest.mark.parametrize("args", [["--deploy-tags", "--points-at=HEAD"],
                                  ["--deploy-tags=--points-at=HEAD"]])  # fmt: skip
def test_the_cli_refuses_it_in_one_line(repo: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, ["analyze-changes", str(repo), *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"timbel: error: {REFUSED}"
