"""Stable row ids derived from natural keys.

A row's UUID is a UUIDv5 of its table and natural key, so ingesting the same object twice gives
the same id, and child rows (stages, deployment commits) can point at their parents without a
round trip to read the parents' ids back.
"""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1d7c8e-2b8a-5c3e-9a51-7e1b0c4d2f10")


def stable_id(table: str, *natural_key: object) -> uuid.UUID:
    """The UUID of the row of `table` whose natural key is `natural_key`."""
    return uuid.uuid5(_NAMESPACE, "\x1f".join([table, *(str(part) for part in natural_key)]))
