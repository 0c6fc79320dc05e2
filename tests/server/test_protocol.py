"""
The TLS layer of a resuming listener (L{resumetls.server.protocol}) over
real loopback sockets: a client that sends half a ClientHello and stalls is
disconnected after the handshake timeout while others are served; over the
bound of connections in the handshake a new one is closed at once; plain
HTTP gets an HTTP 400 naming the mistake; the interfaces a connection
declares are Twisted's; a paused handshake can be driven again; reads
that would find nothing are skipped.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from typing import Any

from OpenSSL import SSL
from prometheus_client import generate_latest
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.protocols import policies
from twisted.protocols import tls as tls_module
from twisted.protocols.tls import BufferingTLSTransport
from twisted.trial.unittest import TestCase
from zope.interface import directlyProvides, providedBy

from resumetls import ResumingServerEndpoint
from resumetls.cli.metrics import metrics_registry
from resumetls.server import twistedtls
from resumetls.server.config import ServerConfig
from resumetls.server.protocol import PLAIN_HTTP_RESPONSE

from .. import support

# A TLS record header that announces a 512-byte handshake message, and a
# little of it: OpenSSL waits for the rest.
HALF_CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(20)


def pem_files(testcase):
    return support.write_pem(
        os.path.abspath(testcase.mktemp()), *support.certificate("ec")
    )


def stall(port: int, data: bytes = HALF_CLIENT_HELLO) -> socket.socket:
    """A client that sends C{data} and then nothing."""
    s = socket.create_connection(("127.0.0.1", port), timeout=support.CLIENT_TIMEOUT)
    if data:
        s.sendall(data)
    return s


def until_closed(s: socket.socket, limit: float = 30.0) -> tuple[float, bytes]:
    """Read until the server closes (bounded); (seconds it took, bytes read)."""
    start = time.monotonic()
    s.settimeout(limit)
    received = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            received += chunk
    except ConnectionResetError:
        pass
    finally:
        s.close()
    return time.monotonic() - start, received


async def poll(condition, deadline: float = 30.0) -> None:
    """Wait (bounded) until C{condition()} is true, letting the reactor run."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await deferLater(reactor, 0.02, lambda: None)


