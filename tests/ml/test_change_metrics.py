"""Kamei change metrics and the file-history metrics on small git repositories built with
known authors, dates and edits, on this project's own history, per deployment, through the
CLI and into the warehouse."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from fractions import Fraction
from math import log2
from pathlib import Path

import pytest

from tests.conftest import missing_service
from timbel_dagster.ml.changes.deployments import aggregate_per_deployment, deployment_tags
from timbel_dagster.ml.changes.metrics import (
    FIX_PATTERN,
    METRIC_NAMES,
    RECENT_CHURN_DAYS,
    CommitMetrics,
    commit_metrics,
    entropy,
)
from timbel_dagster.records.delivery import HISTORY_MEASURES

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
DAY = 86_400
ROOT = Path(__file__).resolve().parents[2]


def _h(*shares: float) -> float:
    return -sum(p * log2(p) for p in shares if p)


def _git(repo: Path, *args: str, who: str = "alice", day: float = 0, authored: float | None = None):
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": who.title(),
        "GIT_AUTHOR_EMAIL": f"{who}@example.org",
        "GIT_COMMITTER_NAME": who.title(),
        "GIT_COMMITTER_EMAIL": f"{who}@example.org",
        "GIT_AUTHOR_DATE": f"@{int(T0 + (day if authored is None else authored) * DAY)} +0000",
        "GIT_COMMITTER_DATE": f"@{int(T0 + day * DAY)} +0000",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


def _write(repo: Path, path: str, content: str | bytes) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)


def _lines(prefix: str, count: int) -> str:
    return "".join(f"{prefix}{i}\n" for i in range(count))


def _commit(repo: Path, message: str, who: str, day: float, **kwargs: float) -> None:
    _git(repo, "add", "-A", who=who, day=day)
    _git(repo, "commit", "-q", "-m", message, who=who, day=day, **kwargs)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight non-merge commits and one merge, with tags v1 (C3), v2 (C5, annotated), v10
    (the merge): rename, binary file, deletion, a side branch, year-old experience."""
    repo = tmp_path_factory.mktemp("history")
    _git(repo, "init", "-q", "-b", "main")
    _write(repo, "README.md", "a\nb\n")
    _write(repo, "src/app.py", _lines("line", 10))
    _write(repo, "src/util.py", _lines("u", 8))
    _write(repo, "logo.png", b"\x89PNG\x00\x01\x02")
    _commit(repo, "Initial import", "alice", 0)  # C1
    _write(repo, "src/app.py", "X0\nX1\n" + _lines("line", 10)[12:] + _lines("new", 3))
    _commit(repo, "Fix bug in app", "bob", 10, authored=9)  # C2
    _write(repo, "README.md", "a\nb\nc\n")
    _write(repo, "docs/guide/intro.md", _lines("i", 3))
    _write(repo, "src/util.py", _lines("u", 7))
    _commit(repo, "Add docs and tests", "alice", 20)  # C3
    _git(repo, "tag", "v1")
    (repo / "lib").mkdir()
    _git(repo, "mv", "src/util.py", "lib/helpers.py")
    _write(repo, "lib/helpers.py", "U0\n" + _lines("u", 7)[3:])
    (repo / "logo.png").unlink()
    _commit(repo, "Rename util to helpers", "bob", 400)  # C4
    _write(repo, "lib/helpers.py", "U0\n" + _lines("u", 7)[3:] + "h1\nh2\n")
    _write(repo, "src/app.py", "X0\nX1\n" + _lines("line", 10)[12:])
    _commit(repo, "Patch helpers; defect 12", "carol", 401)  # C5
    _git(repo, "tag", "-a", "v2", "-m", "release 2", day=401)
    _write(repo, "README.md", "a\nb\nc\nd\n")
    _write(repo, "lib/helpers.py", "U0\n" + _lines("u", 7)[3:] + "h1\nh2\nh3\n")
    _commit(repo, "Tidy", "alice", 800)  # C6
    _git(repo, "checkout", "-q", "-b", "feature")
    _write(repo, "feature.txt", "f\n")
    _commit(repo, "Add feature", "dave", 801)  # C7
    _git(repo, "checkout", "-q", "main")
    _write(repo, "README.md", "a\nb\nc\nd\ne\n")
    (repo / "docs/guide/intro.md").unlink()
    _commit(repo, "Remove the guide", "alice", 802)  # C8
    _git(repo, "merge", "-q", "--no-ff", "-m", "Merge feature", "feature", day=803)
    _git(repo, "tag", "v10")
    return repo


