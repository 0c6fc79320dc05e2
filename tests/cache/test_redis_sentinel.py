"""
C{redis+sentinel://}: the Redis session cache (and the fleet's ticket keys)
through a real C{redis-server --sentinel} watching a real master and its
replica: the master is found through the Sentinel, and after a failover
(C{SENTINEL FAILOVER}) the cache follows the new master by itself.

These run the reactor (C{TestCase}): txredisapi resolves the Sentinels'
addresses (and the master's) with the reactor's thread pool.
"""

from __future__ import annotations

import time

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, maybeDeferred
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from resumetls.cache.urls import cache_from_url
from resumetls.keys.ring import RotationPolicy
from resumetls.keys.sources import key_source_from_spec
from resumetls.testing.cache_contract import sid

from ..support.redis import RedisSentinel, RedisServer
from .test_redis import SEAL_KEY


async def until(condition, what, timeout=20.0):
    """Let the reactor run until C{condition()} is true, or fail."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await deferLater(reactor, 0.02, lambda: None)


class SentinelTests(TestCase):
    timeout = 60

    def setUp(self):
        self.master = RedisServer(self)
        self.sentinel = RedisSentinel(self, self.master)
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def cache(self, url):
        cache = cache_from_url(url, reactor)
        cache.set_sealing_key(SEAL_KEY)
        self.addCleanup(lambda: maybeDeferred(cache.client.disconnect))
        return cache

    def test_master_found_through_sentinel(self):
        """Sessions land in the master the Sentinel names, sealed."""

        async def run():
            cache = self.cache(self.sentinel.url())
            self.assertIn("master 'mymaster' of Sentinel", cache.description)
            await until(cache.available, "connected")
            await cache.store(sid(1), b"plain-session-der", 60)
            self.assertEqual(await cache.lookup(sid(1)), b"plain-session-der")
            [(key, value)] = self.master.items().items()
            self.assertEqual(key, cache._redis_key(sid(1)))
            self.assertNotIn(b"plain-session-der", value)

        return ensureDeferred(run())

    def test_fleet_keys_through_sentinel(self):
        """redis+sentinel: names a fleet key source too."""

        async def run():
            source = key_source_from_spec(
                self.sentinel.url(), reactor, RotationPolicy(interval=3600, keep=1)
            )
            source.store.seal_with(SEAL_KEY)
            source.store.client.connect()
            self.addCleanup(lambda: maybeDeferred(source.store.client.disconnect))
            await until(lambda: source.store.client.available, "connected")
            await source.sync()
            self.assertTrue(source.joined)
            version = self.master.command("GET", b"resumetls:k:version")
            self.assertEqual(version, b"1")

        return ensureDeferred(run())

    def test_unknown_service(self):
        """A service the Sentinel does not name: one line, counted misses."""

        async def run():
            url = self.sentinel.url().replace("mymaster", "nosuch") + "?timeout=0.3"
            cache = self.cache(url)
            await until(
                lambda: any(
                    e.get("event") == "resumetls.redis.down" for e in self.events
                ),
                "Redis is said to be away",
            )
            [down] = [
                formatEvent(e)
                for e in self.events
                if e.get("event") == "resumetls.redis.down"
            ]
            self.assertIn("master 'nosuch' of Sentinel 127.0.0.1:", down)
            self.assertIsNone(await cache.lookup(sid(1)))
            self.assertEqual(cache.stats().errors, 1)

        return ensureDeferred(run())


class FailoverTests(TestCase):
    timeout = 60

    def test_follows_the_new_master(self):
        """
        SENTINEL FAILOVER promotes the replica; the cache, told nothing,
        reconnects through the Sentinel to it: old sessions (replicated)
        still found, new ones stored on the new master.
        """
        master = RedisServer(self)
        replica = RedisServer(self, extra=(f"replicaof 127.0.0.1 {master.port}",))
        sentinel = RedisSentinel(self, master)
        cache = cache_from_url(sentinel.url(), reactor)
        cache.set_sealing_key(SEAL_KEY)
        self.addCleanup(lambda: maybeDeferred(cache.client.disconnect))

        def served_by():
            pool = cache.client._handler._factory.pool
            return pool[0].transport.getPeer().port if pool else None

        async def run():
            await until(cache.available, "connected")
            self.assertEqual(served_by(), master.port)
            await cache.store(sid(1), b"before", 300)
            sentinel.wait(lambda: sentinel.knows_replica(replica), "see the replica")
            self.assertEqual(sentinel.command("SENTINEL", "FAILOVER", "mymaster"), "OK")
            await until(lambda: sentinel.master_port() == replica.port, "failed over")
            await until(
                lambda: cache.available() and served_by() == replica.port,
                "the cache is on the new master",
            )
            self.assertEqual(await cache.lookup(sid(1)), b"before")
            await cache.store(sid(2), b"after", 300)
            self.assertIn(cache._redis_key(sid(2)), replica.items())
            self.assertEqual(replica.command("ROLE")[0], b"master")

        return ensureDeferred(run())
