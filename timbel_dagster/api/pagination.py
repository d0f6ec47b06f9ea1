"""Opaque keyset cursors: the position after the last row of a page, as URL-safe base64 of
JSON. A client passes it back unchanged; a cursor it cannot read is a 422 on `cursor`."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid

from fastapi.exceptions import RequestValidationError


def execution_cursor(started_at: dt.datetime | None, ident: str) -> str:
    payload = {"s": started_at.isoformat() if started_at else None, "i": ident}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def read_execution_cursor(cursor: str) -> tuple[dt.datetime | None, uuid.UUID]:
    """(started_at, id) from a cursor made by execution_cursor."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        started = dt.datetime.fromisoformat(payload["s"]) if payload["s"] is not None else None
        return started, uuid.UUID(payload["i"])
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


def number_cursor(number: int) -> str:
    """The position after a row numbered `number` of a list newest (highest number) first."""
    return base64.urlsafe_b64encode(json.dumps({"n": number}).encode()).decode().rstrip("=")


def read_number_cursor(cursor: str) -> int:
    """The number from a cursor made by number_cursor."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        number = json.loads(base64.urlsafe_b64decode(padded.encode()))["n"]
        # A number the INTEGER column cannot hold would be a database error, not a 422.
        if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 2**31:
            raise TypeError(number)
        return number
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
