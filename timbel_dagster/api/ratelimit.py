"""Rate limits per token: a moving window for reads and a stricter one for writes (the
policy table's `write` flag picks the bucket), counted by `limits` in the storage
TIMBEL_API_RATE_LIMIT_STORAGE names.

The key is who asks: the API token's id, the OIDC user, or the client's IP address before
anyone is authenticated (a flood of bad tokens is limited too). Every limited response
carries `RateLimit-Limit/-Remaining/-Reset` and the older `X-RateLimit-*` spellings; over the
limit the answer is 429 with `Retry-After`.

Where the counts live:
- `memory://` (the default): in the process. With several uvicorn workers or replicas each
  counts on its own, so the effective limit is the setting times the processes; right for
  one developer's `timbel api serve`.
- `redis://HOST:PORT/DB` (or `rediss://` for TLS): one count shared by every worker and
  replica, the setting a deployment uses.

If the shared storage cannot be reached, the API keeps answering: the request is counted in
the process's memory instead (per-process limits, as with `memory://`), the store is tried
again after RETRY_STORE_AFTER_SECONDS (so a dead store does not add its timeout to every
request), and a warning is logged at most once a minute. Refusing every request because the
limiter's store is down would turn a Redis outage into an API outage; not limiting at all
would leave the API open to a flood exactly while it is degraded.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.errors import ConfigurationError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from timbel_dagster.api.errors import ApiError
from timbel_dagster.identity.principal import Principal
from timbel_dagster.settings import check_rate_limit_store, display_url

log = logging.getLogger(__name__)

MEMORY = "memory://"
WARN_EVERY_SECONDS = 60.0
RETRY_STORE_AFTER_SECONDS = 5.0
# A shared store that does not answer within this is treated as down (the request waits for
# the limiter on every call, so it must not hang on a dead Redis).
STORAGE_TIMEOUT_SECONDS = 0.5


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


def open_storage(uri: str) -> Storage:
    """The `limits` storage `uri` names; a Redis store gives up on a call after
    STORAGE_TIMEOUT_SECONDS."""
    check_rate_limit_store(uri)
    if uri.startswith(MEMORY):
        return MemoryStorage()
    try:
        return storage_from_string(
            uri,
            socket_timeout=STORAGE_TIMEOUT_SECONDS,
            socket_connect_timeout=STORAGE_TIMEOUT_SECONDS,
        )
    except ConfigurationError as error:  # e.g. the redis package is missing
        raise ValueError(f"rate-limit store {uri!r}: {error}") from None


class RateLimiter:
    """The read and write buckets of one app, counted in `storage` (memory by default),
    falling back to this process's memory while a shared store is unreachable."""

    def __init__(self, read: str, write: str, storage: str = MEMORY) -> None:
        self.read: RateLimitItem = parse(read)
        self.write: RateLimitItem = parse(write)
        self.storage_uri = storage
        self._fallback = MovingWindowRateLimiter(MemoryStorage())
        shared = not storage.startswith(MEMORY)
        self._limiter = MovingWindowRateLimiter(open_storage(storage)) if shared else self._fallback
        self._warned_at = -math.inf
        self._store_down_until = -math.inf
        self._lock = threading.Lock()

    def hit(self, key: str, *, write: bool) -> Verdict:
        """Count one request of `key` in its bucket; whether it is within the limit."""
        item = self.write if write else self.read
        bucket = "write" if write else "read"
        if time.monotonic() >= self._store_down_until:
            try:
                return self._count(self._limiter, item, bucket, key)
            # Any failure of the store (a connection refused, a timeout, an error reply).
            except Exception as error:
                if self._limiter is self._fallback:
                    raise
                self._store_failed(error)
        return self._count(self._fallback, item, bucket, key)

    @property
    def degraded(self) -> bool:
        """Whether requests are counted in this process because the store did not answer."""
        return time.monotonic() < self._store_down_until

    @staticmethod
    def _count(
        limiter: MovingWindowRateLimiter, item: RateLimitItem, bucket: str, key: str
    ) -> Verdict:
        allowed = limiter.hit(item, bucket, key)
        stats = limiter.get_window_stats(item, bucket, key)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return Verdict(allowed, item.amount, stats.remaining, reset)

    def _store_failed(self, error: Exception) -> None:
        with self._lock:
            now = time.monotonic()
            self._store_down_until = now + RETRY_STORE_AFTER_SECONDS
            if now - self._warned_at < WARN_EVERY_SECONDS:
                return
            self._warned_at = now
        log.warning(
            "rate-limit store %s did not answer (%s): counting in this process, trying it "
            "again in %.0f s",
            display_url(self.storage_uri),
            type(error).__name__,
            RETRY_STORE_AFTER_SECONDS,
        )


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
