"""
The Redis session cache: sessions shared by every server of a fleet, sealed
at rest, each with an expiry Redis enforces (C{SET … PX}).

Each entry is one Redis string, C{PREFIX:s:HEX} where HEX is the cache key
(the service's 16-byte namespace followed by the TLS session ID, so services
sharing a Redis never see each other's sessions), and its value is sealed by
a L{SessionSealer} (AES-256-GCM, the cache key as associated data): the
plaintext is the expiry time followed by the session's DER.  A value that
does not open (corrupt, foreign, copied from another key or service) is a
miss and an error, and is deleted.

It provides L{ISessionCache} only, not L{IImmediateSessionCache}: answers
come later, so the server pauses a handshake while a lookup runs
(L{resumetls.server.pause}).  While Redis is not connected every operation
answers at once (a miss, a dropped store), counted as an error.  Stores run
in the background, at most C{max_stores_in_flight} at a time; more are
dropped and counted (C{stores_dropped}), never queued.

Bounds and figures: each server keeps at most C{max_entries} of the sessions
I{it} stored in Redis (least recently used go first, deleted from Redis);
C{entries} and C{bytes} count those (the plaintext size, as the in-memory
cache does), so a fleet's total is the sum over its servers.  Hits, misses,
stores, errors count this server's operations.
"""

from __future__ import annotations

import math
import struct
from collections import OrderedDict
from heapq import heapify, heappop, heappush
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.logger import Logger
from zope.interface import implementer

from resumetls.cache.base import DEFAULT_MAX_ENTRIES, live
from resumetls.cache.seal import SessionSealer
from resumetls.cache.stats import CacheStats
from resumetls.interfaces import ISessionCache

__all__ = ["RedisSessionCache"]

_log = Logger(namespace="resumetls")
_EXPIRY = struct.Struct("!d")
DEFAULT_STORES_IN_FLIGHT = 256


