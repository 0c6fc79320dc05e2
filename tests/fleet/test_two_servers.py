"""
Two C{twist resumetls} processes sharing one real C{redis-server}: a session
made on A resumes on B with C{openssl s_client -sess_out/-sess_in} in all
four modes, directly and through a real HAProxy balancing round-robin in
TCP mode in front of both; Redis holds no plaintext session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from .. import support
from ..support import free_port, https_get, start_process
from ..support.processes import stop_process
from ..support.redis import RedisServer

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

# The four modes: (flags, servers without tickets, mechanism on B).
MODES = (
    (("-tls1_2", "-no_ticket"), False, "session_id"),
    (("-tls1_2",), False, "ticket_tls12"),
    (("-tls1_3",), False, "ticket_tls13"),
    (("-tls1_3",), True, "session_id"),
)


def twist_resumetls(testcase, port, cert, key, *options):
    argv = ["-m", "twisted", "resumetls", "--port", str(port)]
    argv += ["--certificate", cert, "--key", key, *options]
    return start_process(testcase, argv, port)


def master_key(session_file):
    """
    The secret of an s_client session file (C{openssl sess_id}): the TLS 1.2
    master secret, or the TLS 1.3 resumption PSK.
    """
    out = subprocess.run(
        [support.OPENSSL, "sess_id", "-in", session_file, "-noout", "-text"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    for line in out.splitlines():
        if "Master-Key:" in line or "Resumption PSK:" in line:
            return bytes.fromhex(line.split(":", 1)[1].strip())
    raise AssertionError(f"no master key in {out!r}")


def s_client(port, sess_in, sess_out, *flags):
    """
    C{openssl s_client} asking for C{/status.json}: whether it resumed, and
    the server's C{connection} object (mechanism, version).
    """
    from tests.support.s_client import HTTP_REQUEST, parse_s_client, run_s_client

    argv = list(flags)
    if sess_in:
        argv += ["-sess_in", sess_in]
    if sess_out:
        argv += ["-sess_out", sess_out]

    def run():
        out = run_s_client(port, argv, HTTP_REQUEST)
        result = parse_s_client(out)
        body = out[out.index("\r\n\r\n") + 4 :]
        data, _ = json.JSONDecoder().raw_decode(body[body.index("{") :])
        result["server"] = data["connection"]
        return result

    return deferToThread(run)


def status(port):
    return deferToThread(https_get, port, "/status.json").addCallback(
        lambda answer: json.loads(answer[1])["server"]
    )


class Fleet:
    """Servers A and B (and A', B' without tickets) over one Redis."""

    def __init__(self, testcase, redis, *extra):
        tmp = os.path.abspath(testcase.mktemp())
        cert, key = support.write_pem(tmp, *support.certificate())
        # Sessions and the fleet's ticket keys in the one Redis.
        common = ["--session-cache", redis.url, "--ticket-keys", redis.url, *extra]
        self.ports = {name: free_port() for name in ("A", "B", "A0", "B0")}
        for name, port in self.ports.items():
            options = common + (["--no-tickets"] if name.endswith("0") else [])
            twist_resumetls(testcase, port, cert, key, *options)

    def pair(self, no_tickets):
        if no_tickets:
            return self.ports["A0"], self.ports["B0"]
        return self.ports["A"], self.ports["B"]


def haproxy(testcase, backends):
    """HAProxy in TCP mode, round-robin over C{backends}; its port."""
    tmp = os.path.abspath(testcase.mktemp())
    os.makedirs(tmp)
    port = free_port()
    servers = "\n".join(
        f"    server s{i} 127.0.0.1:{p}" for i, p in enumerate(backends)
    )
    config = os.path.join(tmp, "haproxy.cfg")
    with open(config, "w") as f:
        f.write(
            "global\n    maxconn 100\n"
            "defaults\n    mode tcp\n    timeout connect 5s\n"
            "    timeout client 30s\n    timeout server 30s\n"
            f"frontend tls\n    bind 127.0.0.1:{port}\n    default_backend fleet\n"
            f"backend fleet\n    balance roundrobin\n{servers}\n"
        )
    proc = subprocess.Popen(
        [HAPROXY, "-db", "-f", config],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    testcase.addCleanup(stop_process, proc)
    support.wait_for_port(port, proc)
    return port


async def joined(port, timeout=20.0):
    """Wait until a server has read the fleet's ticket keys from Redis."""
    import time

    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = await deferToThread(https_get, port, "/status.json")
        if json.loads(answer[1])["sources"]["fleet"]["joined"]:
            return
        await deferLater(reactor, 0.2, lambda: None)
    raise AssertionError(f"the server on {port} did not join the fleet's keys")


class TwoServersTests(TestCase):
    timeout = 120

    def setUp(self):
        self.redis = RedisServer(self)
        self.fleet = Fleet(self, self.redis)

        async def all_joined():
            for port in self.fleet.ports.values():
                await joined(port)

        return ensureDeferred(all_joined())

    def test_made_on_a_resumes_on_b(self):
        async def run():
            for flags, no_tickets, mechanism in MODES:
                a, b = self.fleet.pair(no_tickets)
                sess = os.path.abspath(self.mktemp())
                first = await s_client(a, None, sess, *flags)
                self.assertFalse(first["reused"], flags)
                secrets.append(master_key(sess))
                second = await s_client(b, sess, None, *flags)
                self.assertTrue(second["reused"], flags)
                self.assertEqual(second["server"]["mechanism"], mechanism, flags)
            for name in ("B", "B0"):
                figures = await status(self.fleet.ports[name])
                self.assertEqual(figures["resumed_session_id"], 1, name)
                self.assertEqual(figures["cache_hits"], 1, name)
            # Redis holds sealed values only: no master secret in any byte.
            self.assertGreaterEqual(len(self.redis.items()), 2)
            dump = self.redis.all_bytes()
            for secret in secrets:
                self.assertGreaterEqual(len(secret), 32)
                self.assertNotIn(secret, dump)
                self.assertNotIn(secret.hex().encode(), dump.lower())

        secrets = []
        return ensureDeferred(run())

    def test_through_haproxy(self):
        """
        Round-robin in front of A and B: the second connection lands on the
        other server, and resumes there, in every mode.
        """

        async def run():
            for flags, no_tickets, mechanism in MODES:
                a, b = self.fleet.pair(no_tickets)
                port = haproxy(self, [a, b])
                before = [await status(p) for p in (a, b)]
                sess = os.path.abspath(self.mktemp())
                first = await s_client(port, None, sess, *flags)
                second = await s_client(port, sess, None, *flags)
                self.assertFalse(first["reused"], flags)
                self.assertTrue(second["reused"], flags)
                self.assertEqual(second["server"]["mechanism"], mechanism, flags)
                after = [await status(p) for p in (a, b)]
                served = [
                    after[i]["full_handshakes"]
                    + after[i]["resumed_session_id"]
                    + after[i]["resumed_ticket_tls12"]
                    + after[i]["resumed_ticket_tls13"]
                    - before[i]["full_handshakes"]
                    - before[i]["resumed_session_id"]
                    - before[i]["resumed_ticket_tls12"]
                    - before[i]["resumed_ticket_tls13"]
                    for i in (0, 1)
                ]
                # One handshake each (the status fetches count too: one each
                # before, so the s_client connections are one per server).
                self.assertEqual(served, [2, 2], flags)

        return ensureDeferred(run())
