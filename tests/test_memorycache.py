"""
The in-memory session cache: LRU order, size bound, lifetimes, figures.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from resumetls._cache import CacheStats
from resumetls._memorycache import MemorySessionCache
from resumetls.interfaces import ISessionCache


def key(i: int) -> bytes:
    return b"k%05d" % i


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
