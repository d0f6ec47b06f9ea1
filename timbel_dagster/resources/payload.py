"""Reading JSON answers from external systems with errors that name the field.

A payload that is not JSON, is an HTML error page, is empty, lacks a field or has one of the
wrong type raises `SourceDataError` naming the system, the object and the field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, TypeVar

from timbel_dagster.records.delivery import RejectRecord
from timbel_dagster.resources.errors import SourceDataError

T = TypeVar("T")
_MISSING = object()


def parse_json(system: str, obj: str | None, body: str | bytes, content_type: str = "") -> Any:
    """Decode a JSON body, refusing empty bodies and HTML pages with a clear reason."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if not text.strip():
        raise SourceDataError(system, obj, "the answer was empty (HTTP 200 with no body)")
    if "html" in content_type.lower() or text.lstrip()[:1] == "<":
        title = text.split("<title>", 1)[-1].split("</title>", 1)[0].strip()[:120]
        raise SourceDataError(
            system, obj, f"expected JSON, got an HTML page ({title or 'no title'})"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SourceDataError(system, obj, f"malformed JSON: {error.msg} at {error.pos}") from None


def payload_key(payload: Any) -> str:
    """A stable key for a record whose own id cannot be read: a digest of its JSON."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return "sha1:" + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def record_id(payload: Any, field: str = "id") -> int | None:
    """The record's integer id when it has a readable one (for rejects), else None."""
    value = payload.get(field) if isinstance(payload, dict) else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def reject(
    kind: str, pipeline: str, payload: Any, error: SourceDataError, id_field: str = "id"
) -> RejectRecord:
    """A record that could not be parsed, keyed by its number when that much is readable
    (else by a digest of its payload), with the parse error as the reason."""
    number = record_id(payload, id_field)
    return RejectRecord(
        kind=kind,
        pipeline=pipeline,
        key=str(number) if number is not None else payload_key(payload),
        reason=str(error),
        payload=payload,
        sequence=number,
    )


class Fields:
    """Typed access to one JSON object from a source."""

    def __init__(self, system: str, obj: str | None, data: Any, path: str = "") -> None:
        if not isinstance(data, dict):
            raise SourceDataError(
                system, obj, f"expected an object, got {type(data).__name__}", field=path or None
            )
        self.system, self.obj, self.data, self.path = system, obj, data, path

    def _name(self, field: str) -> str:
        return f"{self.path}.{field}" if self.path else field

    def get(self, field: str, kind: type[T] | tuple[type, ...], default: Any = _MISSING) -> Any:
        """The field's value, checked against `kind`; `default` when it is absent or null."""
        value = self.data.get(field, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                raise SourceDataError(self.system, self.obj, "missing", field=self._name(field))
            return default
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a JSON true where a number belongs is still wrong.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            expected = " or ".join(k.__name__ for k in kinds)
            raise SourceDataError(
                self.system,
                self.obj,
                f"expected {expected}, got {type(value).__name__} {value!r:.40}",
                field=self._name(field),
            )
        return value

    def child(self, field: str) -> Fields:
        return Fields(self.system, self.obj, self.get(field, dict), self._name(field))

    def children(self, field: str, skip_nulls: bool = False) -> list[Fields]:
        """The objects of a list field (`skip_nulls`: leave out null entries, which some
        APIs put in lists of optional extras)."""
        items = self.get(field, list, default=[])
        if skip_nulls:
            items = [item for item in items if item is not None]
        return [
            Fields(self.system, self.obj, item, f"{self._name(field)}[{i}]")
            for i, item in enumerate(items)
        ]

    def millis(self, field: str, default: Any = _MISSING) -> dt.datetime | None:
        """An epoch-milliseconds field as an aware UTC datetime."""
        value = self.get(field, int, default)
        return None if value is None else dt.datetime.fromtimestamp(value / 1000, dt.UTC)

    def iso(self, field: str, default: Any = _MISSING) -> dt.datetime | None:
        """An ISO-8601 field as an aware UTC datetime."""
        value = self.get(field, str, default)
        if value is None:
            return None
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise SourceDataError(
                self.system,
                self.obj,
                f"not an ISO-8601 time: {value!r:.40}",
                field=self._name(field),
            ) from None
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
