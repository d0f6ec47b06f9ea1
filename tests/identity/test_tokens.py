"""API tokens: shown once, stored as a SHA-256, verified by it; expired, revoked and
disabled-user tokens refused with distinct reasons; use recorded at most once a minute;
managing someone else's tokens needs an admin; every change and refusal audited without
the secret."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select

from tests.identity.people import store_people
from timbel_dagster.identity import tokens
from timbel_dagster.identity.authorize import NotAllowedError
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.people.user_admin import set_disabled
from timbel_dagster.warehouse.people.users import UnknownUserError
from timbel_dagster.warehouse.schema.identity import ApiToken
from timbel_dagster.warehouse.schema.models import AuditEvent

T0 = dt.datetime(2026, 12, 5, 9, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def engine(warehouse_url: str):
    store_people(warehouse_url)
    return get_engine(warehouse_url)


def _audit(engine) -> list[tuple[str, str, str, dict]]:
    with engine.connect() as connection:
        query = select(AuditEvent.actor, AuditEvent.action, AuditEvent.target, AuditEvent.details)
        return [tuple(row) for row in connection.execute(query.order_by(AuditEvent.id))]


def test_a_token_is_shown_once_stored_hashed_and_verified(engine) -> None:
    clock = Clock()
    made = tokens.create_token(engine, "dev", "dev", label="ci", expires="30d", clock=clock)
    secret = made["secret"]
    assert secret.startswith("tbl_") and len(secret) >= 4 + 43
    assert made["prefix"] == secret[:12] and made["expires_at"] == T0 + dt.timedelta(days=30)
    with engine.connect() as connection:
        stored = connection.execute(select(ApiToken.secret_sha256, ApiToken.prefix)).one()
    assert stored == (hashlib.sha256(secret.encode()).hexdigest(), secret[:12])

    principal = tokens.verify_token(engine, secret, ip="10.0.0.7", clock=clock)
    assert (principal.user, principal.role, principal.via) == ("dev", "developer", "token")
    assert str(principal.token_id) == made["id"]

    audit = _audit(engine)
    assert [(a[0], a[1], a[2]) for a in audit] == [("dev", "token.create", f"token {secret[:12]}")]
    assert secret not in repr(audit) and audit[0][3]["label"] == "ci"


def test_unknown_expired_revoked_and_disabled_user_tokens_are_refused_with_their_reason(
    engine,
) -> None:
    clock = Clock()
    with pytest.raises(tokens.TokenRefusedError) as refused:
        tokens.verify_token(engine, "tbl_" + "x" * 43, clock=clock)
    assert refused.value.reason == "unknown"
    with pytest.raises(tokens.TokenRefusedError, match="start with tbl_"):
        tokens.verify_token(engine, "Bearer something", clock=clock)

    short = tokens.create_token(engine, "dev", "dev", expires="1h", clock=clock)["secret"]
    clock.now = T0 + dt.timedelta(hours=1)
    with pytest.raises(tokens.TokenRefusedError, match="expired 2026-12-05 10:00") as refused:
        tokens.verify_token(engine, short, clock=clock)
    assert refused.value.reason == "expired"

    kept = tokens.create_token(engine, "dev", "dev", expires="never", clock=clock)
    tokens.verify_token(engine, kept["secret"], clock=clock)
    tokens.revoke_token(engine, "dev", kept["prefix"], clock=clock)
    with pytest.raises(tokens.TokenRefusedError) as refused:
        tokens.verify_token(engine, kept["secret"], clock=clock)
    assert refused.value.reason == "revoked" and "was revoked" in str(refused.value)

    viewer = tokens.create_token(engine, "viewer", "viewer", clock=clock)["secret"]
    set_disabled(engine, "admin", "viewer", True)
    with pytest.raises(tokens.TokenRefusedError, match="viewer, who is disabled") as refused:
        tokens.verify_token(engine, viewer, clock=clock)
    assert refused.value.reason == "user_disabled"


def test_use_is_recorded_at_most_once_a_minute(engine) -> None:
    clock = Clock()
    secret = tokens.create_token(engine, "ops", "ops", clock=clock)["secret"]

    def last_used() -> tuple:
        with engine.connect() as connection:
            return connection.execute(select(ApiToken.last_used_at, ApiToken.last_used_ip)).one()

    assert last_used() == (None, None)
    tokens.verify_token(engine, secret, ip="10.0.0.1", clock=clock)
    assert last_used() == (T0, "10.0.0.1")
    clock.now = T0 + dt.timedelta(seconds=59)
    tokens.verify_token(engine, secret, ip="10.0.0.2", clock=clock)
    assert last_used() == (T0, "10.0.0.1")  # not written again within the minute
    clock.now = T0 + dt.timedelta(seconds=60)
    tokens.verify_token(engine, secret, ip="10.0.0.3", clock=clock)
    assert last_used() == (clock.now, "10.0.0.3")


def test_only_an_admin_manages_someone_elses_tokens_and_refusals_are_audited(engine) -> None:
    with pytest.raises(NotAllowedError, match="dev may not manage ops's tokens"):
        tokens.create_token(engine, "dev", "ops")
    made = tokens.create_token(engine, "admin", "ops", label="deploy bot")
    assert made["created_by"] == "admin" and made["user_name"] == "ops"
    with pytest.raises(NotAllowedError):
        tokens.revoke_token(engine, "dev", made["id"])
    with engine.connect() as connection:
        assert tokens.list_tokens(connection, "dev") == []  # dev sees only their own
        assert [t["label"] for t in tokens.list_tokens(connection, "admin")] == ["deploy bot"]
        with pytest.raises(NotAllowedError):
            tokens.list_tokens(connection, "dev", user="ops")
    result = tokens.revoke_token(engine, "ops", made["id"][:8])  # the owner may revoke it
    assert result["token"]["revoked_by"] == "ops" and not result["unchanged"]
    assert tokens.revoke_token(engine, "admin", made["prefix"])["unchanged"]
    assert [(a[0], a[1]) for a in _audit(engine)] == [
        ("dev", "token.create.refused"),
        ("admin", "token.create"),
        ("dev", "token.revoke.refused"),
        ("ops", "token.revoke"),
    ]
    assert made["secret"] not in repr(_audit(engine))


@pytest.mark.parametrize(
    ("user", "expires", "error", "message"),
    [
        ("nobody", "30d", UnknownUserError, "'nobody' is not in the users table"),
        ("dev", "30 days", tokens.TokenError, "'30 days' is not a duration"),
        ("dev", "0d", tokens.TokenError, "is not a duration"),
        ("dev", "3m", tokens.TokenError, "is not a duration"),
    ],
)
def test_bad_input_creates_nothing(engine, user, expires, error, message) -> None:
    with pytest.raises(error, match=message):
        tokens.create_token(engine, "admin", user, expires=expires)
    with engine.connect() as connection:
        assert connection.execute(select(ApiToken.id)).all() == []
    with pytest.raises(tokens.TokenError, match="no token 'tbl_nothing'"):
        tokens.revoke_token(engine, "admin", "tbl_nothing")


@pytest.mark.parametrize("how", ["revoked", "expired", "user_disabled", "unknown"])
def test_a_session_names_its_token_by_id_and_is_refused_as_the_token_is(engine, how) -> None:
    import uuid

    clock = Clock()
    made = tokens.create_token(engine, "dev", "dev", expires="1d", clock=clock)
    token_id = uuid.UUID(made["id"])
    principal = tokens.verify_token_id(engine, token_id, clock=clock)
    assert (principal.user, principal.via, principal.token_id) == ("dev", "session", token_id)
    if how == "revoked":
        tokens.revoke_token(engine, "dev", made["prefix"], clock=clock)
    elif how == "expired":
        clock.now = T0 + dt.timedelta(days=1)
    elif how == "user_disabled":
        set_disabled(engine, "admin", "dev", True)
    else:
        token_id = uuid.uuid4()
    with pytest.raises(tokens.TokenRefusedError) as refused:
        tokens.verify_token_id(engine, token_id, clock=clock)
    assert refused.value.reason == how
