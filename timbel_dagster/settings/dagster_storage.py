"""Where Dagster keeps its own database: the PostgreSQL URL in DAGSTER_HOME/dagster.yaml, for
the backups (Dagster's runs, event logs and schedules are backed up beside the warehouse).

dagster-postgres reads either form, and so does this:

    storage:                          run_storage:            # the older, per-storage form
      postgres:                         module: dagster_postgres.run_storage
        postgres_url: URL                class: PostgresRunStorage
        # or                             config:
        postgres_db:                       postgres_db: {...}   # or postgres_url
          username, password, hostname, db_name, port (5432), params

Any value may be `{env: VARIABLE}`, read from the environment as Dagster does. An instance on
SQLite (the default) or another storage has no PostgreSQL database: None.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from timbel_dagster.safe_yaml import load_yaml
from timbel_dagster.settings import secret_from_environment


class DagsterStorageError(ValueError):
    """dagster.yaml names PostgreSQL storage that cannot be turned into a URL."""


def _value(raw: Any, where: str, config: Path) -> str | None:
    if isinstance(raw, dict) and set(raw) == {"env"}:
        value = secret_from_environment(str(raw["env"]))
        if value is None:
            raise DagsterStorageError(f"{config}: {where} reads ${raw['env']}, which is not set")
        return value
    if raw is None:
        return None
    if isinstance(raw, dict | list):
        raise DagsterStorageError(f"{config}: {where} must be a value or {{env: VARIABLE}}")
    return str(raw)


def _from_postgres_config(block: Any, where: str, config: Path) -> str:
    from sqlalchemy.engine import URL

    if not isinstance(block, dict):
        raise DagsterStorageError(f"{config}: {where} must be a mapping")
    if ("postgres_url" in block) == ("postgres_db" in block):
        raise DagsterStorageError(
            f"{config}: {where} must have exactly one of postgres_url or postgres_db"
        )
    if "postgres_url" in block:
        url = _value(block["postgres_url"], f"{where}.postgres_url", config)
        if not url:
            raise DagsterStorageError(f"{config}: {where}.postgres_url is empty")
        return url
    db = block["postgres_db"]
    if not isinstance(db, dict):
        raise DagsterStorageError(f"{config}: {where}.postgres_db must be a mapping")
    fields = {
        k: _value(v, f"{where}.postgres_db.{k}", config) for k, v in db.items() if k != "params"
    }
    missing = [k for k in ("username", "hostname", "db_name") if not fields.get(k)]
    if missing:
        raise DagsterStorageError(f"{config}: {where}.postgres_db lacks {', '.join(missing)}")
    params = db.get("params") or {}
    if not isinstance(params, dict):
        raise DagsterStorageError(f"{config}: {where}.postgres_db.params must be a mapping")
    port = fields.get("port") or "5432"
    try:
        port_number = int(port)
    except ValueError:
        raise DagsterStorageError(
            f"{config}: {where}.postgres_db.port {port!r} is not a number"
        ) from None
    # Dagster's optional `scheme` (default "postgresql") names a SQLAlchemy dialect such as
    # "postgresql+psycopg2"; this URL goes to pg_dump and pg_restore, which take only libpq's
    # postgresql://, so the scheme is deliberately not carried over.
    return URL.create(
        "postgresql",
        username=fields["username"],
        password=fields.get("password") or None,
        host=fields["hostname"],
        port=port_number,
        database=fields["db_name"],
        query={str(k): str(v) for k, v in params.items()},
    ).render_as_string(hide_password=False)


def dagster_postgres_url(dagster_home: Path) -> str | None:
    """The PostgreSQL URL of the Dagster instance in `dagster_home`; None when it has no
    dagster.yaml or its storage is not PostgreSQL.

    Raises:
        DagsterStorageError: PostgreSQL storage that is incomplete or names an unset variable.
    """
    config = dagster_home / "dagster.yaml"
    if not config.is_file():
        return None
    import yaml

    try:
        document = load_yaml(config.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, ValueError) as error:
        raise DagsterStorageError(f"{config}: not valid YAML ({error})") from None
    if not isinstance(document, dict):
        raise DagsterStorageError(f"{config}: not a mapping")
    storage = document.get("storage")
    if isinstance(storage, dict) and "postgres" in storage:
        return _from_postgres_config(storage["postgres"], "storage.postgres", config)
    runs = document.get("run_storage")
    if isinstance(runs, dict) and str(runs.get("module", "")).startswith("dagster_postgres"):
        return _from_postgres_config(runs.get("config"), "run_storage.config", config)
    return None
