"""Storage: the warehouse's schema, what writes it, what reads it, and its migrations.

Sub-packages follow the concern: `schema/` (the tables and column types), `store/` (records
into rows), `read/` (rows back out for the CLI, assets and notebooks), `audit/` (the
hash-chained audit log) and `people/` (the users Timbel knows). At the top stay what serves
them all: `engine.py` (engines), `migrate.py` with `migrations/` (Alembic) and `scratch.py`
(throw-away databases for tests and benchmarks).
"""
