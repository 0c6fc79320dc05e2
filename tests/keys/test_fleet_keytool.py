"""
C{resumetls keys fleet} against a real C{redis-server}: show, rotate and
import, as a user runs them (a subprocess); what servers then read.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from resumetls.keys.files import write_haproxy_keys
from resumetls.keys.ring import RotationPolicy, TicketKey
from resumetls.keys.sources import key_source_from_spec

from .. import support
from ..cache.test_redis import settle, spin
from ..support.redis import RedisServer


class FleetKeytoolTests(SynchronousTestCase):
    def setUp(self):
        self.redis = RedisServer(self)
        tmp = os.path.abspath(self.mktemp())
        self.cert, self.key = support.write_pem(tmp, *support.certificate())

    def keys(self, *argv):
        return subprocess.run(
            [sys.executable, "-m", "resumetls", "keys", "fleet", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            env=support.environment(os.path.abspath(self.mktemp())),
        )

    def server_view(self):
        """What a server with the same TLS key reads from Redis."""
        clock = Clock()
        import time

        clock.advance(time.time())
        source = key_source_from_spec(self.redis.url, clock, RotationPolicy())
        source.use_service_key(self.key)
        source.store.client.connect()
        self.addCleanup(lambda: settle(self, _stop(source)))
        spin(lambda: source.store.client.available)
        settle(self, source.sync())
        return source

    def test_show_rotate_import(self):
        out = self.keys("show", self.redis.url, "--key", self.key)
        self.assertEqual(
            (out.returncode, out.stdout.strip()), (0, "no keys in the fleet yet")
        )
        server = self.server_view()
        current = server.key_ring.encrypting_key()
        out = self.keys("show", self.redis.url, "--key", self.key)
        self.assertIn(f"{current.fingerprint}  active", out.stdout)
        self.assertIn("pending", out.stdout)
        for k in server.key_ring.schedule.keys:
            self.assertNotIn(k.key.aes_key.hex(), out.stdout + out.stderr)
        out = self.keys("rotate", self.redis.url, "--key", self.key, "--lead", "30")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("in 30s", out.stdout)
        path = os.path.abspath(self.mktemp())
        imported = [TicketKey.generate() for _ in range(3)]
        write_haproxy_keys(path, imported)
        out = self.keys("import", self.redis.url, path, "--key", self.key)
        self.assertEqual(out.returncode, 0, out.stderr)
        view = self.server_view()
        for key in imported:  # every imported key opens tickets at once
            self.assertIsNotNone(view.key_ring.decrypting_key(key.name))

    def test_errors_one_line(self):
        for argv, words in [
            (["show", self.redis.url], "give --key"),
            (
                ["show", self.redis.url, "--key", self.cert + ".nope"],
                "cannot get the sealing key",
            ),
            (
                ["show", "redis://127.0.0.1:1/0?timeout=0.2", "--key", self.key],
                "cannot reach",
            ),
            (["import", self.redis.url, "--key", self.key], "needs a key file"),
            (
                ["show", "redis://h/0?size=1", "--key", self.key],
                "unknown parameter size",
            ),
        ]:
            out = self.keys(*argv)
            self.assertEqual(out.returncode, 2, argv)
            self.assertIn(words, out.stderr)
            self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)


def _stop(source):
    from twisted.internet.defer import maybeDeferred

    return maybeDeferred(source.stop)
