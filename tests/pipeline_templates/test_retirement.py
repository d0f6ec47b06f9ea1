"""Retiring and restoring a stored template: hidden from the marketplace unless asked for, no
new versions, ratings, tags or applications, every version still readable; only its owner or
an admin, each change and each refusal audited; `timbel template retire | restore`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.pipeline_templates.store_helpers import CI, CI_SCHEMA, counts, events, with_people
from timbel_dagster.cli.app import main
from timbel_dagster.pipeline_templates import apply, marketplace, retirement, store
from timbel_dagster.pipeline_templates.access import TemplateAccessError
from timbel_dagster.pipeline_templates.state import TemplateStateError

CI_V2 = CI.replace("build:\n", "build:\n  tags: [docker]\n")


@pytest.fixture
def engine(warehouse_url: str) -> Any:
    engine = with_people(warehouse_url)
    store.publish(engine, "alice", "py-ci", "gitlab-ci", CI, parameters=CI_SCHEMA,
                  visibility="public", release_notes="first")  # fmt: skip
    return engine


def _names(engine: Any, **kwargs: Any) -> list[str]:
    return [r["name"] for r in marketplace.ranking(engine, "bob", **kwargs)]


def test_a_retired_template_is_hidden_and_frozen_but_its_history_stays(
    engine, tmp_path: Path
) -> None:
    retired = retirement.retire(engine, "alice", "py-ci", "  replaced by py-ci-2  ")
    assert (retired["retired_by"], retired["retired_reason"]) == ("alice", "replaced by py-ci-2")
    assert _names(engine) == []
    [row] = marketplace.ranking(engine, "bob", include_retired=True)
    assert row["name"] == "py-ci" and row["retired_at"] is not None
    # History is not lost: versions, content, diff and reviews still read.
    shown = store.show(engine, "bob", "py-ci", 1)
    assert shown["content"] == CI and shown["retired_reason"] == "replaced by py-ci-2"
    assert [v["version"] for v in store.versions(engine, "bob", "py-ci")] == [1]
    assert store.diff(engine, "bob", "py-ci", 1, 1) == ""
    assert marketplace.reviews(engine, "bob", "py-ci") == []

    before = counts(engine)
    refused = (
        r"cannot publish a version of template 'py-ci': it was retired on \d{4}-\d\d-\d\d by "
        r"alice: replaced by py-ci-2; its owner or an admin can restore it \(`timbel template "
        r"restore py-ci`"
    )
    with pytest.raises(TemplateStateError, match=refused):
        store.publish(engine, "alice", "py-ci", "gitlab-ci", CI_V2, parameters=CI_SCHEMA)
    with pytest.raises(TemplateStateError, match="cannot rate template 'py-ci'"):
        marketplace.rate(engine, "bob", "py-ci", 4)
    with pytest.raises(TemplateStateError, match="cannot roll back template 'py-ci'"):
        store.rollback(engine, "alice", "py-ci", 1)
    with pytest.raises(TemplateStateError, match="cannot tag template 'py-ci'"):
        store.tag(engine, "alice", "py-ci", "stable", 1)
    with pytest.raises(TemplateStateError, match="cannot apply template 'py-ci'"):
        apply.apply_to_repository(engine, "bob", "py-ci", tmp_path, parameters={"target": "x"})
    with pytest.raises(TemplateStateError, match=r"is retired on .* by alice: .* already"):
        retirement.retire(engine, "alice", "py-ci", "again")
    assert counts(engine) == before
    assert not (tmp_path / ".gitlab-ci.yml").exists()
    assert [e["action"] for e in events(engine)] == [
        "template.publish", "template.retire", "template.publish.refused",
        "template.rate.refused", "template.rollback.refused", "template.tag.refused",
        "template.retire.refused",
    ]  # fmt: skip
    assert events(engine, "template.retire")[0]["details"] == {"reason": "replaced by py-ci-2"}


def test_restore_puts_it_back_and_is_audited_with_what_it_undid(engine) -> None:
    retirement.retire(engine, "alice", "py-ci", "obsolete")
    restored = retirement.restore(engine, "dave", "py-ci")  # an admin may
    assert restored == {"name": "py-ci", "retired_at": None, "retired_by": None,
                        "retired_reason": None}  # fmt: skip
    assert _names(engine) == ["py-ci"]
    assert store.publish(engine, "alice", "py-ci", "gitlab-ci", CI_V2,
                         parameters=CI_SCHEMA)["version"] == 2  # fmt: skip
    assert marketplace.rate(engine, "bob", "py-ci", 5)["stars"] == 5
    with pytest.raises(TemplateStateError, match="template 'py-ci' is not retired"):
        retirement.restore(engine, "alice", "py-ci")
    [event] = events(engine, "template.restore")
    assert event["actor"] == "dave"
    assert (event["details"]["retired_by"], event["details"]["reason"]) == ("alice", "obsolete")
    assert [e["action"] for e in events(engine)][-1] == "template.restore.refused"


def test_only_the_owner_or_an_admin_retires_and_bad_input_changes_nothing(engine) -> None:
    before = counts(engine)
    with pytest.raises(TemplateAccessError, match="bob may not retire template 'py-ci'"):
        retirement.retire(engine, "bob", "py-ci", "mine now")
    with pytest.raises(ValueError, match="give a reason for retiring"):
        retirement.retire(engine, "alice", "py-ci", "   ")
    with pytest.raises(ValueError, match="the reason has 2001 characters; at most 2000"):
        retirement.retire(engine, "alice", "py-ci", "x" * 2001)
    with pytest.raises(LookupError, match="no pipeline template 'nope'"):
        retirement.retire(engine, "alice", "nope", "gone")
    with pytest.raises(LookupError, match="user 'mallory' is not in the users table"):
        retirement.retire(engine, "mallory", "py-ci", "gone")
    retirement.retire(engine, "alice", "py-ci", "obsolete")
    with pytest.raises(TemplateAccessError, match="bob may not restore template 'py-ci'"):
        retirement.restore(engine, "bob", "py-ci")
    assert counts(engine) == before
    assert [e["action"] for e in events(engine)] == [
        "template.publish", "template.retire.refused", "template.retire",
        "template.restore.refused",
    ]  # fmt: skip


def test_cli_retire_marketplace_all_and_restore(
    engine, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIMBEL_DATABASE_URL", warehouse_url)
    monkeypatch.setenv("TIMBEL_USER", "alice")

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, ["template", *args])

    missing = run("retire", "py-ci")
    assert missing.exit_code == 2 and "--reason" in missing.output
    done = run("retire", "py-ci", "--reason", "use py-ci-2")
    assert done.exit_code == 0, done.output
    assert done.output == "py-ci: retired by alice (use py-ci-2)\n"
    assert "py-ci" not in run("marketplace", "--as", "bob").output
    listed = run("marketplace", "--all", "--as", "bob").output
    assert "py-ci" in listed and listed.rstrip().endswith("retired")
    shown = run("show", "py-ci", "--as", "bob").output
    assert "# RETIRED " in shown and "by alice: use py-ci-2" in shown
    again = run("retire", "py-ci", "--reason", "x")
    assert again.exit_code == 2 and "timbel: error: template 'py-ci' is retired on" in again.output
    restored = run("restore", "py-ci", "--json")
    assert restored.exit_code == 0, restored.output
    assert json.loads(restored.output)["retired_at"] is None
    not_retired = run("restore", "py-ci")
    assert not_retired.exit_code == 2
    assert "template 'py-ci' is not retired" in not_retired.output
