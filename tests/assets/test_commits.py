"""`cicd/commits`: repositories built here, read from a path and cloned from a `file://` URL,
incrementally, with deployments linked to the commits they shipped; sample mode; bad input."""

from __future__ import annotations

import datetime as dt
from math import log2
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select, update

from tests.ml.test_change_metrics import _commit, _git, _write
from timbel_dagster.assets.cicd.commits import commits
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.ml.risk.deployment_data import load_delivery_frames
from timbel_dagster.ml.risk.deployment_features import deployment_features
from timbel_dagster.records.delivery import DeploymentRecord
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent, Commit, DeploymentCommit
from timbel_dagster.warehouse.store.loaders import commit_id, deployment_id, store_deployments


def _repository(path: Path, commits: int = 3) -> Path:
    path.mkdir(parents=True)
    _git(path, "init", "-q", "-b", "main")
    for day in range(commits):
        _write(path, f"src/file{day}.py", f"line {day}\n")
        _commit(path, f"Change {day}", "alice" if day % 2 else "bob", day)
    return path


def _head(repo: Path) -> str:
    return _git(repo, "rev-parse", "HEAD").strip()


def _run(url: str, home: Path, *entries: str, mode: str = "live") -> dg.MaterializeResult:
    result = dg.materialize(
        [commits],
        resources={
            "warehouse": WarehouseResource(database_url=url),
            "sources": DeliverySourcesResource(
                mode=mode, git_repositories=list(entries), git_home=str(home),
                sample_end_date="2026-11-01",
            ),
        },
    )  # fmt: skip
    assert result.success
    [materialization] = result.asset_materializations_for_node("cicd__commits")
    return materialization


def _value(materialization, name: str):
    return materialization.metadata[name].value


def _stored(url: str) -> dict[str, tuple[str, str]]:
    with get_engine(url).connect() as connection:
        rows = connection.execute(select(Commit.sha, Commit.repository, Commit.source)).all()
    return {sha: (repository, source) for sha, repository, source in rows}


def test_a_local_repository_is_stored_then_read_incrementally(
    warehouse_url: str, tmp_path: Path
) -> None:
    repo = _repository(tmp_path / "service")
    first = _run(warehouse_url, tmp_path / "home", str(repo))
    assert _value(first, "rows_written") == 3 and _value(first, "commits_walked") == 3
    stored = _stored(warehouse_url)
    assert set(stored.values()) == {(str(repo.resolve()), "git")}
    with get_engine(warehouse_url).connect() as connection:
        [fix, la] = connection.execute(
            select(Commit.fix, Commit.la).where(Commit.sha == _head(repo))
        ).one()
        audits = connection.execute(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "ingest")
        ).scalar()
    assert (fix, la) == (False, 1.0) and audits == 1

    unchanged = _run(warehouse_url, tmp_path / "home", str(repo))
    assert _value(unchanged, "rows_written") == 0 and _value(unchanged, "commits_walked") == 0

    for day in (3, 4):
        _write(repo, "src/file0.py", f"line 0\nfix {day}\n")
        _commit(repo, f"Fix bug {day}", "carol", day)
    second = _run(warehouse_url, tmp_path / "home", str(repo))
    assert _value(second, "rows_written") == 2  # only the new commits
    assert len(_stored(warehouse_url)) == 5