class _Index:
    """
    The sessions this server stored: key -> (expiry, size), least recently
    used first, with a heap of expiries swept lazily.  Costs O(log n) per
    operation; stale heap items are dropped when they outnumber live ones.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[bytes, tuple[float, int]] = OrderedDict()
        self._heap: list[tuple[float, bytes]] = []
        self.bytes = 0
        self.evictions = 0
        self.expirations = 0

    def sweep(self, now: float) -> None:
        heap, entries = self._heap, self.entries
        while heap and heap[0][0] <= now:
            expiry, key = heappop(heap)
            found = entries.get(key)
            if found is not None and found[0] == expiry:
                del entries[key]
                self.bytes -= found[1]
                self.expirations += 1

    def discard(self, key: bytes) -> None:
        found = self.entries.pop(key, None)
        if found is not None:
            self.bytes -= found[1]

    def touch(self, key: bytes) -> None:
        if key in self.entries:
            self.entries.move_to_end(key)

    def add(self, key: bytes, expiry: float, size: int, now: float) -> list[bytes]:
        """Record a store; the keys evicted to stay within the bound."""
        self.discard(key)
        self.sweep(now)
        evicted = []
        while len(self.entries) >= self.max_entries:
            old, (_, old_size) = self.entries.popitem(last=False)
            self.bytes -= old_size
            self.evictions += 1
            evicted.append(old)
        self.entries[key] = (expiry, size)
        self.bytes += size
        heappush(self._heap, (expiry, key))
        if len(self._heap) > 2 * len(self.entries) + 1024:
            self._heap = [(e, k) for k, (e, _) in self.entries.items()]
            heapify(self._heap)
        return evicted


@implementer(ISessionCache)
class RedisSessionCache:
    """
    Sessions in Redis, sealed; see the module's docstring.

    @param client: a L{resumetls.cache.redisclient.RedisClient} (or anything
        with C{command(*args) -> Deferred}, C{available}, C{connect()}).
    @param prefix: the key namespace in Redis (C{PREFIX:s:…}).
    @param sealing_key: 32 bytes; L{None} until L{set_sealing_key} is called
        (the server derives it from its TLS private key).  Until then no
        operation reaches Redis: stores are dropped and lookups miss.
    @param clock: the C{IReactorTime} lifetimes are measured with.
    """

    backend = "redis"

    def __init__(
        self,
        client: Any,
        prefix: str = "resumetls",
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Any = None,
        sealing_key: bytes | None = None,
        max_stores_in_flight: int = DEFAULT_STORES_IN_FLIGHT,
        description: str = "Redis",
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # noqa: N813
        self.client = client
        self.prefix = prefix
        self.max_entries = max_entries
        self.max_stores_in_flight = max_stores_in_flight
        self.description = description
        self._clock = clock
        self._key_prefix = prefix.encode() + b":s:"
        self._sealer: SessionSealer | None = None
        self._index = _Index(max_entries)
        self.hits = self.misses = self.stores = self.errors = 0
        self.stores_dropped = self.stores_in_flight = 0
        self.corrupt = 0
        if sealing_key is not None:
            self.set_sealing_key(sealing_key)

    @classmethod
    def from_target(cls, target: Any, clock: Any = None) -> RedisSessionCache:
        """
        The cache a parsed URL describes (no I/O: it connects when it gets
        its sealing key, or on L{set_sealing_key}).
        """
        from resumetls.cache.redisclient import RedisClient

        cache = cls(
            RedisClient(target),
            prefix=target.prefix,
            max_entries=target.size or DEFAULT_MAX_ENTRIES,
            clock=clock,
            description=target.describe(),
        )
        cache.seal_key_file = target.seal_key_file
        return cache

    seal_key_file: str | None = None

    def __repr__(self) -> str:
        return (
            f"<RedisSessionCache {self.description} entries="
            f"{len(self._index.entries)}/{self.max_entries}>"
        )

    # -- set-up ---------------------------------------------------------------------

    @property
    def sealed(self) -> bool:
        """Whether the sealing key is set (the cache works only then)."""
        return self._sealer is not None

    def set_sealing_key(self, key: bytes) -> None:
        """
        Seal with C{key} (32 bytes) from now on, and start connecting.  The
        sealer's namespace is the key prefix; the cache key (service
        namespace + session ID) is bound as associated data.
        """
        self._sealer = SessionSealer(key, self._key_prefix)
        self.client.connect()

    def use_service_key(self, private_key_file: str) -> None:
        """
        Seal with the key of C{seal_key_file=} if the URL named one, else
        with a key derived from the service's TLS private key
        (L{resumetls.cache.seal.derive_key}, purpose C{sessions}), and start
        connecting.  Called by L{resumetls.server.config.build}; a cache
        that has its key already keeps it.

        @raise CacheURLError: the key cannot be read (one line, no secret).
        """
        if self.sealed:
            return
        from resumetls.cache.seal import SealKeyError, sealing_key
        from resumetls.cache.urls import CacheURLError

        try:
            key = sealing_key(private_key_file, self.seal_key_file, b"sessions")
        except SealKeyError as e:
            raise CacheURLError(
                f"session cache {self.description}: cannot get its sealing key: {e}"
            ) from None
        self.set_sealing_key(key)

    def available(self) -> bool:
        """Whether a lookup can be answered by Redis now (connected, sealed)."""
        return self._sealer is not None and bool(self.client.available)

    def _redis_key(self, session_id: bytes) -> bytes:
        return self._key_prefix + session_id.hex().encode()

    def _failed(self, failure: Any, what: str) -> None:
        self.errors += 1
        _log.debug(
            "Redis {what} failed: {error}",
            what=what,
            error=failure.getErrorMessage(),
            event="resumetls.redis.command_failed",
        )

    # -- ISessionCache ----------------------------------------------------------------

    def store(self, session_id: bytes, der: bytes, lifetime: float) -> Deferred:
        if not live(lifetime):
            return self.remove(session_id)
        if self._sealer is None or not self.client.available:
            self.errors += 1
            return succeed(None)
        if self.stores_in_flight >= self.max_stores_in_flight:
            self.stores_dropped += 1
            return succeed(None)
        now = self._clock.seconds()
        expiry = now + lifetime
        blob = self._sealer.seal(session_id, _EXPIRY.pack(expiry) + der)
        evicted = self._index.add(session_id, expiry, len(session_id) + len(der), now)
        self.stores_in_flight += 1
        pending = [
            self.client.command(
                "SET",
                self._redis_key(session_id),
                blob,
                "PX",
                math.ceil(lifetime * 1000),
            ).addCallbacks(self._stored, self._store_failed, errbackArgs=(session_id,))
        ]
        for key in evicted:
            pending.append(
                self.client.command("DEL", self._redis_key(key)).addErrback(
                    self._failed, "delete"
                )
            )
        return gatherResults(pending).addCallback(lambda _: None)

    def _stored(self, reply: Any) -> None:
        self.stores_in_flight -= 1
        self.stores += 1

    def _store_failed(self, failure: Any, session_id: bytes) -> None:
        self.stores_in_flight -= 1
        self._index.discard(session_id)
        self._failed(failure, "store")

    def lookup(self, session_id: bytes) -> Deferred:
        if self._sealer is None or not self.client.available:
            self.errors += 1
            self.misses += 1
            return succeed(None)
        d = self.client.command("GET", self._redis_key(session_id))
        return d.addCallbacks(
            self._found, self._lookup_failed, callbackArgs=(session_id,)
        )

    def _lookup_failed(self, failure: Any) -> None:
        self.misses += 1
        self._failed(failure, "lookup")
        return None

    def _found(self, blob: Any, session_id: bytes) -> bytes | None:
        if blob is None:
            self.misses += 1
            return None
        plain = self._sealer.open(session_id, blob) if self._sealer else None
        if plain is None or len(plain) <= _EXPIRY.size:
            # Corrupt, foreign, or sealed for another key or service.
            self.misses += 1
            self.errors += 1
            self.corrupt += 1
            self._index.discard(session_id)
            self.client.command("DEL", self._redis_key(session_id)).addErrback(
                self._failed, "delete"
            )
            return None
        (expiry,) = _EXPIRY.unpack_from(plain)
        if expiry <= self._clock.seconds():
            self.misses += 1
            return None
        self.hits += 1
        self._index.touch(session_id)
        return plain[_EXPIRY.size :]

    def remove(self, session_id: bytes) -> Deferred:
        self._index.discard(session_id)
        if self._sealer is None or not self.client.available:
            self.errors += 1
            return succeed(None)
        d = self.client.command("DEL", self._redis_key(session_id))
        return d.addCallbacks(lambda _: None, self._failed, errbackArgs=("delete",))

    def stats(self) -> CacheStats:
        index = self._index
        index.sweep(self._clock.seconds())
        return CacheStats(
            entries=len(index.entries),
            bytes=index.bytes,
            max_entries=self.max_entries,
            hits=self.hits,
            misses=self.misses,
            stores=self.stores,
            evictions=index.evictions,
            expirations=index.expirations,
            errors=self.errors,
            backend=self.backend,
        )

    def figures(self) -> dict[str, Any]:
        """What L{stats} does not say: stores dropped and in flight, the link."""
        return {
            "stores_dropped": self.stores_dropped,
            "stores_in_flight": self.stores_in_flight,
            "corrupt": self.corrupt,
            "connected": bool(self.client.available),
            "sealed": self.sealed,
        }
