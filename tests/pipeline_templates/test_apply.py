"""Applying stored templates: into a repository (atomic, no silent overwrite, nothing on
error) and as a Jenkins Pipeline job through python-jenkins against the loopback Jenkins."""

from __future__ import annotations

import json
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.engine import Connection

from tests.fakes.jenkins_server import FakeJenkins
from tests.pipeline_templates.store_helpers import (
    CI,
    CI_SCHEMA,
    counts,
    events,
    with_people,
)
from timbel_dagster.cli.app import main
from timbel_dagster.pipeline_templates import store
from timbel_dagster.pipeline_templates.apply import apply_to_jenkins, apply_to_repository
from timbel_dagster.pipeline_templates.jenkins_job import (
    INLINE_DEFINITION,
    SCM_DEFINITION,
    jenkins_client,
)
from timbel_dagster.resources.errors import SourceError
from timbel_dagster.settings import load_settings
from timbel_dagster.warehouse.schema.templates import PipelineTemplateUsage

RENDERED = CI.replace("{{ image | yaml }}", '"python:3.12"').replace("{{ target }}", "all")
CI_V2 = CI.replace("build:\n", "build:\n  tags: [docker]\n")
JENKINSFILE = """pipeline {
  agent any
  stages {
    stage('Build') {
      steps {
        sh 'make {{ target }} && test 1 -lt 2 > out.txt'
        echo "{{ message }}: ]]> <b> & 'done'"
      }
    }
  }
}
"""
JENKINS_SCHEMA = {"target": {"required": True}, "message": {"default": "built"}}


@pytest.fixture
def engine(warehouse_url: str) -> Any:
    return with_people(warehouse_url)


def _usage(engine: Any) -> list[tuple[str, str, int]]:
    with engine.connect() as connection:
        u = PipelineTemplateUsage
        query = select(u.target_kind, u.target, u.version).order_by(u.applied_at)
        return [tuple(r) for r in connection.execute(query)]


def test_apply_to_a_repository(engine, tmp_path: Path) -> None:
    store.publish(engine, "alice", "py-ci", "gitlab-ci", CI, parameters=CI_SCHEMA,
                  visibility="team")  # fmt: skip
    repo = tmp_path / "repo"
    repo.mkdir()
    made = apply_to_repository(engine, "bob", "py-ci", repo, parameters={"target": "all"})
    path = repo / ".gitlab-ci.yml"
    assert made == {"name": "py-ci", "version": 1, "path": str(path), "written": True,
                    "replaced": False}  # fmt: skip
    assert path.read_text() == RENDERED
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    again = apply_to_repository(engine, "bob", "py-ci", repo, parameters={"target": "all"})
    assert again["written"] is False

    store.publish(engine, "alice", "py-ci", "gitlab-ci", CI_V2, parameters=CI_SCHEMA)
    with pytest.raises(ValueError, match=r"\.gitlab-ci\.yml exists with other content; use force"):
        apply_to_repository(engine, "bob", "py-ci", repo, parameters={"target": "all"})
    assert path.read_text() == RENDERED
    forced = apply_to_repository(engine, "bob", "py-ci", repo, parameters={"target": "x"},
                                 force=True)  # fmt: skip
    assert (forced["version"], forced["replaced"]) == (2, True)
    assert "tags: [docker]" in path.read_text() and "make x" in path.read_text()
    store.tag(engine, "alice", "py-ci", "stable", 1)
    pinned = apply_to_repository(engine, "bob", "py-ci", repo, tag="stable",
                                 parameters={"target": "all"}, force=True)  # fmt: skip
    assert pinned["version"] == 1 and path.read_text() == RENDERED
    assert sorted(p.name for p in repo.iterdir()) == [".gitlab-ci.yml"]  # no temporary files
    target = str(repo.resolve())
    assert _usage(engine) == [("repository", target, 1), ("repository", target, 1),
                              ("repository", target, 2), ("repository", target, 1)]  # fmt: skip
    assert [e["details"] for e in events(engine, "template.apply")][2] == {
        "version": 2, "target_kind": "repository", "target": target,
        "file": ".gitlab-ci.yml", "written": True, "replaced": True,
    }  # fmt: skip


