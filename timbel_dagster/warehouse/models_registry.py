"""Warehouse tables of container images seen in OCI registries."""

from __future__ import annotations

from timbel_dagster.warehouse.models import Base  # noqa: F401
