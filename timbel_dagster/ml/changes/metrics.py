"""Kamei et al.'s 14 change metrics (TSE 2013, "A large-scale empirical study of just-in-time
quality assurance") and two measures of the changed files' history for every non-merge commit
of a git repository.

The history is read by one streaming `git log` pass (see `git_history`): commits reachable
from HEAD, merges excluded, parents before children and otherwise oldest committer time first.
Merges are skipped because their diffs repeat changes already counted on the merged branch.
Definitions, with the choices Kamei leaves open:

- Subsystem of a file: its top-level directory (`.` for a file at the repository root).
  Directory: its parent directory (`.` at the root). A renamed file counts under its new path.
- ns, nd, nf: distinct subsystems, directories and files the commit changed. A binary file
  counts as a file with 0 lines.
- entropy: Shannon entropy in bits of the distribution of modified lines (added + deleted)
  over the changed files, from 0 to log2(nf). It is 0 when nf <= 1 or no line changed. Files
  with 0 modified lines count in nf. Bits, not Kamei's release's division by log2(nf): the
  warehouse holds one unit for every source, and ApacheJIT and Commit Guru publish bits
  (`risk/data.py` multiplies Kamei's release back); `risk/features.engineer` derives the
  normalised value where the model wants it.
- la, ld: lines added and deleted, summed over the changed files.
- lt: lines of the changed files before the commit, summed. Not read from blobs: each path's
  size is tracked from numstat, size before = running sum of (added - deleted) over the
  earlier commits, starting from 0 when the file is added; a renamed file keeps its size. It
  is exact for linear history of text files; on parallel branches a commit sees the lines its
  siblings added before it in time order, and changes made only inside merge commits are not
  seen (sizes are clamped at 0).
- fix: `FIX_PATTERN` matches the full commit message (Kamei's bug/fix/defect/patch keywords
  and their inflections, case-insensitive, whole words).
- ndev: distinct developers who changed any of the changed files before (union over files).
- age: mean, over the changed files that were changed before, of the days since their last
  change; 0 when every file is new. Intervals are clamped at 0 (clock skew).
- nuc: distinct earlier commits that changed any of the changed files (union over files).
- exp: the author's earlier commits. rexp: the author's earlier commits, each weighted by
  1 / (n + 1), n = whole years (365.25 days) between it and this commit. sexp: the author's
  earlier commits that changed any of this commit's subsystems (distinct commits).

The file-history metrics (not Kamei's; issue 16 asks for history that needs no tuning per
project). Files that were fixed before tend to need fixing again (Kim et al., ICSE 2007,
"Predicting faults from cached history"), and churn during a release's development predicts
its defects (Nagappan & Ball, ICSE 2005; Moser et al., ICSE 2008):

- prior_fixes: distinct earlier commits matching `FIX_PATTERN` (the rule of `fix`) that changed
  any of the changed files (union over files, like nuc).
- recent_churn: lines added + deleted in the changed files by the earlier commits committed at
  most `RECENT_CHURN_DAYS` before this commit, summed over the files. A commit exactly 30 days
  before counts, one a second older does not; an earlier commit with a later committer time
  (clock skew) is 0 days before, so it counts.

A developer is the author name after `.mailmap` (`%aN`). All intervals use committer time,
the order the history is walked in. A renamed file carries its history (authors, commits,
fixes, recent changes, last change) to its new path; a deleted path keeps its history should
it come back. Earlier means walked before: a commit on a parallel branch committed earlier
counts for its siblings, and a merge counts for nothing.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timbel_dagster.ml.changes import git_history
from timbel_dagster.records.delivery import HISTORY_MEASURES

FIX_PATTERN = re.compile(
    r"\b(?:bugs?|bugfix(?:es)?|fix(?:es|ed|ing)?|hotfix(?:es)?|defects?|patch(?:es|ed)?)\b",
    re.IGNORECASE,
)
_DAY = 86_400
_YEAR = 31_557_600  # 365.25 days, in seconds
# recent_churn's window. Nagappan & Ball and Moser et al. measure churn over a release's
# development; a git history has no release boundaries, so a fixed month stands in for one:
# a round number chosen before looking at any data, not tuned on any project.
RECENT_CHURN_DAYS = 30
METRIC_NAMES = (
    "ns", "nd", "nf", "entropy", "la", "ld", "lt", "fix",
    "ndev", "age", "nuc", "exp", "rexp", "sexp",
)  # fmt: skip


@dataclass(frozen=True)
class CommitMetrics:
    """One non-merge commit with its 14 change metrics and its 2 file-history metrics (see the
    module docstring).

    `message` is the first line of the commit message; `files` the paths it changed (after
    renames), kept for per-deployment aggregation and left out of `as_dict`.
    """

    sha: str
    author: str
    authored_at: dt.datetime
    committed_at: dt.datetime
    message: str
    ns: int
    nd: int
    nf: int
    entropy: float
    la: int
    ld: int
    lt: int
    fix: bool
    ndev: int
    age: float
    nuc: int
    exp: int
    rexp: float
    sexp: int
    prior_fixes: int
    recent_churn: int
    files: tuple[str, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 strings, without `files`."""
        return {
            "sha": self.sha,
            "author": self.author,
            "authored_at": self.authored_at.isoformat(),
            "committed_at": self.committed_at.isoformat(),
            "message": self.message,
            **{name: getattr(self, name) for name in (*METRIC_NAMES, *HISTORY_MEASURES)},
        }


