"""/api/v1/deployments/requests: a developer requests, the owning team's lead approves, a
lead of another team is refused (403, audited, nothing changed), reject needs a reason,
fast-track and its review, the risk assessment in words, tenant scope and paging."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import insert, select, update

from tests.api.conftest import audit_events, bearer, secret_for
from tests.deploy.known import know, own
from tests.identity.people import PEOPLE, store_people
from tests.ml.test_risk_words import ASSESSMENT
from tests.security.findings import ALPINE_DIGEST, CLEAN, store
from timbel_dagster.warehouse.people import membership
from timbel_dagster.warehouse.schema.deploy import ApprovalStep, DeploymentRequest, Tenant

IMAGE = "registry.example.com/shop/api:1.4.2"
REQUESTS = "/api/v1/deployments/requests"
T0 = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)


@pytest.fixture
def shop(engine, warehouse_url: str):
    """shop-api, owned by team shop (lead, dev), its image known and scanned clean; lead2 is
    a team lead of team pay, which owns nothing of it."""
    store_people(warehouse_url, [*PEOPLE, ("lead2", "team_lead", "pay")])
    know(warehouse_url, "shop-api", {IMAGE: ALPINE_DIGEST})
    own(warehouse_url, "shop-api", "shop", ["lead", "dev"])
    own(warehouse_url, "pay-api", "pay", ["lead2"])
    store(warehouse_url, CLEAN, IMAGE)
    return engine


def _as(engine, user: str) -> dict[str, str]:
    return bearer(secret_for(engine, user))


def _request(client, engine, group: str = "staging") -> dict:
    body = {"service": "shop-api", "image": IMAGE, "group": group, "reason": "checkout fix"}
    response = client.post(REQUESTS, json=body, headers=_as(engine, "dev"))
    assert response.status_code == 201, response.text
    return response.json()


def _status(engine, number: int) -> tuple[str, list[str]]:
    with engine.connect() as connection:
        request = connection.execute(
            select(DeploymentRequest.id, DeploymentRequest.status).where(
                DeploymentRequest.number == number
            )
        ).one()
        decisions = connection.execute(
            select(ApprovalStep.decision)
            .where(ApprovalStep.request_id == request.id)
            .order_by(ApprovalStep.position)
        ).scalars()
        return request.status, list(decisions)


def test_developer_requests_and_the_owning_team_lead_approves(client, shop) -> None:
    made = _request(client, shop)
    assert made["status"] == "pending" and made["requested_by"] == "dev"
    assert [(s["role"], s["decision"]) for s in made["steps"]] == [("team_lead", "pending")]
    assert made["risk_note"].startswith("not assessed")  # no model trained: not refused
    assert [e[0] for e in audit_events(shop, "deploy.request")] == ["dev"]

    response = client.post(
        f"{REQUESTS}/{made['number']}/approve", json={"reason": "tested on dev"},
        headers=_as(shop, "lead"),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "approved"
    assert body["steps"][0] | {"decided_at": None} == {
        "position": 1, "role": "team_lead", "decision": "approved", "decided_by": "lead",
        "reason": "tested on dev", "decided_at": None,
    }  # fmt: skip
    events = audit_events(shop, "deploy.approve")
    assert [(actor, target) for actor, target, _ in events] == [("lead", "request #1")]


def test_a_team_lead_of_another_team_is_refused_and_nothing_changes(client, shop) -> None:
    made = _request(client, shop)
    response = client.post(
        f"{REQUESTS}/{made['number']}/approve", json={"reason": "looks fine"},
        headers=_as(shop, "lead2"),
    )  # fmt: skip
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert "team shop" in response.json()["detail"]
    assert _status(shop, made["number"]) == ("pending", ["pending"])
    assert audit_events(shop, "deploy.approve") == []
    refused = audit_events(shop, "api.refused")
    assert [(actor, details["action"]) for actor, _, details in refused] == [
        ("lead2", "deploy.approve")
    ]


def test_a_step_of_another_role_is_refused_by_the_chain(client, shop) -> None:
    """Operations acts for every team, but step 1 of prod is the team lead's: the domain
    refuses (403), audits it with the real actor, and nothing changes."""
    made = _request(client, shop, group="prod")
    response = client.post(f"{REQUESTS}/{made['number']}/approve", headers=_as(shop, "ops"))
    assert response.status_code == 403
    assert "needs a team_lead" in response.json()["detail"]
    assert _status(shop, made["number"]) == ("pending", ["pending", "pending"])
    assert [e[0] for e in audit_events(shop, "deploy.approve.refused")] == ["ops"]


def test_approving_without_a_reason_records_that_none_was_given(client, shop) -> None:
    made = _request(client, shop)
    response = client.post(f"{REQUESTS}/{made['number']}/approve", headers=_as(shop, "lead"))
    assert response.status_code == 200, response.text
    assert response.json()["steps"][0]["reason"] == "approved through the API without a comment"


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}])
def test_reject_without_a_reason_is_422_on_the_field(client, shop, body) -> None:
    made = _request(client, shop)
    response = client.post(
        f"{REQUESTS}/{made['number']}/reject", json=body, headers=_as(shop, "lead")
    )
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "reason"]]
    assert _status(shop, made["number"]) == ("pending", ["pending"])


def test_reject_with_a_reason(client, shop) -> None:
    made = _request(client, shop)
    response = client.post(
        f"{REQUESTS}/{made['number']}/reject", json={"reason": "no rollback plan"},
        headers=_as(shop, "lead"),
    )  # fmt: skip
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    again = client.post(
        f"{REQUESTS}/{made['number']}/approve", json={"reason": "oops"}, headers=_as(shop, "lead")
    )
    assert again.status_code == 409 and "not pending" in again.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", ""), ("get", "/risk"), ("post", "/approve"), ("post", "/fast-track")],
)
def test_an_unknown_number_is_404(client, shop, method, path) -> None:
    body = {"reason": "r", "incident": "INC-1"} if method == "post" else None
    response = getattr(client, method)(
        f"{REQUESTS}/999{path}", headers=_as(shop, "ops"), **({"json": body} if body else {})
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "no deployment request #999"


def test_fast_track_by_the_team_lead_then_review(client, shop) -> None:
    made = _request(client, shop, group="prod")
    response = client.post(
        f"{REQUESTS}/{made['number']}/fast-track",
        json={"reason": "checkout is down", "incident": "INC-77"}, headers=_as(shop, "lead"),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["fast_track"], body["incident_ref"]) == (
        "approved", True, "INC-77",
    )  # fmt: skip
    assert [s["decision"] for s in body["steps"]] == ["skipped", "skipped"]
    assert [e[0] for e in audit_events(shop, "deploy.fast_track")] == ["lead"]

    reviewed = client.post(
        f"{REQUESTS}/{made['number']}/review", json={"note": "root cause fixed"},
        headers=_as(shop, "ops"),
    )  # fmt: skip
    assert reviewed.status_code == 200
    assert reviewed.json()["post_review_by"] == "ops"


def test_fast_track_needs_an_incident(client, shop) -> None:
    made = _request(client, shop, group="prod")
    response = client.post(
        f"{REQUESTS}/{made['number']}/fast-track", json={"reason": "down"},
        headers=_as(shop, "lead"),
    )  # fmt: skip
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "incident"]]


def test_a_viewer_may_not_request(client, shop) -> None:
    body = {"service": "shop-api", "image": IMAGE, "group": "dev"}
    response = client.post(REQUESTS, json=body, headers=_as(shop, "viewer"))
    assert response.status_code == 403
    assert audit_events(shop, "deploy.request") == []


def test_an_unknown_group_is_refused_and_audited(client, shop) -> None:
    body = {"service": "shop-api", "image": IMAGE, "group": "moon"}
    response = client.post(REQUESTS, json=body, headers=_as(shop, "dev"))
    assert response.status_code == 409
    assert "unknown environment group 'moon'" in response.json()["detail"]
    assert [e[0] for e in audit_events(shop, "deploy.request.refused")] == ["dev"]


def test_the_risk_route_gives_the_reasons_in_words(client, shop) -> None:
    made = _request(client, shop)
    missing = client.get(f"{REQUESTS}/{made['number']}/risk", headers=_as(shop, "viewer"))
    assert missing.status_code == 404 and "no risk assessment" in missing.json()["detail"]
    with shop.begin() as connection:
        connection.execute(
            update(DeploymentRequest)
            .where(DeploymentRequest.number == made["number"])
            .values(risk=ASSESSMENT)
        )
    response = client.get(f"{REQUESTS}/{made['number']}/risk", headers=_as(shop, "viewer"))
    assert response.status_code == 200, response.text
    risk = response.json()
    assert risk["advice"] == "3.1% chance of failure -> APPROVE (model v2)"
    assert risk["reasons"][0]["text"].startswith("adds 412 lines: raises risk")
    assert risk["confidence_text"].startswith("confidence low (0.09)")
    assert risk["similar"][0]["outcome"] == "succeeded"


def test_list_filters_by_state_and_pages_by_cursor(client, shop) -> None:
    numbers = [_request(client, shop)["number"] for _ in range(5)]
    client.post(f"{REQUESTS}/{numbers[0]}/reject", json={"reason": "no"}, headers=_as(shop, "lead"))
    seen, cursor, pages = [], None, 0
    while True:
        params = {"state": "pending", "limit": 2} | ({"cursor": cursor} if cursor else {})
        response = client.get(REQUESTS, params=params, headers=_as(shop, "viewer"))
        assert response.status_code == 200, response.text
        seen += [item["number"] for item in response.json()["items"]]
        cursor, pages = response.json()["next_cursor"], pages + 1
        if cursor is None:
            break
    assert seen == sorted(numbers[1:], reverse=True) and pages == 2
    bad = client.get(REQUESTS, params={"cursor": "nope"}, headers=_as(shop, "viewer"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "cursor"]
    state = client.get(REQUESTS, params={"state": "bogus"}, headers=_as(shop, "viewer"))
    assert state.status_code == 422 and state.json()["errors"][0]["loc"] == ["query", "state"]


def test_a_tenant_member_sees_only_their_tenants_requests(client, shop) -> None:
    made = _request(client, shop)
    with shop.begin() as connection:
        for name in ("shop-tenant", "other-tenant"):
            connection.execute(
                insert(Tenant).values(
                    id=uuid.uuid4(), name=name, cpu_cores=4.0, memory_bytes=8e9, clusters=["a"],
                    status="provisioned", created_by="admin", created_at=T0, updated_at=T0,
                )
            )  # fmt: skip
        membership.set_owner(connection, "shop-api", "shop", tenant="shop-tenant")
        membership.set_tenant_members(connection, "other-tenant", ["viewer"])
    outsider = _as(shop, "viewer")
    assert client.get(REQUESTS, headers=outsider).json()["items"] == []
    response = client.get(f"{REQUESTS}/{made['number']}", headers=outsider)
    assert response.status_code == 403
    assert client.get(REQUESTS, headers=_as(shop, "ops")).json()["items"][0]["number"] == 1
    with shop.begin() as connection:
        membership.set_tenant_members(connection, "shop-tenant", ["viewer"])
    inside = client.get(f"{REQUESTS}/{made['number']}", headers=outsider)
    assert inside.status_code == 200 and inside.json()["number"] == made["number"]


def test_an_overdue_request_reads_expired_and_no_read_writes(client, shop) -> None:
    """GETs show a pending request past its expiry as expired and write nothing (no status
    change, no audit event); request_expiry_sensor records it, since its expires_at."""
    import dagster as dg

    from timbel_dagster.bindings.warehouse import WarehouseResource
    from timbel_dagster.sensors.requests import request_expiry_sensor

    number = _request(client, shop)["number"]
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    with shop.begin() as connection:
        connection.execute(
            update(DeploymentRequest)
            .where(DeploymentRequest.number == number)
            .values(expires_at=past)
        )
    lead = _as(shop, "lead")
    shown = client.get(f"{REQUESTS}/{number}", headers=lead).json()
    assert shown["status"] == "expired"
    listed = client.get(f"{REQUESTS}?state=expired", headers=lead).json()["items"]
    assert [r["number"] for r in listed] == [number]
    assert client.get(f"{REQUESTS}?state=pending", headers=lead).json()["items"] == []
    assert _status(shop, number)[0] == "pending"  # read, not written
    assert audit_events(shop, "deploy.expire") == []
    decided = client.post(f"{REQUESTS}/{number}/approve", headers=lead, json={"reason": "ok"})
    assert decided.status_code == 409 and "expired" in decided.json()["detail"]

    url = shop.url.render_as_string(hide_password=False)
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        resources={"warehouse": WarehouseResource(database_url=url)},
    ) as context:
        request_expiry_sensor(context)
    assert _status(shop, number)[0] == "expired"
    [(actor, target, _)] = audit_events(shop, "deploy.expire")
    assert (actor, target) == ("timbel", f"request #{number}")
    with shop.connect() as connection:
        decided_at = connection.execute(
            select(DeploymentRequest.decided_at).where(DeploymentRequest.number == number)
        ).scalar_one()
    assert abs(decided_at - past) < dt.timedelta(seconds=1)
