"""`deploy.lookup.find`: a request by number or id prefix; numbers no request can have are
not found (PostgreSQL would refuse the comparison: a DataError, not an answer)."""

from __future__ import annotations

import pytest

from timbel_dagster.deploy.lookup import RequestError, find
from timbel_dagster.warehouse.engine import get_engine


@pytest.mark.parametrize("ref", ["99999999999999999999", "#2147483648", "#²", "\uff11\uff12"])
def test_a_number_past_any_request_is_not_found(warehouse_url: str, ref: str) -> None:
    with get_engine(warehouse_url).connect() as connection, pytest.raises(RequestError) as error:
        find(connection, ref)
    assert repr(ref) in str(error.value)
