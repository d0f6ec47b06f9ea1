"""Stored templates: immutable versions, no-op republishing, diff, rollback, tags, validation
before anything is saved, visibility and sharing, and the audit trail of every change."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.pipeline_templates.store_helpers import (
    CI,
    CI_SCHEMA,
    counts,
    events,
    version_rows,
    with_people,
)
from timbel_dagster.cli.app import main
from timbel_dagster.pipeline_templates import access, params, store
from timbel_dagster.pipeline_templates.access import TemplateAccessError, Viewer, can_see

CI_V2 = CI.replace("build:\n", "build:\n  tags: [docker]\n")
EXPECTED_DIFF = """\
--- py-ci@v1
+++ py-ci@v2
@@ -1,5 +1,6 @@
 stages: [build]
 build:
+  tags: [docker]
   stage: build
   image: {{ image | yaml }}
   script:
"""
JENKINSFILE = """pipeline {
  agent any
  stages {
    stage('Build') {
      steps {
        sh 'make {{ target }}'
      }
    }
  }
}
"""


@pytest.fixture
def engine(warehouse_url: str) -> Any:
    return with_people(warehouse_url)


def _publish(engine: Any, content: str = CI, actor: str = "alice", **kwargs: Any) -> dict:
    return store.publish(
        engine, actor, kwargs.pop("name", "py-ci"), "gitlab-ci", content,
        parameters=kwargs.pop("parameters", CI_SCHEMA), **kwargs,
    )  # fmt: skip


def test_versions_are_sequential_and_republishing_the_same_content_is_a_no_op(engine) -> None:
    first = _publish(engine, release_notes="first")
    assert (first["version"], first["unchanged"], first["created_by"]) == (1, False, "alice")
    assert first["parameters"]["target"] == {
        "default": None, "description": "the make target", "required": True,
    }  # fmt: skip
    again = _publish(engine, release_notes="same again")
    assert (again["version"], again["unchanged"], again["release_notes"]) == (1, True, "first")
    second = _publish(engine, CI_V2)
    assert (second["version"], second["unchanged"]) == (2, False)
    # The same content with another parameters schema is a new version.
    third = _publish(engine, CI_V2, parameters=CI_SCHEMA | {"extra": {"default": "x"}})
    assert third["version"] == 3
    listed = store.versions(engine, "alice", "py-ci")
    assert [v["version"] for v in listed] == [1, 2, 3]
    assert "content" not in listed[0]
    assert store.show(engine, "alice", "py-ci", 1)["content"] == CI
    assert store.show(engine, "alice", "py-ci")["version"] == 3
    assert [e["details"]["version"] for e in events(engine, "template.publish")] == [1, 2, 3]
    assert counts(engine)["pipeline_template_versions"] == 3


def test_no_operation_changes_a_published_version(engine, tmp_path: Path) -> None:
    from timbel_dagster.pipeline_templates import apply, marketplace

    _publish(engine)
    _publish(engine, CI_V2)
    before = version_rows(engine)
    store.rollback(engine, "alice", "py-ci", 1)
    store.tag(engine, "alice", "py-ci", "stable", 1)
    access.share(engine, "alice", "py-ci", "frank")
    access.set_visibility(engine, "alice", "py-ci", "public")
    marketplace.rate(engine, "bob", "py-ci", 5)
    apply.apply_to_repository(engine, "bob", "py-ci", tmp_path, version=1,
                              parameters={"target": "all"})  # fmt: skip
    _publish(engine, CI_V2 + "# more\n")
    after = version_rows(engine)
    assert after[:2] == before
    assert [r["version"] for r in after] == [1, 2, 3, 4]


def test_no_code_updates_or_deletes_template_versions() -> None:
    """Versions are immutable by construction: nothing in the package writes to the versions
    table except `records.insert_version`."""
    package = Path(store.__file__).parent
    writes = re.compile(r"\b(update|delete)\(\s*(PipelineTemplateVersion|records\.versions_table"
                        r"|versions_table|_versions_table)")  # fmt: skip
    for path in package.glob("*.py"):
        assert not writes.search(path.read_text()), path.name
    assert "insert(versions_table()" in (package / "records.py").read_text()


def test_diff_is_a_unified_diff_labelled_with_versions(engine) -> None:
    _publish(engine)
    _publish(engine, CI_V2)
    store.tag(engine, "alice", "py-ci", "stable", 1)
    assert store.diff(engine, "alice", "py-ci", 1, 2) == EXPECTED_DIFF
    assert store.diff(engine, "alice", "py-ci", "stable", "2") == EXPECTED_DIFF
    assert store.diff(engine, "alice", "py-ci", 2, 2) == ""
    newer = {"image": {"default": "python:3.13"}, "target": CI_SCHEMA["target"]}
    _publish(engine, CI_V2, parameters=newer)
    changed = store.diff(engine, "alice", "py-ci", 2, 3)
    assert changed.startswith("--- py-ci@v2 parameters\n+++ py-ci@v3 parameters\n")
    assert '-    "default": "python:3.12",\n' in changed
    assert '+    "default": "python:3.13",\n' in changed


def test_rollback_publishes_a_new_version_with_the_old_content(engine) -> None:
    _publish(engine)
    _publish(engine, CI_V2)
    rolled = store.rollback(engine, "alice", "py-ci", 1)
    assert (rolled["version"], rolled["rollback_of_version"]) == (3, 1)
    assert rolled["content"] == CI and rolled["release_notes"] == "rollback to v1"
    assert store.show(engine, "alice", "py-ci")["content"] == CI
    assert store.show(engine, "alice", "py-ci", 2)["content"] == CI_V2
    assert store.rollback(engine, "alice", "py-ci", 1)["unchanged"] is True
    with pytest.raises(ValueError, match="v3 is the latest version of 'py-ci' already"):
        store.rollback(engine, "alice", "py-ci", 3)
    with pytest.raises(LookupError, match="has no version 9"):
        store.rollback(engine, "alice", "py-ci", 9)
    with pytest.raises(LookupError, match="no pipeline template 'py-ci'"):
        store.rollback(engine, "bob", "py-ci", 2)  # private: bob cannot even see it
    (event,) = events(engine, "template.rollback")
    assert event["details"] == {"version": 3, "rollback_of_version": 1}


def test_tags_point_at_versions_and_move_audited(engine) -> None:
    _publish(engine)
    _publish(engine, CI_V2)
    made = store.tag(engine, "alice", "py-ci", "stable", 1)
    assert (made["previous_version"], made["unchanged"]) == (None, False)
    assert store.show(engine, "alice", "py-ci", tag="stable")["version"] == 1
    assert store.show(engine, "alice", "py-ci", "stable")["tags"] == ["stable"]
    moved = store.tag(engine, "alice", "py-ci", "stable", 2)
    assert (moved["version"], moved["previous_version"]) == (2, 1)
    assert store.tag(engine, "alice", "py-ci", "stable", 2)["unchanged"] is True
    assert store.show(engine, "alice", "py-ci", tag="stable")["version"] == 2
    assert store.show(engine, "alice", "py-ci", tag="latest")["version"] == 2
    assert [e["details"] for e in events(engine, "template.tag")] == [
        {"tag": "stable", "version": 1, "previous_version": None},
        {"tag": "stable", "version": 2, "previous_version": 1},
    ]
    for bad in ("latest", "12", "-x", ""):
        with pytest.raises(ValueError, match="tag"):
            store.tag(engine, "alice", "py-ci", bad, 1)
    with pytest.raises(LookupError, match="has no tag 'beta'"):
        store.show(engine, "alice", "py-ci", tag="beta")
    with pytest.raises(LookupError, match="has no version 7"):
        store.tag(engine, "alice", "py-ci", "beta", 7)
    with pytest.raises(ValueError, match="a version or a tag, not both"):
        store.show(engine, "alice", "py-ci", 1, tag="stable")


INVALID = [
    (  # GitLab's schema and rules, at the key they are about
        "build:\n  stage: build\n  scrip: [make]\n",
        None,
        [(2, 3, "job 'build' has no script, run or trigger"),
         (3, 3, "build: Additional properties are not allowed ('scrip' was unexpected)")],
    ),
    (  # Jinja2 syntax, at its line
        "build:\n  script: [make {{ x }]\n",
        None,
        [(2, None, "Jinja2 template syntax error: unexpected '}'")],
    ),
    (  # a placeholder the schema does not declare
        "build:\n  script: [make {{ target }}]\n",
        {"image": {"default": "x"}},
        [(None, None, "the template uses 'target', which is not one of its parameters")],
    ),
    (  # the defaults render to an invalid file
        "build:\n  stage: {{ stage }}\n  script: [make]\n",
        {"stage": {"default": "release"}},
        [(2, 10, "job 'build': stage 'release' is not declared in stages (.pre, build, "
                 "test, deploy, .post)")],
    ),
]  # fmt: skip


def test_an_invalid_template_is_refused_with_positions_and_nothing_saved(engine) -> None:
    for content, schema, expected in INVALID:
        with pytest.raises(store.TemplateInvalidError) as raised:
            store.publish(engine, "alice", "broken", "gitlab-ci", content, parameters=schema)
        found = [(e["line"], e["column"], e["message"]) for e in raised.value.errors]
        assert found == expected
        assert str(raised.value).startswith("template 'broken' is not a valid .gitlab-ci.yml: ")
    assert set(counts(engine).values()) == {0}
    assert events(engine) == []


def test_a_jenkinsfile_is_compiled_before_it_is_stored(engine, groovy: str) -> None:
    broken = JENKINSFILE.replace("stage('Build') {", "stage('Build' {")
    with pytest.raises(store.TemplateInvalidError, match=r"not a valid Jenkinsfile: line \d+"):
        store.publish(engine, "alice", "jf", "jenkinsfile", broken,
                      parameters={"target": {"required": True}})  # fmt: skip
    assert set(counts(engine).values()) == {0}
    made = store.publish(engine, "alice", "jf", "jenkinsfile", JENKINSFILE,
                         parameters={"target": {"required": True}})  # fmt: skip
    assert (made["kind"], made["version"]) == ("jenkinsfile", 1)
    with pytest.raises(ValueError, match="template 'jf' is a jenkinsfile, not a gitlab-ci"):
        store.publish(engine, "alice", "jf", "gitlab-ci", CI, parameters=CI_SCHEMA)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"1x": {}}, "parameter '1x': a name is letters"),
        ({"a": {"requird": True}}, "unknown setting(s) requird"),
        ({"a": {"required": "yes"}}, "required must be true or false"),
        ({"a": {"required": True, "default": "x"}}, "a required parameter takes no default"),
        ({"a": {"default": {1, 2}}}, "the default must be JSON data"),
        ({"a": "x"}, "its settings must be a mapping"),
    ],
)
def test_bad_parameter_schemas_are_refused(schema: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        params.normalise_schema(schema)


def test_rendering_is_sandboxed() -> None:
    with pytest.raises(params.TemplateRenderError, match=r"not allowed|unsafe"):
        params.render("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})


TEMPLATE = {"owner": "alice", "team": "payments", "visibility": "private", "grantees": []}
ALICE, BOB = Viewer("alice", "developer", "payments"), Viewer("bob", "developer", "payments")
CAROL, DAVE = Viewer("carol", "team_lead", "platform"), Viewer("dave", "admin", "platform")
STRANGER = Viewer("nobody")


@pytest.mark.parametrize(
    ("visibility", "grantees", "user", "sees"),
    [
        ("private", [], ALICE, True),  # the owner
        ("private", [], BOB, False),  # same team, but private
        ("private", [], DAVE, True),  # admins see all
        ("private", [("user", "bob")], BOB, True),
        ("private", [("user", "bob")], CAROL, False),
        ("private", [("team", "platform")], CAROL, True),
        ("private", [("team", "platform")], BOB, False),
        ("team", [], BOB, True),
        ("team", [], CAROL, False),
        ("team", [], STRANGER, False),
        ("team", [("user", "carol")], CAROL, True),
        ("team", [("team", "platform")], CAROL, True),
        ("public", [], CAROL, True),
        ("public", [], STRANGER, True),
    ],
)
def test_visibility_and_sharing_matrix(
    visibility: str, grantees: list, user: Viewer, sees: bool
) -> None:
    template = TEMPLATE | {"visibility": visibility, "grantees": grantees}
    assert can_see(user, template) is sees


def test_only_the_owner_or_an_admin_changes_a_template_and_refusals_are_audited(
    engine,
) -> None:
    _publish(engine, visibility="team")
    assert store.show(engine, "bob", "py-ci")["visibility"] == "team"  # a team mate sees it
    with pytest.raises(LookupError, match="no pipeline template 'py-ci'"):
        store.show(engine, "carol", "py-ci")  # another team does not
    with pytest.raises(TemplateAccessError, match=r"the name is taken and only its owner \(alice"):
        _publish(engine, CI_V2, actor="bob")
    with pytest.raises(TemplateAccessError, match=r"the name is taken and only its owner or"):
        _publish(engine, CI_V2, actor="carol")  # cannot see it: the owner is not named
    with pytest.raises(TemplateAccessError, match="bob may not tag"):
        store.tag(engine, "bob", "py-ci", "stable", 1)
    with pytest.raises(TemplateAccessError, match="bob may not share"):
        access.share(engine, "bob", "py-ci", "carol")
    with pytest.raises(TemplateAccessError, match="bob may not change the visibility"):
        access.set_visibility(engine, "bob", "py-ci", "public")
    with pytest.raises(LookupError, match="user 'mallory' is not in the users table"):
        _publish(engine, CI_V2, actor="mallory")
    assert [e["action"] for e in events(engine)] == [
        "template.publish", "template.publish.refused", "template.publish.refused",
        "template.tag.refused", "template.share.refused", "template.visibility.refused",
    ]  # fmt: skip
    assert counts(engine)["pipeline_template_versions"] == 1

    assert access.share(engine, "alice", "py-ci", "team:platform")["grantee"] == "platform"
    assert store.show(engine, "carol", "py-ci")["version"] == 1
    assert access.share(engine, "alice", "py-ci", "platform")["unchanged"] is True
    # An admin may manage anyone's template.
    assert _publish(engine, CI_V2, actor="dave", visibility="public")["version"] == 2
    assert store.show(engine, "nobody", "py-ci")["visibility"] == "public"
    with pytest.raises(LookupError, match="neither a user nor a team"):
        access.share(engine, "alice", "py-ci", "ghost")
    with pytest.raises(LookupError, match="no team 'ghost'"):
        access.share(engine, "alice", "py-ci", "team:ghost")
    assert [e["details"] for e in events(engine, "template.visibility")] == [
        {"from": "team", "to": "public", "team": "payments"}
    ]


def test_publish_refuses_bad_names_kinds_and_visibility(engine) -> None:
    with pytest.raises(ValueError, match="template name 'no spaces'"):
        _publish(engine, name="no spaces")
    with pytest.raises(ValueError, match="kind 'travis' is not one of"):
        store.publish(engine, "alice", "x", "travis", CI)
    with pytest.raises(ValueError, match="visibility 'secret' is not one of"):
        _publish(engine, visibility="secret")
    with pytest.raises(ValueError, match="erin has no team in the users table"):
        _publish(engine, actor="erin", visibility="team")
    assert set(counts(engine).values()) == {0}


def _cli(args: list[str], **env: str) -> Any:
    result = CliRunner().invoke(main, ["template", *args], env=env)
    return result


def test_cli_publish_versions_show_diff_tag_rollback_share(
    engine, warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIMBEL_DATABASE_URL", warehouse_url)
    monkeypatch.setenv("TIMBEL_USER", "alice")
    (tmp_path / ".gitlab-ci.yml").write_text(CI)
    (tmp_path / "v2.gitlab-ci.yml").write_text(CI_V2)
    (tmp_path / "params.yml").write_text(json.dumps(CI_SCHEMA))
    (tmp_path / "bad.gitlab-ci.yml").write_text("build:\n  stage: build\n  scrip: [make]\n")

    made = _cli(["publish", "py-ci", str(tmp_path / ".gitlab-ci.yml"), "--parameters",
                 str(tmp_path / "params.yml"), "--notes", "first",
                 "--visibility", "team"])  # fmt: skip
    assert made.exit_code == 0, made.output
    assert made.stdout == "py-ci v1 published (team)\n"
    same = _cli(["publish", "py-ci", str(tmp_path / ".gitlab-ci.yml"), "--parameters",
                 str(tmp_path / "params.yml")])  # fmt: skip
    assert same.stdout == "py-ci v1: unchanged (same content as the latest version)\n"
    second = _cli(["publish", "py-ci", str(tmp_path / "v2.gitlab-ci.yml"), "--parameters",
                   str(tmp_path / "params.yml"), "--json"])  # fmt: skip
    assert json.loads(second.stdout)["version"] == 2
    bad = _cli(["publish", "other", str(tmp_path / "bad.gitlab-ci.yml")])
    assert bad.exit_code == 2
    assert f"{tmp_path / 'bad.gitlab-ci.yml'}:3:3: error: build: Additional" in bad.stderr
    assert bad.stderr.strip().endswith("template 'other' not published: 2 error(s) in "
                                       f"{tmp_path / 'bad.gitlab-ci.yml'}")  # fmt: skip

    listed = _cli(["versions", "py-ci"])
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["v1", "v2"]
    assert _cli(["diff", "py-ci", "1", "2"]).stdout == EXPECTED_DIFF
    assert _cli(["tag", "py-ci", "stable", "1"]).stdout == "py-ci: stable -> v1\n"
    shown = _cli(["show", "py-ci", "stable"])
    assert shown.stdout.endswith(CI) and "# --param target=...  required" in shown.stdout
    rolled = _cli(["rollback", "py-ci", "1", "--json"])
    assert json.loads(rolled.stdout)["rollback_of_version"] == 1
    hidden = _cli(["show", "py-ci", "--as", "carol"])
    assert (hidden.exit_code, hidden.stderr) == (
        2, "timbel: error: no pipeline template 'py-ci' (or you may not see it)\n",
    )  # fmt: skip
    refused = _cli(["share", "py-ci", "carol", "--as", "bob"])
    assert refused.exit_code == 2 and "bob may not share template 'py-ci'" in refused.stderr
    shared = _cli(["share", "py-ci", "carol"])
    assert shared.stdout == "py-ci: shared with user carol\n"
    assert _cli(["show", "py-ci", "--as", "carol", "--json"]).exit_code == 0
    assert _cli(["visibility", "py-ci", "public"]).stdout == "py-ci: now public\n"
    assert [e["action"] for e in events(engine)] == [
        "template.publish", "template.publish", "template.tag", "template.rollback",
        "template.share.refused", "template.share", "template.visibility",
    ]  # fmt: skip


def test_a_template_is_not_shared_with_a_disabled_user(
    engine, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disabled user may no longer act: sharing with them is refused in one line (exit 2),
    nothing is granted; their team can still be granted, and they can be once enabled."""
    from timbel_dagster.warehouse.people.user_admin import set_disabled

    _publish(engine)
    set_disabled(engine, "dave", "frank", True)
    monkeypatch.setenv("TIMBEL_DATABASE_URL", warehouse_url)
    monkeypatch.setenv("TIMBEL_USER", "alice")
    refused = _cli(["share", "py-ci", "frank"])
    assert (refused.exit_code, refused.stdout, refused.stderr) == (
        2,
        "",
        "timbel: error: cannot share template 'py-ci' with frank: user 'frank' is disabled (an "
        "admin can enable them with `timbel users enable frank`)\n",
    )
    with pytest.raises(LookupError, match="user 'frank' is disabled"):
        access.share(engine, "alice", "py-ci", "user:frank")
    assert counts(engine)["pipeline_template_shares"] == 0
    assert _cli(["share", "py-ci", "team:search"]).stdout == "py-ci: shared with team search\n"
    set_disabled(engine, "dave", "frank", False)
    assert _cli(["share", "py-ci", "frank"]).stdout == "py-ci: shared with user frank\n"
    assert [e["details"]["grantee"] for e in events(engine, "template.share")] == [
        "search",
        "frank",
    ]
