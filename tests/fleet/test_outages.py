"""
Redis outages under continuous handshakes against a real C{twist resumetls}:
Redis paused (C{SIGSTOP}), resumed, killed and restarted.  Every connection
completes (full handshakes while Redis is gone), none waits much longer than
the lookup budget, the server recovers by itself and resumes through Redis
again, and its counters say what happened.
"""

from __future__ import annotations

import json
import os
import ssl
import time

from twisted.trial.unittest import SynchronousTestCase

from .. import support
from ..support import free_port, https_get, start_process
from ..support.redis import RedisServer

BUDGET = 0.05
# What a handshake may take beyond the budget on a loaded CI machine; a
# handshake that waited for Redis itself (a 0.5 s reply timeout, or for
# ever) would exceed it.
SLACK = 0.4


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


class OutageTests(SynchronousTestCase):
    def setUp(self):
        self.redis = RedisServer(self)
        tmp = os.path.abspath(self.mktemp())
        cert, key = support.write_pem(tmp, *support.certificate())
        self.port = free_port()
        argv = ["-m", "twisted", "resumetls", "--port", str(self.port)]
        argv += ["--certificate", cert, "--key", key, "--no-tickets"]
        argv += ["--session-cache", f"{self.redis.url}?timeout=0.5"]
        argv += ["--lookup-budget", str(BUDGET)]
        self.proc = start_process(self, argv, self.port)
        self.ctx = client_context()
        self.times: list[float] = []

    def get(self, session=None):
        started = time.monotonic()
        _, body, new_session, reused = https_get(
            self.port, "/status.json", session, self.ctx
        )
        self.times.append(time.monotonic() - started)
        return json.loads(body), new_session, reused

    def resumes(self):
        """A full handshake, then whether its session resumes (via Redis)."""
        _, session, _ = self.get()
        time.sleep(0.05)  # the store reaches Redis
        data, _, reused = self.get(session)
        return reused and data["connection"]["mechanism"] == "session_id"

    def until_resumes(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.resumes():
                return
            time.sleep(0.2)
        self.fail(f"no resumption through Redis within {timeout}s")

    def burst(self, session, seconds):
        """Handshakes offering C{session} for a while; every one completes."""
        reused = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            reused.append(self.get(session)[2])
        return reused

    def test_pause_kill_restart(self):
        self.until_resumes(10)
        _, session, _ = self.get()
        time.sleep(0.05)
        self.assertTrue(self.get(session)[2])

        # SIGSTOP: lookups time out at the budget, then the circuit opens.
        self.redis.pause()
        try:
            during = self.burst(session, 2.0)
        finally:
            self.redis.resume()
        self.assertFalse(any(during))
        self.assertLess(max(self.times), BUDGET + SLACK, self.times)
        status = self.get()[0]["sources"]["lookups"]
        self.assertGreaterEqual(status["late"], 1)
        self.assertGreaterEqual(status["circuit_opened"], 1)
        self.until_resumes(30)  # txredisapi backs off up to 10 s between tries

        # SIGKILL: nothing to wait for; full handshakes at once.
        self.redis.kill()
        self.times.clear()
        killed = self.burst(session, 1.5)
        self.assertFalse(any(killed))
        self.assertLess(max(self.times), BUDGET + SLACK, self.times)
        sources = self.get()[0]["sources"]
        self.assertFalse(sources["cache_figures"]["connected"])
        self.assertGreaterEqual(sources["lookups"]["skipped_down"], 1)

        # Restarted: the server reconnects by itself and resumes again.
        self.redis.start()
        self.until_resumes(40)
        data = self.get()[0]
        self.assertTrue(data["sources"]["cache_figures"]["connected"])
        self.assertGreaterEqual(data["server"]["resumed_session_id"], 3)
        log = support.read_output(self.proc)
        self.assertIn("is not reachable", log)
        self.assertIn("is reachable again", log)
        self.assertNotIn("Traceback", log)