def subsystem(path: str) -> str:
    """The top-level directory of `path`, or `.` for a file at the root."""
    head, slash, _ = path.partition("/")
    return head if slash else "."


def directory(path: str) -> str:
    """The parent directory of `path`, or `.` for a file at the root."""
    return path.rpartition("/")[0] or "."


def entropy(modified_lines: Iterable[int]) -> float:
    """Shannon entropy in bits of the lines modified per file (0 to log2(number of files))."""
    counts = list(modified_lines)
    total = sum(counts)
    if len(counts) <= 1 or total == 0:
        return 0.0
    return -sum(c / total * math.log2(c / total) for c in counts if c)


def _recent_experience(times: list[int], now: int) -> float:
    """Sum of 1 / (whole years before `now` + 1) over the sorted commit `times`."""
    total, upper, years = 0.0, len(times), 0
    while upper:
        # Bucket `years` holds the times in (now - (years + 1) * Y, now - years * Y];
        # times after `now` (clock skew) fall in bucket 0.
        lower = bisect_right(times, now - (years + 1) * _YEAR, 0, upper)
        total += (upper - lower) / (years + 1)
        upper, years = lower, years + 1
    return total


@dataclass(slots=True)
class _FileHistory:
    lines: int = 0
    authors: set[str] = field(default_factory=set)
    commits: list[int] = field(default_factory=list)
    fixes: list[int] = field(default_factory=list)  # the fix commits among `commits`
    # Each change's committer time, ascending, and its lines added + deleted: the changes
    # inside a window are one bisect away and the sum reads only them. One entry per change
    # of the file, as `commits` already keeps: the walk's memory stays of the same order.
    change_times: list[int] = field(default_factory=list)
    change_lines: list[int] = field(default_factory=list)
    last_changed: int | None = None

    def lines_since(self, start: int) -> int:
        """Lines added + deleted by the changes committed at or after `start`."""
        times = self.change_times
        if not times or times[-1] < start:  # most files: no change inside the window
            return 0
        return sum(self.change_lines[bisect_left(times, start) :])

    def record_change(self, time: int, lines: int) -> None:
        times = self.change_times
        # Walked in committer-time order, so this appends; only a commit whose committer time
        # is earlier than its parent's (clock skew) is inserted further back.
        if not times or times[-1] <= time:
            times.append(time)
            self.change_lines.append(lines)
        else:
            at = bisect_right(times, time)
            times.insert(at, time)
            self.change_lines.insert(at, lines)


def _union_size(groups: list[Any]) -> int:
    if len(groups) == 1:
        return len(groups[0])
    return len(set().union(*groups))


