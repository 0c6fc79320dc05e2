"""
Fast, deterministic tests: both TLS ends in one process over Twisted's
C{TLSMemoryBIOFactory} and C{iosim}, no sockets (on top of, not instead of,
the real-peer tests).  They also show the factory works with
C{TLSMemoryBIOFactory} and with C{listenSSL}.
"""

from __future__ import annotations

import gc
import os

from OpenSSL import SSL
from twisted.internet import protocol, reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from resumetls import (
    KeyRing,
    MemorySessionCache,
    ResumingContextFactory,
    ResumptionSettings,
    TicketKey,
    resumption_info,
)
from resumetls.openssl.symbols import route as openssl_route
from resumetls.testing import pump

from .. import support
from ..support import options


@implementer(IOpenSSLClientConnectionCreator)
class _ResumingClient:
    """A minimal client that offers the last session it saw."""

    def __init__(self, max_version, no_ticket=False):
        self.context = SSL.Context(SSL.TLS_METHOD)
        self.context.set_max_proto_version(max_version)
        self.context.set_min_proto_version(max_version)
        if no_ticket:
            self.context.set_options(SSL.OP_NO_TICKET)
        self.session = None
        self.connections = []

    def clientConnectionForTLS(self, tlsProtocol):
        conn = SSL.Connection(self.context, None)
        conn.set_tlsext_host_name(b"localhost")
        if self.session is not None:
            conn.set_session(self.session)
        self.connections.append(conn)
        return conn


@implementer(IOpenSSLServerConnectionCreator)
class _PlainServer:
    """Connections from a given context, with nothing of ours installed."""

    def __init__(self, context):
        self.context = context

    def serverConnectionForTLS(self, tlsProtocol):
        return SSL.Connection(self.context, None)


class _Server(protocol.Protocol):
    def __init__(self):
        self.infos = []

    def dataReceived(self, data):
        self.infos.append(resumption_info(self.transport))
        self.transport.write(b"ok")


class _Client(protocol.Protocol):
    def __init__(self):
        self.received = []

    def connectionMade(self):
        self.transport.write(b"hi")

    def dataReceived(self, data):
        self.received.append(data)


def handshake(server_factory, client):
    """One in-memory connection (L{resumetls.testing.pump}); what the server saw."""
    server_app, client_app = _Server(), _Client()
    pump.handshake(server_factory, client, server_app=server_app, client_app=client_app)
    client.session = client.connections[-1].get_session()
    return server_app.infos, client_app.received


