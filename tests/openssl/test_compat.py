"""
The private pyOpenSSL and Twisted attributes we rely on
(L{resumetls.openssl.compat}): each accessor still finds what it names in
the installed versions, so an upgrade that renames one fails here, by name.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from twisted.internet.ssl import (
    AcceptableCiphers,
    Certificate,
    CertificateOptions,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.trial.unittest import SynchronousTestCase

from resumetls.openssl import compat
from resumetls.openssl.sessions import session_from_der, session_to_der

from ..support import certificate, options


def _certificate():
    return Certificate.loadPEM(certificate()[0].public_bytes(Encoding.PEM))


class PyOpenSSLTests(SynchronousTestCase):
    def test_handles(self):
        context = SSL.Context(SSL.TLS_METHOD)
        conn = SSL.Connection(context, None)
        self.assertIsNotNone(compat.context_handle(context))
        self.assertIs(
            compat.connection_by_handle()[compat.connection_handle(conn)], conn
        )

    def test_context_used(self):
        context = SSL.Context(SSL.TLS_METHOD)
        self.assertFalse(compat.context_used(context))
        SSL.Connection(context, None)
        self.assertTrue(compat.context_used(context))
        self.assertFalse(compat.context_used(object()))

    def test_new_session(self):
        """
        A session rebuilt from DER is pinned to the given context, so a
        connection of that context accepts it and another one refuses it.
        """
        server = options().getContext()
        client = SSL.Context(SSL.TLS_METHOD)
        sconn = SSL.Connection(server, None)
        sconn.set_accept_state()
        cconn = SSL.Connection(client, None)
        cconn.set_connect_state()
        for _ in range(10):
            for a, b in ((cconn, sconn), (sconn, cconn)):
                try:
                    a.do_handshake()
                except SSL.WantReadError:
                    pass
                try:
                    b.bio_write(a.bio_read(65536))
                except SSL.WantReadError:
                    pass
        der = session_to_der(cconn.get_session())
        rebuilt = session_from_der(der, client)
        self.assertIsNotNone(compat.session_handle(rebuilt))
        SSL.Connection(client, None).set_session(rebuilt)
        other = SSL.Context(SSL.TLS_METHOD)
        self.assertRaises(ValueError, SSL.Connection(other, None).set_session, rebuilt)

    def test_keep_alive(self):
        context = SSL.Context(SSL.TLS_METHOD)
        kept = [object()]
        compat.keep_alive(context, kept)
        self.assertIs(context._resumetls_callbacks, kept)


class TwistedTests(SynchronousTestCase):
    def test_certificate_options_flags(self):
        """
        Flags are readable and replaceable until the context is built.
        """
        opts = CertificateOptions()
        self.assertFalse(compat.certificate_options_built(opts))
        flags = compat.certificate_options_flags(opts)
        self.assertTrue(flags & SSL.OP_NO_TICKET)
        compat.set_certificate_options_flags(opts, flags & ~SSL.OP_NO_TICKET)
        # set_options(0) changes nothing and returns the options in force.
        self.assertFalse(opts.getContext().set_options(0) & SSL.OP_NO_TICKET)
        self.assertTrue(compat.certificate_options_built(opts))
        self.assertIsNone(compat.certificate_options_flags(object()))
        self.assertFalse(compat.certificate_options_built(object()))

    def test_trust_roots(self):
        cert = _certificate()
        self.assertTrue(compat.is_platform_trust(platformTrust()))
        self.assertIsNone(compat.certificate_authorities(platformTrust()))
        cas = compat.certificate_authorities(trustRootFromCertificates([cert]))
        self.assertEqual(
            [c.to_cryptography() for c in cas], [cert.original.to_cryptography()]
        )
        self.assertFalse(compat.is_platform_trust(cert))
        self.assertIsNone(compat.certificate_authorities(cert))

    def test_unwrap_certificate(self):
        cert = _certificate()
        self.assertIs(compat.unwrap_certificate(cert), cert.original)
        self.assertIs(compat.unwrap_certificate(b"x"), b"x")

    def test_acceptable_ciphers(self):
        ciphers = AcceptableCiphers.fromOpenSSLCipherString("ECDHE+AESGCM")
        found = compat.acceptable_ciphers(ciphers)
        self.assertTrue(found)
        self.assertTrue(all(c.fullName for c in found))
        self.assertIsNone(compat.acceptable_ciphers(object()))

    def test_client_certificate_options(self):
        creator = optionsForClientTLS("localhost")
        opts = compat.client_certificate_options(creator)
        self.assertIsInstance(opts, CertificateOptions)
        self.assertIsNone(compat.client_certificate_options(object()))

    def test_acceptable_protocols(self):
        cert, key = certificate()
        given = CertificateOptions(
            privateKey=key, certificate=cert, acceptableProtocols=[b"h2", b"x"]
        )
        self.assertEqual(compat.acceptable_protocols(given), (b"h2", b"x"))
        self.assertIsNone(compat.acceptable_protocols(options()))

    def test_http2_connection(self):
        """An HTTP/2 stream's connection; an HTTP/1.1 channel has none."""
        from twisted.internet.task import Clock
        from twisted.internet.testing import StringTransport
        from twisted.web._http2 import H2Connection, H2Stream
        from twisted.web.http import HTTPChannel, Request

        connection = H2Connection(Clock())
        connection.transport = StringTransport()
        stream = H2Stream(1, connection, [], Request, None, None)
        self.assertIs(compat.http2_connection(stream), connection)
        self.assertIsNone(compat.http2_connection(HTTPChannel()))

    def test_send_now(self):
        """
        A TCP connection with nothing queued takes the bytes at once; one
        with bytes queued, and any other transport, gets them back.
        """
        import socket
        from types import SimpleNamespace

        from twisted.internet import tcp
        from twisted.internet.protocol import Protocol
        from twisted.internet.testing import MemoryReactor, StringTransport

        ours, peer = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(peer.close)
        port = SimpleNamespace(_realPortNumber=1)  # what Server's log prefix reads
        address = ("127.0.0.1", 1)
        transport = tcp.Server(ours, Protocol(), address, port, 1, MemoryReactor())
        self.assertEqual(compat.send_now(transport, b"flight"), b"")
        self.assertEqual(peer.recv(100), b"flight")
        transport.write(b"queued")
        self.assertEqual(compat.send_now(transport, b"later"), b"later")
        self.assertEqual(compat.send_now(StringTransport(), b"x"), b"x")
