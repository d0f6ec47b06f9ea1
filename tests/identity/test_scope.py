"""`visible_tenants`: every tenant for operations and admin and for actions that are not
tenant scoped, else exactly the principal's tenants (none: only rows of no tenant)."""

from __future__ import annotations

import pytest

from timbel_dagster.identity.principal import Principal
from timbel_dagster.identity.scope import visible_tenants


@pytest.mark.parametrize(
    ("role", "tenants", "action", "expected"),
    [
        ("developer", ("acme",), "executions.read", ("acme",)),
        ("viewer", (), "executions.read", ()),
        ("team_lead", ("acme", "globex"), "cost.read", ("acme", "globex")),
        ("operations", (), "executions.read", None),
        ("admin", (), "logs.search", None),
        ("developer", ("acme",), "audit.search", None),  # a global action: no tenant filter
    ],
)
def test_visible_tenants(role, tenants, action, expected) -> None:
    assert visible_tenants(Principal("someone", role, tenants=tenants), action) == expected
