"""The registry lookup of read-only commands (`scan gate`, `scan history`) is never asked
inside an open transaction (DESIGN 1b: no HTTP call runs inside an open transaction)."""

from __future__ import annotations

from tests.deploy.known import know
from timbel_dagster.cli.images import between_reads
from timbel_dagster.security.history import deployment_exposure
from timbel_dagster.security.policy import check_image
from timbel_dagster.warehouse.engine import get_engine

D1 = "sha256:" + "1" * 64


def test_the_registry_is_asked_between_reads_not_inside_a_transaction(
    warehouse_url: str,
) -> None:
    know(warehouse_url, "payments-api", {"reg.example.com/payments/api:1.0": D1})
    with get_engine(warehouse_url, read_only=True).connect() as connection:
        open_when_asked: list[bool] = []

        def registry(host: str, repository: str, reference: str) -> str | None:
            open_when_asked.append(connection.in_transaction())
            return None

        unwrapped = check_image(
            connection, "reg.example.com/payments/api:2.0", "prod", lookup=registry
        )
        lookup = between_reads(connection, registry)
        gated = check_image(connection, "reg.example.com/payments/api:2.0", "prod", lookup=lookup)
        known = check_image(connection, "reg.example.com/payments/api:1.0", "prod", lookup=lookup)
        deployment_exposure(connection, "payments-api", lookup=lookup)  # reads after asking
    # Without the wrapper the warehouse's read transaction is open while the registry is
    # asked (what the commands did); with it, the transaction is ended first.
    assert open_when_asked == [True, False]
    assert not unwrapped.allowed and not gated.allowed  # unknown tag: never scanned in prod
    assert known.digest == D1  # registry_images answered; the registry was not asked
    assert between_reads(connection, None) is None
