"""Clone URLs with credentials (issue #13, finding 4): the real `git` clones and fetches
through `git http-backend` behind basic auth on loopback, the credentials reaching git
through its environment (a credential helper reading it), never its argument list, and no
name, error or clone config Timbel keeps carries them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.git_http_server import BACKEND, GitHttpServer, record_git_calls
from tests.ml.test_change_metrics import _commit, _git, _write
from timbel_dagster.resources.errors import SourceError
from timbel_dagster.resources.git_repositories import local_copy, public_url, scrub

SECRET = "glpat-S3cr3tT0ken"
USER = "oauth2"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[GitHttpServer]:
    if shutil.which("git") is None or not BACKEND.exists():
        pytest.skip("git or git-http-backend is not installed")
    origin = tmp_path / "work"
    origin.mkdir()
    _git(origin, "init", "-q", "-b", "main")
    _write(origin, "app.py", "print('hi')\n")
    _commit(origin, "First", "alice", 0)
    root = tmp_path / "served"
    root.mkdir()
    _git(tmp_path, "clone", "-q", "--bare", str(origin), str(root / "api.git"))
    server = GitHttpServer(root=root, user=USER, password=SECRET)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def git_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    return record_git_calls(monkeypatch)


def _with_credentials(url: str, user: str = USER, password: str = SECRET) -> str:
    return url.replace("http://", f"http://{user}:{password}@", 1)


def test_a_clone_with_credentials_succeeds_without_them_in_argv_or_config(
    served: GitHttpServer, git_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    url = f"{served.url}/api.git"
    repository = local_copy(_with_credentials(url), tmp_path / "home")
    assert (repository.name, repository.url, repository.action) == (url, url, "cloned")
    assert _git(repository.path, "log", "--format=%s").strip() == "First"
    # The server saw the request without credentials first, then the helper's answer.
    assert served.requests[0][2] is None and (USER, SECRET) in [r[2] for r in served.requests]
    assert SECRET not in _git(repository.path, "config", "--list")
    again = local_copy(_with_credentials(url), tmp_path / "home")
    assert again.action == "fetched"

    [clone] = [c for c in git_calls if "clone" in c["argv"]]
    [fetch] = [c for c in git_calls if "fetch" in c["argv"]]
    for call in (clone, fetch):
        assert not any(SECRET in arg or USER in arg for arg in call["argv"])
        assert url in call["argv"]
        assert call["env"]["TIMBEL_GIT_PASSWORD"] == SECRET
        assert call["env"]["GIT_TERMINAL_PROMPT"] == "0"
        assert "credential.helper=" in call["argv"]  # the user's helpers are dropped
    for call in git_calls:
        assert not any(SECRET in arg for arg in call["argv"])


def test_a_token_as_the_user_name_is_handed_over_the_same_way(
    served: GitHttpServer, git_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    served.user, served.password = SECRET, ""
    url = f"{served.url}/api.git"
    repository = local_copy(url.replace("http://", f"http://{SECRET}@"), tmp_path / "home")
    assert repository.name == url
    assert not any(SECRET in arg for call in git_calls for arg in call["argv"])


def test_a_wrong_password_fails_without_naming_it(served: GitHttpServer, tmp_path: Path) -> None:
    url = f"{served.url}/api.git"
    with pytest.raises(SourceError) as raised:
        local_copy(_with_credentials(url, password="wrong-Pa55"), tmp_path / "home")
    message = str(raised.value)
    assert message.startswith(f"git {url}: git clone failed: Authentication failed for ")
    assert "wrong-Pa55" not in message and USER not in message
    assert not list((tmp_path / "home").glob("git/*.git"))  # nothing half-cloned is kept


def test_an_unreachable_server_fails_without_naming_the_secret(
    git_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    url = "http://127.0.0.1:9/shop/api.git"  # the discard port: nothing listens there
    with pytest.raises(SourceError) as raised:
        local_copy(_with_credentials(url), tmp_path / "home")
    message = str(raised.value)
    assert message.startswith(f"git {url}: git clone failed: unable to access '{url}/': ")
    assert SECRET not in message
    [clone] = git_calls
    assert not any(SECRET in arg for arg in clone["argv"])


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://oauth2:S3CRET@gitlab.example.com/shop/api.git",
         "https://gitlab.example.com/shop/api.git"),
        ("https://S3CRET@github.com/acme/api.git", "https://github.com/acme/api.git"),
        ("HTTPS://u:S3CRET@gitlab.example.com:8443/api", "https://gitlab.example.com:8443/api"),
        ("ssh://git:S3CRET@gitlab.example.com/shop/api.git",
         "ssh://git@gitlab.example.com/shop/api.git"),
        ("ssh://git@gitlab.example.com/shop/api.git", "ssh://git@gitlab.example.com/shop/api.git"),
        ("git@gitlab.example.com:shop/api.git", "git@gitlab.example.com:shop/api.git"),
        ("https://gitlab.example.com/shop/api.git?private_token=S3CRET&ref=main",
         "https://gitlab.example.com/shop/api.git?private_token=***&ref=main"),
        ("https://h.example.com/api.git?access_token=S3CRET",
         "https://h.example.com/api.git?access_token=***"),
        ("/srv/git/api", "/srv/git/api"),
    ],
)  # fmt: skip
def test_public_url_keeps_no_secret(url: str, public: str) -> None:
    assert public_url(url) == public
    if "S3CRET" in url:  # git may echo the URL or a part of it
        echoed = f"fatal: could not read from '{url}': S3CRET refused"
        assert scrub(echoed, url) == f"fatal: could not read from '{public}': *** refused"


def test_a_query_token_reaches_git_only_through_its_environment(
    git_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    url = "http://127.0.0.1:9/api.git?private_token=S3CRET"
    with pytest.raises(SourceError) as raised:
        local_copy(url, tmp_path / "home")
    assert "S3CRET" not in str(raised.value)
    [clone] = git_calls
    assert "http://127.0.0.1:9/api.git?private_token=***" in clone["argv"]
    assert not any("S3CRET" in arg for arg in clone["argv"])
    assert clone["env"]["GIT_CONFIG_KEY_0"] == f"url.{url}.insteadOf"


def test_analyze_repo_clones_with_credentials_and_names_the_public_url(
    served: GitHttpServer, git_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    from timbel_dagster.repo_analysis.analysis import analyze_source

    url = f"{served.url}/api.git"
    analysis = analyze_source(_with_credentials(url), workdir=tmp_path)
    assert analysis.repository == url and analysis.languages == {"Python": 12}
    [clone] = git_calls
    assert url in clone["argv"] and not any(SECRET in arg for arg in clone["argv"])


def test_cicd_commits_with_a_token_url_stores_and_logs_only_the_public_url(
    served: GitHttpServer, warehouse_url: str, tmp_path: Path
) -> None:
    import dagster as dg
    from sqlalchemy import select

    from timbel_dagster.assets.cicd.commits import commits
    from timbel_dagster.bindings.warehouse import WarehouseResource
    from timbel_dagster.resources.sources import DeliverySourcesResource
    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.schema.models import AuditEvent, Commit

    url = f"{served.url}/api.git"
    unreachable = "http://127.0.0.1:9/shop/web.git"
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [commits],
        resources={
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "sources": DeliverySourcesResource(
                mode="live",
                git_repositories=[_with_credentials(url), _with_credentials(unreachable)],
                git_home=str(tmp_path / "home"),
            ),
        },
        instance=instance,
        raise_on_error=False,
    )
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith(
        f"1 of 2 repositories could not be read: git {unreachable}: git clone failed: "
        f"unable to access '{unreachable}/': "
    )
    with get_engine(warehouse_url).connect() as connection:
        repositories = set(connection.execute(select(Commit.repository)).scalars())
        audit = connection.execute(select(AuditEvent.__table__).order_by(AuditEvent.id)).all()
    assert repositories == {url}
    events = "\n".join(repr(entry) for entry in instance.all_logs(result.run_id))
    assert SECRET not in events and SECRET not in repr(audit)


@pytest.mark.timeout(10)
def test_scrubbing_is_linear_in_what_git_relays_from_the_server() -> None:
    """git relays the server's `remote:` lines to stderr, which is scrubbed: 200 KB of
    letters took 277 s with a scheme pattern that could start anywhere; 1 MB now takes
    about 0.01 s."""
    text = "remote: " + "a" * 1_000_000 + " https://oauth2:S3CRET@h.example.com/r.git"
    scrubbed = scrub(text, None)
    assert scrubbed.endswith(" https://h.example.com/r.git") and "S3CRET" not in scrubbed
