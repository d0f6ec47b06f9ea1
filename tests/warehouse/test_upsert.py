from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import Pipeline, User
from timbel_dagster.warehouse.store.upsert import bulk_upsert

USERS = User.__table__


def _user(name: str, role: str = "developer", email: str | None = None) -> dict:
    return {
        "id": stable_id("users", name),
        "source": "test",
        "name": name,
        "display_name": name.title(),
        "email": email or f"{name}@example.org",
        "role": role,
        "team": None,
        "slack_id": None,
    }


def _count(url: str) -> int:
    with get_engine(url).connect() as connection:
        return connection.execute(select(func.count()).select_from(USERS)).scalar_one()


def test_rerun_writes_nothing_and_changes_only_what_differs(warehouse_url: str) -> None:
    rows = [_user(f"user{i}") for i in range(250)]
    engine = get_engine(warehouse_url)
    with engine.begin() as connection:
        first = bulk_upsert(connection, USERS, rows, ["name"], batch_size=64)
    assert (first.offered, first.written) == (250, 250)
    with engine.begin() as connection:
        again = bulk_upsert(connection, USERS, rows, ["name"])
    assert (again.written, again.unchanged) == (0, 250)

    rows[7] = _user("user7", role="team_lead")
    rows[9] = _user("user9", email=None) | {"email": None}
    with engine.begin() as connection:
        changed = bulk_upsert(connection, USERS, rows, ["name"])
    assert changed.written == 2
    assert _count(warehouse_url) == 250
    with engine.connect() as connection:
        role, email = connection.execute(
            select(USERS.c.role, USERS.c.email)
            .where(USERS.c.name.in_(["user7", "user9"]))
            .order_by(USERS.c.name)
        ).all()
    assert role[0] == "team_lead"
    assert email[1] is None


def test_updated_at_moves_only_for_changed_rows(warehouse_url: str) -> None:
    engine = get_engine(warehouse_url)
    with engine.begin() as connection:
        bulk_upsert(connection, USERS, [_user("a"), _user("b")], ["name"])
    with engine.connect() as connection:
        before = dict(connection.execute(select(USERS.c.name, USERS.c.updated_at)).all())
    with engine.begin() as connection:
        bulk_upsert(connection, USERS, [_user("a", role="admin"), _user("b")], ["name"])
    with engine.connect() as connection:
        after = dict(connection.execute(select(USERS.c.name, USERS.c.updated_at)).all())
    assert after["a"] > before["a"]
    assert after["b"] == before["b"]


def test_duplicate_keys_in_one_batch_last_wins(warehouse_url: str) -> None:
    with get_engine(warehouse_url).begin() as connection:
        result = bulk_upsert(
            connection, USERS, [_user("x"), _user("x", role="operations")], ["name"]
        )
    assert (result.offered, result.written) == (2, 1)
    with get_engine(warehouse_url).connect() as connection:
        assert connection.execute(select(USERS.c.role)).scalar_one() == "operations"


def test_a_failing_batch_leaves_nothing_behind(warehouse_url: str) -> None:
    rows = [_user(f"ok{i}") for i in range(10)] + [_user("bad", role="pirate")]
    with pytest.raises(IntegrityError), get_engine(warehouse_url).begin() as connection:
        bulk_upsert(connection, USERS, rows, ["name"])
    assert _count(warehouse_url) == 0


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"name": "a", "colour": "red"}], "unknown column(s) colour"),
        ([{"source": "t", "role": "developer"}], "lack natural-key column(s) name"),
        ([{"name": "a", "role": "developer"}, {"name": "b"}], "row 1 has different columns"),
    ],
)
def test_malformed_rows_are_refused_with_the_reason(
    warehouse_url: str, rows: list[dict], message: str
) -> None:
    with (
        pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")),
        get_engine(warehouse_url).begin() as connection,
    ):
        bulk_upsert(connection, USERS, rows, ["name"])


def test_naive_timestamps_are_refused(warehouse_url: str) -> None:
    row = {
        "id": stable_id("pipelines", "t", "p"),
        "source": "t",
        "ci_system": "jenkins",
        "name": "p",
        "service": None,
        "repository": None,
        "default_branch": None,
        "url": None,
        "created_at": dt.datetime(2026, 1, 1),
    }
    with (
        pytest.raises(Exception, match="naive datetime"),
        get_engine(warehouse_url).begin() as connection,
    ):
        bulk_upsert(connection, Pipeline.__table__, [row], ["source", "name"])


def test_empty_batch_is_a_no_op(warehouse_url: str) -> None:
    with get_engine(warehouse_url).begin() as connection:
        result = bulk_upsert(connection, USERS, [], ["name"])
    assert (result.offered, result.written) == (0, 0)
