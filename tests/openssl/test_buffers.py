"""
L{resumetls.openssl.buffers}: what a connection's memory BIOs hold, asked
of OpenSSL, against a real pyOpenSSL client and server in memory.
"""

from __future__ import annotations

import socket

from OpenSSL import SSL
from twisted.trial.unittest import SynchronousTestCase

from resumetls.openssl import symbols
from resumetls.openssl.buffers import BufferCheck

from .. import support


def _pair() -> tuple[SSL.Connection, SSL.Connection]:
    server_ctx = SSL.Context(SSL.TLS_METHOD)
    cert, key = support.certificate()
    server_ctx.use_certificate(cert)
    server_ctx.use_privatekey(key)
    server = SSL.Connection(server_ctx, None)
    server.set_accept_state()
    client = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    client.set_connect_state()
    return server, client


def _drive(connection: SSL.Connection) -> None:
    try:
        connection.do_handshake()
    except SSL.WantReadError:
        pass


class BufferCheckTests(SynchronousTestCase):
    def setUp(self):
        self.check = BufferCheck.for_route(symbols.route())
        self.assertIsNotNone(self.check)

    def test_bytes_both_ways(self):
        """
        C{outgoing} counts what OpenSSL wrote for the network, C{incoming}
        says whether C{recv} has anything to work on, through a handshake
        and application data.
        """
        server, client = _pair()
        buffers = self.check.watch(server)
        self.assertEqual((buffers.outgoing(), buffers.incoming()), (0, False))
        _drive(client)
        server.bio_write(client.bio_read(65536))  # the ClientHello
        self.assertTrue(buffers.incoming())
        _drive(server)
        self.assertFalse(buffers.incoming())  # all of it read
        flight = buffers.outgoing()
        self.assertGreater(flight, 0)
        self.assertEqual(len(server.bio_read(65536)), flight)
        self.assertEqual(buffers.outgoing(), 0)

    def test_application_data(self):
        """A record of data is incoming until recv has returned all of it."""
        server, client = _pair()
        buffers = self.check.watch(server)
        for _ in range(4):  # until both are done
            _drive(client)
            try:
                server.bio_write(client.bio_read(65536))
            except SSL.WantReadError:
                pass
            _drive(server)
            try:
                client.bio_write(server.bio_read(65536))
            except SSL.WantReadError:
                pass
        client.send(b"x" * 100)
        server.bio_write(client.bio_read(65536))
        self.assertTrue(buffers.incoming())
        self.assertEqual(server.recv(10), b"x" * 10)
        self.assertTrue(buffers.incoming())  # decrypted, not yet returned
        self.assertEqual(server.recv(1000), b"x" * 90)
        self.assertFalse(buffers.incoming())
        with self.assertRaises(SSL.WantReadError):
            server.recv(1000)

    def test_not_for_socket_connections(self):
        """A connection on a socket has no memory BIOs: nothing to watch."""
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        connection = SSL.Connection(SSL.Context(SSL.TLS_METHOD), a)
        self.assertIsNone(self.check.watch(connection))

    def test_missing_functions(self):
        """Without OpenSSL's functions for it there is no check (Twisted's way)."""

        class Route:
            def optional(self, name):
                return None if name == "SSL_has_pending" else object()

        self.assertIsNone(BufferCheck.for_route(Route()))