@pytest.fixture(scope="module")
def metrics(history: Path) -> list[CommitMetrics]:
    return commit_metrics(history)


M = METRIC_NAMES  # ns nd nf entropy la ld lt fix ndev age nuc exp rexp sexp
EXPECTED = [
    # message, author, (ns, nd, nf, entropy, la, ld, lt, fix, ndev, age, nuc, exp, rexp, sexp)
    ("Initial import", "Alice", (2, 2, 4, _h(0.1, 0.5, 0.4), 20, 0, 0, False,
                                 0, 0, 0, 0, 0, 0)),
    ("Fix bug in app", "Bob", (1, 1, 1, 0, 5, 2, 10, True, 1, 10, 1, 0, 0, 0)),
    ("Add docs and tests", "Alice", (3, 3, 3, _h(0.2, 0.6, 0.2), 4, 1, 10, False,
                                     1, 20, 1, 1, 1, 1)),
    # Renamed src/util.py (7 lines, 1 changed) counts under lib/; deleted binary logo.png.
    ("Rename util to helpers", "Bob", (2, 2, 2, 0, 1, 1, 7, False, 1, 390, 2, 1, 1 / 2, 0)),
    ("Patch helpers; defect 12", "Carol", (2, 2, 2, _h(0.4, 0.6), 2, 3, 20, True,
                                           2, (1 + 391) / 2, 4, 0, 0, 0)),
    ("Tidy", "Alice", (2, 2, 2, 1, 2, 0, 12, False, 3, (780 + 399) / 2, 4, 2, 2 / 3, 2)),
    ("Add feature", "Dave", (1, 1, 1, 0, 1, 0, 0, False, 0, 0, 0, 0, 0, 0)),
    ("Remove the guide", "Alice", (2, 2, 2, _h(0.25, 0.75), 1, 3, 7, False,
                                   1, (2 + 782) / 2, 3, 3, 1 / 3 + 1 / 3 + 1, 3)),
]  # fmt: skip


@pytest.mark.parametrize(("index", "case"), list(enumerate(EXPECTED)), ids=[e[0] for e in EXPECTED])
def test_every_metric_of_every_commit(metrics: list[CommitMetrics], index: int, case) -> None:
    message, author, values = case
    commit = metrics[index]
    assert (commit.message, commit.author) == (message, author)
    assert {name: getattr(commit, name) for name in M} == pytest.approx(
        dict(zip(M, values, strict=True))
    )


# (prior_fixes, recent_churn) of the same eight commits. C5 counts C2's fix of src/app.py and
# C6 counts C5's of lib/helpers.py; C2 and C3 see C1's lines (10 days before or less), C5 sees
# C4's rename edit (1 day), C8 sees C6's README line (2 days); C3's lines of the guide that C8
# deletes are 782 days old.
EXPECTED_HISTORY = [(0, 0), (0, 10), (0, 10), (0, 0), (1, 2), (1, 0), (0, 0), (0, 1)]


@pytest.mark.parametrize(
    ("index", "expected"), list(enumerate(EXPECTED_HISTORY)), ids=[e[0] for e in EXPECTED]
)
def test_file_history_of_every_commit(
    metrics: list[CommitMetrics], index: int, expected: tuple[int, int]
) -> None:
    commit = metrics[index]
    assert (commit.prior_fixes, commit.recent_churn) == expected


