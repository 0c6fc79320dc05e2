"""
Values shared by every session cache: the figures a cache reports.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class CacheStats:
    """
    What a session cache holds now and what it has done: counts only, never
    keys or sessions.

    @ivar entries: sessions held now.
    @ivar bytes: bytes of keys and serialized sessions held now.
    @ivar max_entries: the size bound, or L{None} when the backend has none.
    @ivar hits: lookups that found a live session.
    @ivar misses: lookups that found nothing (or an expired entry).
    @ivar stores: sessions stored.
    @ivar evictions: entries dropped because the cache was full (least
        recently used first).
    @ivar expirations: entries dropped because their lifetime had passed.
    @ivar errors: backend failures (always 0 for the in-memory cache).
    @ivar backend: a short name such as C{"memory"}.
    """

    entries: int
    bytes: int
    max_entries: int | None
    hits: int
    misses: int
    stores: int
    evictions: int
    expirations: int
    errors: int
    backend: str

    def as_dict(self) -> dict[str, Any]:
        """The figures as a plain dict, for JSON and metrics."""
        return attrs.asdict(self)