def test_a_failed_application_writes_nothing(
    engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.publish(engine, "alice", "py-ci", "gitlab-ci", CI, parameters=CI_SCHEMA)
    repo = tmp_path / "repo"
    repo.mkdir()
    with pytest.raises(ValueError, match=r"missing required parameter\(s\) target \(the make"):
        apply_to_repository(engine, "alice", "py-ci", repo)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) colour; it takes: image, target"):
        values = {"target": "a", "colour": "red"}
        apply_to_repository(engine, "alice", "py-ci", repo, parameters=values)
    with pytest.raises(LookupError, match="no pipeline template 'py-ci'"):
        apply_to_repository(engine, "bob", "py-ci", repo, parameters={"target": "a"})  # private
    with pytest.raises(LookupError, match="no such directory"):
        apply_to_repository(engine, "alice", "py-ci", tmp_path / "nope", parameters={"target": "a"})
    assert list(repo.iterdir()) == []
    (repo / ".gitlab-ci.yml").write_text("old: file\n")

    def refuse_commit(connection: Any) -> None:
        raise RuntimeError("the warehouse went away")

    # The file is written last before the commit; a failed commit puts the old file back.
    with monkeypatch.context() as patched:
        patched.setattr(Connection, "commit", refuse_commit)
        with pytest.raises(RuntimeError, match="went away"):
            apply_to_repository(engine, "alice", "py-ci", repo, parameters={"target": "a"},
                                force=True)  # fmt: skip
    assert (repo / ".gitlab-ci.yml").read_text() == "old: file\n"
    assert sorted(p.name for p in repo.iterdir()) == [".gitlab-ci.yml"]
    assert counts(engine)["pipeline_template_usage"] == 0
    assert events(engine, "template.apply") == []


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    server = FakeJenkins()
    server.folders.add("team")
    server.start()
    yield server
    server.stop()


def _client(fake: FakeJenkins, token: str = "api-token-123") -> Any:
    settings = load_settings(jenkins_url=fake.url, jenkins_user="timbel", jenkins_token=token)
    return jenkins_client(settings)


def _definition(fake: FakeJenkins, job: str) -> ET.Element:
    root = ET.fromstring(fake.configs[job].encode("utf-8"))
    assert root.tag == "flow-definition"
    definition = root.find("definition")
    assert definition is not None
    return definition