@pytest.fixture(scope="module")
def file_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fixes on one file and not another, a rename, a merged side branch whose merge says
    "bugfix", and changes to w.py exactly 30 days and 30 days and a second before a later one."""
    repo = tmp_path_factory.mktemp("file_history")
    _git(repo, "init", "-q", "-b", "main")
    _write(repo, "a.py", _lines("a", 10))
    _write(repo, "b.py", _lines("b", 5))
    _commit(repo, "Add a and b", "alice", 0)  # D1
    _write(repo, "a.py", "A0\n" + _lines("a", 10)[3:])
    _commit(repo, "Fix crash in a", "alice", 1)  # D2: a fix, +1 -1
    _write(repo, "b.py", _lines("b", 8))
    _commit(repo, "Extend b", "bob", 2)  # D3: +3
    _git(repo, "mv", "a.py", "c.py")
    _write(repo, "c.py", "A0\nA1\n" + _lines("a", 10)[6:])
    _commit(repo, "Move a to c", "bob", 3)  # D4: renamed, +1 -1
    _git(repo, "checkout", "-q", "-b", "side")
    _write(repo, "c.py", "A0\nA1\nA2\n" + _lines("a", 10)[9:])
    _commit(repo, "Fix typo in c", "carol", 4)  # D5: a fix on a side branch, +1 -1
    _git(repo, "checkout", "-q", "main")
    _write(repo, "b.py", _lines("b", 9))
    _commit(repo, "Touch b", "alice", 5)  # D6: +1
    # A merge that says "bugfix" and repeats D5's edit in its diff: neither may count.
    _git(repo, "merge", "-q", "--no-ff", "-m", "Merge bugfix branch", "side", day=6)
    _write(repo, "c.py", "A0\nA1\nA2\n" + _lines("a", 10)[9:] + "c\n")
    _write(repo, "b.py", _lines("b", 10))
    _commit(repo, "Fix both", "alice", 7)  # D7: a fix of both files, +1 each
    _write(repo, "c.py", "A0\nA1\nA2\n" + _lines("a", 10)[9:] + "c\nd\n")
    _write(repo, "b.py", _lines("b", 11))
    _commit(repo, "Edit both", "bob", 8)  # D8: +1 each
    _write(repo, "w.py", _lines("w", 4))
    _commit(repo, "Add w", "alice", 100)  # W1: +4
    second = Fraction(1, DAY)
    _write(repo, "w.py", _lines("w", 5))
    _commit(repo, "Grow w", "alice", 100 + second)  # W2: +1, a second after W1
    _write(repo, "w.py", _lines("w", 6))
    _commit(repo, "Grow w again", "bob", 100 + RECENT_CHURN_DAYS + second)  # X: 30 days after W2
    return repo


FILE_HISTORY = [
    # message, prior_fixes, recent_churn
    ("Add a and b", 0, 0),
    ("Fix crash in a", 0, 10),  # its own fix does not count for itself
    ("Extend b", 0, 5),  # D2 fixed a.py, not b.py
    ("Move a to c", 1, 12),  # c.py carries a.py's fix (D2) and lines (D1 10 + D2 2)
    ("Fix typo in c", 1, 14),  # + D4's 2 lines
    ("Touch b", 0, 8),  # b.py: D1 5 + D3 3
    ("Fix both", 2, 16 + 9),  # D2 and D5, not the merge; c.py 10+2+2+2, b.py 5+3+1
    ("Edit both", 3, 17 + 10),  # D2, D5, D7 (D7 fixed both files: one commit)
    ("Add w", 0, 0),  # D1 to D8 are 92 days and more before
    ("Grow w", 0, 4),
    ("Grow w again", 0, 1),  # W2 exactly 30 days before counts; W1 a second more does not
]


def test_file_history_fixes_renames_merges_and_the_window_edge(file_history: Path) -> None:
    found = commit_metrics(file_history)
    assert [(c.message, c.prior_fixes, c.recent_churn) for c in found] == FILE_HISTORY
    first, second, last = found[-3:]
    window = dt.timedelta(days=RECENT_CHURN_DAYS)
    assert last.committed_at - second.committed_at == window
    assert last.committed_at - first.committed_at == window + dt.timedelta(seconds=1)
    assert found[3].files == ("c.py",) and found[3].ld == 1  # a rename, not a delete and add


def test_merges_are_skipped_and_times_are_kept(history: Path, metrics: list[CommitMetrics]):
    assert len(metrics) == 8
    assert metrics[1].authored_at == dt.datetime(2024, 1, 10, tzinfo=dt.UTC)
    assert metrics[1].committed_at == dt.datetime(2024, 1, 11, tzinfo=dt.UTC)
    assert metrics[3].files == ("lib/helpers.py", "logo.png")
    assert [m.sha for m in metrics][-1] == _git(history, "rev-parse", "main^1").strip()


def test_progress_is_reported_every_n_commits(history: Path) -> None:
    seen: list[int] = []
    commit_metrics(history, progress=seen.append, progress_every=3)
    assert seen == [3, 6]


def test_since_cuts_the_list_but_not_the_history(history: Path, metrics: list[CommitMetrics]):
    later = commit_metrics(history, since=dt.datetime(2025, 2, 4))  # day 400, naive = UTC
    assert later == metrics[3:]


@pytest.mark.parametrize(
    ("message", "is_fix"),
    [
        ("Fix crash on start", True),
        ("fixes #12", True),
        ("Bugfix release", True),
        ("Apply the patch from the list", True),
        ("Two defects found in review", True),
        ("hotfix: null pointer", True),
        ("Fixed typo", True),
        ("prefix handling", False),
        ("debug logging", False),
        ("fixup! add feature", False),
        ("Add feature", False),
    ],
)
def test_fix_keywords(message: str, is_fix: bool) -> None:
    assert (FIX_PATTERN.search(message) is not None) is is_fix


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], 0),
        ([7], 0),
        ([0, 0], 0),
        ([3, 3], 1),
        ([1, 1, 0, 0], 1),
        ([1, 1, 1, 1], 2),
        ([1, 3], _h(0.25, 0.75)),
    ],
)
def test_entropy(lines: list[int], expected: float) -> None:
    assert entropy(lines) == pytest.approx(expected)


def test_per_deployment_aggregates_from_tags(history: Path, metrics: list[CommitMetrics]):
    tags = deployment_tags(history, "v*")
    assert [name for name, _, _ in tags] == ["v1", "v2", "v10"]  # commit order, not names
    first, second, third = aggregate_per_deployment(metrics, [sha for _, sha, _ in tags], history)
    assert (first.n_commits, first.previous_sha) == (3, None)
    assert second.previous_sha == first.sha == metrics[2].sha
    assert second.sha == metrics[4].sha
    assert second.as_dict() | {"ref": None, "sha": None, "previous_sha": None} == pytest.approx(
        {
            "ref": None, "sha": None, "previous_sha": None, "n_commits": 2, "n_fixes": 1,
            "n_developers": 2, "first_committed_at": "2025-02-04T00:00:00+00:00",
            "last_committed_at": "2025-02-05T00:00:00+00:00", "fix": True, "ns": 3, "nd": 3,
            "nf": 3, "la": 3, "ld": 4, "entropy": _h(0.4, 0.6), "lt": 20, "ndev": 2, "nuc": 4,
            "age": (390 + 196) / 2, "exp": 0.5, "exp_min": 0, "rexp": 0.25, "sexp": 0,
            "prior_fixes": 1, "recent_churn": 2,
        }
    )  # fmt: skip
    # The merge's deployment ships C6, C7 (side branch) and C8, not the merge itself.
    assert third.n_commits == 3
    assert (third.n_developers, third.la, third.ld, third.nf) == (2, 4, 3, 4)
    assert (third.ns, third.nd, third.exp, third.exp_min) == (3, 3, pytest.approx(5 / 3), 0)


def test_a_redeployment_ships_nothing_and_unknown_shas_are_named(
    history: Path, metrics: list[CommitMetrics]
):
    again = aggregate_per_deployment(metrics, ["v1", "v1"], history)[1]
    assert (again.n_commits, again.la, again.fix, again.entropy, again.age) == (
        0,
        0,
        False,
        None,
        None,
    )
    with pytest.raises(ValueError, match="deadbeef"):
        aggregate_per_deployment(metrics, ["v1", "deadbeef"], history)
    with pytest.raises(LookupError, match="'nope-\\*'"):
        deployment_tags(history, "nope-*")


def test_not_a_git_repository(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'plain'} is not a git")):
        commit_metrics(tmp_path / "plain")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'missing'} does not")):
        commit_metrics(tmp_path / "missing")
    _git(tmp_path / "plain", "init", "-q")
    assert commit_metrics(tmp_path / "plain") == []


def test_cli_json_and_table(history: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from timbel_dagster.cli.app import main

    runner = CliRunner()
    result = runner.invoke(main, ["analyze-changes", str(history), "--json", "--deploy-tags", "v*"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["repository", "commits", "deployments"]
    assert data["repository"] == str(history.resolve())
    assert [c["message"] for c in data["commits"]] == [e[0] for e in EXPECTED]
    assert set(data["commits"][0]) == {"sha", "author", "authored_at", "committed_at",
                                       "message", *M, *HISTORY_MEASURES}  # fmt: skip
    assert [(c["prior_fixes"], c["recent_churn"]) for c in data["commits"]] == EXPECTED_HISTORY
    assert [(d["ref"], d["n_commits"]) for d in data["deployments"]] == [
        ("v1", 3), ("v2", 2), ("v10", 3)
    ]  # fmt: skip

    since = runner.invoke(main, ["analyze-changes", str(history), "--since", "2025-06-01",
                                 "--deploy-tags", "v*"])  # fmt: skip
    assert since.exit_code == 0, since.output
    lines = since.stdout.splitlines()
    # The essential metrics, headed, within 100 columns; the rest behind --all-metrics.
    assert lines[0].split() == [
        "SHA", "COMMITTED", "AUTHOR", "FIX", "NF", "LA", "LD", "ENT", "AGE", "EXP",
    ]  # fmt: skip
    assert max(len(line) for line in lines) <= 100
    assert [line.split()[0] for line in lines if line.startswith("v")] == ["v10"]
    summary = next(i for i, line in enumerate(lines) if " commit(s) " in line)
    assert lines[summary].startswith("3 commit(s) (0 fixes) by 2 developer(s), +4 -3 lines")
    assert lines[-1] == (
        "--all-metrics adds NS ND LT NDEV NUC REXP SEXP PRIORFIX CHURN30; --json has every metric"
    )
    everything = runner.invoke(main, ["analyze-changes", str(history), "--since", "2025-06-01",
                                      "--deploy-tags", "v*", "--all-metrics"])  # fmt: skip
    more = everything.stdout.splitlines()
    assert max(len(line) for line in more) <= 100
    headers = [line.split() for line in more if line.startswith(("SHA ", "DEPLOYMENT "))]
    assert headers[1] == [
        "SHA", "NS", "ND", "LT", "NDEV", "NUC", "REXP", "SEXP", "PRIORFIX", "CHURN30",
    ]  # fmt: skip
    assert headers[3][:2] == ["DEPLOYMENT", "NS"] and headers[3][-3:] == [
        "SEXP", "PRIORFIX", "CHURN30",
    ]  # fmt: skip
    assert len(headers) == 4 and "--all-metrics adds" not in everything.stdout

    failed = runner.invoke(main, ["analyze-changes", str(tmp_path)])
    assert failed.exit_code == 2
    assert failed.stderr.strip() == f"timbel: error: {tmp_path} is not a git repository"


def test_this_projects_history() -> None:
    if not (ROOT / ".git").exists():
        missing_service(f"{ROOT} is not a git checkout")
    expected = int(_git(ROOT, "rev-list", "--no-merges", "--count", "HEAD"))
    numstat = _git(ROOT, "-c", "diff.renames=true", "log", "--no-merges", "--numstat", "-M",
                   "--format=", "HEAD")  # fmt: skip
    added = deleted = 0
    for line in filter(None, numstat.splitlines()):
        a, d, _ = line.split("\t", 2)
        added += 0 if a == "-" else int(a)
        deleted += 0 if d == "-" else int(d)
    found = commit_metrics(ROOT)
    assert len(found) == expected == len({c.sha for c in found})
    assert (sum(c.la for c in found), sum(c.ld for c in found)) == (added, deleted)
    for index, c in enumerate(found):
        assert min(getattr(c, name) for name in M) >= 0, c
        assert 0 <= c.entropy <= log2(max(c.nf, 1)) + 1e-9
        assert c.ns <= c.nf and c.nd <= c.nf and c.nf == len(c.files)
        assert c.nuc <= index and c.exp <= index and c.sexp <= c.exp and c.rexp <= c.exp
        assert 0 <= c.prior_fixes <= c.nuc and c.recent_churn >= 0


def test_store_is_idempotent(warehouse_url: str, metrics: list[CommitMetrics]) -> None:
    from sqlalchemy import select

    from timbel_dagster.ml.changes.store import store_commit_metrics
    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.schema.models import Commit

    engine = get_engine(warehouse_url)

    def rows() -> list[tuple]:
        columns = [Commit.sha, Commit.source, Commit.author, Commit.authored_at,
                   Commit.committed_at, Commit.message, Commit.fix,
                   *(getattr(Commit, name) for name in M if name != "fix"),
                   *(getattr(Commit, name) for name in HISTORY_MEASURES)]  # fmt: skip
        with engine.connect() as connection:
            return connection.execute(select(*columns).order_by(Commit.committed_at)).all()

    with engine.begin() as connection:
        assert store_commit_metrics(connection, "example/history", "git", metrics) == 8
    first = rows()
    with engine.begin() as connection:
        assert store_commit_metrics(connection, "example/history", "git", metrics) == 0
    assert rows() == first
    assert [r.sha for r in first] == [m.sha for m in metrics]
    fix = next(r for r in first if r.message == "Patch helpers; defect 12")
    assert (fix.fix, fix.lt, fix.nuc, fix.age, fix.authored_at) == (
        True, 20.0, 4.0, 196.0, dt.datetime(2025, 2, 5, tzinfo=dt.UTC)
    )  # fmt: skip
    assert [(r.prior_fixes, r.recent_churn) for r in first] == EXPECTED_HISTORY
    with pytest.raises(ValueError, match=r"commits\.repository"), engine.begin() as connection:
        store_commit_metrics(connection, "", "git", metrics)
