"""
Ticket keys rotating across a fleet of two real C{twist resumetls}
processes over one real C{redis-server}, with a short rotation interval:
A creates the next key; B knows it as pending before A encrypts with it; a
ticket A issues under it opens on B; an old key's ticket is renewed on
both; one key is created per rotation (and never two active at once).  And
a ticket's lifetime hint never outlives its key: the hint is the session
timeout, a timeout longer than the keys decrypt is refused at start-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from .. import support
from ..support import free_port, https_get
from ..support.redis import RedisServer
from ..support.s_client import HTTP_REQUEST, parse_s_client, run_s_client
from .test_two_servers import joined, twist_resumetls

INTERVAL = 8.0  # --rotate-every
KEEP = 2  # --keep-keys: a key decrypts for KEEP * INTERVAL after it encrypted
WINDOW = KEEP * INTERVAL
HINT = re.compile(r"TLS session ticket lifetime hint: (\d+) \(seconds\)")


def fingerprint(ticket: bytes) -> str:
    """The fingerprint of the key a TLS 1.2 ticket names (its first 16 bytes)."""
    return hashlib.sha256(ticket[:16]).hexdigest()[:12]


def fleet(port):
    """A server's status.json: its fleet keys and its counters."""

    def get():
        data = json.loads(https_get(port, "/status.json")[1])
        return data["sources"]["fleet"], data["server"]

    return deferToThread(get)


def handshake(port, *args):
    """s_client asking for /status.json: parsed, with the lifetime hints."""

    def run():
        out = run_s_client(port, list(args), HTTP_REQUEST)
        result = parse_s_client(out)
        result["hints"] = [int(h) for h in HINT.findall(out)]
        result["at"] = time.time()
        return result

    return deferToThread(run)


def published(proc) -> list[str]:
    """Fingerprints of the keys a server says it published, in order."""
    found = []
    for line in support.read_output(proc).splitlines():
        if "resumetls.fleet.published" in line:
            found.append(json.loads(line)["fingerprint"])
    return found