def test_apply_to_jenkins_creates_then_updates_an_inline_pipeline_job(
    engine, jenkins: FakeJenkins, groovy: str, warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    store.publish(engine, "alice", "jf", "jenkinsfile", JENKINSFILE, parameters=JENKINS_SCHEMA,
                  visibility="public")  # fmt: skip
    made = apply_to_jenkins(engine, "bob", "jf", _client(jenkins), "team/build-app",
                            parameters={"target": "all"})  # fmt: skip
    assert (made["created"], made["definition"], made["version"]) == (True, "inline", 1)
    definition = _definition(jenkins, "team/build-app")
    assert definition.get("class") == INLINE_DEFINITION
    script = definition.findtext("script")
    assert script == JENKINSFILE.replace("{{ target }}", "all").replace("{{ message }}", "built")
    assert "]]> <b> & 'done'" in script and definition.findtext("sandbox") == "true"
    assert ("POST", "/job/team/createItem", "name=build-app") in jenkins.requests

    # The CLI applies it again: the job exists, so its config.xml is replaced.
    monkeypatch.setenv("TIMBEL_DATABASE_URL", warehouse_url)
    monkeypatch.setenv("JENKINS_URL", jenkins.url)
    monkeypatch.setenv("JENKINS_USER", "timbel")
    monkeypatch.setenv("JENKINS_TOKEN", "api-token-123")
    result = CliRunner().invoke(main, [
        "template", "apply", "jf", "--jenkins-job", "team/build-app", "--param", "target=test",
        "--param", "message=<ok>", "--as", "carol", "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["created"] is False
    assert ("POST", "/job/team/job/build-app/config.xml", "") in jenkins.requests
    script = _definition(jenkins, "team/build-app").findtext("script") or ""
    assert "sh 'make test && test 1 -lt 2 > out.txt'" in script and '"<ok>: ]]>' in script
    assert _usage(engine) == [("jenkins", "team/build-app", 1)] * 2
    assert [e["actor"] for e in events(engine, "template.apply")] == ["bob", "carol"]


def test_apply_to_jenkins_from_scm_and_failures_record_nothing(
    engine, jenkins: FakeJenkins, groovy: str
) -> None:
    store.publish(engine, "alice", "jf", "jenkinsfile", JENKINSFILE, parameters=JENKINS_SCHEMA)
    store.publish(engine, "alice", "py-ci", "gitlab-ci", CI, parameters=CI_SCHEMA)
    made = apply_to_jenkins(
        engine, "alice", "jf", _client(jenkins), "app-main", repo_url="https://git.example.com/a.git?x=1&y=2",
        branch="release/1.x", credentials_id="git-creds", parameters={"target": "all"},
    )  # fmt: skip
    assert (made["created"], made["definition"]) == (True, "scm")
    definition = _definition(jenkins, "app-main")
    assert definition.get("class") == SCM_DEFINITION
    remote = definition.find("scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig")
    assert remote is not None
    assert remote.findtext("url") == "https://git.example.com/a.git?x=1&y=2"
    assert remote.findtext("credentialsId") == "git-creds"
    assert definition.findtext("scm/branches/hudson.plugins.git.BranchSpec/name") == (
        "*/release/1.x"
    )
    assert definition.findtext("scriptPath") == "Jenkinsfile"
    assert definition.find("script") is None
    before = (counts(engine), len(events(engine)))

    jenkins.fail_next(status=500, path_contains="createItem")
    with pytest.raises(SourceError, match=r"jenkins other-job: .*\[500\]"):
        apply_to_jenkins(engine, "alice", "jf", _client(jenkins), "other-job",
                         parameters={"target": "all"})  # fmt: skip
    with pytest.raises(SourceError, match=r"jenkins other-job: .*401"):
        apply_to_jenkins(engine, "alice", "jf", _client(jenkins, token="wrong"), "other-job",
                         parameters={"target": "all"})  # fmt: skip
    with pytest.raises(ValueError, match="Jenkins refuses ':'"):
        apply_to_jenkins(engine, "alice", "jf", _client(jenkins), "bad:name",
                         parameters={"target": "all"})  # fmt: skip
    with pytest.raises(ValueError, match="template 'py-ci' is a gitlab-ci, not a Jenkinsfile"):
        apply_to_jenkins(engine, "alice", "py-ci", _client(jenkins), "ci",
                         parameters={"target": "all"})  # fmt: skip
    with pytest.raises(ValueError, match="missing required parameter"):
        apply_to_jenkins(engine, "alice", "jf", _client(jenkins), "other-job")
    assert (counts(engine), len(events(engine))) == before
    assert "other-job" not in jenkins.jobs and "ci" not in jenkins.jobs


def test_fake_jenkins_create_item_follows_jenkins(jenkins: FakeJenkins) -> None:
    auth = ("timbel", "api-token-123")
    xml = {"Content-Type": "application/xml"}
    config = "<?xml version='1.1' encoding='UTF-8'?>\n<flow-definition/>"
    created = requests.post(f"{jenkins.url}createItem", params={"name": "x"}, data=config,
                            headers=xml, auth=auth, timeout=5)  # fmt: skip
    assert created.status_code == 200 and jenkins.configs["x"] == config
    taken = requests.post(f"{jenkins.url}createItem", params={"name": "x"}, data=config,
                          headers=xml, auth=auth, timeout=5)  # fmt: skip
    assert taken.status_code == 400
    assert "A job already exists with the name \u2018x\u2019" in taken.text
    untyped = requests.post(f"{jenkins.url}createItem", params={"name": "y"}, data=config,
                            auth=auth, timeout=5)  # fmt: skip
    assert untyped.status_code == 400 and "No Content-Type header set" in untyped.text
    unsafe = requests.post(f"{jenkins.url}createItem", params={"name": "a;b"}, data=config,
                           headers=xml, auth=auth, timeout=5)  # fmt: skip
    assert unsafe.status_code == 400 and "is an unsafe character" in unsafe.text
    broken = requests.post(f"{jenkins.url}job/x/config.xml", data="<flow-definition>",
                           headers=xml, auth=auth, timeout=5)  # fmt: skip
    assert broken.status_code == 500 and jenkins.configs["x"] == config
    fetched = requests.get(f"{jenkins.url}job/x/config.xml", auth=auth, timeout=5)
    assert fetched.text == config
    assert requests.get(f"{jenkins.url}job/y/api/json", auth=auth, timeout=5).status_code == 404
    named = requests.get(f"{jenkins.url}job/x/api/json", params={"tree": "name"}, auth=auth,
                         timeout=5)  # fmt: skip
    assert named.json()["name"] == "x"
    in_job = requests.post(f"{jenkins.url}job/x/createItem", params={"name": "z"}, data=config,
                           headers=xml, auth=auth, timeout=5)  # fmt: skip
    assert in_job.status_code == 404  # only folders hold items


def test_cli_apply_to_a_repository(
    engine, warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIMBEL_DATABASE_URL", warehouse_url)
    monkeypatch.setenv("TIMBEL_USER", "alice")
    store.publish(engine, "alice", "py-ci", "gitlab-ci", CI, parameters=CI_SCHEMA)
    runner = CliRunner()
    done = runner.invoke(main, ["template", "apply", "py-ci", "--repo", str(tmp_path),
                                "--param", "target=all"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert done.stdout == f"{tmp_path / '.gitlab-ci.yml'}: written from py-ci v1\n"
    assert (tmp_path / ".gitlab-ci.yml").read_text() == RENDERED
    missing = runner.invoke(main, ["template", "apply", "py-ci", "--repo", str(tmp_path)])
    assert missing.exit_code == 2
    assert missing.stderr == (
        "timbel: error: template 'py-ci' v1: missing required parameter(s) target "
        "(the make target)\n"
    )
    both = runner.invoke(main, ["template", "apply", "py-ci", "--repo", str(tmp_path),
                                "--jenkins-job", "x"])  # fmt: skip
    assert both.exit_code == 2 and "exactly one of --repo PATH and --jenkins-job" in both.stderr
    no_jenkins = runner.invoke(main, ["template", "apply", "py-ci", "--jenkins-job", "x"],
                               env={"JENKINS_URL": ""})  # fmt: skip
    assert no_jenkins.exit_code == 2 and "Jenkins is not configured" in no_jenkins.stderr
