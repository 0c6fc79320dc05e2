"""
The rotation race with several processes: six processes read the fleet's
keys from one real C{redis-server} at the same moment, twice (when there are
none, and when the pending key has just become active): each time exactly
one key is created, and every process ends with the same keys.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from .. import support
from ..support.redis import RedisServer

RACER = """
import sys, time
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater, react
from resumetls.keys.ring import RotationPolicy
from resumetls.keys.sources import key_source_from_spec

url, first = sys.argv[1], float(sys.argv[2])

async def race(reactor):
    source = key_source_from_spec(url, reactor, RotationPolicy(interval=2.0, keep=1))
    source.store.seal_with(bytes(range(32)))
    source.store.client.connect()
    while not source.store.client.available:
        await deferLater(reactor, 0.01, lambda: None)
    for at in (first, None):
        if at is None:
            # Every process read the same ring: 0.3 s after its pending key
            # became active is the same moment for all of them.
            at = max(k.active_from for k in source.key_ring.schedule.keys) + 0.3
        await deferLater(reactor, max(0.0, at - time.time()), lambda: None)
        await source.sync()
        keys = [k.key.fingerprint for k in source.key_ring.schedule.keys]
        print(source.key_ring.encrypting_key().fingerprint, " ".join(keys), flush=True)
    await source.stop()

react(lambda reactor: ensureDeferred(race(reactor)))
"""


class RotationRaceTests(SynchronousTestCase):
    def test_six_processes(self):
        redis = RedisServer(self)
        first = time.time() + 4.0
        env = support.environment(os.path.abspath(self.mktemp()))
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", RACER, redis.url, str(first)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(6)
        ]
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            self.assertEqual(proc.returncode, 0, err[-2000:])
            outputs.append(out.splitlines())
        firsts = {lines[0] for lines in outputs}
        seconds = {lines[1] for lines in outputs}
        self.assertEqual(len(firsts), 1, firsts)
        self.assertEqual(len(seconds), 1, seconds)
        encrypting, *keys = seconds.pop().split()
        # Two writes in all: the first ring (active + pending), then one
        # next key; the first key still decrypts, the second encrypts.
        self.assertEqual(redis.command("GET", b"resumetls:k:version"), b"2")
        self.assertEqual(len(keys), 3)
        self.assertEqual(encrypting, keys[1])
        self.assertEqual(firsts.pop().split()[1:], keys[:2])
