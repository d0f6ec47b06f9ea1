"""Read a git repository's history through the `git` command: one streaming `git log` pass.

Only the `git` executable is used (no GitPython/pydriller). The history is read with

    git log -z --raw --numstat -M --root --no-merges --date-order --reverse HEAD

so each non-merge commit reachable from HEAD arrives once, parents before children (oldest
first, otherwise in committer-time order), with every changed file's status (added, deleted,
modified, renamed) and its added/deleted line counts. Rename detection (`-M`, git's default 50%
similarity) is on, forced with `-c diff.renames=true` whatever the user's configuration says,
so that a moved file keeps its history and its churn is the real edit rather than "all lines
deleted here, all added there". Binary files (`-` in numstat) are changed files with 0 lines.
Paths are not quoted (`-z`); text is decoded as UTF-8 with invalid bytes replaced.
A commit message may hold any byte but NUL (real ones quote binary output), so a commit starts
only where the record separator follows a NUL (or opens the stream): with `-z` every header
and every --raw/--numstat entry ends in one.
"""

from __future__ import annotations

import codecs
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from timbel_dagster.child_env import git_environment

# Record separator before each commit, unit separator between header fields; the message (%B)
# comes last and ends with a unit separator that -z follows with a NUL.
_FORMAT = "%x00%x1e%H%x1f%aN%x1f%at%x1f%ct%x1f%B%x1f"
# Where a commit starts: the NUL that ends the previous commit's last entry (or header), then
# the format's NUL and 0x1e. A NUL + 0x1e alone is not enough: with -z every entry's path
# follows a NUL and may begin with 0x1e. Two NULs in a row never occur otherwise (no path is
# empty, no message holds a NUL), so the triple is unambiguous.
_START = "\x00\x00\x1e"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file a commit changed: its path after the change (`old_path` differs for renames),
    git's status letter (A, D, M, R, T, C) and the lines added and deleted (0 for binaries)."""

    path: str
    old_path: str
    status: str
    added: int
    deleted: int
    binary: bool


@dataclass(frozen=True, slots=True)
class RawCommit:
    """A non-merge commit as `git log` reports it; times are Unix seconds."""

    sha: str
    author: str
    authored_at: int
    committed_at: int
    message: str
    changes: tuple[FileChange, ...]


def git(repo: Path, *args: str) -> str:
    """Run one git command in `repo` and return its standard output.

    Raises:
        ValueError: git failed; the message carries git's own first error line.
    """
    result = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=False,
        env=git_environment(),
    )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no error message"])[-1]
        raise ValueError(f"git {args[0]} failed in {repo}: {reason}")
    return result.stdout


def require_repository(repo: Path) -> Path:
    """`repo` as given, after checking that it exists and is a git repository (work tree,
    subdirectory of one, or bare).

    Raises:
        ValueError: naming the path.
    """
    if not repo.exists():
        raise ValueError(f"{repo} does not exist, so it is not a git repository")
    probe = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--git-dir"],
        capture_output=True,
        text=True,
        check=False,
        env=git_environment(),
    )
    if probe.returncode != 0:
        raise ValueError(f"{repo} is not a git repository")
    return repo


def has_commits(repo: Path) -> bool:
    """Whether HEAD points at a commit (a freshly initialised repository has none)."""
    probe = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
        capture_output=True,
        check=False,
        env=git_environment(),
    )
    return probe.returncode == 0


def resolve_commit(repo: Path, ref: str) -> str:
    """The full sha of the commit `ref` (a sha, abbreviation, tag or branch) names.

    Raises:
        ValueError: `ref` names no commit in `repo`.
    """
    probe = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", "--end-of-options",
         f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
        env=git_environment(),
    )  # fmt: skip
    if probe.returncode != 0 or not ref:
        raise ValueError(f"deployment {ref!r} is not a commit in {repo}")
    return probe.stdout.strip()


def rev_list(repo: Path, tip: str, exclude: str | None = None) -> list[str]:
    """Shas of the non-merge commits reachable from `tip` but not from `exclude`."""
    # `--end-of-options`: a stored commit that starts with `-` is a revision, never an option.
    args = ["rev-list", "--no-merges", "--end-of-options", tip]
    if exclude:
        args.append(f"^{exclude}")
    return git(repo, *args).split()


def tags(repo: Path, pattern: str) -> list[tuple[str, str, int]]:
    """(tag, commit sha, commit time) of the tags matching the glob `pattern` that point at a
    commit (annotated tags are peeled), oldest commit first, ties by tag name."""
    fields = "%(refname:strip=2)%09%(objecttype)%09%(objectname)%09%(committerdate:unix)"
    peeled = "%(*objecttype)%09%(*objectname)%09%(*committerdate:unix)"
    found = []
    # `--end-of-options`: a pattern such as `--points-at=HEAD` is a pattern, never an option.
    listed = git(
        repo, "tag", "--list", f"--format={fields}%09{peeled}", "--end-of-options", pattern
    )
    for line in listed.splitlines():
        name, kind, sha, time, peeled_kind, peeled_sha, peeled_time = line.split("\t")
        if peeled_kind:
            kind, sha, time = peeled_kind, peeled_sha, peeled_time
        if kind == "commit":
            found.append((name, sha, int(time)))
    return sorted(found, key=lambda tag: (tag[2], tag[0]))


