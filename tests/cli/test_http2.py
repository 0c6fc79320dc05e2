"""
HTTP/2: a resuming listener serving C{twisted.web} (the demo, C{--path},
C{--wsgi}) offers C{h2} over ALPN (the C{h2} package is installed with
resumetls), and resumption works over it as over HTTP/1.1.  Proven with an
HTTP/2 client made of the C{h2} package over Python's C{ssl} socket, and
with C{curl --http2}.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time

import h2.config
import h2.connection
import h2.events
from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from .. import support
from .test_demo import serve_demo, tls_context

CURL = shutil.which("curl")


def h2_context(version=None, tickets=True, protocols=("h2",)):
    """A Python client context offering C{protocols} over ALPN."""
    ctx = tls_context(version, tickets)
    ctx.set_alpn_protocols(list(protocols))
    return ctx


def h2_get(port, path, ctx, session=None, wait_close=True):
    """
    One HTTP/2 GET on a new TLS connection, read until the server sends a
    GOAWAY or closes (or, without C{wait_close}, until the response ends);
    then we close, cleanly, as a browser does.  Returns a dict: C{alpn},
    C{status}, C{body}, C{session}, C{reused}, C{goaway} (the server sent
    one), C{goaway_after} (seconds from the end of the response to it).
    """
    raw = socket.create_connection(("127.0.0.1", port), timeout=support.CLIENT_TIMEOUT)
    with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
        result = {
            "alpn": s.selected_alpn_protocol(),
            "reused": s.session_reused,
            "status": None,
            "body": b"",
            "goaway": False,
            "goaway_after": None,
        }
        if result["alpn"] != "h2":
            return result
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        conn.send_headers(
            stream,
            [
                (":method", "GET"),
                (":path", path),
                (":scheme", "https"),
                (":authority", "localhost"),
            ],
            end_stream=True,
        )
        s.sendall(conn.data_to_send())
        ended = None
        while True:
            try:
                data = s.recv(65536)
            except (ssl.SSLError, OSError):
                data = b""
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    result["status"] = dict(event.headers)[":status"]
                elif isinstance(event, h2.events.DataReceived):
                    result["body"] += event.data
                    conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    ended = time.monotonic()
                elif isinstance(event, h2.events.ConnectionTerminated):
                    result["goaway"] = True
                    if ended is not None:
                        result["goaway_after"] = time.monotonic() - ended
            if result["goaway"] or (ended is not None and not wait_close):
                break
            pending = conn.data_to_send()
            if pending:
                s.sendall(pending)
        result["session"] = s.session
        try:
            s.unwrap()
        except (ssl.SSLError, OSError):
            pass
    return result


class DemoOverHTTP2Tests(TestCase):
    timeout = 60

    def serve(self, **settings):
        return serve_demo(self, **settings)

    def test_resumes_over_h2(self):
        """
        Over HTTP/2, each mechanism resumes on the second connection; the
        server closes each connection (GOAWAY) shortly after the response,
        so a reload makes a new connection, as with HTTP/1.1.
        """

        async def run():
            port, factory = await self.serve()
            cases = [
                (h2_context(ssl.TLSVersion.TLSv1_3), "ticket_tls13", "TLSv1.3"),
                (h2_context(ssl.TLSVersion.TLSv1_2), "ticket_tls12", "TLSv1.2"),
                (
                    h2_context(ssl.TLSVersion.TLSv1_2, tickets=False),
                    "session_id",
                    "TLSv1.2",
                ),
            ]
            for ctx, mechanism, version in cases:
                first = await deferToThread(h2_get, port, "/status.json", ctx)
                self.assertEqual((first["alpn"], first["status"]), ("h2", "200"))
                self.assertTrue(first["goaway"], mechanism)
                self.assertLess(first["goaway_after"], 1.5)
                connection = json.loads(first["body"])["connection"]
                self.assertEqual(
                    (connection["tls"], connection["resumed"], connection["protocol"]),
                    (True, False, "h2"),
                )
                second = await deferToThread(
                    h2_get, port, "/status.json", ctx, first["session"]
                )
                self.assertTrue(second["reused"], mechanism)
                connection = json.loads(second["body"])["connection"]
                self.assertEqual(
                    (
                        connection["resumed"],
                        connection["mechanism"],
                        connection["version"],
                        connection["protocol"],
                    ),
                    (True, mechanism, version, "h2"),
                )
            stats = factory.stats()
            self.assertEqual(
                (
                    stats.full_handshakes,
                    stats.resumed_ticket_tls13,
                    stats.resumed_ticket_tls12,
                    stats.resumed_session_id,
                ),
                (3, 1, 1, 1),
            )

        return ensureDeferred(run())

    def test_page_over_h2(self):
        """The HTML page over HTTP/2 names the protocol and the verdict."""

        async def run():
            port, _ = await self.serve()
            ctx = h2_context()
            first = await deferToThread(h2_get, port, "/", ctx)
            self.assertIn(b'<span id="protocol">HTTP/2</span>', first["body"])
            self.assertIn(b"This connection made a full handshake", first["body"])
            second = await deferToThread(h2_get, port, "/", ctx, first["session"])
            self.assertIn(
                b"This connection was resumed (TLS 1.3 session ticket)", second["body"]
            )

        return ensureDeferred(run())

    def test_http11_still_offered(self):
        """A client that offers only HTTP/1.1 gets it."""

        async def run():
            port, _ = await self.serve()
            ctx = h2_context(protocols=("http/1.1",))
            _, body, _, _ = await deferToThread(
                support.https_get, port, "/status.json", None, ctx
            )
            self.assertEqual(json.loads(body)["connection"]["protocol"], "http/1.1")

        return ensureDeferred(run())

    def test_curl(self):
        """C{curl --http2} (nghttp2) gets HTTP/2 and the page says so."""
        if CURL is None:
            raise SkipTest("curl is not installed (.ci/run installs it)")

        async def run():
            port, _ = await self.serve()
            out = await deferToThread(
                subprocess.run,
                [
                    CURL,
                    "-sk",
                    "--http2",
                    "-w",
                    "\n%{http_version}",
                    f"https://localhost:{port}/status.json",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            body, _, http_version = out.stdout.rpartition("\n")
            self.assertEqual(http_version, "2", out.stderr)
            connection = json.loads(body)["connection"]
            self.assertEqual((connection["tls"], connection["protocol"]), (True, "h2"))

        return ensureDeferred(run())


class TwistHTTP2Tests(TestCase):
    """C{twist resumetls} with C{--path}, C{--wsgi} and C{--factory}."""

    timeout = 120

    def serve(self, *what):
        cert, key = support.write_pem(
            os.path.abspath(self.mktemp()), *support.certificate()
        )
        port = support.free_port()
        argv = ["--port", str(port), "--certificate", cert, "--key", key, *what]
        support.start_process(self, ["-m", "twisted", "resumetls", *argv], port)
        return port

    def test_path_and_wsgi(self):
        """Files and a WSGI app are served over h2, and resume."""

        async def run():
            docs = os.path.abspath(self.mktemp())
            os.makedirs(docs)
            with open(os.path.join(docs, "hello.txt"), "w") as f:
                f.write("hello over h2\n")
            for what, path, expected in (
                (("--path", docs), "/hello.txt", b"hello over h2\n"),
                (("--wsgi", "examples.wsgi_app.application"), "/", None),
            ):
                port = self.serve(*what)
                ctx = h2_context()
                first = await deferToThread(h2_get, port, path, ctx, None, False)
                self.assertEqual((first["alpn"], first["status"]), ("h2", "200"), what)
                if expected is not None:
                    self.assertEqual(first["body"], expected)
                # Twisted keeps these connections open: we close ours.
                second = await deferToThread(
                    h2_get, port, path, ctx, first["session"], False
                )
                self.assertEqual((second["alpn"], second["status"]), ("h2", "200"))
                self.assertTrue(second["reused"], what)

        return ensureDeferred(run())

    def test_factory_no_h2(self):
        """A plain protocol factory is not offered h2: no ALPN protocol."""

        async def run():
            port = self.serve("--factory", "examples.echo.EchoFactory")
            result = await deferToThread(h2_get, port, "/", h2_context())
            self.assertIsNone(result["alpn"])

        return ensureDeferred(run())

