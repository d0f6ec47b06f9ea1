"""What the warehouse reports of stored builds, for the build sensors' high-water marks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoredMark:
    """What the warehouse holds of one pipeline above its old mark."""

    mark: int  # highest build number stored finished, below any stored unfinished one
    day: str | None  # UTC day that build started, where the next batch must start reading
