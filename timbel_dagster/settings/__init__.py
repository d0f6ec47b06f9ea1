"""Typed settings, read from the environment and an optional `.env` file.

This is the only module that reads the environment. Every setting is an upper-case variable
named like the field (`jenkins_url` <- `JENKINS_URL`); `.env.example` and the README list them.
An invalid value stops start-up with one line naming the variable and what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

from pydantic import ValidationError

if TYPE_CHECKING:
    from timbel_dagster.settings.model import Settings

# `timbel demo` leaves this file in TIMBEL_HOME: there TIMBEL_SAMPLE_DATA defaults to true, so
# the CLI and `make dev` keep to the sample organisation the demo loaded. A value of
# TIMBEL_SAMPLE_DATA in the environment or `.env` always wins; deleting the file ends it.
SAMPLE_MODE_MARKER = "sample-mode"


class SettingsError(ValueError):
    """A setting has an invalid value; the message is one line naming the variable."""


def __getattr__(name: str) -> object:
    """`Settings` is built on first use: pydantic-settings is a heavy import for the code
    location, which imports this package at load (import-time budget, DESIGN.md)."""
    if name == "Settings":
        # lazy: settings.model loads pydantic-settings; the code location loads without it
        from timbel_dagster.settings.model import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _one_line(error: ValidationError) -> str:
    # lazy: settings.model loads pydantic-settings; the code location loads without it
    from timbel_dagster.settings.model import Settings

    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "settings"
    message = first["msg"].removeprefix("Value error, ")
    shown = first.get("input")
    annotation = (
        str(Settings.model_fields[field].annotation) if field in Settings.model_fields else ""
    )
    # Database URLs may carry a password, so like secrets they are never echoed back.
    if isinstance(shown, str) and "SecretStr" not in annotation and field != "timbel_database_url":
        return f"{field.upper()}: {message} (got {shown!r})"
    return f"{field.upper()}: {message}"


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation failure into a one-line `SettingsError`."""
    from pydantic_settings import SettingsError as SourceError

    # lazy: settings.model loads pydantic-settings; the code location loads without it
    from timbel_dagster.settings.model import Settings

    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_one_line(error)) from None
    except SourceError as error:  # a value the settings source itself could not parse
        raise SettingsError(str(error).replace('"', "").split(" from source")[0]) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once on first use (never at import time)."""
    return load_settings()


def secret_from_environment(variable: str) -> str | None:
    """A secret a configuration file names by its variable (a cluster's `token_env`), so
    the file itself never holds it; None when unset or empty."""
    import os

    value = os.environ.get(variable, "").strip()
    return value or None


# The warehouse URL, parsed and shown (no connection is made here). Here, in the bottom
# layer, because TIMBEL_DATABASE_URL is validated with it and storage, the resources that
# hold the warehouse and the CLI all use it: none imports another's layer for it.
_SUPPORTED = ("sqlite", "postgresql")
# Drivers a plain `postgresql://` URL is mapped to: psycopg 3 is the one we install.
_POSTGRES_ALIASES = {"postgres", "postgresql", "postgresql+psycopg"}


def normalise_database_url(raw: str) -> str:
    """Validate a warehouse URL and pin PostgreSQL URLs to the psycopg 3 driver.

    Raises:
        ValueError: the URL cannot be parsed or names an unsupported database.
    """
    # SQLAlchemy is heavy: imported when a URL is read, not with the settings.
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


# TIMBEL_API_RATE_LIMIT_STORAGE: the `limits` stores the API's rate limiter may count in
# (api/ratelimit.py), checked here so a typo stops start-up instead of the first request.
RATE_LIMIT_STORE_SCHEMES = ("memory", "redis", "rediss", "redis+unix")


def check_rate_limit_store(uri: str) -> str:
    """`uri` if it names a store of RATE_LIMIT_STORE_SCHEMES (nothing is connected here)."""
    if urlsplit(uri).scheme not in RATE_LIMIT_STORE_SCHEMES:
        schemes = ", ".join(s + "://" for s in RATE_LIMIT_STORE_SCHEMES)
        raise ValueError(
            f"{uri!r} is not a rate-limit store: give memory:// or redis://HOST:PORT/DB "
            f"(schemes: {schemes})"
        )
    return uri


# TIMBEL_REGISTRY_TOKEN_REALMS, parsed: here, in the bottom layer, so the setting is checked
# at start-up without the settings importing the registry client, which applies the rules
# (resources/registry_realm.py says which token services may receive the credentials).
HTTP_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class RealmRule:
    """One allowed token service: `scheme://host[:port]` and a path prefix."""

    scheme: str
    host: str  # lower case
    port: int | None  # None: any port (a bare host entry)
    path: str  # '' or '/jwt/auth' (no trailing slash)

    def allows(self, realm: SplitResult) -> bool:
        if realm.scheme != self.scheme or (realm.hostname or "") != self.host:
            return False
        if self.port is not None and url_port(realm) != self.port:
            return False
        path = realm.path.rstrip("/")
        return not self.path or path == self.path or path.startswith(self.path + "/")


def url_port(url: SplitResult) -> int | None:
    try:
        return url.port or HTTP_DEFAULT_PORTS.get(url.scheme)
    except ValueError:  # a port that is not a number
        return None


def parse_realm_rules(entries: Iterable[str]) -> tuple[RealmRule, ...]:
    """The rules of TIMBEL_REGISTRY_TOKEN_REALMS entries.

    Raises:
        ValueError: an entry is neither a host nor an http(s) URL; the message names it.
    """
    rules = []
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        url = urlsplit(entry if "://" in entry else f"https://{entry}")
        bare = "://" not in entry
        port = url_port(url)
        if (
            url.scheme not in HTTP_DEFAULT_PORTS
            or not url.hostname
            or url.username is not None
            or url.query
            or url.fragment
            or port is None
            or (bare and url.path)
        ):
            raise ValueError(
                f"{entry!r} is neither a host (auth.example[:port]) nor an http(s) "
                "URL prefix (https://auth.example/token)"
            )
        explicit_port = url.port is not None or not bare
        rules.append(
            RealmRule(
                url.scheme, url.hostname, port if explicit_port else None, url.path.rstrip("/")
            )
        )
    return tuple(rules)
