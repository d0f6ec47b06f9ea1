"""Bindings: the Dagster resources that wrap our own storage and domain rather than an
external system (the warehouse engine, the notifier running the alert rules), and the
resource keys the code location binds. A layer above the domain and below orchestration
(DESIGN.md 1b, `[tool.importlinter]` in pyproject.toml): clients never import storage, so
these do not live in `resources/`."""
