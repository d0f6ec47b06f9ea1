"""Rate limits per token: a moving window for reads and a stricter one for writes (the
policy table's `write` flag picks the bucket), kept in memory (`limits`).

The key is who asks: the API token's id, the OIDC user, or the client's IP address before
anyone is authenticated (a flood of bad tokens is limited too). Every limited response
carries `RateLimit-Limit/-Remaining/-Reset` and the older `X-RateLimit-*` spellings; over the
limit the answer is 429 with `Retry-After`.

In memory means per process: with several uvicorn workers each counts on its own, so the
effective limit is the setting times the workers (docs/configuration.md says so).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from timbel_dagster.api.errors import ApiError
from timbel_dagster.identity.principal import Principal


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        values = {
            "Limit": str(self.limit),
            "Remaining": str(self.remaining),
            "Reset": str(self.reset_seconds),
        }
        return {f"{prefix}RateLimit-{name}": value for prefix in ("", "X-")
                for name, value in values.items()}  # fmt: skip


class RateLimiter:
    """The read and write buckets of one app."""

    def __init__(self, read: str, write: str) -> None:
        self.read: RateLimitItem = parse(read)
        self.write: RateLimitItem = parse(write)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str, *, write: bool) -> Verdict:
        """Count one request of `key` in its bucket; whether it is within the limit."""
        item = self.write if write else self.read
        bucket = "write" if write else "read"
        allowed = self._limiter.hit(item, bucket, key)
        stats = self._limiter.get_window_stats(item, bucket, key)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return Verdict(allowed, item.amount, stats.remaining, reset)


def key_of(who: Principal) -> str:
    if who.token_id is not None:
        return f"token:{who.token_id}"
    return f"{who.via}:{who.user}"


def too_many(verdict: Verdict, bucket: str) -> ApiError:
    return ApiError(
        429,
        f"over the {bucket} rate limit of {verdict.limit} requests: retry in "
        f"{verdict.reset_seconds} s",
        kind="rate-limited",
        headers=verdict.headers() | {"Retry-After": str(verdict.reset_seconds)},
    )
