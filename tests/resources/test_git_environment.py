"""git runs with an allow-listed environment (issue 13, review finding): the real git, asked
through a shell alias to print the environment it hands its children, sees no CI token,
database URL or GIT_DIR of Timbel's, and still gets what reaching a server needs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from timbel_dagster.ml.changes.git_history import git, has_commits, resolve_commit
from timbel_dagster.repo_analysis.store import head_commit
from timbel_dagster.resources.git_repositories import local_copy, run_git

SECRETS = {
    "GITLAB_TOKEN": "glpat-secret-9f8e",
    "JENKINS_TOKEN": "jenkins-secret-1c2d",
    "TIMBEL_DATABASE_URL": "postgresql://timbel:db-secret-7a6b@db/timbel",
    "TIMBEL_SECRET_KEY": "key-secret-5e4d",
}
ALLOWED = {
    "https_proxy": "http://proxy.example:3128",
    "HTTPS_PROXY": "http://proxy.example:3128",
    "no_proxy": "localhost,127.0.0.1",
    "SSL_CERT_FILE": "/etc/ssl/in-house.pem",
    "GIT_SSL_CAINFO": "/etc/ssl/in-house.pem",
    "SSH_AUTH_SOCK": "/run/agent.sock",
    "LC_ALL": "C.UTF-8",
}


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local repository, with the secrets and allowed variables set in Timbel's environment
    and GIT_DIR/GIT_WORK_TREE pointing at another repository."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    for path in (here, elsewhere):
        subprocess.run(["git", "init", "-q", str(path)], check=True, capture_output=True)
    for name, value in {**SECRETS, **ALLOWED}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GIT_DIR", str(elsewhere / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(elsewhere))
    return here


def _printed_environment(repository: Path) -> dict[str, str]:
    """The environment git gives the commands it runs (its hooks, aliases, ssh), as `env`
    in a shell alias prints it."""
    completed = run_git(["-c", "alias.printenv=!env -0", "printenv"], timeout=30, cwd=repository)
    assert completed.returncode == 0, completed.stderr
    return dict(entry.split("=", 1) for entry in completed.stdout.split("\0") if entry)


def test_git_sees_none_of_timbels_secrets(repository: Path) -> None:
    seen = _printed_environment(repository)
    assert not set(seen) & set(SECRETS)
    assert not [value for value in SECRETS.values() if value in "".join(seen.values())]
    assert "GIT_DIR" not in seen and "GIT_WORK_TREE" not in seen


def test_git_gets_proxies_certificates_agent_locale_and_no_prompt(repository: Path) -> None:
    seen = _printed_environment(repository)
    assert {name: seen.get(name) for name in ALLOWED} == ALLOWED
    assert seen["GIT_TERMINAL_PROMPT"] == "0"
    assert "HOME" in seen and "PATH" in seen


def test_timbels_git_dir_does_not_redirect_git(repository: Path) -> None:
    """GIT_DIR in Timbel's environment would make git read another repository."""
    completed = run_git(["rev-parse", "--absolute-git-dir"], timeout=30, cwd=repository)
    assert completed.stdout.strip() == str((repository / ".git").resolve())
    assert local_copy(str(repository), repository.parent / "home").path == repository.resolve()


def test_history_reads_and_head_commit_use_the_same_allow_list(repository: Path) -> None:
    """The local reads of a repository's history (ml.changes.git_history, used by
    `analyze-changes` and the commits asset) and the analyser's HEAD lookup run git with the
    same environment: Timbel's GIT_DIR does not send them to another repository, and git's
    children see no secret."""
    subprocess.run(
        ["git", "-C", str(repository), "-c", "user.name=t", "-c", "user.email=t@example.com",
         "commit", "-q", "--allow-empty", "-m", "first"],
        check=True, capture_output=True, env={"PATH": os.environ["PATH"], "HOME": str(repository)},
    )  # fmt: skip
    commit = git(repository, "rev-parse", "HEAD").strip()
    assert has_commits(repository)
    assert resolve_commit(repository, "HEAD") == commit
    assert head_commit(repository) == commit
    printed = git(repository, "-c", "alias.printenv=!env -0", "printenv")
    seen = dict(entry.split("=", 1) for entry in printed.split("\0") if entry)
    assert not set(seen) & (set(SECRETS) | {"GIT_DIR", "GIT_WORK_TREE"})
