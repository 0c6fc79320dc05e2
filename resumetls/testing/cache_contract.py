"""
The contract every L{ISessionCache} honours, as a test mixin.

Mix L{SessionCacheContractMixin} into a trial test case and say how to build
your cache; every test below then runs against it, through the L{Deferred}
methods and, when the cache provides L{IImmediateSessionCache}, through the
C{*_now} methods too::

    class RedisCacheContractTests(SessionCacheContractMixin, SynchronousTestCase):
        def make_cache(self, clock, max_entries):
            return RedisSessionCache(FakeRedis(clock), max_entries, clock=clock)

        def break_cache(self, cache):
            cache.client.connected = False

The figures a cache reports (L{resumetls.CacheStats}) are checked exactly:
a hit is a lookup that answered a session; a miss one that did not (nothing
there, expired, corrupt, or failed); an expiration an entry dropped because
its lifetime passed (whether a lookup or a sweep found it); an eviction an
entry dropped to make room; an error each operation the backend failed (a
failed lookup is also a miss; a failed store is not a store).
"""

from __future__ import annotations

import base64
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from resumetls.interfaces import IImmediateSessionCache, ISessionCache
from resumetls.testing._hooks import add_hooked_tests

# Tests that exist only when a subclass defines their hook: name -> hook.
_HOOKED = {
    "least_recently_used_goes": "evicts_least_recently_used",
    "corrupt_entry_is_a_miss": "corrupt_entry",
    "failures_are_misses": "break_cache",
}

# The figures checked, in this order.
FIGURES = ("entries", "bytes", "hits", "misses", "stores", "evictions", "expirations")


def sid(i: int) -> bytes:
    """Session ID number C{i}: 32 bytes, like a TLS session ID."""
    return b"session-%024d" % i


class _Driver:
    """One cache, through one of its two APIs, with plain results."""

    def __init__(self, test: Any, cache: Any, clock: Clock, immediate: bool):
        self.test = test
        self.cache = cache
        self.clock = clock
        self.api = "*_now" if immediate else "Deferred"
        self._immediate = immediate

    def _answer(self, result: Any) -> Any:
        if self._immediate:
            return result
        self.test.assertIsInstance(result, Deferred, f"{self.api} API")
        return self.test.settle(result, self.clock)

    def store(self, session_id: bytes, der: bytes, lifetime: float) -> None:
        method = self.cache.store_now if self._immediate else self.cache.store
        self.test.assertIsNone(self._answer(method(session_id, der, lifetime)))

    def lookup(self, session_id: bytes) -> bytes | None:
        method = self.cache.lookup_now if self._immediate else self.cache.lookup
        return self._answer(method(session_id))

    def remove(self, session_id: bytes) -> None:
        method = self.cache.remove_now if self._immediate else self.cache.remove
        self.test.assertIsNone(self._answer(method(session_id)))

    def figures(self) -> dict[str, int]:
        stats = self.cache.stats()
        return {name: getattr(stats, name) for name in FIGURES}