class TLSLayerTests(TestCase):
    timeout = 90

    async def serve(self, mode="close", **config):
        """Listen on a free loopback port with our endpoint; (port, endpoint, app)."""
        cert, key = pem_files(self)
        endpoint = ResumingServerEndpoint.from_config(
            reactor,
            ServerConfig(
                port=0, interface="127.0.0.1", certificate=cert, key=key, **config
            ),
        )
        app = support.InfoFactory(mode)
        port = await endpoint.listen(app)
        self.addCleanup(port.stopListening)
        self.tls = port.factory
        return port.getHost().port, endpoint, app

    def served(self, port):
        """One TLS connection with Python's ssl module (fires with its report)."""
        return support.python_client(port, support._INSECURE)

    def stats(self, endpoint):
        return endpoint.context_factory.stats()

    def test_stalled_handshake_times_out(self):
        """
        Half a ClientHello, then nothing: the connection is closed after the
        handshake timeout (it stayed open for ever before), counted; another
        client is served meanwhile.
        """

        async def run():
            port, endpoint, _ = await self.serve(handshake_timeout=1.0)
            stalled = stall(port)
            closed = deferToThread(until_closed, stalled)
            self.assertTrue((await self.served(port))["server"]["version"])
            elapsed, received = await closed
            self.assertGreaterEqual(elapsed, 0.8)
            self.assertLess(elapsed, 10)
            self.assertEqual(self.stats(endpoint).handshake_timeouts, 1)
            self.assertEqual(self.stats(endpoint).full_handshakes, 1)
            await poll(lambda: self.tls.handshaking == 0)
            text = generate_latest(
                metrics_registry(lambda: [endpoint.context_factory])
            ).decode()
            self.assertIn(
                'resumetls_connections_closed_total{reason="handshake_timeout",'
                'service="default"} 1.0',
                text,
            )

        return ensureDeferred(run())

    def test_finished_handshake_outlives_the_timeout(self):
        """A connection whose handshake finished is not cut at the timeout."""

        async def run():
            port, endpoint, app = await self.serve(mode="wait", handshake_timeout=0.3)

            def client():
                with support._INSECURE.wrap_socket(
                    socket.create_connection(("127.0.0.1", port), timeout=5),
                    server_hostname="localhost",
                ) as tls:
                    line = tls.recv(4096)
                    time.sleep(1.0)
                    tls.settimeout(0.3)
                    try:
                        more = tls.recv(1)
                    except TimeoutError:
                        more = None  # still open: nothing to read
                    return line, more

            line, more = await deferToThread(client)
            self.assertIn(b'"resumed"', line)
            self.assertIsNone(more)
            self.assertEqual(self.stats(endpoint).handshake_timeouts, 0)

        return ensureDeferred(run())

    def test_bound_on_handshakes(self):
        """
        Over C{max_handshakes} connections in the handshake, a new one is
        closed at once and counted; once they are gone, clients are served.
        """

        async def run():
            port, endpoint, _ = await self.serve(handshake_timeout=3, max_handshakes=2)
            stalled = [stall(port), stall(port, b"")]
            await poll(lambda: self.tls.handshaking == 2)
            elapsed, received = await deferToThread(until_closed, stall(port))
            self.assertEqual(received, b"")
            self.assertLess(elapsed, 2)
            self.assertEqual(self.stats(endpoint).handshakes_refused, 1)
            for s in stalled:
                s.close()
            await poll(lambda: self.tls.handshaking == 0)
            self.assertTrue((await self.served(port))["server"]["version"])
            self.assertEqual(self.stats(endpoint).handshakes_refused, 1)

        return ensureDeferred(run())

    def test_plain_http(self):
        """Plain HTTP to the TLS port: an HTTP 400 that names the mistake."""

        async def run():
            port, endpoint, app = await self.serve()
            request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
            _, received = await deferToThread(until_closed, stall(port, request))
            self.assertEqual(received, PLAIN_HTTP_RESPONSE)
            self.assertTrue(received.startswith(b"HTTP/1.1 400 Bad Request\r\n"))
            self.assertIn(b"The plain HTTP request was sent to HTTPS port", received)
            self.assertEqual(self.stats(endpoint).plain_http, 1)
            self.assertEqual(app.infos, [])
            # TLS on the same port still works; garbage is not taken for HTTP.
            self.assertTrue((await self.served(port))["server"]["version"])
            _, received = await deferToThread(until_closed, stall(port, b"\x00junk"))
            self.assertNotIn(b"HTTP", received)
            self.assertEqual(self.stats(endpoint).plain_http, 1)

        return ensureDeferred(run())

    def test_interfaces_as_twisted_declares_them(self):
        """
        Each connection provides what Twisted's own TLS protocol would over
        the same transport, the first one (declared) and later ones (from
        the per-class cache) alike.
        """

        async def run():
            port, _, _ = await self.serve()
            seen = []
            original = self.tls.protocol.makeConnection

            def spy(protocol, transport):
                original(protocol, transport)
                seen.append((protocol, transport))

            self.patch(self.tls.protocol, "makeConnection", spy)
            calls = []
            for module in (tls_module, policies):

                def counted(*args, _real=module.directlyProvides):
                    calls.append(args)
                    return _real(*args)

                self.patch(module, "directlyProvides", counted)
            await self.served(port)
            first = len(calls)
            await self.served(port)
            self.assertEqual(len(seen), 2)
            # Twisted's loop and ProtocolWrapper's call the first time; the
            # declaration from the cache the second.
            self.assertEqual(first, len(list(providedBy(seen[0][1]))) + 1)
            self.assertEqual(len(calls), first)
            for protocol, transport in seen:
                # What Twisted's makeConnection declares (its loop, then
                # ProtocolWrapper's call), on its own TLS protocol.
                twisted_way = BufferingTLSTransport.__new__(BufferingTLSTransport)
                for interface in providedBy(transport):
                    directlyProvides(twisted_way, interface)
                directlyProvides(twisted_way, providedBy(transport))
                self.assertEqual(
                    list(providedBy(protocol).interfaces()),
                    list(providedBy(twisted_way).interfaces()),
                )
                self.assertTrue(ITCPTransport.providedBy(protocol))
            self.assertEqual(list(self.tls.declarations), [(type(seen[0][1]), True)])

        return ensureDeferred(run())

    def test_handshakes_reported_without_info_callback(self):
        """
        Our TLS protocol reports each handshake's end itself: the counters
        and mechanisms are exact (each TLS 1.3 resumption counted once,
        though OpenSSL says "done" again after its tickets) with no info
        callback on the context; C{getContext()} hands out a context that
        observes the connections made from it.
        """

        async def run():
            port, endpoint, app = await self.serve()
            factory = endpoint.context_factory
            for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                ctx = _client_context(version)
                first = await self.served_with(port, ctx)
                again = await self.served_with(port, ctx, first["session"])
                self.assertFalse(first["reused"])
                self.assertTrue(again["reused"])
            self.assertEqual(
                [info.mechanism for info in app.infos],
                [None, "ticket_tls12", None, "ticket_tls13"],
            )
            stats = self.stats(endpoint)
            self.assertEqual(
                (
                    stats.full_handshakes,
                    stats.resumed_ticket_tls12,
                    stats.resumed_ticket_tls13,
                    stats.resumed,
                ),
                (2, 1, 1, 2),
            )
            self.assertFalse(factory._observer.installed)
            factory.getContext()
            self.assertTrue(factory._observer.installed)

        return ensureDeferred(run())

    def served_with(self, port, ctx, session=None):
        return support.python_client(port, ctx, session)

    def test_continue_handshake(self):
        """
        C{continue_handshake} drives a handshake as arriving bytes would,
        and does nothing once it is over.
        """

        async def run():
            port, _, app = await self.serve(mode="wait")
            made = Deferred()
            original = self.tls.protocol.makeConnection

            def keep(protocol, transport):
                original(protocol, transport)
                made.callback(protocol)

            self.patch(self.tls.protocol, "makeConnection", keep)
            served = self.served(port)
            protocol = await made
            protocol.continue_handshake()  # nothing has arrived: still waiting
            self.assertFalse(protocol._handshakeDone)
            await served
            self.assertTrue(protocol._handshakeDone)
            protocol.continue_handshake()  # over: harmless
            self.assertEqual(len(app.infos), 1)

        return ensureDeferred(run())


