"""Read a repository whose history lacks some blobs, as a partial clone without its remote
does (the shared mirrors of apache/zeppelin and apache/groovy lack their few largest files).

`git log --numstat` reads both sides of every changed file, so one absent blob stops the
whole walk ("unable to read ..."). A temporary *overlay* repository borrows every object of
the original through `objects/info/alternates` (nothing is copied, the original is only
read) and, with `git replace`, shows each absent blob as a small binary placeholder: the file
still counts as changed, with 0 lines, as a binary file does. Only the benchmark does this;
the product fails loudly on such a repository.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from timbel_dagster.child_env import git_environment
from timbel_dagster.ml.changes.git_history import git

PLACEHOLDER = b"absent from the mirror\x00"  # the NUL makes git count it as binary


def absent_blobs(repo: Path) -> list[str]:
    """The objects reachable from HEAD that the repository does not have."""
    listed = git(repo, "rev-list", "--objects", "--missing=print", "HEAD")
    return [line[1:] for line in listed.splitlines() if line.startswith("?")]


def _git_input(repo: Path, data: bytes, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=data,
        capture_output=True,
        check=True,
        env=git_environment(),
    )
    return done.stdout.decode().strip()


def commits_touching(repo: Path, blobs: set[str]) -> set[str]:
    """The non-merge commits reachable from HEAD whose changes name one of `blobs` (before or
    after); one `git log --raw` pass, which reads no blob."""
    touching, sha = set(), ""
    listed = git(repo, "log", "--no-merges", "--raw", "--no-abbrev", "--no-renames",
                 "--format=commit %H", "HEAD")  # fmt: skip
    for line in listed.splitlines():
        if line.startswith("commit "):
            sha = line[7:]
        elif line.startswith(":"):
            old, new = line.split(" ", 4)[2:4]
            if old in blobs or new in blobs:
                touching.add(sha)
    return touching


@contextmanager
def readable_repository(path: Path, labelled: set[str]) -> Iterator[tuple[Path, str]]:
    """`path` itself when it has every object HEAD needs; else an overlay (see the module
    docstring), removed afterwards. Also yields a note saying what was replaced ("" if
    nothing), and how many commits and `labelled` commits it touches."""
    absent = absent_blobs(path)
    if not absent:
        yield path, ""
        return
    objects = Path(git(path, "rev-parse", "--absolute-git-dir").strip()) / "objects"
    head = git(path, "rev-parse", "HEAD").strip()
    with tempfile.TemporaryDirectory(prefix="timbel-overlay-") as scratch:
        overlay = Path(scratch)
        git(overlay, "init", "-q", "--bare")
        (overlay / "objects" / "info" / "alternates").write_text(f"{objects}\n")
        placeholder = _git_input(overlay, PLACEHOLDER, "hash-object", "-w", "--stdin")
        updates = "".join(f"create refs/replace/{sha} {placeholder}\n" for sha in absent)
        _git_input(overlay, updates.encode(), "update-ref", "--stdin")
        git(overlay, "update-ref", "--no-deref", "HEAD", head)
        touched = commits_touching(overlay, set(absent))
        note = (
            f"{len(absent)} blobs absent from {path} (a partial clone) are read as binary "
            f"placeholders (0 lines) through an overlay repository; they touch "
            f"{len(touched)} commits, {len(touched & labelled)} of them labelled"
        )
        yield overlay, note
