"""Parsing and display of warehouse database URLs (no connection is made here)."""

from __future__ import annotations

_SUPPORTED = ("sqlite", "postgresql")
# Drivers a plain `postgresql://` URL is mapped to: psycopg 3 is the one we install.
_POSTGRES_ALIASES = {"postgres", "postgresql", "postgresql+psycopg"}


def normalise_database_url(raw: str) -> str:
    """Validate a warehouse URL and pin PostgreSQL URLs to the psycopg 3 driver.

    Raises:
        ValueError: the URL cannot be parsed or names an unsupported database.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw.strip())
    except (ArgumentError, ValueError):
        raise ValueError(
            "not a database URL; expected sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        ) from None
    if url.drivername in _POSTGRES_ALIASES:
        url = url.set(drivername="postgresql+psycopg")
    backend = url.get_backend_name()
    if backend not in _SUPPORTED:
        raise ValueError(f"unsupported database {backend!r}; use sqlite or postgresql")
    if backend == "postgresql" and not url.database:
        raise ValueError("the PostgreSQL URL names no database")
    return url.render_as_string(hide_password=False)


def display_url(raw: str) -> str:
    """The URL with its password masked, for messages and logs."""
    from sqlalchemy.engine import make_url

    return make_url(raw).render_as_string(hide_password=True)
