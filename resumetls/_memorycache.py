"""
The embedded default session cache: in memory, least recently used entries go
first, every entry has a lifetime.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Any

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from resumetls._cache import CacheStats
from resumetls.interfaces import ISessionCache

# Each value is the expiry time (a double) followed by the session's DER: one
# bytes object per entry keeps memory per session small.
_EXPIRY = struct.Struct("!d")
_HEADER = _EXPIRY.size

DEFAULT_MAX_ENTRIES = 20480


@implementer(ISessionCache)
class MemorySessionCache:
    """
    An in-process LRU session cache with a size bound and per-entry lifetime.

    The default bound, 20480 sessions, is OpenSSL's own
    (C{SSL_SESSION_CACHE_MAX_SIZE_DEFAULT}); nginx's shared cache holds about
    4000 sessions per megabyte, so this is nginx's C{shared:SSL:5m}.  Unlike
    nginx ("could not allocate new session"), a store never fails when the
    cache is full: the least recently used entry is evicted, and counted.

    Costs are O(1) per operation and per dropped entry, never a scan: the
    entries live in one C{OrderedDict} in recency order; a lookup of an
    expired entry drops it, and each store first drops expired entries found
    at the least-recently-used end.  An expired entry that was looked up
    recently is dropped when it is next looked up or reaches that end (within
    one more lifetime), so C{entries} may briefly include such entries; they
    are never returned.

    C{lookup_now} and C{store_now} are the synchronous calls the server's
    session callbacks use (no L{Deferred} in the handshake's hot path);
    L{ISessionCache} remains the contract.

    @param max_entries: how many sessions to hold at most.
    @param clock: an C{IReactorTime} (tests pass a C{Clock}); the global
        reactor by default.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Any = None):
        if not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(
                f"the session cache size must be a positive integer, "
                f"not {max_entries!r}"
            )
        if clock is None:
            from twisted.internet import reactor as clock  # noqa: N813
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._stores = 0
        self._evictions = 0
        self._expirations = 0

    def __repr__(self) -> str:
        return (
            f"<MemorySessionCache entries={len(self._entries)}/{self.max_entries} "
            f"bytes={self._bytes}>"
        )

    def __len__(self) -> int:
        return len(self._entries)

    # -- synchronous core ---------------------------------------------------------

    def store_now(self, session_id: bytes, der: bytes, lifetime: float) -> None:
        """Store a session at once (see L{ISessionCache.store})."""
        now = self._clock.seconds()
        entries = self._entries
        old = entries.pop(session_id, None)
        if old is not None:
            self._bytes -= len(session_id) + len(old) - _HEADER
        # Drop expired entries at the least recently used end.
        while entries:
            key = next(iter(entries))
            value = entries[key]
            if _EXPIRY.unpack_from(value)[0] > now:
                break
            del entries[key]
            self._bytes -= len(key) + len(value) - _HEADER
            self._expirations += 1
        while len(entries) >= self.max_entries:
            key, value = entries.popitem(last=False)
            self._bytes -= len(key) + len(value) - _HEADER
            self._evictions += 1
        entries[session_id] = _EXPIRY.pack(now + lifetime) + der
        self._bytes += len(session_id) + len(der)
        self._stores += 1

    def lookup_now(self, session_id: bytes) -> bytes | None:
        """Find a live session at once (see L{ISessionCache.lookup})."""
        entries = self._entries
        value = entries.get(session_id)
        if value is None:
            self._misses += 1
            return None
        if _EXPIRY.unpack_from(value)[0] <= self._clock.seconds():
            del entries[session_id]
            self._bytes -= len(session_id) + len(value) - _HEADER
            self._expirations += 1
            self._misses += 1
            return None
        entries.move_to_end(session_id)
        self._hits += 1
        return value[_HEADER:]

    def remove_now(self, session_id: bytes) -> None:
        """Forget a session at once."""
        value = self._entries.pop(session_id, None)
        if value is not None:
            self._bytes -= len(session_id) + len(value) - _HEADER

    # -- ISessionCache ----------------------------------------------------------------

    def store(self, session_id: bytes, der: bytes, lifetime: float) -> Deferred:
        self.store_now(session_id, der, lifetime)
        return succeed(None)

    def lookup(self, session_id: bytes) -> Deferred:
        return succeed(self.lookup_now(session_id))

    def remove(self, session_id: bytes) -> Deferred:
        self.remove_now(session_id)
        return succeed(None)

    def stats(self) -> CacheStats:
        return CacheStats(
            entries=len(self._entries),
            bytes=self._bytes,
            max_entries=self.max_entries,
            hits=self._hits,
            misses=self._misses,
            stores=self._stores,
            evictions=self._evictions,
            expirations=self._expirations,
            errors=0,
            backend="memory",
        )
