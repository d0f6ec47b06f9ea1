"""Opaque keyset cursors: the position after the last row of a page (the values of the
list's sort key), as URL-safe base64 of a JSON array. A client passes it back unchanged; a
cursor it cannot read is a 422 on `cursor`.

`make_cursor(*key)` and `read_cursor(cursor, *parsers)` serve every list: each route names
the parsers of its own key (`ISO_TIME`, `UUID`, `INT`, `TEXT`), so one pair of functions
covers all resources."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError

Item = TypeVar("Item")


def _time(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value is not None else None


def _uuid(value: Any) -> uuid.UUID:
    return uuid.UUID(value)


def _int(value: Any) -> int:
    # Bounded by BIGINT: a larger key would be a database error, not a 422.
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
        raise TypeError("not an integer")
    return value


def _positive_int32(value: Any) -> int:
    # Request numbers are an INTEGER column (found by the contract test: a larger one was a
    # database error).
    if not 0 < _int(value) < 2**31:
        raise ValueError("out of range")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not text")
    return value


ISO_TIME, UUID, INT, POSITIVE_INT32, TEXT = _time, _uuid, _int, _positive_int32, _text


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def make_cursor(*key: Any) -> str:
    """The cursor of the row whose sort key is `key` (datetimes and UUIDs as text)."""
    payload = json.dumps([_plain(value) for value in key]).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def read_cursor(cursor: str, *parsers: Callable[[Any], Any]) -> tuple[Any, ...]:
    """The sort key of a cursor made by make_cursor, each value through its parser."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(parsers):
            raise ValueError("wrong length")
        return tuple(parse(value) for parse, value in zip(parsers, values, strict=True))
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "cursor"),
                    "msg": "not a cursor this API gave out: pass `next_cursor` unchanged",
                    "type": "cursor_invalid",
                }
            ]
        ) from None


def page(
    rows: Sequence[Item], limit: int, key: Callable[[Item], Sequence[Any]]
) -> tuple[list[Item], str | None]:
    """The first `limit` of `rows` (fetched with limit + 1) and the next page's cursor, None
    when there is no more."""
    items = list(rows[:limit])
    if len(rows) <= limit or not items:
        return items, None
    return items, make_cursor(*key(items[-1]))


def read_execution_cursor(cursor: str) -> tuple[dt.datetime | None, uuid.UUID]:
    """(started_at, id) from a cursor of the executions list (`make_cursor(started_at, id)`)."""
    return read_cursor(cursor, ISO_TIME, UUID)  # type: ignore[return-value]


def number_cursor(number: int) -> str:
    """The position after a row numbered `number` of a list newest (highest number) first."""
    return make_cursor(number)


def read_number_cursor(cursor: str) -> int:
    """The number from a cursor made by number_cursor."""
    return read_cursor(cursor, POSITIVE_INT32)[0]
