"""
Session caches chosen by URL, and the messages bad URLs give.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from resumetls import MemorySessionCache
from resumetls.cache import urls as _cacheurl
from resumetls.cache.urls import (
    CacheURLError,
    cache_from_url,
    register_backend,
    safe_url,
)


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
        """The message lists every known scheme, the built-in ones included."""
        known = _cacheurl.known_schemes()
        self.assertIn("lmdb://, memory://", known)
        self.assertMessage(
            "redis+foo://host/0",
            f"unknown session cache 'redis+foo://host/0'; known: {known}",
        )
        self.assertMessage("memory", f"unknown session cache 'memory'; known: {known}")
        self.assertMessage("", f"unknown session cache ''; known: {known}")

    def test_password_masked(self):
        # redis:// is a known backend now: a URL it refuses shows the error.
        for url in (
            "redis://user:hunter2@host:6379/0?bad=1",
            "memcached://user:hunter2@host:6379/0",
        ):
            e = self.assertRaises(CacheURLError, cache_from_url, url, Clock())
            self.assertNotIn("hunter2", str(e))
            self.assertIn("user:***@host:6379/0", str(e))

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
            "session cache 'memory://host/x': memory:// takes no host, path or "
            "fragment; write memory:// or memory://?size=N",
        )
        self.assertMessage(
            "memory://#x",
            "session cache 'memory://#x': memory:// takes no host, path or "
            "fragment; write memory:// or memory://?size=N",
        )
        self.assertMessage(
            "memory://?size=+5",
            "session cache 'memory://?size=+5': size must be a positive integer, "
            "not ' 5'",
        )
        self.assertMessage(
            "memory://?size=\u0663",
            "session cache 'memory://?size=\u0663': size must be a positive "
            "integer, not '\u0663'",
        )
        self.assertMessage(
            "memory://?size=1&size=2",
            "session cache 'memory://?size=1&size=2': size is given twice; give it once",
        )
        for bad in ("memory://?size", "memory://?&"):
            self.assertMessage(
                bad,
                f"session cache {bad!r}: cannot read the parameters after '?'; "
                "write name=value pairs joined by '&'",
            )

    def test_not_a_url(self):
        self.assertMessage(
            "redis://[::1",
            "session cache 'redis://[::1' is not a URL (Invalid IPv6 URL); "
            f"known: {_cacheurl.known_schemes()}",
        )

    def test_empty_query_is_default(self):
        self.assertEqual(cache_from_url("memory://?", Clock()).max_entries, 20480)
        self.assertEqual(cache_from_url("memory:///", Clock()).max_entries, 20480)

    def test_safe_url(self):
        """Credentials never survive into messages, however they are written."""
        for url, shown in [
            ("redis://user:hunter2@h:6379/0", "redis://user:***@h:6379/0"),
            ("redis://:hunter2@h", "redis://:***@h"),
            ("redis://hunter2@h/0", "redis://***@h/0"),
            ("redis://u:hun@ter/2?@h/0", "redis://u:***@h/0"),
            ("redis://h/0?db=1&password=hunter2", "redis://h/0?db=1&password=***"),
            ("redis://h/0?Token=hunter2#f", "redis://h/0?Token=***#f"),
            ("memory://?size=5", "memory://?size=5"),
        ]:
            self.assertEqual(safe_url(url), shown)
        e = self.assertRaises(
            CacheURLError, cache_from_url, "memory://u:hunter2@h?size=1", Clock()
        )
        self.assertNotIn("hunter2", str(e))

    def test_registry(self):
        """
        A backend registered for a scheme is what its URLs build; callers and
        messages follow without change.
        """
        made = []

        def factory(url, parts, params, clock):
            made.append((parts.hostname, params, clock))
            return MemorySessionCache(max_entries=1, clock=clock)

        # Only the built-in memory:// (other built-ins would join the message).
        self.patch(_cacheurl, "BACKENDS", {"memory": _cacheurl.BACKENDS["memory"]})
        register_backend("Fake", factory)
        clock = Clock()
        cache = cache_from_url("fake://h?db=2", clock)
        self.assertIsInstance(cache, MemorySessionCache)
        self.assertEqual(made, [("h", {"db": "2"}, clock)])
        self.assertMessage(
            "nope://", "unknown session cache 'nope://'; known: fake://, memory://"
        )

    def test_register_checks(self):
        """A scheme that cannot start a URL, or a factory that cannot be
        called, is refused when registered, not when a URL is read."""
        self.patch(_cacheurl, "BACKENDS", dict(_cacheurl.BACKENDS))
        before = sorted(_cacheurl.BACKENDS)
        for bad in ("", "re dis", "1cache", "redis://", "mem_ory"):
            e = self.assertRaises(ValueError, register_backend, bad, lambda *a: None)
            self.assertIn(repr(bad), str(e))
        e = self.assertRaises(TypeError, register_backend, "redis", None)
        self.assertEqual(str(e), "the redis:// backend factory is not callable")
        self.assertEqual(sorted(_cacheurl.BACKENDS), before)
        self.assertIn("memory", before)
        register_backend("Redis+TLS", lambda *a: None)
        self.assertIn("redis+tls", _cacheurl.BACKENDS)

    def test_backend_must_make_a_cache(self):
        self.patch(_cacheurl, "BACKENDS", dict(_cacheurl.BACKENDS))
        register_backend("bad", lambda *a: object())
        e = self.assertRaises(TypeError, cache_from_url, "bad://", Clock())
        self.assertEqual(str(e), "the bad:// backend did not make an ISessionCache")
