"""
The Redis session cache against a real C{redis-server} on a free loopback
port: the session cache contract, sealing at rest, namespaces, passwords,
outages and bad input.
"""

from __future__ import annotations

import os
import time

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from resumetls.cache.redis import RedisSessionCache
from resumetls.cache.urls import CacheURLError, cache_from_url
from resumetls.testing.cache_contract import SessionCacheContractMixin, sid
from tests.support.redis import RedisServer

SEAL_KEY = bytes(range(32))


def spin(until, timeout: float = 10.0) -> None:
    """Run the real reactor (not running under SynchronousTestCase) until
    C{until()} is true, with a deadline."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting on the reactor")
        reactor.iterate(0.01)


def settle(test, d):
    results = []
    d.addBoth(results.append)
    spin(lambda: results)
    result = results[0]
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


def connected_cache(test, url: str, clock=None, key=SEAL_KEY) -> RedisSessionCache:
    cache = cache_from_url(url, clock if clock is not None else Clock())
    cache.set_sealing_key(key)
    test.addCleanup(lambda: settle(test, _disconnect(cache)))
    spin(cache.available)
    return cache


def _disconnect(cache):
    from twisted.internet.defer import maybeDeferred

    return maybeDeferred(cache.client.disconnect)


class _ServerMixin:
    password = None

    @classmethod
    def _server(cls, test):
        return RedisServer(test, password=cls.password)


class RedisCacheContractTests(SessionCacheContractMixin, SynchronousTestCase):
    """The Redis cache honours the contract of every session cache."""

    def setUp(self):
        self.redis = RedisServer(self)
        self.prefixes = 0

    def make_cache(self, clock, max_entries):
        # Each cache of a test gets its own key namespace in the one server.
        self.prefixes += 1
        url = f"{self.redis.url}?prefix=t{self.prefixes}&size={max_entries}"
        return connected_cache(self, url, clock)

    def settle(self, d, clock):
        return settle(self, d)

    def corrupt_entry(self, cache, session_id):
        key = cache._redis_key(session_id)
        value = bytearray(self.redis.command("GET", key))
        value[-1] ^= 1
        self.redis.command("SET", key, bytes(value), "PX", 60000)

    def break_cache(self, cache):
        settle(self, _disconnect(cache))


class RedisCacheTests(SynchronousTestCase):
    def setUp(self):
        self.redis = RedisServer(self)
        self.clock = Clock()
        self.cache = connected_cache(self, self.redis.url, self.clock)

    def test_sealed_at_rest(self):
        """Redis holds the sealed value only; its expiry is set (PX)."""
        secret = b"0\x82 master-secret-" + os.urandom(48)
        settle(self, self.cache.store(sid(1), secret, 300))
        items = self.redis.items()
        self.assertEqual(len(items), 1)
        [(key, value)] = items.items()
        self.assertEqual(key, b"resumetls:s:" + sid(1).hex().encode())
        self.assertNotIn(secret[-48:], self.redis.all_bytes())
        self.assertNotIn(secret[-48:].hex().encode(), self.redis.all_bytes())
        ttl = self.redis.command("PTTL", key)
        self.assertTrue(290_000 < ttl <= 300_000, ttl)
        self.assertEqual(settle(self, self.cache.lookup(sid(1))), secret)

    def test_copied_to_another_key_or_service(self):
        """A value copied under another session ID or service does not open."""
        settle(self, self.cache.store(b"A" * 16 + sid(1), b"der", 300))
        value = self.redis.command("GET", self.cache._redis_key(b"A" * 16 + sid(1)))
        for other in (b"B" * 16 + sid(1), b"A" * 16 + sid(2)):
            self.redis.command("SET", self.cache._redis_key(other), value)
            self.assertIsNone(settle(self, self.cache.lookup(other)))
        self.assertEqual(self.cache.stats().errors, 2)
        self.assertEqual(self.cache.figures()["corrupt"], 2)
        # The foreign copies were deleted; the original still opens.
        spin(lambda: len(self.redis.items()) == 1)
        self.assertEqual(settle(self, self.cache.lookup(b"A" * 16 + sid(1))), b"der")

    def test_other_sealing_key(self):
        """A server with another sealing key (another TLS key) misses."""
        settle(self, self.cache.store(sid(1), b"der", 300))
        other = connected_cache(self, self.redis.url, Clock(), key=bytes(32))
        self.assertIsNone(settle(self, other.lookup(sid(1))))
        self.assertEqual(other.stats().errors, 1)

    def test_garbage_values(self):
        """Values that are not ours are misses and errors, never raised."""
        for i, junk in enumerate([b"", b"x", b"\x01" * 40, os.urandom(300)]):
            self.redis.command("SET", self.cache._redis_key(sid(i)), junk)
            self.assertIsNone(settle(self, self.cache.lookup(sid(i))))
        self.redis.command("HSET", self.cache._redis_key(sid(9)), "f", "v")
        self.assertIsNone(settle(self, self.cache.lookup(sid(9))))
        stats = self.cache.stats()
        self.assertEqual((stats.misses, stats.errors, stats.hits), (5, 5, 0))

    def test_stores_in_flight_bounded(self):
        """Stores beyond the bound are dropped and counted, not queued."""
        self.cache.max_stores_in_flight = 3
        self.redis.pause()
        try:
            for i in range(10):
                self.cache.store(sid(i), b"der", 60)
            self.assertEqual(self.cache.figures()["stores_dropped"], 7)
            self.assertEqual(self.cache.figures()["stores_in_flight"], 3)
        finally:
            self.redis.resume()
        spin(lambda: self.cache.stores_in_flight == 0)
        self.assertEqual(self.cache.stats().stores, 3)

    def test_down_answers_at_once(self):
        """With Redis gone, operations answer at once (miss, error)."""
        self.redis.kill()
        spin(lambda: not self.cache.available())
        started = time.monotonic()
        self.assertIsNone(self.successResultOf(self.cache.lookup(sid(1))))
        self.assertIsNone(self.successResultOf(self.cache.store(sid(1), b"d", 60)))
        self.assertLess(time.monotonic() - started, 0.1)
        self.assertEqual(self.cache.stats().errors, 2)
        # Back by itself when Redis is.
        self.redis.start()
        spin(self.cache.available, timeout=20)
        settle(self, self.cache.store(sid(1), b"d", 60))
        self.assertEqual(settle(self, self.cache.lookup(sid(1))), b"d")

    def test_paused_while_logging_in(self):
        """
        Redis stopped (SIGSTOP) while a reconnection logs in: the login
        times out, and that is not taken for a refused password: the cache
        keeps trying and comes back when Redis does.
        """
        cache = connected_cache(self, f"{self.redis.url}?timeout=0.3", Clock())
        factory = cache.client._handler._factory
        self.redis.pause()
        try:
            self.assertIsNone(settle(self, cache.lookup(sid(1))))  # times out
            # A reconnection's login timed out (or, as txredisapi alone
            # does, was taken for a refusal: then it stops trying, silently).
            spin(lambda: factory.logins_cut_short >= 1 or factory.stopped, timeout=15)
        finally:
            self.redis.resume()
        spin(cache.available, timeout=20)
        self.assertFalse(cache.client.auth_failed)
        settle(self, cache.store(sid(1), b"d", 60))
        self.assertEqual(settle(self, cache.lookup(sid(1))), b"d")

    def test_no_sealing_key_no_traffic(self):
        """Until it has its sealing key the cache sends nothing."""
        cache = cache_from_url(self.redis.url, Clock())
        self.assertFalse(cache.client.connecting)
        self.assertIsNone(self.successResultOf(cache.store(sid(1), b"d", 60)))
        self.assertIsNone(self.successResultOf(cache.lookup(sid(1))))
        self.assertEqual(self.redis.items(), {})


class RedisLoginTests(SynchronousTestCase):
    def setUp(self):
        self.redis = RedisServer(self, password="pw-" + os.urandom(8).hex())
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def password_file(self, text, mode=0o600):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text + "\n")
        os.chmod(path, mode)
        return path

    def test_password_file(self):
        path = self.password_file(self.redis.password)
        cache = connected_cache(self, f"{self.redis.url}?password_file={path}")
        settle(self, cache.store(sid(1), b"d", 60))
        self.assertEqual(settle(self, cache.lookup(sid(1))), b"d")
        self.assertNotIn(self.redis.password, repr(cache) + repr(cache.client))

    def test_password_env(self):
        os.environ["RESUMETLS_TEST_REDIS_PW"] = self.redis.password
        self.addCleanup(os.environ.pop, "RESUMETLS_TEST_REDIS_PW")
        url = f"{self.redis.url}?password_env=RESUMETLS_TEST_REDIS_PW"
        cache = connected_cache(self, url)
        self.assertTrue(cache.available())

    def test_password_file_readable_by_others(self):
        path = self.password_file(self.redis.password, 0o644)
        e = self.assertRaises(
            CacheURLError, cache_from_url, f"{self.redis.url}?password_file={path}"
        )
        self.assertIn("chmod 600", str(e))
        self.assertNotIn(self.redis.password, str(e))

    def test_wrong_password(self):
        """One clear line; the cache answers misses; no password anywhere."""
        path = self.password_file("not-the-password")
        cache = cache_from_url(f"{self.redis.url}?password_file={path}", Clock())
        cache.set_sealing_key(SEAL_KEY)
        self.addCleanup(lambda: settle(self, _disconnect(cache)))
        spin(lambda: cache.client.auth_failed)
        refused = [
            e for e in self.events if e.get("event") == "resumetls.redis.auth_failed"
        ]
        self.assertEqual(len(refused), 1)
        from twisted.logger import formatEvent

        text = formatEvent(refused[0])
        self.assertIn("check the password", text)
        self.assertNotIn("not-the-password", text)
        self.assertIsNone(self.successResultOf(cache.lookup(sid(1))))

    def test_inline_password_masked(self):
        url = f"redis://:{self.redis.password}@127.0.0.1:{self.redis.port}/0"
        cache = connected_cache(self, url)
        self.assertTrue(cache.available())
        self.assertNotIn(self.redis.password, repr(cache.client) + repr(cache))


class RedisURLTests(SynchronousTestCase):
    def test_unix_socket(self):
        redis = RedisServer(self)
        cache = connected_cache(self, f"redis+unix://{redis.socket_path}?db=1")
        settle(self, cache.store(sid(1), b"d", 60))
        self.assertEqual(settle(self, cache.lookup(sid(1))), b"d")
        # db=1: nothing landed in db 0.
        self.assertEqual(redis.items(), {})

    def test_bad_urls(self):
        for url, words in [
            ("redis://h:notaport/0", "port must be a number"),
            ("redis://h/0?size=0", "size must be a positive integer"),
            ("redis://h/0?colour=red", "unknown parameter colour"),
            ("redis://h/0?db=1", "given twice"),
            ("redis://h/0?timeout=0", "timeout must be seconds"),
            ("redis://h/0?ca=/x", "ca= is for rediss"),
            ("redis://h/0?prefix=a%20b", "prefix must be"),
            ("redis://:pw@h/0?password_env=X", "one way only"),
            ("redis+unix://host/x", "no host"),
            ("redis+unix://", "needs the socket's path"),
            ("redis:///0", "needs a host"),
            ("rediss://h/0?ca=/no/such/ca.pem", "cannot read the CA file"),
            ("redis://h/0?password_file=/no/such/file", "cannot read"),
        ]:
            e = self.assertRaises(CacheURLError, cache_from_url, url, Clock())
            self.assertIn(words, str(e), url)
            self.assertNotIn("Traceback", str(e))

    def test_known_schemes_listed(self):
        e = self.assertRaises(CacheURLError, cache_from_url, "memcached://h", Clock())
        for scheme in (
            "memory://",
            "redis://",
            "rediss://",
            "redis+unix://",
            "redis+sentinel://",
        ):
            self.assertIn(scheme, str(e))

    def test_not_redis(self):
        """A port that is not Redis: never available, lookups miss at once."""
        from twisted.internet.protocol import Factory, Protocol

        port = reactor.listenTCP(
            0, Factory.forProtocol(Protocol), interface="127.0.0.1"
        )
        self.addCleanup(lambda: settle(self, port.stopListening()))
        url = f"redis://127.0.0.1:{port.getHost().port}/0?timeout=0.2"
        cache = cache_from_url(url, Clock())
        cache.set_sealing_key(SEAL_KEY)
        self.addCleanup(lambda: settle(self, _disconnect(cache)))
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            reactor.iterate(0.02)
            self.assertFalse(cache.available())
        self.assertIsNone(self.successResultOf(cache.lookup(sid(1))))