class InMemoryTests(SynchronousTestCase):
    def _resumes(self, settings, version, no_ticket, counter, mechanism):
        factory = ResumingContextFactory(
            options(),
            settings,
            key_ring=KeyRing.from_keys(TicketKey.generate()),
            cache=MemorySessionCache(clock=Clock()),
        )
        client = _ResumingClient(version, no_ticket)
        infos, received = handshake(factory, client)
        self.assertEqual(received, [b"ok"])
        self.assertFalse(infos[0].resumed)
        infos, received = handshake(factory, client)
        self.assertEqual(received, [b"ok"])
        self.assertTrue(infos[0].resumed)
        self.assertEqual(infos[0].mechanism, mechanism)
        self.assertEqual(getattr(factory.stats(), counter), 1)
        self.assertEqual(factory.stats().full_handshakes, 1)
        # Sessions live in our cache only: OpenSSL's own in-process cache
        # (SSL_CTX_sess_number, through SSL_CTX_ctrl) stays empty, so no
        # second copy of the master secrets is kept, unbounded by our limits.
        route = openssl_route()
        self.assertEqual(route.internal_cache_entries(factory.getContext()), 0)
        return factory

    def test_tls12_session_id(self):
        self._resumes(
            ResumptionSettings(tickets=False),
            SSL.TLS1_2_VERSION,
            True,
            "resumed_session_id",
            "session_id",
        )

    def test_tls12_ticket(self):
        self._resumes(
            ResumptionSettings(session_ids=False),
            SSL.TLS1_2_VERSION,
            False,
            "resumed_ticket_tls12",
            "ticket_tls12",
        )

    def test_tls13_ticket(self):
        self._resumes(
            ResumptionSettings(session_ids=False),
            SSL.TLS1_3_VERSION,
            False,
            "resumed_ticket_tls13",
            "ticket_tls13",
        )

    def test_tls13_stateful(self):
        self._resumes(
            ResumptionSettings(tickets=False),
            SSL.TLS1_3_VERSION,
            False,
            "resumed_session_id",
            "session_id",
        )

    def test_internal_cache_figures(self):
        """
        The SSL_CTX_ctrl settings the route offers work on a real context:
        OpenSSL's own cache counts the sessions it holds when it is used,
        and its size bound can be set.
        """
        # OpenSSL drops a session from its own cache when a connection that
        # used it is freed without a TLS shutdown (the in-memory connections
        # here never shut down): keep the garbage collector from freeing the
        # first connection before the second handshake (resumetls's own
        # cache does not depend on this; see the unclean-close tests).
        gc.disable()
        self.addCleanup(gc.enable)
        route = openssl_route()
        opts = options()
        opts.enableSessions = True
        ctx = opts.getContext()
        route.set_internal_cache_size(ctx, 7)
        self.assertEqual(route.internal_cache_size(ctx), 7)
        server = _PlainServer(ctx)
        client = _ResumingClient(SSL.TLS1_2_VERSION, no_ticket=True)
        handshake(server, client)
        self.assertEqual(route.internal_cache_entries(ctx), 1)
        infos, _ = handshake(server, client)
        self.assertTrue(infos[0].resumed)

    def test_everything_off(self):
        """Both mechanisms off: every handshake is full, nothing is issued."""
        factory = ResumingContextFactory(
            options(), ResumptionSettings(tickets=False, session_ids=False)
        )
        client = _ResumingClient(SSL.TLS1_2_VERSION)
        handshake(factory, client)
        infos, _ = handshake(factory, client)
        self.assertFalse(infos[0].resumed)
        self.assertEqual(factory.stats().full_handshakes, 2)
        self.assertEqual(factory.stats().tickets_issued, 0)

    def test_secrets_not_in_reprs_or_stats(self):
        key = TicketKey.generate()
        factory = ResumingContextFactory(
            options(),
            key_ring=KeyRing.from_keys(key),
            cache=MemorySessionCache(clock=Clock()),
        )
        client = _ResumingClient(SSL.TLS1_2_VERSION)
        handshake(factory, client)
        text = repr(factory) + repr(factory.stats()) + repr(factory.stats().as_dict())
        for secret in (key.aes_key, key.hmac_key):
            self.assertNotIn(secret.hex(), text)
            self.assertNotIn(repr(secret), text)

    def test_settings_validation(self):
        e = self.assertRaises(ValueError, ResumptionSettings, session_timeout=0)
        self.assertIn("between 1 and 604800 seconds", str(e))
        e = self.assertRaises(ValueError, ResumptionSettings, session_timeout=10**7)
        self.assertIn("7 days", str(e))
        e = self.assertRaises(ValueError, ResumptionSettings, tls13_tickets=-1)
        self.assertIn("TLS 1.3 ticket count", str(e))


@implementer(IOpenSSLServerConnectionCreator)
class _OwnInfoCallback:
    """Connections of C{factory} with the application's own info callback."""

    def __init__(self, factory):
        self.factory = factory
        self.calls = 0

    def serverConnectionForTLS(self, tlsProtocol):
        conn = self.factory.serverConnectionForTLS(tlsProtocol)
        conn.set_info_callback(self.info)
        return conn

    def info(self, conn, where, ret):
        self.calls += 1


class InfoCallbackTests(SynchronousTestCase):
    def test_connection_callback_replaces_ours(self):
        """
        As the factory's docstring says: a connection-level info callback
        replaces our context-level one, so that connection is not counted
        and its mechanism is "unknown".
        """
        factory = ResumingContextFactory(
            options(),
            ResumptionSettings(session_ids=False),
            key_ring=KeyRing.from_keys(TicketKey.generate()),
        )
        creator = _OwnInfoCallback(factory)
        client = _ResumingClient(SSL.TLS1_2_VERSION)
        handshake(creator, client)
        infos, received = handshake(creator, client)
        self.assertEqual(received, [b"ok"])
        self.assertGreater(creator.calls, 0)
        self.assertTrue(infos[0].resumed)
        self.assertEqual(infos[0].mechanism, "unknown")
        self.assertEqual(factory.stats().full_handshakes, 0)
        self.assertEqual(factory.stats().resumed, 0)