def test_commits_stored_without_the_file_history_are_completed_by_the_next_run(
    warehouse_url: str, tmp_path: Path
) -> None:
    """Rows from before migration 0029 have NULL file history: the next run walks the
    repository again and fills them in, then stops walking. It rewrites their other metrics
    too: their entropy was divided by log2(nf) before, and is in bits now."""
    repo = tmp_path / "service"
    _repository(repo)
    _write(repo, "src/file0.py", "line 0\nfixed\n")
    _commit(repo, "Fix file0", "carol", 3)
    _write(repo, "src/file0.py", "line 0\nfixed\nagain\n")
    _commit(repo, "Extend file0", "carol", 4)
    _write(repo, "src/file1.py", "line 1\nmore\n")  # +1 line
    _write(repo, "src/file2.py", "line 2\nmore\nmore\nmore\n")  # +3 lines
    _commit(repo, "Spread", "carol", 5)
    _run(warehouse_url, tmp_path / "home", str(repo))

    def history() -> list[tuple]:
        with get_engine(warehouse_url).connect() as connection:
            return connection.execute(
                select(
                    Commit.message, Commit.prior_fixes, Commit.recent_churn, Commit.entropy
                ).order_by(Commit.committed_at)
            ).all()

    complete = history()
    # Fix file0 saw Change 0's line (3 days before); Extend file0 saw the fix and both.
    assert [row[:3] for row in complete[-3:-1]] == [
        ("Fix file0", 0.0, 1.0),
        ("Extend file0", 1.0, 2.0),
    ]
    assert complete[-1][3] == pytest.approx(-(0.25 * log2(0.25) + 0.75 * log2(0.75)))  # bits
    with get_engine(warehouse_url).begin() as connection:
        connection.execute(
            update(Commit).values(prior_fixes=None, recent_churn=None, entropy=Commit.entropy / 2)
        )
    again = _run(warehouse_url, tmp_path / "home", str(repo))
    assert _value(again, "commits_walked") == 6 and _value(again, "rows_written") == 6
    assert history() == complete
    settled = _run(warehouse_url, tmp_path / "home", str(repo))
    assert _value(settled, "commits_walked") == 0 and _value(settled, "rows_written") == 0