class FleetRotationTests(TestCase):
    timeout = 90

    def setUp(self):
        self.redis = RedisServer(self)
        tmp = os.path.abspath(self.mktemp())
        self.cert, self.key = support.write_pem(tmp, *support.certificate())
        self.options = [
            "--ticket-keys",
            self.redis.url,
            "--rotate-every",
            f"{INTERVAL:g}",
            "--keep-keys",
            str(KEEP),
            "--session-timeout",
            f"{WINDOW:g}",
        ]

    def server(self):
        port = free_port()
        proc = twist_resumetls(self, port, self.cert, self.key, *self.options)
        return port, proc

    def test_rotation_across_two_processes(self):
        seen: dict[str, dict[str, tuple[str, float]]] = {"A": {}, "B": {}}
        actives: list[int] = []

        async def look(name, port):
            """Record the keys a server knows, and when it first saw each role."""
            data, counters = await fleet(port)
            now = time.time()
            actives.append(data["roles"]["active"])
            for k in data["keys"]:
                seen[name].setdefault(f"{k['fingerprint']} {k['role']}", (now, k))
            return data, counters

        async def until(condition, what, timeout=30.0):
            deadline = time.monotonic() + timeout
            while not await condition():
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out waiting until {what}")
                await deferLater(reactor, 0.1, lambda: None)

        async def run():
            # A alone makes the fleet's keys: K1 active, K2 pending.
            a, proc_a = self.server()
            await joined(a)
            k1, k2 = published(proc_a)
            b, proc_b = self.server()
            await joined(b)
            data_b, _ = await look("B", b)
            roles = {k["fingerprint"]: k for k in data_b["keys"]}
            self.assertEqual(roles[k1]["role"], "active")
            # B knows K2 as pending before A encrypts with it.
            self.assertEqual(roles[k2]["role"], "pending")
            self.assertLess(time.time(), roles[k2]["active_from"])
            self.assertEqual(published(proc_b), [])

            # A ticket under K1, whose lifetime hint its key outlives.
            sess1 = os.path.abspath(self.mktemp())
            first = await handshake(a, "-tls1_2", "-sess_out", sess1)
            self.assertFalse(first["reused"])
            self.assertEqual(fingerprint(first["tickets"][-1]), k1)
            self.assertEqual(first["hints"], [int(WINDOW)])
            decrypts_until = roles[k1]["decrypt_until"]
            self.assertGreaterEqual(decrypts_until - first["at"], WINDOW)

            # K2 becomes active on both servers' clocks; the next key (K3)
            # is published once, by whichever server reads the ring first.
            await deferLater(
                reactor, max(0.0, roles[k2]["active_from"] - time.time()), lambda: None
            )

            async def next_key_known_everywhere():
                creators = published(proc_a)[2:] + published(proc_b)
                lists = []
                for name, port in (("A", a), ("B", b)):
                    data, _ = await look(name, port)
                    lists.append({k["fingerprint"] for k in data["keys"]})
                return creators and all(set(creators) <= known for known in lists)

            await until(next_key_known_everywhere, "both servers know a third key")
            creators = published(proc_a)[2:] + published(proc_b)
            self.assertEqual(len(creators), 1, creators)
            [k3] = creators
            self.assertEqual(self.redis.command("GET", b"resumetls:k:version"), b"2")
            for name in ("A", "B"):
                when, entry = seen[name][f"{k3} pending"]
                self.assertLess(when, entry["active_from"], name)

            # A ticket A issues under K2 opens on B.
            sess2 = os.path.abspath(self.mktemp())
            made = await handshake(a, "-tls1_2", "-sess_out", sess2)
            self.assertEqual(fingerprint(made["tickets"][-1]), k2)
            opened = await handshake(b, "-tls1_2", "-sess_in", sess2)
            self.assertTrue(opened["reused"])

            # K1's ticket (decrypt-only now) resumes on both, and is renewed
            # under K2 each time.
            for port in (a, b):
                _, before = await fleet(port)
                again = await handshake(port, "-tls1_2", "-sess_in", sess1)
                self.assertTrue(again["reused"], port)
                self.assertEqual(fingerprint(again["tickets"][-1]), k2, port)
                _, after = await fleet(port)
                self.assertEqual(
                    after["tickets_renewed"] - before["tickets_renewed"], 1, port
                )

            # Never two active keys on either server, and the fleet's keys'
            # encrypting times do not overlap.
            self.assertEqual(set(actives), {1})
            data_a, _ = await look("A", a)
            spans = sorted(
                (k["active_from"], k["encrypt_until"])
                for k in data_a["keys"]
                if k["fingerprint"] in (k1, k2, k3)
            )
            self.assertEqual(len(spans), 3)
            for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
                self.assertLessEqual(end, start)

        return ensureDeferred(run())

    def test_timeout_longer_than_keys_decrypt_refused(self):
        """One line at start-up, exit status 64: the hint would outlive its key."""
        argv = [sys.executable, "-m", "twisted", "resumetls", "--port", "0"]
        argv += ["--certificate", self.cert, "--key", self.key, *self.options]
        argv[argv.index("--session-timeout") + 1] = f"{WINDOW + 1:g}"
        out = subprocess.run(
            argv,
            env=support.environment(os.path.abspath(self.mktemp())),
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(out.returncode, 64, out.stderr)
        self.assertEqual(
            out.stderr,
            f"Error: the session timeout ({WINDOW + 1:g}s, --session-timeout or "
            f"sessionTimeout=) is longer than the fleet's ticket keys decrypt after "
            f"they stop encrypting ({WINDOW:g}s: keep-keys x rotate-every), so a "
            "ticket's lifetime hint would outlive its key; lower the session "
            "timeout or raise --keep-keys or --rotate-every\n",
        )

    def test_tls13_hint(self):
        """TLS 1.3 tickets carry the same hint, within their key's life."""

        async def run():
            a, _ = self.server()
            await joined(a)
            result = await handshake(a, "-tls1_3")
            self.assertEqual(result["hints"], [int(WINDOW)] * 2)

        return ensureDeferred(run())
