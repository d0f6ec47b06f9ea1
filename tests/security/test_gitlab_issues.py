"""GitLab issues for CRITICAL and HIGH findings against the loopback GitLab: one issue per
finding, idempotent re-runs, closing when fixed and reopening when back, a person's close
respected, adoption after a rolled-back sync, the `issue_created` notification and
`timbel scan issues sync`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from tests.fakes.gitlab_server import FakeGitLab
from tests.security.findings import CLEAN, T1, VULNERABLE, store
from timbel_dagster.cli.app import main
from timbel_dagster.notify.dispatch import Dispatcher
from timbel_dagster.notify.slack import SlackWebhook
from timbel_dagster.notify.subscriptions import subscribe
from timbel_dagster.resources.errors import SourceNotFoundError
from timbel_dagster.resources.gitlab.client import GitLabHTTP
from timbel_dagster.security.gitlab_issues import announce, sync_issues
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import User
from timbel_dagster.warehouse.schema.security_issues import SecurityIssueLink
from timbel_dagster.warehouse.store.upsert import bulk_upsert

IMAGE = "registry.example.com/shop/api:1.4.2"
REPO = "https://github.com/knqyf263/trivy-ci-test"  # test-repo.json: one HIGH (ammonia)
PROJECT = "shop/security"
T2, T3 = T1 + dt.timedelta(days=1), T1 + dt.timedelta(days=2)
MUSL_TITLE = f"[CVE-2019-14697] musl 1.1.20-r4 → fixed in 1.1.20-r5 ({IMAGE})"


@pytest.fixture
def fake() -> Iterator[FakeGitLab]:
    server = FakeGitLab()
    server.add_project(PROJECT)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def url(warehouse_url: str) -> str:
    store(warehouse_url, VULNERABLE, IMAGE)
    store(warehouse_url, "test-repo.json")
    return warehouse_url


def client(fake: FakeGitLab) -> GitLabHTTP:
    return GitLabHTTP(fake.url, fake.token, max_requests_per_second=10_000)


def sync(url: str, fake: FakeGitLab, now: dt.datetime = T1, **options: Any) -> dict[str, Any]:
    with get_engine(url).begin() as connection:
        return sync_issues(connection, client(fake), PROJECT, now=now, **options)


def counts(result: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in result.items() if k != "issues" and v}


def issues(fake: FakeGitLab) -> list[dict[str, Any]]:
    return sorted(fake.issues.issues.get(10, []), key=lambda i: i["iid"])


def links(url: str) -> list[tuple]:
    table = SecurityIssueLink.__table__
    with get_engine(url).connect() as connection:
        return connection.execute(
            select(table.c.issue_iid, table.c.state, table.c.close_reason).order_by(
                table.c.issue_iid
            )
        ).all()


def writes(fake: FakeGitLab) -> list[tuple[str, str]]:
    return [(m, p) for m, p, _ in fake.requests if m != "GET"]


def test_one_issue_per_finding_then_nothing_new(url: str, fake: FakeGitLab) -> None:
    first = sync(url, fake)
    assert counts(first) == {"opened": 3}
    made = issues(fake)
    assert [(i["title"], i["labels"], i["state"]) for i in made] == [
        (MUSL_TITLE, ["security", "severity::critical"], "opened"),
        (MUSL_TITLE.replace("musl", "musl-utils"), ["security", "severity::critical"], "opened"),
        (f"[CVE-2019-15542] ammonia 1.9.0 → fixed in >= 2.1.0 ({REPO})",
         ["security", "severity::high"], "opened"),
    ]  # fmt: skip
    description = made[0]["description"]
    assert "| Fixed version | 1.1.20-r5 |" in description
    assert "- https://nvd.nist.gov/vuln/detail/CVE-2019-14697" in description
    assert "<!-- timbel:finding=" in description
    assert [i["iid"] for i in first["issues"]] == [1, 2, 3]
    assert first["issues"][0]["web_url"] == f"{fake.url}/{PROJECT}/-/issues/1"
    assert links(url) == [(1, "opened", None), (2, "opened", None), (3, "opened", None)]
    before = len(writes(fake))
    assert counts(sync(url, fake, T2)) == {"unchanged": 3}
    assert len(writes(fake)) == before  # the re-run only read


def test_fixed_findings_close_their_issues_and_reopen_when_back(url: str, fake: FakeGitLab) -> None:
    sync(url, fake)
    store(url, CLEAN, IMAGE, at=T2)  # musl upgraded: both CRITICAL findings fixed
    assert counts(sync(url, fake, T2)) == {"closed": 2, "unchanged": 1}
    assert [i["state"] for i in issues(fake)] == ["closed", "closed", "opened"]
    note = fake.issues.notes[(10, 1)][0]["body"]
    assert note.startswith(f"Fixed: the scan of `{IMAGE}` at 2026-11-03 09:00 UTC no longer")
    puts = [p for m, p in writes(fake) if m == "PUT"]
    assert puts == [f"/api/v4/projects/{PROJECT.replace('/', '%2F')}/issues/{n}" for n in (1, 2)]
    assert links(url) == [(1, "closed", "fixed"), (2, "closed", "fixed"), (3, "opened", None)]
    assert counts(sync(url, fake, T2)) == {"unchanged": 3}
    store(url, VULNERABLE, IMAGE, at=T3)  # the old image is back
    assert counts(sync(url, fake, T3)) == {"reopened": 2, "unchanged": 1}
    assert [i["state"] for i in issues(fake)] == ["opened"] * 3
    assert fake.issues.notes[(10, 2)][-1]["body"].startswith("Back: the scan of")


def test_a_person_closing_an_issue_is_respected(url: str, fake: FakeGitLab) -> None:
    sync(url, fake)
    fake.issues.set_state(issues(fake)[2], "close")  # risk accepted in GitLab
    assert counts(sync(url, fake, T2)) == {"unchanged": 3}
    assert links(url)[2] == (3, "closed", "gitlab")
    assert issues(fake)[2]["state"] == "closed"  # not reopened though still open in the scan


def test_a_rolled_back_sync_is_adopted_not_repeated(url: str, fake: FakeGitLab) -> None:
    with pytest.raises(RuntimeError), get_engine(url).begin() as connection:
        sync_issues(connection, client(fake), PROJECT, now=T1)
        raise RuntimeError("the warehouse went away before the commit")
    assert links(url) == [] and len(issues(fake)) == 3
    for _ in range(120):  # other security issues: the listing needs a second page of 100
        fake.issues.create(10, {"title": "pen test finding", "labels": "security"})
    result = sync(url, fake, T2)
    assert counts(result) == {"adopted": 3}
    assert [r[0] for r in links(url)] == [1, 2, 3]
    pages = [q for m, p, q in fake.requests if m == "GET" and p.endswith("/issues")]
    assert any("page=2" in q for q in pages) and all("per_page=100" in q for q in pages)


def test_limit_defers_the_rest_and_filters(url: str, fake: FakeGitLab) -> None:
    assert counts(sync(url, fake, limit=1)) == {"opened": 1, "deferred": 2}
    assert issues(fake)[0]["title"] == MUSL_TITLE  # worst first
    assert counts(sync(url, fake, severities=["HIGH"], artifact=REPO)) == {
        "opened": 1,
        "unchanged": 1,
    }
    with (
        pytest.raises(SourceNotFoundError, match="gitlab project nobody/else issues"),
        get_engine(url).begin() as connection,
    ):
        sync_issues(connection, client(fake), "nobody/else")


def test_new_issues_are_announced(url: str, fake: FakeGitLab, httpserver: HTTPServer) -> None:
    engine = get_engine(url)
    with engine.begin() as connection:
        bulk_upsert(connection, User.__table__, [{
            "id": stable_id("users", "ann"), "source": "test", "name": "ann",
            "display_name": "Ann", "email": None, "role": "operations", "team": "platform",
            "slack_id": "U0ANN"}], ["name"])  # fmt: skip
    subscribe(engine, "ann", "slack", "issue_created")
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    dispatcher = Dispatcher(engine, {"slack": SlackWebhook(httpserver.url_for("/hook"), 5)})
    assert announce(dispatcher, sync(url, fake)["issues"]) == 3
    posted = [json.loads(request.data) for request, _ in httpserver.log]
    assert len(posted) == 3
    assert MUSL_TITLE in json.dumps(posted[0], ensure_ascii=False)


def test_scan_issues_sync_cli(
    url: str, fake: FakeGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in {"TIMBEL_DATABASE_URL": url, "TIMBEL_USER": "minji.kim",
                        "GITLAB_URL": fake.url, "GITLAB_TOKEN": fake.token}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    done = CliRunner().invoke(main, ["scan", "issues", "sync", "--project", PROJECT, "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert (result["opened"], [i["iid"] for i in result["issues"]]) == (3, [1, 2, 3])
    again = CliRunner().invoke(main, ["scan", "issues", "sync", "--project", PROJECT])
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("0 opened, 0 closed, 0 reopened, 3 unchanged")
    monkeypatch.setenv("GITLAB_TOKEN", "wrong")
    refused = CliRunner().invoke(main, ["scan", "issues", "sync", "--project", PROJECT])
    assert refused.exit_code == 2
    assert "gitlab project shop/security issues: access refused (401)" in refused.stderr