class SessionCacheContractMixin:
    """
    What every L{ISessionCache} must do, for a trial C{TestCase} that
    provides L{make_cache}.  Lifetimes in these tests are whole seconds.

    The tests of corrupt entries and of failures need to damage or break
    the backend: they are part of a subclass only when it defines the hook
    they call, L{corrupt_entry} or L{break_cache} (left out, not skipped:
    a skipped test fails this project's CI).

    @cvar evicts_least_recently_used: L{True} when a hit makes an entry the
        last to be evicted (set L{False} for a cache that evicts the oldest
        stored entry first; the LRU test is then left out).
    """

    evicts_least_recently_used = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        add_hooked_tests(cls, SessionCacheContractMixin, _HOOKED)

    # -- what a subclass provides ------------------------------------------------

    def make_cache(self, clock: Clock, max_entries: int) -> Any:
        """
        A new, empty cache holding at most C{max_entries} sessions, keeping
        time with C{clock}.
        """
        raise NotImplementedError(f"{type(self).__name__} must define make_cache")

    def corrupt_entry(self, cache: Any, session_id: bytes) -> None:
        """
        Damage the stored entry of C{session_id} the way the backend can be
        damaged (flip a byte of the ciphertext in the store).  By default the
        test that needs this is left out.
        """
        raise NotImplementedError

    def break_cache(self, cache: Any) -> None:
        """
        Make every later operation of the backend fail (a server that went
        away).  By default the test that needs this is left out.
        """
        raise NotImplementedError

    def settle(self, d: Deferred, clock: Clock) -> Any:
        """
        The result of a cache's L{Deferred}: by default it must have fired,
        successfully, once the clock advanced by 0 seconds.  Override it for
        a backend whose answers need more (pump a fake network).
        """
        clock.advance(0)
        return self.successResultOf(d)

    def expected_bytes(self, session_id: bytes, der: bytes) -> int:
        """What one entry adds to C{stats().bytes}: the key and the DER."""
        return len(session_id) + len(der)

    # -- helpers -------------------------------------------------------------------

    def drivers(self, max_entries: int = 3) -> list[_Driver]:
        """
        A new cache (and clock) for each API the cache offers: its Deferred
        methods, and its C{*_now} methods when it is immediate.
        """
        found = []
        for immediate in (False, True):
            clock = Clock()
            cache = self.make_cache(clock, max_entries)
            if immediate and not IImmediateSessionCache.providedBy(cache):
                break
            found.append(_Driver(self, cache, clock, immediate))
        return found

    def assertFigures(self, driver: _Driver, **expected: int) -> None:
        """The cache's figures named in C{expected} are exactly these."""
        figures = driver.figures()
        got = {name: figures[name] for name in expected}
        self.assertEqual(got, expected, f"figures through the {driver.api} API")

    # -- the contract ---------------------------------------------------------------

    def test_interfaces(self) -> None:
        """The cache provides L{ISessionCache} (and the immediate API it claims)."""
        cache = self.make_cache(Clock(), 3)
        self.assertTrue(verifyObject(ISessionCache, cache))
        if IImmediateSessionCache.providedBy(cache):
            self.assertTrue(verifyObject(IImmediateSessionCache, cache))

    def test_store_lookup_remove(self) -> None:
        """A stored session is found until removed; unknown IDs are misses."""
        for d in self.drivers():
            d.store(sid(1), b"der-1", 60)
            self.assertEqual(d.lookup(sid(1)), b"der-1", d.api)
            self.assertIsNone(d.lookup(sid(2)), d.api)
            d.remove(sid(1))
            d.remove(sid(2))
            self.assertIsNone(d.lookup(sid(1)), d.api)
            self.assertFigures(d, entries=0, bytes=0, hits=1, misses=2, stores=1)

    def test_store_again_replaces(self) -> None:
        """Storing a key again replaces its session; the bytes stay exact."""
        for d in self.drivers():
            d.store(sid(1), b"short", 60)
            d.store(sid(1), b"a much longer session", 60)
            self.assertEqual(d.lookup(sid(1)), b"a much longer session", d.api)
            size = self.expected_bytes(sid(1), b"a much longer session")
            self.assertFigures(d, entries=1, bytes=size, stores=2, evictions=0)

    def test_expiry(self) -> None:
        """A session is found until its lifetime has passed, never after."""
        for d in self.drivers():
            d.store(sid(1), b"der", 10)
            d.clock.advance(9)
            self.assertEqual(d.lookup(sid(1)), b"der", d.api)
            d.clock.advance(1)
            self.assertIsNone(d.lookup(sid(1)), d.api)
            self.assertFigures(d, entries=0, bytes=0, hits=1, misses=1, expirations=1)

    def test_expired_leave_the_figures(self) -> None:
        """
        Entries whose lifetime passed are neither counted as held nor as
        bytes, even when no lookup asked for them; each counts as expired.
        """
        for d in self.drivers():
            d.store(sid(1), b"aa", 10)
            d.store(sid(2), b"bbb", 20)
            d.clock.advance(15)
            size = self.expected_bytes(sid(2), b"bbb")
            self.assertFigures(d, entries=1, bytes=size, expirations=1)
            d.clock.advance(5)
            self.assertFigures(d, entries=0, bytes=0, expirations=2, misses=0)

    def test_lifetime_per_entry(self) -> None:
        """
        Each entry keeps its own lifetime, and storing a key again starts
        its lifetime anew.
        """
        for d in self.drivers():
            d.store(sid(1), b"long", 100)
            d.store(sid(2), b"short", 5)
            d.store(sid(3), b"renewed", 5)
            d.clock.advance(4)
            d.store(sid(3), b"renewed", 5)
            d.clock.advance(1)
            self.assertEqual(d.lookup(sid(1)), b"long", d.api)
            self.assertIsNone(d.lookup(sid(2)), d.api)
            self.assertEqual(d.lookup(sid(3)), b"renewed", d.api)

    def test_size_bound(self) -> None:
        """
        A full cache still stores: the oldest entries go, each counted as an
        eviction, and it never holds more than its bound.
        """
        for d in self.drivers(max_entries=3):
            for i in range(6):
                d.store(sid(i), b"der-%d" % i, 60)
            self.assertEqual(d.cache.stats().max_entries, 3, d.api)
            self.assertFigures(d, entries=3, evictions=3, stores=6)
            for i in range(3):
                self.assertIsNone(d.lookup(sid(i)), d.api)
            for i in range(3, 6):
                self.assertEqual(d.lookup(sid(i)), b"der-%d" % i, d.api)
            size = sum(self.expected_bytes(sid(i), b"der-%d" % i) for i in range(3, 6))
            self.assertFigures(d, bytes=size, hits=3, misses=3)

    def hooked_least_recently_used_goes(self) -> None:
        """A session looked up is kept over one stored after it."""
        for d in self.drivers(max_entries=3):
            for i in range(3):
                d.store(sid(i), b"x", 60)
            self.assertEqual(d.lookup(sid(0)), b"x", d.api)
            d.store(sid(3), b"y", 60)
            self.assertIsNone(d.lookup(sid(1)), d.api)
            for i in (0, 2, 3):
                self.assertIsNotNone(d.lookup(sid(i)), d.api)
            self.assertFigures(d, evictions=1, entries=3)

    def test_expired_go_before_live(self) -> None:
        """When full, entries whose lifetime passed go before live ones."""
        for d in self.drivers(max_entries=3):
            d.store(sid(0), b"live", 100)
            d.store(sid(1), b"dead", 5)
            d.store(sid(2), b"dead", 5)
            d.clock.advance(5)
            d.store(sid(3), b"new", 100)
            d.store(sid(4), b"new", 100)
            self.assertEqual(d.lookup(sid(0)), b"live", d.api)
            self.assertFigures(d, entries=3, evictions=0, expirations=2)

    def test_figures_exact(self) -> None:
        """Every figure after a mixed run of operations, exactly."""
        for d in self.drivers(max_entries=2):
            d.store(sid(1), b"a", 10)
            d.store(sid(2), b"bb", 10)
            d.store(sid(3), b"ccc", 10)  # evicts 1, the oldest
            self.assertEqual(d.lookup(sid(2)), b"bb", d.api)
            self.assertIsNone(d.lookup(sid(1)), d.api)
            self.assertIsNone(d.lookup(sid(9)), d.api)
            size = self.expected_bytes(sid(2), b"bb") + self.expected_bytes(
                sid(3), b"ccc"
            )
            self.assertFigures(
                d,
                entries=2,
                bytes=size,
                hits=1,
                misses=2,
                stores=3,
                evictions=1,
                expirations=0,
            )
            d.clock.advance(10)
            self.assertIsNone(d.lookup(sid(2)), d.api)
            self.assertFigures(
                d,
                entries=0,
                bytes=0,
                hits=1,
                misses=3,
                stores=3,
                evictions=1,
                expirations=2,
            )

    def test_stats_value(self) -> None:
        """
        stats() names the backend, reports the bound, counts no error when
        nothing failed, and gives its figures as a dict too.
        """
        for d in self.drivers(max_entries=5):
            d.store(sid(1), b"der", 60)
            stats = d.cache.stats()
            self.assertIsInstance(stats.backend, str)
            self.assertTrue(stats.backend)
            self.assertEqual(stats.max_entries, 5)
            self.assertEqual(stats.errors, 0)
            as_dict = stats.as_dict()
            for name in (*FIGURES, "errors", "max_entries", "backend"):
                self.assertEqual(as_dict[name], getattr(stats, name))

    def test_no_sessions_in_reprs(self) -> None:
        """Neither the cache's repr nor its figures show a stored session."""
        secret = b"\x01master-secret-of-a-session\x02"
        for d in self.drivers():
            d.store(sid(1), secret, 60)
            text = repr(d.cache) + str(d.cache) + repr(d.cache.stats())
            text += repr(d.cache.stats().as_dict())
            for form in (repr(secret), secret.hex(), base64.b64encode(secret).decode()):
                self.assertNotIn(form, text)

    def hooked_corrupt_entry_is_a_miss(self) -> None:
        """
        A corrupt entry is answered as a miss and counted as an error, not
        raised; it is not answered again, and the key can be stored anew.
        """
        for d in self.drivers():
            d.store(sid(1), b"der", 60)
            self.corrupt_entry(d.cache, sid(1))
            self.assertIsNone(d.lookup(sid(1)), d.api)
            self.assertFigures(d, hits=0, misses=1)
            self.assertEqual(d.cache.stats().errors, 1, d.api)
            self.assertIsNone(d.lookup(sid(1)), d.api)
            d.store(sid(1), b"fresh", 60)
            self.assertEqual(d.lookup(sid(1)), b"fresh", d.api)

    def hooked_failures_are_misses(self) -> None:
        """
        When the backend fails, every operation still answers as the
        interface says (no errback, no exception): a lookup is a miss; each
        failure is counted as an error; stats() still answers.
        """
        for d in self.drivers():
            d.store(sid(1), b"der", 60)
            before = d.figures()
            self.break_cache(d.cache)
            d.store(sid(2), b"der", 60)
            self.assertIsNone(d.lookup(sid(1)), d.api)
            d.remove(sid(1))
            stats = d.cache.stats()
            self.assertEqual(stats.errors, 3, d.api)
            self.assertEqual(stats.misses, before["misses"] + 1, d.api)
            self.assertEqual(stats.hits, before["hits"], d.api)
            self.assertEqual(stats.stores, before["stores"], d.api)
