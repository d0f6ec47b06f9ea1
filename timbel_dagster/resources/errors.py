"""Typed errors every source client raises: they name the system, the object and the problem.

`TransientSourceError` is the only kind a client retries; everything else (bad credentials,
a missing object, a payload that does not match the API) fails at once.
"""

from __future__ import annotations


class SourceError(RuntimeError):
    """A call to an external system failed.

    Attributes:
        system: which system (`jenkins`, `gitlab`, ...).
        obj: the object asked about (a job, a build, a project), or None.
        detail: what was wrong.
    """

    def __init__(self, system: str, obj: str | None, detail: str) -> None:
        self.system, self.obj, self.detail = system, obj, detail
        where = f" {obj}" if obj else ""
        super().__init__(f"{system}{where}: {detail}")


class TransientSourceError(SourceError):
    """Worth retrying: a 5xx answer, a 429, a timeout or a dropped connection."""


class SourceAuthError(SourceError):
    """The credentials were refused (401/403)."""


class SourceNotFoundError(SourceError):
    """The object does not exist (404)."""


class SourceDataError(SourceError):
    """The answer does not match the API: not JSON, an HTML page, empty, a missing field or a
    value of the wrong type. `field` names the offending field where there is one."""

    def __init__(self, system: str, obj: str | None, detail: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(system, obj, f"field '{field}': {detail}" if field else detail)
