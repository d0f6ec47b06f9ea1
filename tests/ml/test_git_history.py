"""Reading real histories: commit messages that carry git log's own separator bytes, and
bare repositories.

Real messages have them: one Apache Zeppelin commit message quotes binary npm output that
contains the record separator (0x1e) and the unit separator (0x1f) that `git_history` puts
between commits and between header fields."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from timbel_dagster.ml.changes import git_history
from timbel_dagster.ml.changes.metrics import commit_metrics

GARBLED = "Quote npm output\n\nnpm ERR! \x1e\x1f[oi\x1f6\x1e\x1e\x1fEnd\n"


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Alice",
        "GIT_AUTHOR_EMAIL": "alice@example.org",
        "GIT_COMMITTER_NAME": "Alice",
        "GIT_COMMITTER_EMAIL": "alice@example.org",
        "GIT_AUTHOR_DATE": "@1704067200 +0000",
        "GIT_COMMITTER_DATE": "@1704067200 +0000",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four commits; the second one's message carries 0x1e and 0x1f bytes, the third changes
    nothing (its header is the whole record)."""
    repo = tmp_path_factory.mktemp("separators")
    _git(repo, "init", "-q", "-b", "main")
    for number, (path, message) in enumerate(
        [("a.txt", "First"), ("b.txt", GARBLED), ("c.txt", "Third")], start=1
    ):
        (repo / path).write_text("x\n" * number)
        (repo / "message").write_text(message)
        _git(repo, "add", path)
        _git(repo, "commit", "-q", "--cleanup=verbatim", "-F", "message")
        if number == 2:
            _git(repo, "commit", "-q", "--allow-empty", "-m", "Empty")
    return repo


def test_separator_bytes_in_a_message_do_not_split_the_commit(repo: Path) -> None:
    commits = list(git_history.iter_commits(repo))
    assert [c.message for c in commits] == ["First", GARBLED, "Empty\n", "Third"]
    assert [[(f.path, f.added) for f in c.changes] for c in commits] == [
        [("a.txt", 1)],
        [("b.txt", 2)],
        [],
        [("c.txt", 3)],
    ]
    assert [m.la for m in commit_metrics(repo)] == [1, 2, 0, 3]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_records_are_the_same_whatever_the_chunk_boundaries(repo: Path, chunk: int) -> None:
    """The separator is two bytes (NUL, 0x1e); a chunk may end between them."""
    stream = subprocess.run(
        ["git", "-C", str(repo), "log", "-z", "--raw", "--numstat", "--reverse",
         f"--format={git_history._FORMAT}", "HEAD"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    pieces = (stream[i : i + chunk] for i in range(0, len(stream), chunk))
    records = [git_history._parse(r) for r in git_history._records(pieces) if r]
    assert [r.message for r in records] == ["First", GARBLED, "Empty\n", "Third"]
    assert [len(r.changes) for r in records] == [1, 1, 0, 1]


def test_a_bare_clone_reads_like_its_work_tree(repo: Path, tmp_path: Path) -> None:
    """A user may point Timbel at a bare mirror: same commits, same metrics."""
    _git(tmp_path, "clone", "-q", "--bare", str(repo), "mirror.git")
    assert commit_metrics(tmp_path / "mirror.git") == commit_metrics(repo)


def test_a_partial_clone_whose_remote_is_gone_says_what_is_missing(tmp_path: Path) -> None:
    """A blobless clone fetches file contents on demand; with its remote gone, git log's line
    counts fail, and the error says why and what to do rather than only git's last line."""
    source = tmp_path / "source"
    source.mkdir()
    _git(source, "init", "-q", "-b", "main")
    (source / "a.txt").write_text("one\n")
    _git(source, "add", "a.txt")
    _git(source, "commit", "-q", "-m", "one")
    (source / "a.txt").write_text("one\ntwo\n")
    _git(source, "commit", "-q", "-am", "two")
    _git(source, "config", "uploadpack.allowFilter", "true")
    _git(tmp_path, "clone", "-q", "--no-checkout", "--filter=blob:none", source.as_uri(), "copy")
    source.rename(tmp_path / "gone")
    with pytest.raises(ValueError, match=r"git log failed .*lacks objects.*partial clone"):
        list(git_history.iter_commits(tmp_path / "copy"))