class ListenSSLTests(TestCase):
    """C{reactor.listenSSL} takes the factory as its context factory."""

    timeout = 30

    def test_listen_ssl(self):
        async def run():
            factory = ResumingContextFactory(
                options(), ResumptionSettings(session_ids=False)
            )
            app = support.InfoFactory()
            port = reactor.listenSSL(0, app, factory, interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            sess = os.path.abspath(self.mktemp())
            number = port.getHost().port
            await support.s_client(number, None, sess, "-tls1_3")
            again = await support.s_client(number, sess, None, "-tls1_3")
            self.assertTrue(again["reused"])
            self.assertEqual(factory.stats().resumed_ticket_tls13, 1)

        return ensureDeferred(run())


class _BrokenRing:
    """A key source that fails: it must cost a ticket, never the connection."""

    generation = 0

    def __init__(self):
        self.key = TicketKey.generate()

    def encrypting_key(self):
        raise RuntimeError("key source is broken")

    def decrypting_key(self, name):
        raise RuntimeError("key source is broken")

    def describe(self):
        return None


class CallbackFailureTests(SynchronousTestCase):
    def test_broken_key_source(self):
        """
        An exception inside the ticket callback is logged and counted; the
        handshake completes as a full one and the data flows.
        """
        factory = ResumingContextFactory(
            options(), ResumptionSettings(session_ids=False), key_ring=_BrokenRing()
        )
        for version in (SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION):
            client = _ResumingClient(version)
            infos, received = handshake(factory, client)
            self.assertEqual(received, [b"ok"])
            self.assertFalse(infos[0].resumed)
        # TLS 1.2: its one ticket; TLS 1.3: each of its two tickets.
        self.assertEqual(factory.stats().callback_errors, 3)
        self.assertEqual(factory.stats().full_handshakes, 2)
        errors = self.flushLoggedErrors(RuntimeError)
        self.assertEqual(len(errors), 3)


class FromFilesTests(SynchronousTestCase):
    def test_from_files(self):
        cert, key = support.certificate()
        cert_path, key_path = support.write_pem(self.mktemp(), cert, key)
        factory = ResumingContextFactory.from_files(
            cert_path,
            key_path,
            ResumptionSettings(session_ids=False),
            key_ring=KeyRing.from_keys(TicketKey.generate()),
        )
        client = _ResumingClient(SSL.TLS1_3_VERSION)
        handshake(factory, client)
        infos, _ = handshake(factory, client)
        self.assertTrue(infos[0].resumed)

    def test_errors(self):
        cert, key = support.certificate()
        cert_path, key_path = support.write_pem(self.mktemp(), cert, key)
        _, other_key = support.certificate("rsa")
        _, other_key_path = support.write_pem(self.mktemp(), cert, other_key)
        e = self.assertRaises(
            ValueError, ResumingContextFactory.from_files, cert_path, other_key_path
        )
        self.assertEqual(
            str(e),
            f"the private key {other_key_path} does not match the certificate "
            f"{cert_path}",
        )
        e = self.assertRaises(
            ValueError, ResumingContextFactory.from_files, key_path, key_path
        )
        self.assertEqual(str(e), f"{key_path} does not hold a PEM certificate")
        e = self.assertRaises(
            ValueError, ResumingContextFactory.from_files, cert_path, cert_path
        )
        self.assertEqual(
            str(e), f"{cert_path} does not hold an unencrypted PEM private key"
        )
        e = self.assertRaises(
            ValueError, ResumingContextFactory.from_files, "/nonexistent.pem", key_path
        )
        self.assertIn("cannot read the certificate /nonexistent.pem", str(e))