class _Echo(Protocol):
    """Answers each piece of data in capitals; closes after a newline."""

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.transport.write(data.upper())
        if b"\n" in data:
            self.transport.loseConnection()


def _client_context(version: Any) -> ssl.SSLContext:
    """A client context of one TLS version that checks no certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


def _echo_client(port: int, ctx: ssl.SSLContext, session: Any) -> dict:
    """Send "hello" in two records; read the answer to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            s.sendall(b"hel")
            time.sleep(0.05)
            s.sendall(b"lo\n")
            answer = b""
            try:
                while chunk := s.recv(4096):
                    answer += chunk
            except (ssl.SSLError, OSError):
                pass
            return {"answer": answer, "reused": s.session_reused, "session": s.session}


class BufferChecksTests(TestCase):
    """
    Reads from OpenSSL that would find nothing are skipped when OpenSSL
    says its buffers are empty (L{resumetls.openssl.buffers}): the same
    bytes reach both ends, full and resumed, TLS 1.2 and 1.3, and pyOpenSSL
    raises no C{WantReadError} from C{bio_read} and far fewer from C{recv}
    than without the checks.
    """

    timeout = 60

    async def exchange(self, with_checks: bool) -> dict[str, int]:
        cert, key = pem_files(self)
        endpoint = ResumingServerEndpoint.from_config(
            reactor,
            ServerConfig(port=0, interface="127.0.0.1", certificate=cert, key=key),
        )
        port = await endpoint.listen(Factory.forProtocol(_Echo))
        self.addCleanup(port.stopListening)
        if not with_checks:
            endpoint.context_factory._buffers = None
        raised = {"recv": 0, "bio_read": 0, "buffers": 0, "connections": 0}
        tls_protocol = port.factory.protocol
        original = tls_protocol.makeConnection

        mine: set = set()  # this exchange's connections (earlier ones may close now)

        def seen(protocol_, transport):
            original(protocol_, transport)
            mine.add(protocol_._tlsConnection)
            raised["connections"] += 1
            raised["buffers"] += protocol_.buffers is not None

        patches = [(tls_protocol, "makeConnection", seen)] + [
            (
                SSL.Connection,
                name,
                _counting(getattr(SSL.Connection, name), raised, name, mine),
            )
            for name in ("recv", "bio_read")
        ]
        saved = [(o, name, getattr(o, name)) for o, name, _ in patches]
        for o, name, value in patches:
            setattr(o, name, value)
        try:
            number = port.getHost().port
            for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                ctx = _client_context(version)
                first = await deferToThread(_echo_client, number, ctx, None)
                again = await deferToThread(_echo_client, number, ctx, first["session"])
                self.assertEqual(
                    (first["answer"], first["reused"]), (b"HELLO\n", False)
                )
                self.assertEqual((again["answer"], again["reused"]), (b"HELLO\n", True))
        finally:
            for o, name, value in saved:
                setattr(o, name, value)
        return raised

    def test_fewer_empty_reads(self):
        async def run():
            without = await self.exchange(with_checks=False)
            with_ = await self.exchange(with_checks=True)
            self.assertEqual(without["buffers"], 0)
            self.assertEqual(with_["buffers"], with_["connections"])
            self.assertEqual(with_["connections"], 4)
            self.assertEqual(with_["bio_read"], 0)
            self.assertGreater(without["bio_read"], 4)
            self.assertLess(with_["recv"], without["recv"] / 2)

        return ensureDeferred(run())


def _counting(method: Any, raised: dict[str, int], name: str, mine: set) -> Any:
    """
    C{method}, counting in C{raised[name]} the C{WantReadError}s it raises
    for the connections in C{mine}.
    """

    def counted(self: Any, *args: Any) -> Any:
        try:
            return method(self, *args)
        except SSL.WantReadError:
            if self in mine:
                raised[name] += 1
            raise

    return counted


class KnownTwistedCodeTests(TestCase):
    def test_copies_match_twisted(self):
        """
        Twisted's C{makeConnection}, receive loop and buffering set-up use
        the names our copies were made from (L{resumetls.server.twistedtls}); were one to change,
        Twisted's own would run, and this says which.
        """
        self.assertTrue(twistedtls.SAME_MAKE_CONNECTION, "makeConnection changed")
        self.assertTrue(twistedtls.SAME_RECEIVE_LOOP, "_flushReceiveBIO changed")
        self.assertTrue(twistedtls.SAME_BUFFERING_INIT, "BufferingTLSTransport changed")
