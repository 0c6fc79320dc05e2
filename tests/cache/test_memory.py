"""
The in-memory session cache: LRU order, size bound, lifetimes, figures.
"""

from __future__ import annotations

from collections import OrderedDict

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from resumetls import CacheStats, ISessionCache, MemorySessionCache
from resumetls.cache import memory as _memorycache
from resumetls.testing.cache_contract import SessionCacheContractMixin


def key(i: int) -> bytes:
    return b"k%05d" % i


class MemorySessionCacheContractTests(SessionCacheContractMixin, SynchronousTestCase):
    """The in-memory cache honours the contract of every session cache."""

    def make_cache(self, clock, max_entries):
        return MemorySessionCache(max_entries=max_entries, clock=clock)


class MemorySessionCacheTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.cache = MemorySessionCache(max_entries=3, clock=self.clock)

    def test_interface(self):
        self.assertTrue(verifyObject(ISessionCache, self.cache))

    def test_store_and_lookup(self):
        self.assertIsNone(self.successResultOf(self.cache.store(key(1), b"der1", 60)))
        self.assertEqual(self.successResultOf(self.cache.lookup(key(1))), b"der1")
        self.assertIsNone(self.successResultOf(self.cache.lookup(key(2))))
        s = self.cache.stats()
        self.assertEqual((s.hits, s.misses, s.stores), (1, 1, 1))
        self.assertEqual(s.entries, 1)
        self.assertEqual(s.bytes, len(key(1)) + 4)
        self.assertEqual(s.backend, "memory")
        self.assertEqual(s.max_entries, 3)

    def test_full_evicts_least_recently_used(self):
        """
        When full, a store evicts the least recently used entry (a hit makes
        an entry recent) and never fails.
        """
        for i in range(3):
            self.cache.store_now(key(i), b"x", 60)
        self.assertEqual(self.cache.lookup_now(key(0)), b"x")  # 0 is recent now
        self.cache.store_now(key(3), b"y", 60)
        self.assertIsNone(self.cache.lookup_now(key(1)))
        self.assertEqual(self.cache.lookup_now(key(0)), b"x")
        self.assertEqual(self.cache.lookup_now(key(2)), b"x")
        self.assertEqual(self.cache.lookup_now(key(3)), b"y")
        s = self.cache.stats()
        self.assertEqual(s.evictions, 1)
        self.assertEqual(s.entries, 3)
        self.assertEqual(s.bytes, 3 * len(key(0)) + 3)

    def test_expiry(self):
        """An entry is never returned once its lifetime has passed."""
        self.cache.store_now(key(1), b"der", 10)
        self.clock.advance(9.9)
        self.assertEqual(self.cache.lookup_now(key(1)), b"der")
        self.clock.advance(0.1)
        self.assertIsNone(self.cache.lookup_now(key(1)))
        s = self.cache.stats()
        self.assertEqual((s.expirations, s.entries, s.bytes), (1, 0, 0))
        self.assertEqual((s.hits, s.misses), (1, 1))

    def test_expired_entries_dropped_on_store(self):
        """
        Expired entries at the least recently used end are dropped by the next
        store, so they do not cause evictions of live ones.
        """
        self.cache.store_now(key(1), b"a", 5)
        self.cache.store_now(key(2), b"b", 5)
        self.clock.advance(6)
        self.cache.store_now(key(3), b"c", 5)
        s = self.cache.stats()
        self.assertEqual((s.expirations, s.evictions, s.entries), (2, 0, 1))
        self.assertEqual(s.bytes, len(key(3)) + 1)

    def test_replace_keeps_bytes_exact(self):
        self.cache.store_now(key(1), b"short", 60)
        self.cache.store_now(key(1), b"much longer value", 60)
        self.assertEqual(self.cache.lookup_now(key(1)), b"much longer value")
        s = self.cache.stats()
        self.assertEqual(s.entries, 1)
        self.assertEqual(s.bytes, len(key(1)) + len(b"much longer value"))
        self.assertEqual(s.stores, 2)

    def test_remove(self):
        self.cache.store_now(key(1), b"der", 60)
        self.successResultOf(self.cache.remove(key(1)))
        self.successResultOf(self.cache.remove(key(2)))
        self.assertIsNone(self.cache.lookup_now(key(1)))
        self.assertEqual(self.cache.stats().bytes, 0)

    def test_repr_without_sessions(self):
        secret = b"\x01master-secret-bytes\x02"
        self.cache.store_now(key(1), secret, 60)
        text = repr(self.cache) + repr(self.cache.stats())
        self.assertNotIn(repr(secret), text)
        self.assertNotIn(secret.hex(), text)
        self.assertIn("entries=1/3", repr(self.cache))

    def test_bad_size(self):
        for bad in (0, -1, 1.5, "10"):
            e = self.assertRaises(ValueError, MemorySessionCache, bad, Clock())
            self.assertIn("positive integer", str(e))

    def test_many_entries_bounded(self):
        """
        A hundred thousand stores into a small cache: the bound holds, every
        drop is counted, and the figures add up.
        """
        cache = MemorySessionCache(max_entries=1000, clock=self.clock)
        for i in range(100_000):
            cache.store_now(b"%08d" % i, b"d" * 10, 3600)
        s = cache.stats()
        self.assertEqual(s.entries, 1000)
        self.assertEqual(s.evictions, 99_000)
        self.assertEqual(s.bytes, 1000 * 18)
        self.assertEqual(cache.lookup_now(b"%08d" % 99_999), b"d" * 10)
        self.assertIsNone(cache.lookup_now(b"%08d" % 98_999))

    def test_stats_as_dict(self):
        self.assertEqual(
            self.cache.stats().as_dict(),
            {
                "entries": 0,
                "bytes": 0,
                "max_entries": 3,
                "hits": 0,
                "misses": 0,
                "stores": 0,
                "evictions": 0,
                "expirations": 0,
                "errors": 0,
                "backend": "memory",
            },
        )
        self.assertIsInstance(self.cache.stats(), CacheStats)

    def test_deferreds_fired(self):
        """Every L{ISessionCache} method answers with an already-fired Deferred."""
        self.assertIsNone(self.successResultOf(self.cache.store(key(1), b"d", 60)))
        self.assertEqual(self.successResultOf(self.cache.lookup(key(1))), b"d")
        self.assertIsNone(self.successResultOf(self.cache.remove(key(1))))
        self.assertIsNone(self.successResultOf(self.cache.lookup(key(1))))

    def test_hit_then_expired_swept_by_store(self):
        """
        An entry that was looked up recently (so it sits at the recent end)
        still goes when its lifetime passes: the next store sweeps it, without
        a lookup of it, and the figures follow.
        """
        self.cache.store_now(key(1), b"aa", 10)
        self.cache.store_now(key(2), b"bbb", 100)
        self.assertEqual(self.cache.lookup_now(key(1)), b"aa")
        self.clock.advance(10)
        self.cache.store_now(key(3), b"c", 100)
        self.assertEqual(len(self.cache), 2)
        s = self.cache.stats()
        self.assertEqual((s.entries, s.expirations, s.evictions), (2, 1, 0))
        self.assertEqual(s.bytes, 2 * len(key(0)) + 4)

    def test_stats_sweeps(self):
        """The figures do not count entries whose lifetime has passed."""
        self.cache.store_now(key(1), b"aa", 10)
        self.cache.store_now(key(2), b"bb", 20)
        self.clock.advance(15)
        s = self.cache.stats()
        self.assertEqual((s.entries, s.bytes, s.expirations), (1, len(key(2)) + 2, 1))

    def test_unequal_lifetimes(self):
        """
        A long-lived entry at the least recently used end does not keep
        shorter-lived ones behind it alive, and expired entries go before a
        live one is evicted.
        """
        self.cache.store_now(key(1), b"long", 1000)
        self.cache.store_now(key(2), b"short", 5)
        self.cache.store_now(key(3), b"short", 5)
        self.clock.advance(5)
        self.cache.store_now(key(4), b"new", 1000)
        self.cache.store_now(key(5), b"new", 1000)
        s = self.cache.stats()
        self.assertEqual((s.entries, s.expirations, s.evictions), (3, 2, 0))
        self.assertEqual(self.cache.lookup_now(key(1)), b"long")

    def test_replaced_with_shorter_lifetime(self):
        """Storing a key again sets its lifetime anew, shorter or longer."""
        self.cache.store_now(key(1), b"a", 100)
        self.cache.store_now(key(1), b"b", 5)
        self.clock.advance(5)
        self.assertIsNone(self.cache.lookup_now(key(1)))
        self.cache.store_now(key(2), b"a", 5)
        self.cache.store_now(key(2), b"b", 100)
        self.clock.advance(50)
        self.cache.store_now(key(3), b"c", 5)
        self.assertEqual(self.cache.lookup_now(key(2)), b"b")
        s = self.cache.stats()
        self.assertEqual((s.entries, s.expirations), (2, 1))
        self.assertEqual(s.bytes, 2 * len(key(0)) + 2)

    def test_sub_second_expiry(self):
        """Lookups honour the exact expiry, not the second it is indexed in."""
        self.clock.advance(0.25)
        self.cache.store_now(key(1), b"a", 0.5)
        self.clock.advance(0.5)
        self.assertIsNone(self.cache.lookup_now(key(1)))
        self.assertEqual(self.cache.stats().entries, 0)

    def test_expired_at_eviction_counted_as_expiration(self):
        """
        An entry evicted after its lifetime passed (within the second it is
        indexed in, so not swept yet) is counted as expired, not evicted.
        """
        for i in range(3):
            self.cache.store_now(key(i), b"x", 0.5)
        self.clock.advance(0.75)
        self.cache.store_now(key(3), b"y", 60)
        s = self.cache.stats()
        self.assertEqual((s.evictions, s.expirations), (0, 1))

    def test_lifetime_not_positive_forgets(self):
        self.cache.store_now(key(1), b"a", 60)
        self.cache.store_now(key(1), b"b", 0)
        self.cache.store_now(key(2), b"b", -1)
        s = self.cache.stats()
        self.assertEqual((s.entries, s.bytes, s.stores), (0, 0, 1))

    def test_lifetime_not_finite(self):
        for bad in (float("inf"), float("nan")):
            e = self.assertRaises(ValueError, self.cache.store_now, key(1), b"a", bad)
            self.assertEqual(
                str(e),
                f"a session lifetime must be a finite number of seconds, not {bad!r}",
            )
        self.assertEqual(len(self.cache), 0)

    def test_constant_work_per_operation(self):
        """
        Stores, lookups and evictions look at a bounded number of entries
        however big the cache is; when many expire together, the sweep looks
        at each of them once, and the stores after it are cheap again.
        """
        touched = []
        real = _memorycache._EXPIRY

        class Counting:
            size = real.size
            pack = staticmethod(real.pack)

            @staticmethod
            def unpack_from(value):
                touched.append(1)
                return real.unpack_from(value)

        self.patch(_memorycache, "_EXPIRY", Counting)
        n = 20_000
        cache = MemorySessionCache(max_entries=n, clock=self.clock)
        for i in range(n):
            cache.store_now(b"%08d" % i, b"d", 100)
        self.assertEqual(len(touched), 0)
        for i in range(n, n + 1000):
            cache.store_now(b"%08d" % i, b"e", 100)  # each evicts one
            cache.lookup_now(b"%08d" % (i - 500))
        self.assertLessEqual(len(touched), 2 * 2000)
        self.assertEqual(cache.stats().evictions, 1000)
        del touched[:]
        self.clock.advance(100)
        cache.store_now(b"new", b"n", 100)
        self.assertEqual(cache.stats().expirations, n)
        # each live key once, plus the evicted keys' stale references
        self.assertLessEqual(len(touched), n + 1000 + 1)
        del touched[:]
        for i in range(1000):
            cache.store_now(b"again%d" % i, b"a", 100)
        self.assertLessEqual(len(touched), 1000)

    def test_index_stays_bounded(self):
        """
        Entries that leave by eviction, removal or replacement do not make
        the expiry index grow without bound.
        """
        cache = MemorySessionCache(max_entries=100, clock=self.clock)
        for i in range(50_000):
            cache.store_now(b"%08d" % i, b"d", 3600)
            cache.store_now(b"%08d" % i, b"d", 3600)
            if i % 3 == 0:
                cache.remove_now(b"%08d" % i)
        self.assertLessEqual(cache._indexed, 100 + 50 + 1024 + 1)
        self.assertLessEqual(sum(map(len, cache._expiring.values())), cache._indexed)
        self.clock.advance(3600)
        self.assertEqual(cache.stats().entries, 0)
        self.assertEqual(cache.stats().bytes, 0)


