"""
Two C{twist resumetls} processes sharing sessions and ticket keys through a
real Redis reached over TLS (C{rediss://…?ca=}) and through a real Redis
Sentinel (C{redis+sentinel://…}), one configured with flags and the other
with a C{resumetls:} endpoint string: a session made on A resumes on B by
session ID (the cache) and by TLS 1.2 ticket (the fleet's keys).
"""

from __future__ import annotations

import os

from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from .. import support
from ..support import free_port, start_process
from ..support.redis import RedisSentinel, RedisServer
from .test_two_servers import joined, s_client


def escaped(value):
    """A value for a C{resumetls:} endpoint string (colons escaped)."""
    return value.replace(":", "\\:")


class SharedThroughTests(TestCase):
    timeout = 90

    def two_servers(self, url):
        """A with flags, B with an endpoint string, both using C{url}."""
        tmp = os.path.abspath(self.mktemp())
        cert, key = support.write_pem(tmp, *support.certificate())
        a, b = free_port(), free_port()
        start_process(
            self,
            ["-m", "twisted", "resumetls", "--port", str(a), "--certificate", cert]
            + ["--key", key, "--session-cache", url, "--ticket-keys", url],
            a,
        )
        listen = (
            f"resumetls:{b}:certKey={escaped(cert)}:privateKey={escaped(key)}"
            f":sessionCache={escaped(url)}:ticketKeys={escaped(url)}"
        )
        start_process(self, ["-m", "twisted", "resumetls", "--listen", listen], b)
        return a, b

    async def check_shared(self, a, b):
        await joined(a)
        await joined(b)
        for flags, mechanism in (
            (("-tls1_2", "-no_ticket"), "session_id"),
            (("-tls1_2",), "ticket_tls12"),
        ):
            sess = os.path.abspath(self.mktemp())
            first = await s_client(a, None, sess, *flags)
            self.assertFalse(first["reused"], flags)
            second = await s_client(b, sess, None, *flags)
            self.assertTrue(second["reused"], flags)
            self.assertEqual(second["server"]["mechanism"], mechanism, flags)

    def test_over_tls(self):
        redis = RedisServer(self, tls=True)

        async def run():
            a, b = self.two_servers(redis.tls_url)
            await self.check_shared(a, b)
            # Every connection of the servers is one Redis accepted on its
            # TLS port (cache, keys and their subscription, each server).
            clients = [
                line
                for line in redis.command("CLIENT", "LIST").decode().splitlines()
                if "cmd=client|list" not in line
            ]
            self.assertGreaterEqual(len(clients), 6, clients)
            for line in clients:
                self.assertIn(f"laddr=127.0.0.1:{redis.tls_port} ", line)

        return ensureDeferred(run())

    def test_through_sentinel(self):
        master = RedisServer(self)
        sentinel = RedisSentinel(self, master)

        async def run():
            a, b = self.two_servers(sentinel.url())
            await self.check_shared(a, b)
            self.assertEqual(master.command("GET", b"resumetls:k:version"), b"1")
            self.assertTrue(
                any(k.startswith(b"resumetls:s:") for k in master.items()),
                "a session in the master the Sentinel names",
            )

        return ensureDeferred(run())
