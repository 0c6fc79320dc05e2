"""
The demo page and C{/status.json} over real loopback TLS: what the
connection was (and how it resumed, in each mechanism), the server's
counters, that every response closes its connection, and no secrets.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.test.requesthelper import DummyRequest

from resumetls import ResumingContextFactory, ResumptionSettings
from resumetls.cli import demo as _demo

from .. import support


def fetch(port, path="/", session=None, ctx=None, tls=True):
    """
    One HTTP/1.1 keep-alive request (the client does not ask to close):
    returns the status line, lower-cased headers, body, session, whether it
    was resumed, and whether the server closed the connection by itself.
    """
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with raw:
        if tls:
            ctx = ctx or DEFAULT_CONTEXT
            s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        else:
            s = raw
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        closed = False
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    closed = True
                    break
                data += chunk
        except TimeoutError:
            pass  # the server kept the connection open: closed stays False
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (line.partition(":") for line in lines[1:])
        )
        if tls:
            return lines[0], headers, body, s.session, s.session_reused, closed
        return lines[0], headers, body, None, False, closed


def tls_context(version=None, tickets=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


# Python's ssl resumes a session only within the context that made it.
DEFAULT_CONTEXT = tls_context()


async def serve_demo(testcase, **settings):
    """
    The demo site on a free loopback port, over TLS with a resuming context
    factory (these C{settings}); returns the port and the factory.
    """
    factory = ResumingContextFactory(
        support.options(), ResumptionSettings(**settings), clock=reactor
    )
    endpoint = SSL4ServerEndpoint(reactor, 0, factory, interface="127.0.0.1")
    port = await endpoint.listen(_demo.demo_site())
    testcase.addCleanup(port.stopListening)
    return port.getHost().port, factory


class DemoOverTLSTests(TestCase):
    timeout = 60

    def serve(self, **settings):
        return serve_demo(self, **settings)

    def test_page_and_resumption(self):
        """
        The first load is a full handshake, the second (a new connection,
        since the first was closed by the server) is resumed; each response
        says so and closes its connection.
        """

        async def run():
            port, _ = await self.serve()
            status, headers, body, session, _, closed = await deferToThread(
                fetch, port, "/"
            )
            self.assertEqual(status, "HTTP/1.1 200 OK")
            self.assertEqual(headers["connection"], "close")
            self.assertEqual(headers["content-type"], "text/html; charset=utf-8")
            self.assertTrue(closed)
            self.assertIn(
                b'<p id="headline">This connection made a full handshake</p>', body
            )
            self.assertIn(b'data-resumed="no" data-mechanism=""', body)
            self.assertIn(b'<span id="version">TLS 1.3</span>', body)
            self.assertIn(b'<span id="protocol">HTTP/1.1</span>', body)
            _, _, body, _, reused, closed = await deferToThread(
                fetch, port, "/", session
            )
            self.assertTrue(reused)
            self.assertTrue(closed)
            self.assertIn(
                b'<p id="headline">This connection was resumed (TLS 1.3 session '
                b"ticket)</p>",
                body,
            )
            self.assertIn(b'data-resumed="yes" data-mechanism="ticket_tls13"', body)
            self.assertIn(
                b'<tr id="c-resumed_ticket_tls13"><th>Resumed by TLS 1.3 session '
                b"ticket</th><td>1</td></tr>",
                body,
            )
            self.assertIn(
                b'<p id="saved">Resumed: 1 of 2 handshakes (50%).', body
            )

        return ensureDeferred(run())

    def test_mechanisms(self):
        """
        status.json names the mechanism (as the metrics' C{kind} label does)
        and says it in words: TLS 1.2 ticket, session ID, TLS 1.3 ticket.
        """

        async def run():
            port, factory = await self.serve()
            cases = [
                (
                    tls_context(ssl.TLSVersion.TLSv1_2),
                    "ticket_tls12",
                    "TLS 1.2 session ticket",
                    "TLSv1.2",
                ),
                (
                    tls_context(ssl.TLSVersion.TLSv1_2, tickets=False),
                    "session_id",
                    "session ID (server cache)",
                    "TLSv1.2",
                ),
                (
                    tls_context(ssl.TLSVersion.TLSv1_3),
                    "ticket_tls13",
                    "TLS 1.3 session ticket",
                    "TLSv1.3",
                ),
            ]
            for ctx, mechanism, words, version in cases:
                _, headers, body, session, _, _ = await deferToThread(
                    fetch, port, "/status.json", None, ctx
                )
                self.assertEqual(headers["content-type"], "application/json")
                first = json.loads(body)["connection"]
                self.assertEqual(
                    (first["tls"], first["resumed"], first["mechanism"]),
                    (True, False, None),
                )
                self.assertEqual(first["mechanism_description"], "full handshake")
                _, _, body, _, reused, _ = await deferToThread(
                    fetch, port, "/status.json", session, ctx
                )
                self.assertTrue(reused, mechanism)
                second = json.loads(body)["connection"]
                self.assertEqual(second["mechanism"], mechanism)
                self.assertEqual(second["mechanism_description"], words)
                self.assertEqual(second["version"], version)
                self.assertTrue(second["resumed"])
                self.assertTrue(second["cipher"])
            data = json.loads(body)
            server = data["server"]
            # The keys status.json always had are all still there.
            self.assertLessEqual(
                {
                    "tls",
                    "version",
                    "cipher",
                    "resumed",
                    "mechanism",
                    "mechanism_description",
                },
                set(data["connection"]),
            )
            self.assertLessEqual(
                {
                    "full_handshakes",
                    "resumed_session_id",
                    "resumed_ticket_tls12",
                    "resumed_ticket_tls13",
                    "resumed_unknown",
                    "tickets_issued",
                    "tickets_renewed",
                    "tickets_rejected",
                    "sessions_stored",
                    "cache_hits",
                    "cache_misses",
                    "cache_lookups_late",
                    "cache_corrupt",
                    "cache_errors",
                    "callback_errors",
                    "cache",
                    "keys",
                    "resumed",
                },
                set(server),
            )
            self.assertEqual(
                data["summary"],
                {
                    "handshakes": 6,
                    "resumed": 3,
                    "resumed_share": 0.5,
                    "saved": "Resumed: 3 of 6 handshakes (50%). Each skipped "
                    "the certificate and the server's private-key operation, "
                    "the costly part of a handshake.",
                },
            )
            self.assertEqual(
                (
                    server["full_handshakes"],
                    server["resumed_ticket_tls12"],
                    server["resumed_session_id"],
                    server["resumed_ticket_tls13"],
                ),
                (3, 1, 1, 1),
            )
            self.assertIn("entries", server["cache"])
            self.assertIn("encrypting", server["keys"])
            self.assertEqual(
                set(data["capabilities"]),
                {"custom_tickets", "external_cache", "reason"},
            )
            # No key material, in any encoding, anywhere in the status.
            for key in factory.key_ring.keys().all:
                for secret in (key.hmac_key, key.aes_key):
                    for text in (secret.hex(), base64.b64encode(secret).decode()):
                        self.assertNotIn(text, body.decode())

        return ensureDeferred(run())

    def test_not_found_closes(self):
        """A 404 (a browser's favicon request) closes its connection too."""

        async def run():
            port, _ = await self.serve()
            status, headers, _, _, _, closed = await deferToThread(
                fetch, port, "/favicon.ico"
            )
            self.assertEqual(status, "HTTP/1.1 404 Not Found")
            self.assertEqual(headers["connection"], "close")
            self.assertTrue(closed)

        return ensureDeferred(run())

    def test_idle_connection_closed(self):
        """
        A connection that sends no request (a browser's preconnect) is
        closed after the idle timeout, so a later reload makes a new one.
        """

        def idle(port):
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            with DEFAULT_CONTEXT.wrap_socket(raw, server_hostname="localhost") as s:
                start = time.monotonic()
                try:
                    while s.recv(4096):
                        pass  # TLS 1.3 tickets, then the close
                except (ssl.SSLError, OSError):
                    pass
                return time.monotonic() - start

        async def run():
            port, _ = await self.serve()
            waited = await deferToThread(idle, port)
            self.assertGreaterEqual(waited, _demo.IDLE_TIMEOUT - 0.5)
            self.assertLess(waited, _demo.IDLE_TIMEOUT + 5)

        return ensureDeferred(run())

    def test_reload_once(self):
        """C{/?again=1} refreshes itself once to C{/} (the browser test's way)."""

        async def run():
            port, _ = await self.serve()
            _, _, body, _, _, _ = await deferToThread(fetch, port, "/?again=1")
            self.assertIn(b'<meta http-equiv="refresh" content="1; url=/">', body)
            _, _, body, _, _, _ = await deferToThread(fetch, port, "/")
            self.assertNotIn(b"http-equiv", body)

        return ensureDeferred(run())

    def test_plain_tcp(self):
        """Served without TLS (C{--listen tcp:}), the page says so, no error."""

        async def run():
            endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
            port = await endpoint.listen(_demo.demo_site())
            self.addCleanup(port.stopListening)
            number = port.getHost().port
            status, _, body, _, _, closed = await deferToThread(
                fetch, number, "/", tls=False
            )
            self.assertEqual(status, "HTTP/1.1 200 OK")
            self.assertIn(b'<p id="headline">This connection is not TLS</p>', body)
            self.assertTrue(closed)
            _, _, body, _, _, _ = await deferToThread(
                fetch, number, "/status.json", tls=False
            )
            self.assertEqual(json.loads(body)["connection"]["tls"], False)

        return ensureDeferred(run())


class DegradedPageTests(SynchronousTestCase):
    def test_degraded_warning(self):
        """Without the OpenSSL route the page says so, escaped, in plain view."""

        def status(request):
            return {
                "connection": {
                    "tls": True,
                    "version": "TLSv1.3",
                    "cipher": "TLS_AES_128_GCM_SHA256",
                    "resumed": True,
                    "mechanism": "unknown",
                },
                "server": {"full_handshakes": 1},
                "capabilities": {
                    "custom_tickets": False,
                    "external_cache": False,
                    "reason": "symbol <SSL_CTX_sess_set_new_cb> not found",
                },
            }

        self.patch(_demo, "status", status)
        request = DummyRequest([b""])
        request.channel = type("Channel", (), {"persistent": True})()
        body = _demo.DemoPage().render_GET(request)
        self.assertIn(
            b"<strong>Degraded:</strong> symbol &lt;SSL_CTX_sess_set_new_cb&gt; "
            b"not found",
            body,
        )
        self.assertIn(
            b'<p id="headline">This connection was resumed (unknown mechanism)</p>',
            body,
        )
        self.assertFalse(request.channel.persistent)
