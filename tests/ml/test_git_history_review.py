"""Review of `git_history`'s record start (NUL + 0x1e). With -z every --raw/--numstat entry
ends in a NUL, and the next token is a *path*: a path may begin with 0x1e (any byte but NUL
and '/'), so NUL + 0x1e also occurs inside a commit's entries. Such a path splits the commit;
a crafted one (0x1e, then fields separated by 0x1f, ending in 0x1f) reads as a commit of its
own. And a parse failure while git is still writing is reported as git's failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ml.test_git_history import _git
from timbel_dagster.ml.changes import git_history
from timbel_dagster.ml.changes.metrics import commit_metrics

FAKE = "\x1e" + "f" * 40 + "\x1fMallory\x1f1\x1f2\x1ffix the bug\x1f"


def _repo(tmp_path: Path, *names: str) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("a\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "First")
    for name in names:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("x\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Second")
    return repo


def test_a_path_that_begins_with_the_record_separator_is_a_path(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "\x1eodd.txt")
    commits = list(git_history.iter_commits(repo))
    assert [c.message.strip() for c in commits] == ["First", "Second"]
    assert [f.path for f in commits[1].changes] == ["\x1eodd.txt"]


def test_a_crafted_path_does_not_read_as_a_commit(tmp_path: Path) -> None:
    repo = _repo(tmp_path, FAKE, "b.txt")
    commits = list(git_history.iter_commits(repo))
    assert [c.author for c in commits] == ["Alice", "Alice"]
    assert sorted(f.path for f in commits[1].changes) == sorted([FAKE, "b.txt"])
    assert [m.nf for m in commit_metrics(repo)] == [1, 2]


def test_a_record_that_cannot_be_parsed_is_not_reported_as_gits_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git exits 0 on its own, but the reader stops at the first record it cannot parse and
    closes the pipe while git is still writing: git dies of SIGPIPE, and the error said
    `git log failed ...: no message` rather than what went wrong."""
    repo = _repo(tmp_path, *(f"dir/file_{i:05d}_with_a_long_name.txt" for i in range(3000)))
    broken = git_history._parse

    def parse(record: str) -> git_history.RawCommit:
        if "First" in record:
            raise ValueError("this record is malformed")
        return broken(record)

    monkeypatch.setattr(git_history, "_parse", parse)
    monkeypatch.setattr(git_history, "_CHUNK", 64)
    with pytest.raises(ValueError) as raised:
        list(git_history.iter_commits(repo))
    assert "malformed" in str(raised.value), str(raised.value)