class Model:
    """
    The cache's behaviour spelled out plainly: whole-second clock and
    lifetimes, so every figure is exact.
    """

    def __init__(self, size):
        self.size = size
        self.now = 0
        self.entries = OrderedDict()  # key -> (expiry, der)
        self.hits = self.misses = self.stores = 0
        self.evictions = self.expirations = 0

    def sweep(self):
        for k in [k for k, (e, _) in self.entries.items() if e <= self.now]:
            del self.entries[k]
            self.expirations += 1

    def store(self, k, der, lifetime):
        self.entries.pop(k, None)
        self.sweep()
        while len(self.entries) >= self.size:
            self.entries.popitem(last=False)
            self.evictions += 1
        self.entries[k] = (self.now + lifetime, der)
        self.stores += 1

    def lookup(self, k):
        if k not in self.entries:
            self.misses += 1
            return None
        expiry, der = self.entries[k]
        if expiry <= self.now:
            del self.entries[k]
            self.expirations += 1
            self.misses += 1
            return None
        self.entries.move_to_end(k)
        self.hits += 1
        return der

    def figures(self):
        self.sweep()
        return (
            len(self.entries),
            sum(len(k) + len(d) for k, (_, d) in self.entries.items()),
            self.hits,
            self.misses,
            self.stores,
            self.evictions,
            self.expirations,
        )


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("store"),
            st.integers(0, 9),
            st.binary(max_size=20),
            st.integers(1, 20),
        ),
        st.tuples(st.just("lookup"), st.integers(0, 9)),
        st.tuples(st.just("remove"), st.integers(0, 9)),
        st.tuples(st.just("advance"), st.integers(0, 15)),
        st.tuples(st.just("stats")),
    ),
    max_size=60,
)


def figures(cache):
    """The cache's figures in the order of L{Model.figures}."""
    s = cache.stats()
    return (
        s.entries,
        s.bytes,
        s.hits,
        s.misses,
        s.stores,
        s.evictions,
        s.expirations,
    )


class ModelTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(size=st.integers(1, 5), ops=operations)
    def test_matches_model(self, size, ops):
        """
        Any sequence of stores, lookups, removals and clock advances gives
        the answers and figures of the plain model.
        """
        clock = Clock()
        cache = MemorySessionCache(max_entries=size, clock=clock)
        model = Model(size)
        for op in ops:
            if op[0] == "store":
                k = key(op[1])
                cache.store_now(k, op[2], op[3])
                model.store(k, op[2], op[3])
            elif op[0] == "lookup":
                self.assertEqual(cache.lookup_now(key(op[1])), model.lookup(key(op[1])))
            elif op[0] == "remove":
                cache.remove_now(key(op[1]))
                model.entries.pop(key(op[1]), None)
            elif op[0] == "advance":
                clock.advance(op[1])
                model.now += op[1]
            else:
                self.assertEqual(figures(cache), model.figures())
        self.assertEqual(figures(cache), model.figures())
