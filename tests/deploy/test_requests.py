"""Deployment requests: approval chains by role, separation of duties, expiry, fast-track
with its review, and every refused attempt audited with nothing changed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.deploy.known import know, own
from tests.security.findings import ALPINE_DIGEST, CLEAN, store
from timbel_dagster.deploy.chains import ChainsError, load_chains
from timbel_dagster.deploy.requests import RequestError, Requests
from timbel_dagster.warehouse.audit.chain import verify_chain
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest
from timbel_dagster.warehouse.schema.identity import ServiceOwner
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import AuditEvent, Deployment, User
from timbel_dagster.warehouse.store.upsert import bulk_upsert

T0 = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
PEOPLE = [
    ("dev", "developer", "shop"),
    ("dev2", "developer", "shop"),
    ("lead", "team_lead", "shop"),
    ("lead2", "team_lead", "shop"),
    ("ops", "operations", "platform"),
    ("viewer", "viewer", "shop"),
]
IMAGE = "registry.example.com/shop/api:1.4.2"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def announced() -> list[tuple[str, list[str]]]:
    return []


@pytest.fixture
def requests(warehouse_url: str, clock: Clock, announced: list) -> Requests:
    engine = get_engine(warehouse_url)
    rows = [
        {
            "id": stable_id("users", name),
            "source": "test",
            "name": name,
            "display_name": name,
            "email": f"{name}@example.com",
            "role": role,
            "team": team,
            "slack_id": None,
        }
        for name, role, team in PEOPLE
    ]
    with engine.begin() as connection:
        bulk_upsert(connection, User.__table__, rows, ["name"])
    know(warehouse_url, "shop-api", {IMAGE: ALPINE_DIGEST})
    own(warehouse_url, "shop-api", "shop", [n for n, _, team in PEOPLE if team == "shop"])
    store(warehouse_url, CLEAN, IMAGE)  # scanned clean: the prod security gate lets it pass
    return Requests(
        engine,
        load_chains(None),
        dt.timedelta(hours=72),
        clock=clock,
        notify=lambda request, event, people: announced.append((event, people)),
    )


def _audit(requests: Requests) -> list[tuple[str, str]]:
    with requests.engine.connect() as connection:
        return connection.execute(
            select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
        ).all()


def test_prod_needs_a_team_lead_then_operations(requests: Requests, announced: list) -> None:
    made = requests.request("dev", "shop-api", IMAGE, "prod", "new checkout flow")
    assert made["status"] == "pending" and made["number"] == 1
    assert announced == [("approval_requested", ["lead", "lead2"])]  # same team, not the asker
    requests.decide("lead", "1", approve=True, reason="reviewed the diff")
    assert requests.status("#1")["status"] == "pending"
    assert announced[-1] == ("approval_requested", ["ops"])
    requests.decide("ops", "1", approve=True, reason="capacity is fine")
    status = requests.status("1")
    assert status["status"] == "approved"
    assert [(s["role"], s["decision"], s["decided_by"]) for s in status["steps"]] == [
        ("team_lead", "approved", "lead"),
        ("operations", "approved", "ops"),
    ]
    assert [a for _, a in _audit(requests)] == [
        "deploy.request",
        "deploy.approve",
        "deploy.approve",
    ]


def test_dev_needs_nobody(requests: Requests) -> None:
    assert requests.request("dev", "shop-api", IMAGE, "dev", "")["status"] == "approved"


def test_a_rejection_ends_the_request(requests: Requests) -> None:
    requests.request("dev", "shop-api", IMAGE, "staging", "try it")
    requests.decide("lead", "1", approve=False, reason="tests are red")
    assert requests.status("1")["status"] == "rejected"
    with pytest.raises(RequestError, match="request #1 is rejected, not pending"):
        requests.decide("lead2", "1", approve=True, reason="overrule")


@pytest.mark.parametrize(
    ("who", "reason", "message"),
    [
        ("dev", "ok", "dev made request #1 and cannot approve or reject it"),
        ("dev2", "ok", "step 1 of request #1 needs a team_lead; dev2 is a developer"),
        ("viewer", "ok", "needs a team_lead; viewer is a viewer"),
        ("lead", "  ", "approving needs a --reason"),
        ("nobody", "ok", "user 'nobody' is not in the users table"),
    ],
)
def test_refused_decisions_change_nothing_and_are_audited(
    requests: Requests, who: str, reason: str, message: str
) -> None:
    requests.request("dev", "shop-api", IMAGE, "prod", "x")
    with pytest.raises(RequestError, match=message):
        requests.decide(who, "1", approve=True, reason=reason)
    status = requests.status("1")
    assert status["status"] == "pending" and status["steps"][0]["decision"] == "pending"
    assert _audit(requests)[-1] == (who, "deploy.approve.refused")
    with requests.engine.connect() as connection:
        assert verify_chain(connection).intact


def test_a_team_lead_decides_only_for_their_teams_services(
    requests: Requests, warehouse_url: str
) -> None:
    """The team check: `lead` (team shop, which owns shop-api) may decide; a team lead of
    another team may not, approving or rejecting; operations decides for every team."""
    with requests.engine.begin() as connection:
        row = {"id": stable_id("users", "ads_lead"), "source": "test", "name": "ads_lead",
               "display_name": None, "email": None, "role": "team_lead", "team": "ads",
               "slack_id": None}  # fmt: skip
        bulk_upsert(connection, User.__table__, [row], ["name"])
    own(warehouse_url, "ads-api", "ads", ["ads_lead"])  # ads_lead is a lead, of team ads
    requests.request("dev", "shop-api", IMAGE, "prod", "x")
    refusal = (
        "step 1 of request #1 needs a team lead of team shop, which owns shop-api; ads_lead "
        "is in ads (`timbel team member shop ads_lead` adds them)"
    )
    for approve in (True, False):
        with pytest.raises(RequestError) as refused:
            requests.decide("ads_lead", "1", approve=approve, reason="not mine")
        assert str(refused.value) == refusal
    assert requests.status("1")["steps"][0]["decision"] == "pending"
    assert _audit(requests)[-2:] == [
        ("ads_lead", "deploy.approve.refused"),
        ("ads_lead", "deploy.reject.refused"),
    ]
    requests.decide("lead", "1", approve=True, reason="ours")
    assert requests.decide("ops", "1", approve=True, reason="ok")["status"] == "approved"


def test_fast_track_and_review_by_a_team_lead_follow_the_team_check(
    requests: Requests, warehouse_url: str
) -> None:
    with requests.engine.begin() as connection:
        row = {"id": stable_id("users", "ads_lead"), "source": "test", "name": "ads_lead",
               "display_name": None, "email": None, "role": "team_lead", "team": "ads",
               "slack_id": None}  # fmt: skip
        bulk_upsert(connection, User.__table__, [row], ["name"])
    own(warehouse_url, "ads-api", "ads", ["ads_lead"])
    requests.request("dev", "shop-api", IMAGE, "prod", "x")
    with pytest.raises(RequestError) as refused:
        requests.fast_track("ads_lead", "1", "checkout is down", "INC-7")
    assert str(refused.value).startswith(
        "a fast-track of #1 needs a team lead of team shop, which owns shop-api; ads_lead is in ads"
    )
    assert requests.status("1")["status"] == "pending"
    requests.fast_track("lead", "1", "checkout is down", "INC-7")
    with pytest.raises(RequestError, match="the review of #1 needs a team lead of team shop"):
        requests.review("ads_lead", "1", "fine")
    assert requests.review("lead2", "1", "fine")["post_review_by"] == "lead2"


def test_the_owning_teams_leads_are_asked_first(
    requests: Requests, warehouse_url: str, announced: list
) -> None:
    """dev's own team is shop, but team ads owns the service: ads' lead is asked."""
    with requests.engine.begin() as connection:
        row = {"id": stable_id("users", "ads_lead"), "source": "test", "name": "ads_lead",
               "display_name": None, "email": None, "role": "team_lead", "team": "ads",
               "slack_id": None}  # fmt: skip
        bulk_upsert(connection, User.__table__, [row], ["name"])
    own(warehouse_url, "shop-api", "ads", ["ads_lead"])
    requests.request("dev", "shop-api", IMAGE, "staging", "x")
    assert announced == [("approval_requested", ["ads_lead"])]


def test_a_service_no_team_owns_has_its_team_lead_step_refused(requests: Requests) -> None:
    requests.request("dev", "shop-api", IMAGE, "staging", "x")
    with requests.engine.begin() as connection:
        connection.execute(ServiceOwner.__table__.delete())
    with pytest.raises(RequestError) as refused:
        requests.decide("lead", "1", approve=True, reason="ok")
    assert str(refused.value) == (
        "step 1 of request #1 needs a team lead of the team that owns shop-api, and no team "
        "owns it: an admin can set it with `timbel team own shop-api --team TEAM`"
    )
    with requests.engine.begin() as connection:  # an admin is not held by the team check
        connection.execute(User.__table__.update().where(User.name == "ops").values(role="admin"))
    assert requests.decide("ops", "1", approve=True, reason="ok")["status"] == "approved"


def test_one_person_cannot_fill_two_steps(requests: Requests) -> None:
    requests.request("dev", "shop-api", IMAGE, "prod", "x")
    with requests.engine.begin() as connection:  # make `lead` an admin for this test
        connection.execute(User.__table__.update().where(User.name == "lead").values(role="admin"))
    requests.decide("lead", "1", approve=True, reason="ok")
    with pytest.raises(RequestError, match="lead already decided a step of request #1"):
        requests.decide("lead", "1", approve=True, reason="me again")


@pytest.mark.parametrize(
    ("service", "image", "group", "message"),
    [
        ("shop-api", IMAGE, "qa", "unknown environment group 'qa'; groups are dev, staging, prod"),
        ("shop-api", "not an image!", "prod", "'not an image!' is not an image reference"),
        ("  ", IMAGE, "prod", "the service name is empty"),
        ("no-such-service", IMAGE, "dev",
         "unknown service 'no-such-service': no pipeline or deployment names it; known "
         "services: shop-api"),
        ("shop-apii", IMAGE, "dev",
         "unknown service 'shop-apii': no pipeline or deployment names it; did you mean "
         "shop-api?"),
        ("shop-api", "registry.example.com/shop/api:9.9.9", "dev",
         "unknown image 'registry.example.com/shop/api:9.9.9': not in registry_images or any "
         "deployment, and no registry is configured to ask (HARBOR_REGISTRY); known images "
         "of shop/api: registry.example.com/shop/api:1.4.2"),
        ("shop-api", "registry.example.com/shop/apx:1.4.2", "dev",
         "unknown image 'registry.example.com/shop/apx:1.4.2': not in registry_images or any "
         "deployment, and no registry is configured to ask (HARBOR_REGISTRY); close matches: "
         "registry.example.com/shop/api:1.4.2"),
        ("shop-api", "shop/api:1.4.2", "dev",  # Docker Hub's shop/api, not our registry's
         "unknown image 'shop/api:1.4.2': not in registry_images or any deployment, and no "
         "registry is configured to ask (HARBOR_REGISTRY); known images of shop/api: "
         "registry.example.com/shop/api:1.4.2"),
        ("shop-api", f"registry.example.com/shop/api@sha256:{'0' * 64}", "dev",
         "unknown image 'registry.example.com/shop/api@sha256:000"),
    ],
)  # fmt: skip
def test_bad_requests(requests: Requests, service: str, image: str, group: str, message: str):
    with pytest.raises(RequestError) as refused:
        requests.request("dev", service, image, group, "x")
    assert str(refused.value).startswith(message)
    with requests.engine.connect() as connection:
        assert connection.execute(select(DeploymentRequest.id)).all() == []
    assert _audit(requests) == [("dev", "deploy.request.refused")]


def test_what_timbel_knows_is_accepted(requests: Requests, warehouse_url: str) -> None:
    """By tag, by digest, by tag and digest; a service known from its deployments only; an
    image a scan saw; an image only the registry has (asked once, only when the warehouse
    does not know it)."""
    by_digest = f"registry.example.com/shop/api@{ALPINE_DIGEST}"
    for image in (IMAGE, by_digest, f"{IMAGE}@{ALPINE_DIGEST}"):
        assert requests.request("dev", "shop-api", image, "dev", "")["status"] == "approved"
    with get_engine(warehouse_url).begin() as connection:
        bulk_upsert(connection, Deployment.__table__, [
            {"id": stable_id("deployments", "argo", "1"), "source": "argo", "external_id": "1",
             "service": "cart", "environment": "dev", "cluster": None,
             "image": "registry.example.com/shop/cart:7", "version": None, "commit_from": None,
             "commit_to": None, "kind": "release", "status": "success", "started_at": T0,
             "completed_at": T0, "triggered_by": None, "execution_id": None},
        ], ["source", "external_id"])  # fmt: skip
    made = requests.request("dev", "cart", "registry.example.com/shop/cart:7", "staging", "")
    assert made["status"] == "pending"
    store(warehouse_url, CLEAN, "registry.example.com/shop/api:1.5.0")  # a scan saw it
    requests.request("dev", "shop-api", "registry.example.com/shop/api:1.5.0", "staging", "")
    asked: list[tuple[str, str, str]] = []

    def registry(host: str, repository: str, reference: str) -> str | None:
        asked.append((host, repository, reference))
        return "sha256:" + "7" * 64 if reference == "2.0.0" else None

    requests.lookup = registry
    pushed = "registry.example.com/shop/api:2.0.0"  # pushed, not ingested yet
    assert requests.request("dev", "shop-api", pushed, "staging", "")["status"] == "pending"
    requests.request("dev", "shop-api", IMAGE, "staging", "")  # registry_images knows it
    with pytest.raises(RequestError) as refused:
        requests.request("dev", "shop-api", "registry.example.com/shop/api:2.0.1", "dev", "")
    assert str(refused.value) == (
        "unknown image 'registry.example.com/shop/api:2.0.1': not in registry_images or any "
        "deployment, nor does the registry have it; known images of shop/api: "
        "registry.example.com/shop/api:1.4.2"
    )
    assert asked == [
        ("registry.example.com", "shop/api", "2.0.0"),
        ("registry.example.com", "shop/api", "2.0.1"),
    ]


def test_requests_expire(requests: Requests, clock: Clock) -> None:
    requests.request("dev", "shop-api", IMAGE, "prod", "x")
    clock.now = T0 + dt.timedelta(hours=73)
    with pytest.raises(RequestError, match="request #1 expired at 2026-11-05 09:00 UTC"):
        requests.decide("lead", "1", approve=True, reason="late")
    assert requests.status("1")["status"] == "expired"
    assert [a for _, a in _audit(requests)][-2:] == ["deploy.expire", "deploy.approve.refused"]


def test_fast_track_skips_the_chain_tells_everyone_and_needs_a_review(
    requests: Requests, announced: list
) -> None:
    requests.request("dev", "shop-api", IMAGE, "prod", "hotfix")
    with pytest.raises(RequestError, match="needs an --incident reference"):
        requests.fast_track("lead", "1", "checkout is down", "")
    with pytest.raises(RequestError, match="a fast-track needs a team_lead, operations or admin"):
        requests.fast_track("dev2", "1", "checkout is down", "INC-7")
    done = requests.fast_track("lead", "1", "checkout is down", "INC-7")
    assert done["status"] == "approved" and done["fast_track"]
    assert announced[-1] == ("approval_requested", ["lead", "lead2"])  # every approver
    status = requests.status("1")
    assert {s["decision"] for s in status["steps"]} == {"skipped"}
    assert status["post_review_at"] is None  # the review is still due
    with pytest.raises(RequestError, match="other than the requester"):
        requests.review("dev", "1", "fine")
    requests.review("ops", "1", "the hotfix was right; add a test for it")
    with pytest.raises(RequestError, match="was reviewed by ops already"):
        requests.review("lead2", "1", "again")


def test_unknown_requests(requests: Requests) -> None:
    with pytest.raises(RequestError, match="no deployment request '7'"):
        requests.status("7")
    with pytest.raises(RequestError, match="'ab' is not a request number or an id prefix"):
        requests.status("ab")


def test_chains_file(tmp_path: Path) -> None:
    good = tmp_path / "chains.yaml"
    good.write_text("chains:\n  dev: []\n  staging: []\n  prod: [operations]\n")
    assert load_chains(good)["prod"] == ("operations",)
    bad = tmp_path / "bad.yaml"
    bad.write_text("chains:\n  dev: []\n  staging: []\n  prod: [boss]\n")
    with pytest.raises(ChainsError, match=r"chains\.prod must be a list of roles"):
        load_chains(bad)
    bad.write_text("chains:\n  prod: []\n")
    with pytest.raises(ChainsError, match="no chain for dev, staging"):
        load_chains(bad)


def test_a_disabled_approver_is_not_asked_and_cannot_decide(
    requests: Requests, announced: list
) -> None:
    from sqlalchemy import update

    with requests.engine.begin() as connection:
        connection.execute(update(User).where(User.name == "lead2").values(disabled_at=T0))
    requests.request("dev", "shop-api", IMAGE, "prod", "new checkout flow")
    assert announced == [("approval_requested", ["lead"])]
    with pytest.raises(RequestError, match=r"^user 'lead2' is disabled"):
        requests.decide("lead2", "1", approve=True, reason="looks fine")
    assert requests.status("1")["steps"][0]["decision"] == "pending"
    assert _audit(requests)[-1] == ("lead2", "deploy.approve.refused")
