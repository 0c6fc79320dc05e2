"""
Session caches chosen by URL, and the messages bad URLs give.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from resumetls._cacheurl import CacheURLError, cache_from_url
from resumetls._memorycache import MemorySessionCache


class CacheURLTests(SynchronousTestCase):
    def test_memory(self):
        clock = Clock()
        cache = cache_from_url("memory://", clock)
        self.assertIsInstance(cache, MemorySessionCache)
        self.assertEqual(cache.max_entries, 20480)
        self.assertEqual(cache_from_url("memory://?size=5", clock).max_entries, 5)
        self.assertEqual(cache_from_url("MEMORY://?size=7", clock).max_entries, 7)

    def assertMessage(self, url, message):
        e = self.assertRaises(CacheURLError, cache_from_url, url, Clock())
        self.assertEqual(str(e), message)

    def test_unknown_scheme(self):
        self.assertMessage(
            "redis+foo://host/0",
            "unknown session cache 'redis+foo://host/0'; known: memory://",
        )
        self.assertMessage("memory", "unknown session cache 'memory'; known: memory://")
        self.assertMessage("", "unknown session cache ''; known: memory://")

    def test_password_masked(self):
        e = self.assertRaises(
            CacheURLError, cache_from_url, "redis://user:hunter2@host:6379/0", Clock()
        )
        self.assertNotIn("hunter2", str(e))
        self.assertIn("redis://user:***@host:6379/0", str(e))

    def test_bad_parameters(self):
        self.assertMessage(
            "memory://?size=0",
            "session cache 'memory://?size=0': size must be a positive integer, not '0'",
        )
        self.assertMessage(
            "memory://?size=lots",
            "session cache 'memory://?size=lots': size must be a positive integer, "
            "not 'lots'",
        )
        self.assertMessage(
            "memory://?sise=10",
            "session cache 'memory://?sise=10': unknown parameter sise; "
            "memory:// knows: size",
        )
        self.assertMessage(
            "memory://host/x",
            "session cache 'memory://host/x': memory:// takes no host or path; "
            "write memory:// or memory://?size=N",
        )