def _changes(body: str) -> tuple[FileChange, ...]:
    """Pair the --raw entries (status per path) with the --numstat entries (line counts)."""
    tokens = body.lstrip("\n").split("\x00")
    statuses: dict[str, tuple[str, str]] = {}
    changes = []
    i, end = 0, len(tokens)
    while i < end:
        token = tokens[i]
        if not token:
            i += 1
        elif token[0] == ":":
            # ":old_mode new_mode old_sha new_sha STATUS" then the path(s).
            status = token.rsplit(" ", 1)[1][:1]
            if status in "RC":
                statuses[tokens[i + 2]] = (status, tokens[i + 1])
                i += 3
            else:
                statuses[tokens[i + 1]] = (status, tokens[i + 1])
                i += 2
        else:
            added, deleted, path = token.split("\t", 2)
            if path:
                i += 1
            else:  # a rename: "added\tdeleted\t" then the old and the new path
                path = tokens[i + 2]
                i += 3
            status, old_path = statuses.get(path, ("M", path))
            binary = added == "-"
            changes.append(
                FileChange(
                    path,
                    old_path,
                    status,
                    0 if binary else int(added),
                    0 if binary else int(deleted),
                    binary,
                )
            )
    return tuple(changes)


def _parse(record: str) -> RawCommit:
    header, _, body = record.partition("\x1f\x00")
    sha, author, authored, committed, message = header.split("\x1f", 4)
    return RawCommit(sha, author, int(authored), int(committed), message, _changes(body))


def _records(stream: Iterator[bytes]) -> Iterator[str]:
    """Split the byte stream where commits start (`_START`) without re-scanning a long
    record."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    partial: list[str] = []
    # The stream opens with the format's NUL + 0x1e, which no entry's NUL precedes; and a
    # chunk may end inside the start, so its trailing NULs wait for the next chunk.
    held = "\x00"
    for chunk in stream:
        text = held + decoder.decode(chunk)
        held = "\x00\x00" if text.endswith("\x00\x00") else "\x00" if text.endswith("\x00") else ""
        parts = text[: len(text) - len(held)].split(_START)
        partial.append(parts[0])
        for part in parts[1:]:
            record = "".join(partial)
            if record:  # the NUL is the record's own end (after its header or last entry)
                yield record + "\x00"
            partial = [part]
    partial.append(held + decoder.decode(b"", final=True))
    yield "".join(partial)


def _missing_objects_hint(reason: str) -> str:
    """What to do when git could not read an object: line counts need every changed file's
    contents, which a partial (blobless) clone fetches on demand from its remote, and that
    fails when the remote is unreachable or the clone was copied without it."""
    if "unable to read" in reason or "could not fetch" in reason or "missing blob" in reason:
        return (
            " (the repository lacks objects the line counts need: is it a partial clone? "
            "Run `git fetch --refetch` with its remote reachable, or point Timbel at a full "
            "clone)"
        )
    return ""


def iter_commits(repo: Path) -> Iterator[RawCommit]:
    """Every non-merge commit reachable from HEAD, oldest first, from one `git log` process.

    Raises:
        ValueError: git failed (the message carries git's last error line).
    """
    command = [
        "git", "-C", str(repo), "-c", "diff.renames=true", "-c", "log.showSignature=false",
        "-c", "core.quotepath=off", "log", "-z", "--raw", "--numstat", "-M", "--root",
        "--no-merges", "--date-order", "--reverse", "--no-color", "--no-ext-diff",
        "--no-textconv", f"--format={_FORMAT}", "HEAD", "--",
    ]  # fmt: skip
    # stderr goes to a file: warnings (e.g. rename limits) must not fill a pipe nobody reads.
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, env=git_environment()
        )
        assert process.stdout is not None
        unparsed: ValueError | None = None
        try:
            chunks = iter(lambda: process.stdout.read(_CHUNK), b"")  # type: ignore[union-attr]
            for record in _records(chunks):
                if record:
                    yield _parse(record)
        except ValueError as error:
            # git stopping half way (e.g. an object it cannot read) cuts its last record
            # short: its own error, read below, is the one to report, not the parse failure.
            unparsed = error
        finally:
            process.stdout.close()
            returncode = process.wait()
        # Killed by SIGPIPE: the pipe was closed because a record could not be parsed while
        # git was still writing; that failure is the one to report.
        if unparsed is not None and returncode in (0, -signal.SIGPIPE):
            raise unparsed
        if returncode != 0:
            errors.seek(0)
            lines = errors.read().decode(errors="replace").strip().splitlines()
            reason = (lines or ["no message"])[-1]
            raise ValueError(
                f"git log failed in {repo}: {reason}{_missing_objects_hint(reason)}"
            ) from unparsed
