"""Marking a route that will go (docs/api-versioning.md has the policy).

    @router.get("/old", summary=..., **deprecated(since=date(2027, 1, 1),
                sunset=date(2027, 7, 1), successor="/api/v2/new"))

The route is `deprecated: true` in the OpenAPI document (with `x-sunset` and
`x-successor`), and every answer carries `Deprecation: @<unix time>` (RFC 9745), `Sunset:
<HTTP-date>` (RFC 8594) and `Link: <successor>; rel="successor-version"` (RFC 5829), so a
client can notice without reading the changelog.
"""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime
from typing import Any

from fastapi import Depends, Response

# The policy: a deprecated route lives at least this long before its sunset.
MINIMUM_NOTICE = dt.timedelta(days=180)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def deprecation_headers(
    since: dt.date, sunset: dt.date, successor: str | None = None
) -> dict[str, str]:
    headers = {
        "Deprecation": f"@{int(_midnight(since).timestamp())}",
        "Sunset": format_datetime(_midnight(sunset), usegmt=True),
    }
    if successor:
        headers["Link"] = f'<{successor}>; rel="successor-version"'
    return headers


def deprecated(*, since: dt.date, sunset: dt.date, successor: str | None = None) -> dict[str, Any]:
    """The route decorator's keyword arguments that mark it deprecated.

    Raises:
        ValueError: the sunset is less than MINIMUM_NOTICE after `since` (the policy).
    """
    if sunset - since < MINIMUM_NOTICE:
        raise ValueError(
            f"sunset {sunset} is less than {MINIMUM_NOTICE.days} days after {since}: "
            "docs/api-versioning.md promises that notice"
        )
    headers = deprecation_headers(since, sunset, successor)

    def announce(response: Response) -> None:
        response.headers.update(headers)

    extra: dict[str, Any] = {"x-sunset": sunset.isoformat()}
    if successor:
        extra["x-successor"] = successor
    return {"deprecated": True, "dependencies": [Depends(announce)], "openapi_extra": extra}
