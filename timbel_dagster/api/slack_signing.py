"""Slack's request signing (v0): `X-Slack-Signature` is `v0=` + the hex HMAC-SHA256, keyed
with the app's signing secret, of `v0:{X-Slack-Request-Timestamp}:{raw body}`. A request
whose timestamp is more than five minutes from now is refused, so a captured request cannot
be replayed later."""

from __future__ import annotations

import hashlib
import hmac

MAX_SKEW_SECONDS = 5 * 60


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def check(secret: str, timestamp: str | None, body: bytes, given: str | None, now: float) -> str:
    """Why the request is refused ('missing', 'stale', 'wrong'), or '' when it is Slack's."""
    if not timestamp or not given:
        return "missing"
    try:
        sent = int(timestamp)
    except ValueError:
        return "stale"
    if abs(now - sent) > MAX_SKEW_SECONDS:
        return "stale"
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), given.encode()):
        return "wrong"
    return ""