def test_no_warehouse_connection_is_held_while_git_walks_the_history(
    warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A history walk can take minutes: on SQLite a transaction of the write engine holds
    the write lock, so the walk runs with no connection checked out."""
    # The asset module's own name for the walk: it imports commit_metrics at its top.
    from timbel_dagster.assets.cicd import commits as commits_module

    repo = _repository(tmp_path / "service")
    walk = commits_module.commit_metrics
    held: list[int] = []

    def watched(path: Path) -> list:
        held.append(get_engine(warehouse_url).pool.checkedout())
        return walk(path)

    monkeypatch.setattr(commits_module, "commit_metrics", watched)
    assert _value(_run(warehouse_url, tmp_path / "home", str(repo)), "rows_written") == 3
    assert held == [0]


def test_a_clone_url_is_cloned_once_then_fetched(warehouse_url: str, tmp_path: Path) -> None:
    origin = _repository(tmp_path / "origin")
    url = f"file://{origin}"
    home = tmp_path / "home"
    first = _run(warehouse_url, home, url)
    [clone] = (home / "git").glob("origin-*.git")
    assert _value(first, "rows_written") == 3 and _value(first, "repository_names") == url
    assert _git(clone, "rev-parse", "--is-bare-repository").strip() == "true"
    assert _git(clone, "config", "--get", "remote.origin.url").strip() == url

    _write(origin, "README.md", "new\n")
    _commit(origin, "Document", "dave", 5)
    second = _run(warehouse_url, home, url)
    assert _value(second, "rows_written") == 1
    assert _git(clone, "rev-parse", "HEAD").strip() == _head(origin)
    assert {repository for repository, _ in _stored(warehouse_url).values()} == {url}


def test_deployments_are_linked_to_the_commits_they_shipped(
    warehouse_url: str, tmp_path: Path
) -> None:
    repo = _repository(tmp_path / "service", commits=4)
    shas = _git(repo, "rev-list", "--reverse", "HEAD").split()
    start = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)

    def deployment(number: int, sha: str, status: str, kind: str = "release") -> DeploymentRecord:
        return DeploymentRecord(
            external_id=f"request-{number}", service="api", environment="prod", cluster=None,
            image=f"reg/api:{sha[:7]}", version=sha[:7], commit_from=None, commit_to=sha,
            kind=kind, status=status, started_at=start + dt.timedelta(hours=number),
            completed_at=start + dt.timedelta(hours=number, minutes=5), triggered_by="alice",
        )  # fmt: skip

    with get_engine(warehouse_url).begin() as connection:
        store_deployments(
            connection,
            "timbel",
            [
                deployment(1, shas[1], "success"),
                deployment(2, shas[2], "failed"),  # tried to ship C3; C3 shipped again by #3
                deployment(3, shas[3], "success"),
                deployment(4, shas[1], "success", kind="rollback"),  # ships nothing
            ],
        )
    first = _run(warehouse_url, tmp_path / "home", str(repo))
    assert _value(first, "commit_links_written") == 5
    name = str(repo.resolve())
    with get_engine(warehouse_url).connect() as connection:
        links = connection.execute(
            select(DeploymentCommit.deployment_id, DeploymentCommit.commit_id)
        ).all()
    shipped: dict[int, set[int]] = {}
    for number in range(1, 5):
        ids = {commit_id(name, sha): index for index, sha in enumerate(shas)}
        wanted = deployment_id("timbel", f"request-{number}")
        shipped[number] = {ids[c] for d, c in links if d == wanted}
    assert shipped == {1: {0, 1}, 2: {2}, 3: {2, 3}, 4: set()}
    # ... which is what the risk model's change features of those deployments are made of
    with get_engine(warehouse_url).connect() as connection:
        table = deployment_features(load_delivery_frames(connection))
    assert table["n_commits"].to_dict() == {
        deployment_id("timbel", f"request-{n}"): float(len(shipped[n])) for n in (1, 2, 3)
    }
    again = _run(warehouse_url, tmp_path / "home", str(repo))
    assert _value(again, "commit_links_written") == 0


def test_sample_mode_stores_the_sample_organisations_commits(
    warehouse_url: str, tmp_path: Path
) -> None:
    repo = _repository(tmp_path / "service")
    result = _run(warehouse_url, tmp_path / "home", str(repo), mode="sample")
    assert _value(result, "source") == "sample" and _value(result, "rows_written") > 100
    assert "sample mode" in _value(result, "note")
    assert {source for _, source in _stored(warehouse_url).values()} == {"sample"}
    assert not (tmp_path / "home" / "git").exists()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{tmp}/missing", "git {tmp}/missing: does not exist, so it is not a git repository"),
        ("{tmp}", "git {tmp}: is not a git repository"),
        ("file://{tmp}/nowhere.git", "git file://{tmp}/nowhere.git: git clone failed: "),
    ],
)
def test_a_bad_path_or_url_fails_naming_it_after_storing_the_others(
    warehouse_url: str, tmp_path: Path, entry: str, message: str
) -> None:
    good = _repository(tmp_path / "good")
    bad = entry.format(tmp=tmp_path / "plain")
    (tmp_path / "plain").mkdir()
    result = dg.materialize(
        [commits],
        resources={
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "sources": DeliverySourcesResource(
                mode="live", git_repositories=[bad, str(good)], git_home=str(tmp_path / "home")
            ),
        },
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("1 of 2 repositories could not be read: ")
    assert message.format(tmp=tmp_path / "plain") in description
    assert len(_stored(warehouse_url)) == 3  # the good repository is stored all the same


@pytest.mark.parametrize(
    ("url", "public", "key"),
    [
        ("https://u:secret@gitlab.example.com/shop/api.git", "https://gitlab.example.com/shop/api.git",
         "gitlab.example.com/shop/api"),
        ("git@GitLab.example.com:shop/api.git", "git@GitLab.example.com:shop/api.git",
         "gitlab.example.com/shop/api"),
        ("ssh://git@gitlab.example.com/shop/api/", "ssh://git@gitlab.example.com/shop/api/",
         "gitlab.example.com/shop/api"),
        ("https://gitlab.example.com/shop/api", "https://gitlab.example.com/shop/api",
         "gitlab.example.com/shop/api"),
    ],
)  # fmt: skip
def test_names_carry_no_credentials_and_spellings_match(url: str, public: str, key: str) -> None:
    from timbel_dagster.resources.git_repositories import public_url, repository_key

    assert public_url(url) == (public if "secret" in url else url)
    assert repository_key(url) == key
