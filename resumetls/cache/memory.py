"""
The embedded default session cache: in memory, least recently used entries go
first, every entry has a lifetime.
"""

from __future__ import annotations

import math
import struct
from collections import OrderedDict
from heapq import heapify, heappop, heappush
from typing import Any

from zope.interface import implementer

from resumetls.cache.base import (
    DEFAULT_MAX_ENTRIES,
    ImmediateCache,
    check_max_entries,
    live,
)
from resumetls.cache.stats import CacheStats
from resumetls.interfaces import IImmediateSessionCache

# Each value is the expiry time (a double) followed by the session's DER: one
# bytes object per entry keeps memory per session small (a tuple of a float
# and the DER would cost about 80 bytes more).
_EXPIRY = struct.Struct("!d")
_HEADER = _EXPIRY.size

# The expiry index keeps keys of entries that have gone (evicted, removed,
# replaced) until their second comes; it is rebuilt when such stale keys
# outnumber half the live entries (plus this slack), so it never holds more
# than about 1.5 references per entry and a rebuild costs O(1) per operation
# that made a stale key.
_STALE_SLACK = 1024


@implementer(IImmediateSessionCache)
class MemorySessionCache(ImmediateCache):
    """
    An in-process LRU session cache with a size bound and per-entry lifetime.

    The default bound, 20480 sessions, is OpenSSL's built-in cache size
    (C{SSL_SESSION_CACHE_MAX_SIZE_DEFAULT}, also nginx's C{builtin} size).
    nginx's own default is C{ssl_session_cache none} (no cache at all), and its
    documentation says one megabyte of C{shared} cache holds about 4000
    sessions, so this default matches nginx's C{shared:SSL:5m}; here it takes
    about 8 MB of process memory with typical 150-byte sessions (see
    C{bench/cache_memory.py}).  Unlike nginx ("could not allocate new
    session"), a store never fails when the cache is full: the least recently
    used entry is evicted, and counted.

    Costs are O(1) per operation, amortized, never a scan of the cache:

      - the entries live in one C{OrderedDict} in recency order (a hit moves
        its entry to the recent end; eviction pops the other end);
      - an expiry index maps each whole second to the keys that expire in it,
        with a heap of those seconds.  Each store first drops the entries of
        the seconds that have passed (each key is looked at once), then
        evicts if still full, so expired sessions go before live ones.  A heap
        handles unequal lifetimes in O(log s) for s distinct seconds, which
        with the usual single lifetime is at most the lifetime in seconds.
        Keys of entries that went another way are skipped lazily and the index
        is rebuilt when they pile up.

    An entry is never returned after its lifetime (a lookup checks the exact
    expiry and drops it, counting an expiration and a miss).  Between stores,
    C{entries} and C{bytes} may include entries expired less than a second
    ago or not yet swept; L{stats} sweeps first, so its figures are exact to
    the second.

    C{lookup_now}, C{store_now} and C{remove_now} are synchronous: the server's
    session callbacks use them to skip L{Deferred} overhead in the handshake
    when the cache is in the process.  That is an optimisation only;
    L{ISessionCache} (C{store}, C{lookup}, C{remove}, which return fired
    Deferreds) remains the contract every cache honours.

    @param max_entries: how many sessions to hold at most.
    @param clock: an C{IReactorTime} (tests pass a C{Clock}); the global
        reactor by default.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Any = None):
        self.max_entries = check_max_entries(max_entries)
        if clock is None:
            from twisted.internet import reactor as clock  # noqa: N813
        self._clock = clock
        # key -> packed expiry + DER, least recently used first
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        # whole second -> keys stored to expire within it; heap of the seconds
        self._expiring: dict[int, list[bytes]] = {}
        self._seconds: list[int] = []
        self._indexed = 0
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

    # -- the expiry index ---------------------------------------------------------

    def _sweep(self, now: float) -> None:
        """Drop every entry whose second has passed, each looked at once."""
        seconds = self._seconds
        entries = self._entries
        unpack = _EXPIRY.unpack_from
        while seconds and seconds[0] <= now:
            keys = self._expiring.pop(heappop(seconds))
            self._indexed -= len(keys)
            for key in keys:
                value = entries.get(key)
                # Gone already, or stored again with a later expiry (then
                # its key is in that later second too).
                if value is not None and unpack(value)[0] <= now:
                    del entries[key]
                    self._bytes -= len(key) + len(value) - _HEADER
                    self._expirations += 1

    def _reindex(self) -> None:
        """Rebuild the expiry index from the live entries alone."""
        unpack = _EXPIRY.unpack_from
        expiring: dict[int, list[bytes]] = {}
        for key, value in self._entries.items():
            second = math.ceil(unpack(value)[0])
            bucket = expiring.get(second)
            if bucket is None:
                expiring[second] = [key]
            else:
                bucket.append(key)
        self._expiring = expiring
        self._seconds = list(expiring)
        heapify(self._seconds)
        self._indexed = len(self._entries)

    # -- synchronous core ---------------------------------------------------------

    def store_now(self, session_id: bytes, der: bytes, lifetime: float) -> None:
        """
        Store a session at once (see L{ISessionCache.store}).  A lifetime
        that is not positive forgets the key instead: the session is dead.

        @raise ValueError: if C{lifetime} is infinite or not a number.
        """
        if not live(lifetime):
            self.remove_now(session_id)
            return
        now = self._clock.seconds()
        entries = self._entries
        old = entries.pop(session_id, None)
        if old is not None:
            self._bytes -= len(session_id) + len(old) - _HEADER
        seconds = self._seconds
        if seconds and seconds[0] <= now:
            self._sweep(now)
        while len(entries) >= self.max_entries:
            key, value = entries.popitem(last=False)
            self._bytes -= len(key) + len(value) - _HEADER
            # Expired within the last second (not swept yet): not an eviction.
            if _EXPIRY.unpack_from(value)[0] <= now:
                self._expirations += 1
            else:
                self._evictions += 1
        expiry = now + lifetime
        entries[session_id] = _EXPIRY.pack(expiry) + der
        self._bytes += len(session_id) + len(der)
        self._stores += 1
        second = math.ceil(expiry)
        bucket = self._expiring.get(second)
        if bucket is None:
            self._expiring[second] = [session_id]
            heappush(seconds, second)
        else:
            bucket.append(session_id)
        self._indexed += 1
        if self._indexed > len(entries) + (len(entries) >> 1) + _STALE_SLACK:
            self._reindex()

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
        """Forget a session at once (see L{ISessionCache.remove})."""
        value = self._entries.pop(session_id, None)
        if value is not None:
            self._bytes -= len(session_id) + len(value) - _HEADER

    # -- ISessionCache (store, lookup, remove: ImmediateCache's) ----------------

    def stats(self) -> CacheStats:
        self._sweep(self._clock.seconds())
        return self._cache_stats(len(self._entries), 0, "memory")
