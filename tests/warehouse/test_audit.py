from __future__ import annotations

from sqlalchemy import update

from timbel_dagster.warehouse.audit.chain import append_event, verify_chain
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent


def test_chain_verifies_and_names_the_tampered_event(warehouse_url: str) -> None:
    engine = get_engine(warehouse_url)
    with engine.begin() as connection:
        for n in range(5):
            append_event(
                connection,
                actor="minji",
                action="deploy.approve",
                target=f"req-{n}",
                details={"n": n, "reason": "looks good"},
            )
    with engine.connect() as connection:
        report = verify_chain(connection)
    assert report.intact and report.events == 5

    table = AuditEvent.__table__
    with engine.begin() as connection:
        connection.execute(update(table).where(table.c.id == 3).values(actor="mallory"))
    with engine.connect() as connection:
        report = verify_chain(connection)
    assert not report.intact
    assert report.first_broken_id == 3
    assert report.reason == "content does not match its hash"


def test_event_is_rolled_back_with_its_transaction(warehouse_url: str) -> None:
    engine = get_engine(warehouse_url)
    try:
        with engine.begin() as connection:
            append_event(connection, actor="a", action="x")
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    with engine.connect() as connection:
        assert verify_chain(connection).events == 0


def test_concurrent_writers_keep_one_chain(warehouse_url: str) -> None:
    """Appenders racing from several connections queue on the lock; the chain never forks."""
    from concurrent.futures import ThreadPoolExecutor

    engine = get_engine(warehouse_url)

    def append_many(writer: int) -> None:
        for n in range(15):
            with engine.begin() as connection:
                append_event(connection, actor=f"writer-{writer}", action="x", details={"n": n})

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(append_many, range(3)))
    with engine.connect() as connection:
        report = verify_chain(connection)
    assert report.intact and report.events == 45
