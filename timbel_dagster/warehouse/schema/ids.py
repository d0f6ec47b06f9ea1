"""Stable row ids derived from natural keys.

A row's UUID is a UUIDv5 of its table and natural key, so ingesting the same object twice gives
the same id, and child rows (stages, deployment commits) can point at their parents without a
round trip to read the parents' ids back.
"""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1d7c8e-2b8a-5c3e-9a51-7e1b0c4d2f10")
# The largest value of an INTEGER column (PostgreSQL's int4): request numbers, versions.
INTEGER_MAX = 2**31 - 1


def is_number(text: str) -> bool:
    """Whether `text` is written as a decimal number (ASCII digits: `str.isdigit` also
    accepts `²` and other digits `int()` refuses)."""
    return text.isascii() and text.isdigit()


def integer_key(text: str) -> int | None:
    """`text` as the value of an INTEGER key column, or None when it is not a number or
    exceeds INTEGER_MAX: no row has such a key, and PostgreSQL refuses the comparison with
    an error (a 500 to an API client) rather than finding nothing."""
    if not is_number(text):
        return None
    value = int(text)
    return value if value <= INTEGER_MAX else None


def stable_id(table: str, *natural_key: object) -> uuid.UUID:
    """The UUID of the row of `table` whose natural key is `natural_key`."""
    return uuid.uuid5(_NAMESPACE, "\x1f".join([table, *(str(part) for part in natural_key)]))
