"""The security gate in the approval of deployment requests: the final approval, a fast-track
and a request needing no approval are refused for an image the group's policy blocks, nothing
changes and the refusal is audited; a re-scan without the findings, an ignore entry or a
lenient group let it through."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from tests.deploy.known import know, own
from tests.security.findings import ALPINE_DIGEST, CLEAN, T1, VULNERABLE, store
from timbel_dagster.deploy.chains import load_chains
from timbel_dagster.deploy.requests import RequestError, Requests
from timbel_dagster.security.policy import parse_policy
from timbel_dagster.warehouse.audit.chain import verify_chain
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import AuditEvent, User
from timbel_dagster.warehouse.store.upsert import bulk_upsert

IMAGE = "registry.example.com/shop/api:1.4.2"
NOW = T1 + dt.timedelta(days=1)
PEOPLE = [("dev", "developer"), ("lead", "team_lead"), ("ops", "operations")]
REFUSAL = (
    f"request #1: the prod security policy blocks image {IMAGE}: CVE-2019-14697 musl 1.1.20-r4 "
    "CRITICAL (fixed in 1.1.20-r5); CVE-2019-14697 musl-utils 1.1.20-r4 CRITICAL "
    "(fixed in 1.1.20-r5)"
)


def requests_for(url: str, policy: Any = None, chains: dict | None = None) -> Requests:
    engine = get_engine(url)
    rows = [
        {"id": stable_id("users", name), "source": "test", "name": name, "display_name": name,
         "email": None, "role": role, "team": "shop", "slack_id": None}
        for name, role in PEOPLE
    ]  # fmt: skip
    with engine.begin() as connection:
        bulk_upsert(connection, User.__table__, rows, ["name"])
    know(url, "shop-api", {IMAGE: ALPINE_DIGEST})  # the tag of the scanned image
    own(url, "shop-api", "shop", [name for name, _ in PEOPLE])
    return Requests(
        engine, chains or load_chains(None), dt.timedelta(hours=72), clock=lambda: NOW,
        policy=policy,
    )  # fmt: skip


def audit(requests: Requests) -> list[tuple[str, dict]]:
    with requests.engine.connect() as connection:
        return [
            (action, details)
            for action, details in connection.execute(
                select(AuditEvent.action, AuditEvent.details).order_by(AuditEvent.id)
            )
        ]


@pytest.fixture
def vulnerable(warehouse_url: str) -> str:
    store(warehouse_url, VULNERABLE, IMAGE)
    return warehouse_url


def test_the_final_approval_is_refused_and_nothing_changes(vulnerable: str) -> None:
    requests = requests_for(vulnerable)
    requests.request("dev", "shop-api", IMAGE, "prod", "release")
    requests.decide("lead", "1", approve=True, reason="diff reviewed")  # not final: no gate
    with pytest.raises(RequestError) as refused:
        requests.decide("ops", "1", approve=True, reason="capacity fine")
    assert str(refused.value) == REFUSAL
    status = requests.status("1")
    assert status["status"] == "pending"
    assert [(s["decision"], s["decided_by"]) for s in status["steps"]] == [
        ("approved", "lead"),
        ("pending", None),
    ]
    assert audit(requests)[-1] == ("deploy.approve.refused", {"error": REFUSAL})
    with pytest.raises(RequestError, match="the prod security policy blocks"):
        requests.fast_track("lead", "1", reason="outage", incident="INC-1")
    assert audit(requests)[-1][0] == "deploy.fast_track.refused"
    assert requests.status("1")["fast_track"] is False
    requests.decide("ops", "1", approve=False, reason="fix musl first")  # rejecting is not gated
    assert requests.status("1")["status"] == "rejected"
    with requests.engine.connect() as connection:
        assert verify_chain(connection).intact


def test_a_rescan_without_the_findings_lets_it_through(vulnerable: str) -> None:
    requests = requests_for(vulnerable)
    requests.request("dev", "shop-api", IMAGE, "prod", "release")
    requests.decide("lead", "1", approve=True, reason="ok")
    with pytest.raises(RequestError):
        requests.decide("ops", "1", approve=True, reason="ok")
    store(vulnerable, CLEAN, IMAGE, at=T1 + dt.timedelta(hours=2))  # musl upgraded
    assert requests.decide("ops", "1", approve=True, reason="ok")["status"] == "approved"


@pytest.mark.parametrize(
    ("group", "groups"),
    [
        ("staging", None),  # staging only warns on CRITICAL
        ("prod", {"prod": {"ignore": [{"id": "CVE-2019-14697", "reason": "not reachable"}]}}),
        ("prod", {"prod": {"block": ["HIGH"]}}),
    ],
)
def test_what_the_policy_allows_is_approved(vulnerable: str, group: str, groups: Any) -> None:
    policy = parse_policy({"groups": groups}) if groups else None
    requests = requests_for(vulnerable, policy)
    requests.request("dev", "shop-api", IMAGE, group, "release")
    made = None
    for who in ("lead", "ops")[: len(load_chains(None)[group])]:
        made = requests.decide(who, "1", approve=True, reason="ok")
    assert made is not None and made["status"] == "approved"


def test_fast_track_of_an_unscanned_image_when_prod_requires_a_scan(warehouse_url: str) -> None:
    requests = requests_for(warehouse_url)  # the built-in policy: prod requires a scan
    requests.request("dev", "shop-api", IMAGE, "prod", "hotfix")
    with pytest.raises(RequestError) as refused:
        requests.fast_track("lead", "1", reason="outage", incident="INC-7")
    assert str(refused.value) == (
        f"request #1: the prod security policy blocks image {IMAGE}: prod: blocked: image "
        f"{IMAGE} was never scanned, and prod requires a scan"
    )
    assert requests.status("1")["status"] == "pending"
    # A policy that does not require a scan in prod lets the same fast-track pass.
    lenient = parse_policy({"groups": {"prod": {"require_scan": False}}})
    assert requests_for(warehouse_url, lenient).fast_track("lead", "1", "outage", "INC-7")[
        "fast_track"
    ]


def test_a_request_without_a_chain_is_gated_at_once(vulnerable: str) -> None:
    chains = load_chains(None) | {"prod": ()}
    requests = requests_for(vulnerable, chains=chains)
    with pytest.raises(RequestError, match="cannot approve shop-api for prod without an approval"):
        requests.request("dev", "shop-api", IMAGE, "prod", "release")
    with requests.engine.connect() as connection:
        assert connection.execute(select(DeploymentRequest.id)).all() == []
    assert audit(requests)[-1][0] == "deploy.request.refused"
