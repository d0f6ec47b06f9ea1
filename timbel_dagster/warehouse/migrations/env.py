"""Alembic environment: runs on the connection `warehouse.migrate` hands over."""

from __future__ import annotations

from alembic import context

from timbel_dagster.warehouse.schema.models import Base, autogenerate_filter

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=autogenerate_filter(connection.dialect.name),
)
with context.begin_transaction():
    context.run_migrations()
