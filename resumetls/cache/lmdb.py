"""
The host-shared session cache: an embedded LMDB store (memory-mapped, no
server to run) that every process of one host opens, the nearest Python
analogue of nginx's shared-memory session zone.  C{twist resumetls --workers
N} gives its workers one by default; separate processes name it by URL,
C{lmdb:///run/resumetls/cache?size=N}.

Lookups are a read transaction on the shared mapping: synchronous, a few
microseconds, no lock held (LMDB readers never block writers), so the cache
provides L{IImmediateSessionCache} and answers inside the handshake.  Writes
take LMDB's one writer lock for a few microseconds.

Entries are sealed (L{resumetls.cache.seal.SessionSealer}, AES-256-GCM bound
to the cache key) with a key that is never written to the store: workers get
a random key from their parent over an inherited socket; by URL the key is
derived from the service's TLS private key.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import lmdb
from twisted.logger import Logger
from zope.interface import implementer

from resumetls.cache.base import (
    DEFAULT_MAX_ENTRIES,
    ImmediateCache,
    check_max_entries,
    live,
)
from resumetls.cache.lmdbenv import LMDBCacheError, open_environment, release
from resumetls.cache.stats import CacheStats
from resumetls.interfaces import IImmediateSessionCache

__all__ = ["LMDBCacheError", "LMDBSessionCache"]

_log = Logger(namespace="resumetls")

# sessions value: expiry (POSIX seconds), plain size (key + DER, the bytes
# figure), origin (which worker stored it; 0 for none) + sealed DER.
_HEADER = struct.Struct("!dIH")
_U64 = struct.Struct("!Q")
# When the map is full (large sessions), a store evicts this share of the
# entries, oldest first, and tries again.
_MAP_FULL_SHARE = 8
_MAP_FULL_TRIES = 8
# The sealing namespace: cache keys already begin with the service's own
# prefix, and the sealer binds each value to its key.
NAMESPACE = b"resumetls-lmdb"


def _order_key(expiry: float, key: bytes) -> bytes:
    """The C{expiry} index key: milliseconds, rounded up, then the cache key."""
    return _U64.pack(math.ceil(expiry * 1000)) + key


@implementer(IImmediateSessionCache)
class LMDBSessionCache(ImmediateCache):
    """
    A session cache in an LMDB environment shared by the processes of a
    host, with a size bound (entries) and a lifetime per entry.

    When full, the entry that expires first goes (with one session timeout
    per service, as servers store them, that is the oldest), found at the
    start of the expiry index in O(log n); expired entries go before live
    ones.  If LMDB's map fills before the bound (sessions larger than
    expected), a store evicts an eighth of the entries and tries again: a
    store never fails because the cache is full.

    Figures: C{entries} and C{bytes} are the shared store's (every
    process sees the same); C{hits}, C{misses}, C{stores}, C{evictions},
    C{expirations} and C{errors} count what I{this} process did, so the
    figures of several workers add up.

    @param path: the directory (made private if new; see
        L{resumetls.cache.lmdbenv}).
    @param sealer: a L{resumetls.cache.seal.SessionSealer}; L{None} until
        L{use_sealer} is called (the URL form gets its key from the TLS
        private key once the server reads it).
    @param origin: a small number stored with each entry (the worker's),
        so a resumed session can tell where it was made.
    """

    evicts = "first to expire"

    def __init__(
        self,
        path: str,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Any = None,
        sealer: Any = None,
        origin: int = 0,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # noqa: N813
        self.path = path
        self.max_entries = check_max_entries(max_entries)
        self.origin = origin
        self._clock = clock
        self._sealer = None
        self._env: Any = None
        self._entries = 0
        self._bytes = 0
        self._hits = self._misses = self._stores = 0
        self._evictions = self._expirations = self._errors = 0
        self._warned = False
        if sealer is not None:
            self.use_sealer(sealer)

    def __repr__(self) -> str:
        return (
            f"<LMDBSessionCache {self.path} entries={self._entries}/"
            f"{self.max_entries} bytes={self._bytes}>"
        )

    def use_sealer(self, sealer: Any) -> None:
        """
        Seal entries with C{sealer} and open the store now.

        @raise LMDBCacheError: the store cannot be used (the message says why).
        """
        self._sealer = sealer
        self._env, self._db, self._order, self._meta = open_environment(
            self.path, self.max_entries, sealer
        )

    def use_service_key(self, private_key_file: str) -> None:
        """
        Seal with a key derived from the service's TLS private key (HKDF,
        L{resumetls.cache.seal.derive_key}): every process of the service
        that holds the key agrees on it, and it is never written anywhere.
        A cache given its sealer already keeps it.

        @raise LMDBCacheError: the key cannot be read, or the store cannot
            be used.
        """
        if self._sealer is not None:
            return
        from resumetls.cache.seal import SealKeyError, SessionSealer, sealing_key

        try:
            key = sealing_key(private_key_file, None, b"sessions")
        except SealKeyError as e:
            raise LMDBCacheError(
                f"cannot derive the session cache's sealing key: {e}"
            ) from None
        self.use_sealer(SessionSealer(key, NAMESPACE))

    def close(self) -> None:
        """Close the environment (the files stay: other processes use them)."""
        if self._env is not None:
            self._env = None
            release(self.path)

    # -- inside a write transaction ----------------------------------------------

    def _drop(self, txn: Any, key: bytes, value: bytes) -> int:
        """Delete an entry and its index key; the plain size it held."""
        expiry, size, _ = _HEADER.unpack_from(value)
        txn.delete(key, db=self._db)
        txn.delete(_order_key(expiry, key), db=self._order)
        return size

    def _pop_first(self, txn: Any, now: float, only_expired: bool) -> bool:
        """Drop the entry that expires first (if expired, when told so)."""
        cursor = txn.cursor(db=self._order)
        if not cursor.first():
            return False
        index = cursor.key()
        if only_expired and _U64.unpack_from(index)[0] > now * 1000:
            return False
        key = index[_U64.size :]
        value = txn.get(key, db=self._db)
        cursor.delete()
        if value is None:
            return True
        expiry, size, _ = _HEADER.unpack_from(value)
        txn.delete(key, db=self._db)
        self._add_bytes(txn, -size)
        if expiry <= now:
            self._expirations += 1
        else:
            self._evictions += 1
        return True

    def _sweep(self, txn: Any, now: float) -> None:
        while self._pop_first(txn, now, only_expired=True):
            pass

    def _add_bytes(self, txn: Any, delta: int) -> None:
        held = _U64.unpack(txn.get(b"bytes", db=self._meta))[0]
        txn.put(b"bytes", _U64.pack(max(0, held + delta)), db=self._meta)

    def _count(self, txn: Any) -> None:
        self._entries = txn.stat(self._db)["entries"]
        self._bytes = _U64.unpack(txn.get(b"bytes", db=self._meta))[0]

    def _failed(self, what: str, error: Exception) -> None:
        self._errors += 1
        if not self._warned:
            self._warned = True
            _log.warn(
                "the shared session cache {path} failed ({what}: {error}); "
                "clients get full handshakes until it works again",
                path=self.path,
                what=what,
                error=str(error),
                event="resumetls.cache.lmdb.failed",
            )

    # -- IImmediateSessionCache ----------------------------------------------------

    def store_now(self, session_id: bytes, der: bytes, lifetime: float) -> None:
        """
        Store at once (see L{ISessionCache.store}); a lifetime that is not
        positive forgets the key instead.

        @raise ValueError: if C{lifetime} is infinite or not a number.
        """
        if not live(lifetime):
            self.remove_now(session_id)
            return
        now = self._clock.seconds()
        expiry = now + lifetime
        size = len(session_id) + len(der)
        try:
            value = _HEADER.pack(expiry, size, self.origin) + self._sealer.seal(
                session_id, der
            )
            for _ in range(_MAP_FULL_TRIES):
                try:
                    self._store(session_id, value, expiry, size, now)
                    break
                except lmdb.MapFullError:
                    # Pages freed in a transaction are reused only by later
                    # ones: make room in a transaction of its own, then retry.
                    self._make_room(now)
            else:
                raise lmdb.MapFullError("the map stays full after evicting")
        except Exception as e:  # noqa: BLE001 - a failed store is counted
            self._failed("store", e)
            return
        self._stores += 1

    def _make_room(self, now: float) -> None:
        """The map filled before the entry bound: evict a share, oldest first."""
        with self._env.begin(write=True) as txn:
            drop = max(1, txn.stat(self._db)["entries"] // _MAP_FULL_SHARE)
            for _ in range(drop):
                if not self._pop_first(txn, now, only_expired=False):
                    break
            self._count(txn)

    def _store(
        self, key: bytes, value: bytes, expiry: float, size: int, now: float
    ) -> None:
        with self._env.begin(write=True) as txn:
            self._sweep(txn, now)
            old = txn.get(key, db=self._db)
            if old is not None:
                self._add_bytes(txn, -self._drop(txn, key, old))
            while txn.stat(self._db)["entries"] >= self.max_entries:
                if not self._pop_first(txn, now, only_expired=False):
                    break
            txn.put(key, value, db=self._db)
            txn.put(_order_key(expiry, key), b"", db=self._order)
            self._add_bytes(txn, size)
            self._count(txn)

    def lookup_now(self, session_id: bytes) -> bytes | None:
        """Find a live session at once (see L{ISessionCache.lookup})."""
        try:
            with self._env.begin() as txn:
                value = txn.get(session_id, db=self._db)
        except Exception as e:  # noqa: BLE001 - a failed lookup is a miss
            self._failed("lookup", e)
            self._misses += 1
            return None
        if value is None:
            self._misses += 1
            return None
        expiry = _HEADER.unpack_from(value)[0]
        if expiry <= self._clock.seconds():
            self._forget(session_id, value, expired=True)
            self._misses += 1
            return None
        der = self._sealer.open(session_id, value[_HEADER.size :])
        if der is None:
            # Damaged, or sealed with another key: never answered again.
            self._errors += 1
            self._misses += 1
            self._forget(session_id, value, expired=False)
            return None
        self._hits += 1
        return der

    def origin_of(self, session_id: bytes) -> int | None:
        """The origin stored with a session's entry, or L{None}."""
        try:
            with self._env.begin() as txn:
                value = txn.get(session_id, db=self._db)
        except Exception:  # noqa: BLE001 - no answer is no origin
            return None
        return None if value is None else _HEADER.unpack_from(value)[2]

    def _forget(self, key: bytes, value: bytes, expired: bool) -> None:
        """Drop an entry a lookup found dead, if no one replaced it meanwhile."""
        try:
            with self._env.begin(write=True) as txn:
                if txn.get(key, db=self._db) == value:
                    self._add_bytes(txn, -self._drop(txn, key, value))
                    if expired:
                        self._expirations += 1
                self._count(txn)
        except lmdb.Error as e:
            self._failed("remove", e)

    def remove_now(self, session_id: bytes) -> None:
        """Forget a session at once (see L{ISessionCache.remove})."""
        try:
            with self._env.begin(write=True) as txn:
                old = txn.get(session_id, db=self._db)
                if old is not None:
                    self._add_bytes(txn, -self._drop(txn, session_id, old))
                self._count(txn)
        except Exception as e:  # noqa: BLE001 - a failed remove is counted
            self._failed("remove", e)

    # -- ISessionCache (store, lookup, remove: ImmediateCache's) ------------------

    def stats(self) -> CacheStats:
        """The figures now, expired entries swept first (see the class)."""
        try:
            with self._env.begin(write=True) as txn:
                self._sweep(txn, self._clock.seconds())
                self._count(txn)
        except Exception:  # noqa: BLE001 - figures of the last look
            pass
        return self._cache_stats(self._entries, self._errors, "lmdb")


def from_url(url: str, parts: Any, params: dict[str, str], clock: Any) -> Any:
    """
    The C{lmdb:///DIRECTORY?size=N} backend (see
    L{resumetls.cache.urls.register_backend}): no I/O here; the store opens
    when the server gives it its sealing key (L{use_service_key}).
    """
    from resumetls.cache.urls import CacheURLError, safe_url, size_only

    if parts.netloc or not parts.path.startswith("/") or parts.fragment:
        raise CacheURLError(
            f"session cache {safe_url(url)!r}: write lmdb:///ABSOLUTE/DIRECTORY "
            "(three slashes, no host) or lmdb:///DIRECTORY?size=N"
        )
    return LMDBSessionCache(parts.path, size_only(url, params, "lmdb"), clock)
