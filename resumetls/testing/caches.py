"""
Session caches for tests of a server's fallbacks: one that answers only
when the test says so, one whose every operation fails, one that answers
with bytes that are not a session, and one that honours the whole contract
and can be broken or damaged on demand.

Each keeps its sessions in a L{MemorySessionCache} and reports its figures
through L{ISessionCache.stats}, with C{errors} counting what failed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from resumetls.cache.memory import MemorySessionCache
from resumetls.interfaces import IImmediateSessionCache, ISessionCache


class SessionCacheDown(Exception):
    """The failure every operation of a broken test cache gives."""


def _memory(clock: Any, max_entries: int) -> MemorySessionCache:
    """An inner cache; with no C{clock}, one on a C{Clock} of its own."""
    if clock is None:
        from twisted.internet.task import Clock

        clock = Clock()
    return MemorySessionCache(max_entries=max_entries, clock=clock)


@implementer(ISessionCache)
class SlowSessionCache:
    """
    A networked cache, as a server sees it: it provides only
    L{ISessionCache}, and each operation's L{Deferred} fires when the test
    calls L{answer_next}, L{answer_all} or L{fail_all}, not before.  An
    operation takes effect (on an inner L{MemorySessionCache}) when it is
    answered, as a request reaching a server would.

    @ivar pending: the operations not answered yet, oldest first, as
        C{(name, session_id)} pairs.
    """

    def __init__(self, clock: Any = None, max_entries: int = 100) -> None:
        self.inner = _memory(clock, max_entries)
        self._pending: list[tuple[str, bytes, Deferred, Callable[[], Any]]] = []
        self.errors = 0

    def __repr__(self) -> str:
        return f"<SlowSessionCache pending={len(self._pending)} inner={self.inner!r}>"

    @property
    def pending(self) -> list[tuple[str, bytes]]:
        return [(name, key) for name, key, _, _ in self._pending]

    def _later(self, name: str, key: bytes, operation: Callable[[], Any]) -> Deferred:
        d: Deferred = Deferred()
        self._pending.append((name, key, d, operation))
        return d

    def store(self, session_id: bytes, der: bytes, lifetime: float) -> Deferred:
        return self._later(
            "store", session_id, lambda: self.inner.store_now(session_id, der, lifetime)
        )

    def lookup(self, session_id: bytes) -> Deferred:
        return self._later(
            "lookup", session_id, lambda: self.inner.lookup_now(session_id)
        )

    def remove(self, session_id: bytes) -> Deferred:
        return self._later(
            "remove", session_id, lambda: self.inner.remove_now(session_id)
        )

    def answer_next(self) -> None:
        """
        Carry out the oldest pending operation and fire its L{Deferred}.

        @raise IndexError: nothing is pending.
        """
        _, _, d, operation = self._pending.pop(0)
        d.callback(operation())

    def answer_all(self) -> int:
        """
        Answer every pending operation, oldest first, including those added
        by callbacks meanwhile.

        @return: how many were answered.
        """
        answered = 0
        while self._pending:
            self.answer_next()
            answered += 1
        return answered

    def fail_all(self, reason: Exception | None = None) -> int:
        """
        Fire every pending operation's L{Deferred} with a failure (by default
        L{SessionCacheDown}), counted as errors: a cache that breaks the
        contract by failing instead of answering misses.

        @return: how many were failed.
        """
        failed = 0
        while self._pending:
            _, _, d, _ = self._pending.pop(0)
            self.errors += 1
            failed += 1
            d.errback(reason if reason is not None else SessionCacheDown("down"))
        return failed

    def stats(self) -> Any:
        return attrs.evolve(self.inner.stats(), backend="slow", errors=self.errors)


@implementer(ISessionCache)
class FailingSessionCache:
    """
    A cache whose backend is gone and which breaks the contract by saying
    so: every operation's L{Deferred} fails with L{SessionCacheDown} (a
    server must still serve every connection, with full handshakes).  Each
    operation counts as an error, and each lookup as a miss.
    """

    def __init__(self, max_entries: int = 100) -> None:
        self.max_entries = max_entries
        self.calls: list[str] = []

    def __repr__(self) -> str:
        return f"<FailingSessionCache calls={len(self.calls)}>"

    def _fail(self, name: str) -> Deferred:
        self.calls.append(name)
        return fail(SessionCacheDown(f"test cache {name} failed"))

    def store(self, session_id: bytes, der: bytes, lifetime: float) -> Deferred:
        return self._fail("store")

    def lookup(self, session_id: bytes) -> Deferred:
        return self._fail("lookup")

    def remove(self, session_id: bytes) -> Deferred:
        return self._fail("remove")

    def stats(self) -> Any:
        from resumetls.cache.stats import CacheStats

        return CacheStats(
            entries=0,
            bytes=0,
            max_entries=self.max_entries,
            hits=0,
            misses=self.calls.count("lookup"),
            stores=0,
            evictions=0,
            expirations=0,
            errors=len(self.calls),
            backend="failing",
        )


@implementer(IImmediateSessionCache)
class CorruptSessionCache(MemorySessionCache):
    """
    An in-memory cache that answers every hit with bytes that are not a TLS
    session (C{garbage}), as a damaged store without integrity checks would:
    the server must count it (C{cache_corrupt}) and give a full handshake.
    """

    def __init__(
        self, clock: Any = None, max_entries: int = 100, garbage: bytes = b"\x30\x03bad"
    ) -> None:
        if clock is None:
            from twisted.internet.task import Clock

            clock = Clock()
        super().__init__(max_entries=max_entries, clock=clock)
        self.garbage = garbage

    def lookup_now(self, session_id: bytes) -> bytes | None:
        found = super().lookup_now(session_id)
        return None if found is None else self.garbage

    def lookup(self, session_id: bytes) -> Deferred:
        return succeed(self.lookup_now(session_id))


@implementer(IImmediateSessionCache)
class BreakableSessionCache:
    """
    An immediate cache that honours the whole L{ISessionCache} contract
    when things go wrong, the way a shared backend should: while broken
    (L{break_backend}) every operation is counted as an error and answered
    as the interface says (a lookup as a miss); an entry damaged by
    L{corrupt} (as an authenticated store would notice) is dropped, counted
    as an error and answered as a miss.
    """

    def __init__(self, clock: Any = None, max_entries: int = 100) -> None:
        self.inner = _memory(clock, max_entries)
        self.broken = False
        self.errors = 0
        self._corrupt: set[bytes] = set()
        self._corrupt_hits = 0  # hits of the inner cache answered as misses
        self._failed_lookups = 0  # misses the inner cache never saw

    def __repr__(self) -> str:
        return f"<BreakableSessionCache broken={self.broken} inner={self.inner!r}>"

    def break_backend(self) -> None:
        """Fail every operation from now on."""
        self.broken = True

    def repair(self) -> None:
        """Work again (entries stored before the break are still there)."""
        self.broken = False

    def corrupt(self, session_id: bytes) -> None:
        """Damage the stored entry of C{session_id}, if there is one."""
        self._corrupt.add(session_id)

    def store_now(self, session_id: bytes, der: bytes, lifetime: float) -> None:
        if self.broken:
            self.errors += 1
            return
        self._corrupt.discard(session_id)
        self.inner.store_now(session_id, der, lifetime)

    def lookup_now(self, session_id: bytes) -> bytes | None:
        if self.broken:
            self.errors += 1
            self._failed_lookups += 1
            return None
        found = self.inner.lookup_now(session_id)
        if found is not None and session_id in self._corrupt:
            self._corrupt.discard(session_id)
            self.inner.remove_now(session_id)
            self.errors += 1
            self._corrupt_hits += 1
            return None
        return found

    def remove_now(self, session_id: bytes) -> None:
        if self.broken:
            self.errors += 1
            return
        self._corrupt.discard(session_id)
        self.inner.remove_now(session_id)

    def store(self, session_id: bytes, der: bytes, lifetime: float) -> Deferred:
        return succeed(self.store_now(session_id, der, lifetime))

    def lookup(self, session_id: bytes) -> Deferred:
        return succeed(self.lookup_now(session_id))

    def remove(self, session_id: bytes) -> Deferred:
        return succeed(self.remove_now(session_id))

    def stats(self) -> Any:
        """The inner cache's figures, with corrupt and failed lookups as misses."""
        s = self.inner.stats()
        return attrs.evolve(
            s,
            hits=s.hits - self._corrupt_hits,
            misses=s.misses + self._corrupt_hits + self._failed_lookups,
            errors=self.errors,
            backend="breakable",
        )
