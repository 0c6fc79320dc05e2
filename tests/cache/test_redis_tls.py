"""
C{rediss://}: the Redis session cache over TLS to a real C{redis-server}
with a TLS port, verified against the CA given with C{ca=}; a CA that did
not sign Redis's certificate gives one clear line and counted misses.
"""

from __future__ import annotations

import os

from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from resumetls.cache.urls import cache_from_url
from resumetls.certificates import issue_certificate, write_pem_files
from resumetls.testing.cache_contract import sid

from ..support.redis import RedisServer
from .test_redis import SEAL_KEY, connected_cache, settle, spin


class RedisTLSTests(SynchronousTestCase):
    def setUp(self):
        self.redis = RedisServer(self, tls=True)
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def logged(self, event):
        return [formatEvent(e) for e in self.events if e.get("event") == event]

    def test_store_and_lookup_over_tls(self):
        """Sessions go through the TLS port, verified with ca=."""
        cache = connected_cache(self, self.redis.tls_url)
        self.assertIn("over TLS", cache.description)
        settle(self, cache.store(sid(1), b"der-over-tls", 60))
        self.assertEqual(settle(self, cache.lookup(sid(1))), b"der-over-tls")
        self.assertEqual(len(self.redis.items()), 1)
        # The cache's connection is one Redis accepted on its TLS port.
        clients = self.redis.command("CLIENT", "LIST").decode()
        self.assertIn(f"laddr=127.0.0.1:{self.redis.tls_port} ", clients)

    def test_wrong_ca(self):
        """
        A CA that did not sign Redis's certificate: never connected, one
        line naming TLS and ca= (not a password problem), lookups and stores
        answered at once and counted as errors; it keeps trying (a fixed
        certificate on the Redis side is picked up).
        """
        tmp = self.mktemp()
        os.makedirs(tmp)
        other = issue_certificate("another CA", ca=True)
        ca, _ = write_pem_files(
            other[0], other[1], os.path.join(tmp, "ca.pem"), os.path.join(tmp, "k")
        )
        url = f"rediss://127.0.0.1:{self.redis.tls_port}/0?ca={ca}&timeout=0.5"
        cache = cache_from_url(url, Clock())
        cache.set_sealing_key(SEAL_KEY)
        self.addCleanup(lambda: settle(self, cache.client.disconnect()))
        spin(lambda: self.logged("resumetls.redis.down"))
        [line] = self.logged("resumetls.redis.down")
        self.assertIn(
            "over TLS, db 0, keys resumetls:* is not reachable (TLS failed: "
            "certificate verify failed; check Redis's certificate and ca=); until "
            "it is, sessions resume by ticket only",
            line,
        )
        self.assertEqual(self.logged("resumetls.redis.auth_failed"), [])
        self.assertFalse(cache.client.auth_failed)
        self.assertFalse(cache.available())
        self.assertIsNone(self.successResultOf(cache.lookup(sid(1))))
        self.assertIsNone(self.successResultOf(cache.store(sid(1), b"d", 60)))
        self.assertEqual(cache.stats().errors, 2)
        self.assertEqual(self.redis.items(), {})

    def test_system_trust_without_ca(self):
        """Without ca= the system's roots are used: a private CA is refused."""
        url = f"rediss://127.0.0.1:{self.redis.tls_port}/0?timeout=0.5"
        cache = cache_from_url(url, Clock())
        cache.set_sealing_key(SEAL_KEY)
        self.addCleanup(lambda: settle(self, cache.client.disconnect()))
        spin(lambda: self.logged("resumetls.redis.down"))
        self.assertIn("TLS failed: certificate verify failed", cache.client.last_error)
        self.assertFalse(cache.available())
