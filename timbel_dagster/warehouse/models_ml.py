"""Warehouse tables of the ml features."""

from __future__ import annotations

from timbel_dagster.warehouse.models import Base  # noqa: F401