class _Walker:
    """The state carried along the history: per-file sizes and histories, per-author times."""

    def __init__(self) -> None:
        self.files: dict[str, _FileHistory] = {}
        self.author_times: dict[str, list[int]] = {}
        self.author_subsystems: dict[tuple[str, str], list[int]] = {}
        self.index = 0

    def _history(self, change: git_history.FileChange) -> _FileHistory:
        if change.status == "R":
            history = self.files.pop(change.old_path, None) or _FileHistory()
            self.files[change.path] = history
        else:
            # Not setdefault: that would build (and drop) an empty history per changed file.
            history = self.files.get(change.path)
            if history is None:
                history = self.files[change.path] = _FileHistory()
        if change.status in "AC":
            history.lines = 0
        return history

    def step(self, commit: git_history.RawCommit) -> CommitMetrics:
        now, author = commit.committed_at, commit.author
        changes: dict[str, git_history.FileChange] = {c.path: c for c in commit.changes}
        # Renames first: a path renamed away and re-added in one commit must not share history.
        by_path = {
            c.path: self._history(c)
            for c in sorted(changes.values(), key=lambda c: c.status != "R")
        }
        histories = [by_path[path] for path in changes]
        earlier = [now - h.last_changed for h in histories if h.last_changed is not None]
        subsystems = {subsystem(path) for path in changes}
        times = self.author_times.setdefault(author, [])
        prior_in_subsystems = [
            self.author_subsystems.get((author, s), []) for s in sorted(subsystems)
        ]
        window_start = now - RECENT_CHURN_DAYS * _DAY
        fixed = [h.fixes for h in histories if h.fixes]
        is_fix = FIX_PATTERN.search(commit.message) is not None
        metrics = CommitMetrics(
            sha=commit.sha,
            author=author,
            authored_at=dt.datetime.fromtimestamp(commit.authored_at, dt.UTC),
            committed_at=dt.datetime.fromtimestamp(now, dt.UTC),
            message=commit.message.split("\n", 1)[0].strip(),
            ns=len(subsystems),
            nd=len({directory(path) for path in changes}),
            nf=len(changes),
            entropy=entropy(c.added + c.deleted for c in changes.values()),
            la=sum(c.added for c in changes.values()),
            ld=sum(c.deleted for c in changes.values()),
            lt=sum(h.lines for h in histories),
            fix=is_fix,
            ndev=_union_size([h.authors for h in histories]) if histories else 0,
            age=sum(max(0, e) for e in earlier) / len(earlier) / _DAY if earlier else 0.0,
            nuc=_union_size([h.commits for h in histories]) if histories else 0,
            exp=len(times),
            rexp=_recent_experience(times, now),
            sexp=_union_size(prior_in_subsystems) if prior_in_subsystems else 0,
            prior_fixes=_union_size(fixed) if fixed else 0,
            recent_churn=sum(h.lines_since(window_start) for h in histories),
            files=tuple(changes),
        )
        for change, history in zip(changes.values(), histories, strict=True):
            history.lines = (
                0 if change.status == "D" else max(0, history.lines + change.added - change.deleted)
            )
            history.authors.add(author)
            history.commits.append(self.index)
            if is_fix:
                history.fixes.append(self.index)
            history.record_change(now, change.added + change.deleted)
            history.last_changed = now
        insort(times, now)
        for name in subsystems:
            self.author_subsystems.setdefault((author, name), []).append(self.index)
        self.index += 1
        return metrics


def commit_metrics(
    repo: Path,
    since: dt.datetime | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 5000,
) -> list[CommitMetrics]:
    """The change and file-history metrics of every non-merge commit reachable from HEAD,
    oldest first.

    Args:
        repo: a git work tree (or a directory inside one) or a bare repository.
        since: only commits committed at or after this time are returned; earlier history
            still counts for lt, ndev, age, nuc, the experience and the file-history metrics.
            Naive times are UTC.
        progress: called with the number of commits walked so far every `progress_every`.
        progress_every: how often `progress` is called.

    Returns:
        One `CommitMetrics` per commit, in the order walked (an empty list for a repository
        without commits).

    Raises:
        ValueError: `repo` does not exist or is not a git repository, or git failed.
    """
    git_history.require_repository(repo)
    if not git_history.has_commits(repo):
        return []
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    walker = _Walker()
    found: list[CommitMetrics] = []
    for count, raw in enumerate(git_history.iter_commits(repo), start=1):
        metrics = walker.step(raw)
        if since is None or metrics.committed_at >= since:
            found.append(metrics)
        if progress is not None and count % progress_every == 0:
            progress(count)
    return found
