"""Who may decide a request (`deploy.deciders`): the policy gate the approvals page and the
Slack buttons both ask (`may_decide`), and the list the approvals page shows, which is
exactly what `Requests.decide` would accept, step by step."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.deploy.known import know, own
from tests.deploy.test_requests import IMAGE, PEOPLE, T0
from tests.security.findings import ALPINE_DIGEST, CLEAN, store
from timbel_dagster.deploy.chains import load_chains
from timbel_dagster.deploy.deciders import REASON_MAX_CHARS, decidable, may_decide
from timbel_dagster.deploy.requests import RequestError, Requests
from timbel_dagster.identity.principal import load_principal
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import User
from timbel_dagster.warehouse.store.upsert import bulk_upsert

EVERYONE = ("dev", "dev2", "lead", "lead2", "ops", "viewer", "lead_pay")


@pytest.fixture
def deciding(warehouse_url: str) -> Requests:
    """test_requests' people (dev, dev2, lead, lead2 in team shop, which owns shop-api; ops;
    viewer) and lead_pay, a team lead of team payments; shop-api's image scanned clean."""
    people = [*PEOPLE, ("lead_pay", "team_lead", "payments")]
    rows = [
        {"id": stable_id("users", name), "source": "test", "name": name, "display_name": name,
         "email": f"{name}@example.com", "role": role, "team": team, "slack_id": None}
        for name, role, team in people
    ]  # fmt: skip
    engine = get_engine(warehouse_url)
    with engine.begin() as connection:
        bulk_upsert(connection, User.__table__, rows, ["name"])
    know(warehouse_url, "shop-api", {IMAGE: ALPINE_DIGEST})
    own(warehouse_url, "shop-api", "shop", [n for n, _, team in people if team == "shop"])
    own(warehouse_url, "pay-api", "payments", ["lead_pay"])
    store(warehouse_url, CLEAN, IMAGE)
    return Requests(engine, load_chains(None), dt.timedelta(hours=72), clock=lambda: T0)


def _who_may(requests: Requests, now: dt.datetime = T0) -> dict[str, list[int]]:
    with requests.engine.connect() as connection:
        return {user: [r["number"] for r in decidable(connection, user, now)] for user in EVERYONE}


def _accepts(requests: Requests, user: str, number: int) -> bool:
    """Whether decide() accepts `user`'s approval of request `number` (and records it)."""
    try:
        requests.decide(user, str(number), approve=True, reason="ok")
    except RequestError:
        return False
    return True


def test_the_list_follows_the_chain_and_the_owning_team(deciding: Requests) -> None:
    deciding.request("dev", "shop-api", IMAGE, "prod", "new checkout flow")
    step_1 = _who_may(deciding)
    assert step_1 == {"dev": [], "dev2": [], "lead": [1], "lead2": [1], "ops": [],
                      "viewer": [], "lead_pay": []}  # fmt: skip
    for user in ("dev", "dev2", "ops", "viewer", "lead_pay"):
        assert not _accepts(deciding, user, 1), user
    assert _accepts(deciding, "lead", 1)
    step_2 = _who_may(deciding)
    assert step_2 == {"dev": [], "dev2": [], "lead": [], "lead2": [], "ops": [1],
                      "viewer": [], "lead_pay": []}  # fmt: skip
    assert not _accepts(deciding, "lead2", 1)
    assert _accepts(deciding, "ops", 1)
    assert all(numbers == [] for numbers in _who_may(deciding).values())


def test_expired_and_decided_requests_are_not_listed(deciding: Requests) -> None:
    deciding.request("dev", "shop-api", IMAGE, "staging", "try it")
    assert _who_may(deciding)["lead"] == [1]
    assert _who_may(deciding, T0 + dt.timedelta(hours=73))["lead"] == []
    deciding.decide("lead2", "1", approve=False, reason="tests are red")
    assert _who_may(deciding)["lead"] == []


def test_an_unknown_user_is_refused(deciding: Requests) -> None:
    with deciding.engine.connect() as connection, pytest.raises(RequestError):
        decidable(connection, "nobody", T0)


@pytest.mark.parametrize(
    ("user", "approve", "allowed", "why"),
    [
        ("lead", True, True, "is in team shop"),
        ("lead", False, True, "is in team shop"),
        ("ops", False, True, "operations acts for every team"),
        ("lead_pay", False, False, "needs a member of team shop"),
        ("dev", False, False, "deploy.reject needs operations or team_lead or admin"),
        ("viewer", True, False, "deploy.approve needs"),
    ],
)
def test_may_decide_is_the_policy_table_scoped_to_the_owning_team(
    deciding: Requests, user: str, approve: bool, allowed: bool, why: str
) -> None:
    deciding.request("dev", "shop-api", IMAGE, "staging", "try it")
    with deciding.engine.connect() as connection:
        verdict = may_decide(connection, load_principal(connection, user), "#1", approve)
    assert verdict.allowed is allowed
    assert why in verdict.reason


def test_may_decide_an_unknown_request(deciding: Requests) -> None:
    with deciding.engine.connect() as connection, pytest.raises(RequestError, match="no deploy"):
        may_decide(connection, load_principal(connection, "lead"), "42", approve=False)


def test_a_reason_longer_than_the_limit_is_refused(deciding: Requests) -> None:
    deciding.request("dev", "shop-api", IMAGE, "staging", "try it")
    with pytest.raises(RequestError, match=f"at most {REASON_MAX_CHARS}"):
        deciding.decide("lead", "1", approve=False, reason="x" * (REASON_MAX_CHARS + 1))
    assert deciding.status("1")["status"] == "pending"
    deciding.decide("lead", "1", approve=False, reason="x" * REASON_MAX_CHARS)
    assert deciding.status("1")["status"] == "rejected"
