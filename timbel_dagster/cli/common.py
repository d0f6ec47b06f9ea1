"""What every `timbel` command shares: settings, one-line errors, JSON output, time parsing."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.errors import SourceError
from timbel_dagster.settings import Settings, SettingsError, load_settings
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import WarehouseUnavailableError, check_connection, get_engine

DEBUG_KEY = "timbel.debug"  # click context meta: `timbel --debug` prints tracebacks


def fail(message: str, code: int = 2) -> None:
    click.echo(f"timbel: error: {message}", err=True)
    sys.exit(code)


def debugging() -> bool:
    """Whether `timbel --debug` asked for tracebacks."""
    context = click.get_current_context(silent=True)
    return bool(context and context.meta.get(DEBUG_KEY))


def raised_by_user_code(error: BaseException) -> BaseException:
    """The exception Timbel's own code raised inside a Dagster run: Dagster wraps it (a step
    failure carries it as `user_exception`), and its wrapper's message is Dagster's, not
    ours. Any other exception is returned as it is."""
    seen: set[int] = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = getattr(error, "user_exception", None)
        if not isinstance(inner, BaseException):
            return error
        error = inner
    return error


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can fix into one line instead of a traceback, also when they
    were raised inside a Dagster run; `timbel --debug` prints the traceback first."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fixable = (
            SettingsError,
            WarehouseUnavailableError,
            SourceNotConfiguredError,
            SourceError,
            LookupError,
            ValueError,
        )
        try:
            return command(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            cause = raised_by_user_code(error)
            if debugging():
                traceback.print_exception(error)
            # KeyError and IndexError are LookupErrors too, but Timbel never raises them on
            # purpose: they are defects, not something the user can fix.
            if isinstance(cause, fixable) and not isinstance(cause, KeyError | IndexError):
                fail(str(cause))
            if cause is not error:
                # A defect inside a run: one line here, the whole story in the run's log.
                fail(
                    f"{type(cause).__name__}: {cause} (the run's log in the Dagster UI has "
                    "the details; `timbel --debug ...` prints the traceback)",
                    code=1,
                )
            raise

    return wrapper


def settings_or_exit(**overrides: Any) -> Settings:
    try:
        settings = load_settings(**overrides)
    except SettingsError as error:
        fail(str(error))
        raise  # unreachable: _fail exits
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("timbel_dagster").setLevel(settings.timbel_log_level)
    # urllib3 logs a WARNING per retry of a client library (prometheus-api-client): noise
    # before the command's own line, which names the server and what failed.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    return settings


def print_json(data: Any) -> None:
    """`data` as JSON. A float that is not finite (an unknown figure: NaN) becomes null, as
    JSON has no NaN: Python's `NaN` in the output would make strict parsers (jq, JSON.parse,
    json.loads with parse_constant) refuse the whole document."""
    click.echo(json.dumps(_finite(data), indent=2, default=str, sort_keys=False))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def parse_since(value: str | None) -> dt.datetime | None:
    """`7d`, `12h`, `30m`, or an ISO date/time (UTC unless it says otherwise)."""
    if not value:
        return None
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if value[-1:] in units and value[:-1].isdigit():
        return dt.datetime.now(dt.UTC) - dt.timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration (7d, 12h) or an ISO date") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def connect() -> Any:
    """A read-only connection to the warehouse, or a one-line error naming
    TIMBEL_DATABASE_URL (or saying to upgrade an outdated schema)."""

    settings = settings_or_exit()
    check_connection(settings.database_url)
    current, head = migrate.current_revision(settings.database_url), migrate.head_revision()
    if current != head:
        fail(
            f"the warehouse schema is at {current or 'nothing'}, this version needs {head}: "
            "run `timbel db upgrade`"
        )
    return get_engine(settings.database_url, read_only=True).connect()


def echo_for(as_json: bool) -> Callable[[str], None]:
    """Progress goes to stderr when stdout carries JSON."""
    return (lambda line: click.echo(line, err=True)) if as_json else click.echo


def writable_engine() -> tuple[Settings, Any]:
    """The settings and a writable warehouse engine, migrated to the newest schema (commands
    that change state upgrade as they go, auditing the upgrade)."""

    settings = settings_or_exit()
    check_connection(settings.database_url)
    migrate.upgrade(settings.database_url, actor=settings.timbel_user)
    return settings, get_engine(settings.database_url)
