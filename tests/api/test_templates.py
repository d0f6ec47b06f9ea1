"""/api/v1/templates over the domain's rules: publishing needs templates.write and, for an
existing name, its owner (403, audited); a template the caller may not see is a 404;
versions, diff and ratings; and /templates/validate runs the CLI's validator, limits included,
on an untrusted body."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.api.conftest import audit_events, bearer, secret_for
from timbel_dagster.warehouse.schema.templates import PipelineTemplateVersion

CI = "stages: [build]\nbuild:\n  stage: build\n  script:\n    - make\n"
CI2 = CI.replace("- make", "- make test")
# 457 bytes: nine levels of nine aliases (tests/pipeline_templates/test_gitlab_ci_limits.py).
ALIAS_BOMB = (
    '.a0: &a0 ["lol"]\n'
    + "".join(f".a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))
    + "job:\n  script: *a9\n"
)


def _versions(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(PipelineTemplateVersion)
        ).scalar()


@pytest.fixture
def who(engine):
    return lambda user: bearer(secret_for(engine, user))


@pytest.fixture
def published(client, who) -> dict:
    body = {"name": "build", "kind": "gitlab-ci", "content": CI, "release_notes": "first"}
    response = client.post("/api/v1/templates", headers=who("dev"), json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_publish_creates_a_private_template_of_the_caller(client, engine, who, published) -> None:
    shown = (published["owner"], published["version"], published["visibility"])
    assert shown == ("dev", 1, "private")
    assert published["content"] == CI and published["unchanged"] is False
    [(actor, target, details)] = audit_events(engine, "template.publish")
    assert (actor, target, details["version"]) == ("dev", "template build", 1)
    mine = client.get("/api/v1/templates", headers=who("dev")).json()["items"]
    assert [t["name"] for t in mine] == ["build"]
    # private: the lead of the same team does not see it at all
    assert client.get("/api/v1/templates", headers=who("lead")).json()["items"] == []
    assert client.get("/api/v1/templates/build", headers=who("lead")).status_code == 404


def test_viewer_cannot_publish(client, engine, who) -> None:
    body = {"name": "build", "content": CI}
    response = client.post("/api/v1/templates", headers=who("viewer"), json=body)
    assert response.status_code == 403
    assert _versions(engine) == 0
    [(actor, _, details)] = audit_events(engine, "api.refused")
    assert (actor, details["action"]) == ("viewer", "templates.write")


def test_only_the_owner_publishes_versions(client, engine, who, published) -> None:
    shared = client.put("/api/v1/templates/build", headers=who("dev"),
                        json={"content": CI2, "visibility": "team"})  # fmt: skip
    assert shared.status_code == 200, shared.text
    assert (shared.json()["version"], shared.json()["visibility"]) == (2, "team")
    refused = client.put("/api/v1/templates/build", headers=who("lead"), json={"content": CI})
    assert refused.status_code == 403, refused.text
    assert "only its owner (dev) or an admin" in refused.json()["detail"]
    assert _versions(engine) == 2
    [(actor, _, _)] = audit_events(engine, "template.publish.refused")
    assert actor == "lead"
    same = client.put("/api/v1/templates/build", headers=who("dev"), json={"content": CI2})
    assert same.json()["unchanged"] is True and _versions(engine) == 2


def test_versions_show_and_diff(client, who, published) -> None:
    client.put("/api/v1/templates/build", headers=who("dev"), json={"content": CI2})
    versions = client.get("/api/v1/templates/build/versions", headers=who("dev")).json()
    assert [v["version"] for v in versions["items"]] == [1, 2]
    latest = client.get("/api/v1/templates/build", headers=who("dev")).json()
    assert (latest["version"], latest["content"]) == (2, CI2)
    first = client.get("/api/v1/templates/build?ref=1", headers=who("dev")).json()
    assert first["content"] == CI
    diff = client.get("/api/v1/templates/build/diff?from=1&to=2", headers=who("dev"))
    assert diff.status_code == 200
    assert "-    - make\n+    - make test\n" in diff.json()["diff"]
    missing = client.get("/api/v1/templates/build/diff?from=1&to=9", headers=who("dev"))
    assert missing.status_code == 404 and "no version 9" in missing.json()["detail"]


def test_ratings(client, engine, who, published) -> None:
    client.put("/api/v1/templates/build", headers=who("dev"),
               json={"content": CI, "visibility": "public"})  # fmt: skip
    rated = client.post("/api/v1/templates/build/ratings", headers=who("lead"),
                        json={"stars": 4, "review": "good"})  # fmt: skip
    assert rated.status_code == 200, rated.text
    assert (rated.json()["user"], rated.json()["previous_stars"]) == ("lead", None)
    own = client.post("/api/v1/templates/build/ratings", headers=who("dev"), json={"stars": 5})
    assert own.status_code == 422 and "cannot rate it" in own.json()["errors"][0]["msg"]
    out_of_range = client.post("/api/v1/templates/build/ratings", headers=who("lead"),
                               json={"stars": 6})  # fmt: skip
    assert out_of_range.json()["errors"][0]["loc"] == ["body", "stars"]
    viewer = client.post("/api/v1/templates/build/ratings", headers=who("viewer"),
                         json={"stars": 1})  # fmt: skip
    assert viewer.status_code == 403
    reviews = client.get("/api/v1/templates/build/ratings", headers=who("viewer")).json()
    shown = [(r["user"], r["stars"], r["review"]) for r in reviews["items"]]
    assert shown == [("lead", 4, "good")]
    [(actor, _, _)] = audit_events(engine, "template.rate")
    assert actor == "lead"


def test_invalid_content_is_422_with_its_position_and_saves_nothing(client, engine, who) -> None:
    body = {"name": "broken", "kind": "gitlab-ci", "content": "build:\n  stage: [\n"}
    response = client.post("/api/v1/templates", headers=who("dev"), json=body)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["loc"] == ["body", "content"] and "line" in error["msg"]
    assert _versions(engine) == 0


def test_validate_checks_an_untrusted_body(client, who) -> None:
    ok = client.post("/api/v1/templates/validate", headers=who("viewer"),
                     json={"kind": "gitlab-ci", "content": CI})  # fmt: skip
    assert ok.status_code == 200, ok.text
    assert (ok.json()["valid"], ok.json()["kind"]) == (True, "gitlab-ci")
    bomb = client.post("/api/v1/templates/validate", headers=who("viewer"),
                       json={"kind": "gitlab-ci", "content": ALIAS_BOMB})  # fmt: skip
    assert bomb.status_code == 200
    assert bomb.json()["valid"] is False
    assert any("alias" in e["message"] for e in bomb.json()["errors"])
    unknown = client.post("/api/v1/templates/validate", headers=who("viewer"),
                          json={"content": "hello"})  # fmt: skip
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["loc"] == ["body", "content"]
    assert client.post("/api/v1/templates/validate", json={"content": CI}).status_code == 401


def test_delete_retires_a_template_and_its_history_stays(client, engine, who, published) -> None:
    client.put("/api/v1/templates/build", headers=who("dev"),
               json={"content": CI2, "visibility": "public"})  # fmt: skip
    no_reason = client.delete("/api/v1/templates/build", headers=who("dev"))
    assert no_reason.status_code == 422
    assert no_reason.json()["errors"][0]["loc"] == ["query", "reason"]
    blank = client.delete("/api/v1/templates/build?reason=%20", headers=who("dev"))
    assert blank.status_code == 422 and blank.json()["errors"][0]["loc"] == ["query", "reason"]
    lead = client.delete("/api/v1/templates/build?reason=mine", headers=who("lead"))
    assert lead.status_code == 403 and "only its owner (dev)" in lead.json()["detail"]
    viewer = client.delete("/api/v1/templates/build?reason=x", headers=who("viewer"))
    assert viewer.status_code == 403  # the policy table: templates.retire
    unknown = client.delete("/api/v1/templates/nope?reason=x", headers=who("dev"))
    assert unknown.status_code == 404 and "no pipeline template 'nope'" in unknown.json()["detail"]

    gone = client.delete("/api/v1/templates/build?reason=use+build-2", headers=who("dev"))
    assert gone.status_code == 204 and gone.content == b""
    again = client.delete("/api/v1/templates/build?reason=x", headers=who("dev"))
    assert again.status_code == 409 and "retired" in again.json()["detail"]
    assert client.get("/api/v1/templates", headers=who("lead")).json()["items"] == []
    listed = client.get("/api/v1/templates?include_retired=true", headers=who("lead"))
    [item] = listed.json()["items"]
    assert item["name"] == "build" and item["retired_at"] is not None
    shown = client.get("/api/v1/templates/build?ref=1", headers=who("lead")).json()
    assert (shown["content"], shown["retired_by"], shown["retired_reason"]) == (
        CI, "dev", "use build-2")  # fmt: skip
    versions = client.get("/api/v1/templates/build/versions", headers=who("lead")).json()
    assert [v["version"] for v in versions["items"]] == [1, 2]

    put = client.put("/api/v1/templates/build", headers=who("dev"), json={"content": CI})
    assert put.status_code == 409, put.text
    assert "restore it" in put.json()["detail"] and _versions(engine) == 2
    rated = client.post("/api/v1/templates/build/ratings", headers=who("lead"), json={"stars": 3})
    assert rated.status_code == 409 and "cannot rate" in rated.json()["detail"]
    [(actor, target, details)] = audit_events(engine, "template.retire")
    assert (actor, target, details) == ("dev", "template build", {"reason": "use build-2"})
    refused = [a for a, _, _ in audit_events(engine, "template.retire.refused")]
    assert refused == ["lead", "dev"]
    assert len(audit_events(engine, "template.publish.refused")) == 1
    assert len(audit_events(engine, "template.rate.refused")) == 1


def test_restore_puts_a_retired_template_back(client, engine, who, published) -> None:
    not_retired = client.post("/api/v1/templates/build/restore", headers=who("dev"))
    assert not_retired.status_code == 409
    assert "template 'build' is not retired" in not_retired.json()["detail"]
    client.delete("/api/v1/templates/build?reason=old", headers=who("dev"))
    unknown = client.post("/api/v1/templates/nope/restore", headers=who("dev"))
    assert unknown.status_code == 404
    viewer = client.post("/api/v1/templates/build/restore", headers=who("viewer"))
    assert viewer.status_code == 403
    restored = client.post("/api/v1/templates/build/restore", headers=who("dev"))
    assert restored.status_code == 200, restored.text
    assert (restored.json()["version"], restored.json()["retired_at"]) == (1, None)
    assert [
        t["name"] for t in client.get("/api/v1/templates", headers=who("dev")).json()["items"]
    ] == ["build"]
    put = client.put("/api/v1/templates/build", headers=who("dev"), json={"content": CI2})
    assert put.status_code == 200 and put.json()["version"] == 2
    [(actor, _, details)] = audit_events(engine, "template.restore")
    assert (actor, details["retired_by"], details["reason"]) == ("dev", "dev", "old")


@pytest.mark.parametrize("ref", ["99999999999999999999", "2147483648", "²"])
def test_a_version_no_integer_can_hold_is_a_404(client, who, published, ref) -> None:
    """PostgreSQL refuses to compare an INTEGER with a number past its range (a DataError, a
    500, found by the contract test); no version can be that number, so it is not found.
    `²` is a digit to `str.isdigit` but no number: it is read as a tag."""
    response = client.get(f"/api/v1/templates/build?ref={ref}", headers=who("dev"))
    assert response.status_code == 404, response.text
    assert ("no version" if ref.isascii() else "no tag") in response.json()["detail"]
