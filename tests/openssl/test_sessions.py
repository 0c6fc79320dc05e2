"""
Sessions as DER and details (L{resumetls.openssl.sessions}).
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from resumetls import ResumingContextFactory, ResumptionSettings
from resumetls.openssl.sessions import (
    session_details,
    session_from_der,
    session_to_der,
)

from ..support import listen, options


class SessionDERTests(TestCase):
    timeout = 30

    def test_garbage(self):
        ctx = SSL.Context(SSL.TLS_METHOD)
        for bad in (b"", b"\x30\x00", b"garbage" * 10):
            self.assertRaises(ValueError, session_from_der, bad, ctx)

    def test_round_trip(self):
        """
        A session from a real handshake survives DER and back, and its
        details are read (TLS 1.2, a ticket, the lifetime hint).
        """
        from twisted.internet.endpoints import SSL4ClientEndpoint
        from twisted.internet.protocol import Factory, Protocol

        async def run():
            factory = ResumingContextFactory(
                options(), ResumptionSettings(session_ids=False, session_timeout=600)
            )
            port, _ = await listen(self, factory)
            ctx = SSL.Context(SSL.TLS_METHOD)
            ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
            captured = []

            class Client(Protocol):
                def dataReceived(self, data):
                    captured.append(self.transport.getHandle().get_session())
                    self.transport.loseConnection()

            class CF:
                def getContext(self):
                    return ctx

            endpoint = SSL4ClientEndpoint(
                __import__("twisted.internet.reactor").internet.reactor,
                "127.0.0.1",
                port,
                CF(),
            )
            await endpoint.connect(Factory.forProtocol(Client))
            from twisted.internet import reactor
            from twisted.internet.task import deferLater

            for _ in range(50):
                if captured:
                    break
                await deferLater(reactor, 0.05, lambda: None)
            (session,) = captured
            der = session_to_der(session)
            again = session_from_der(der, ctx)
            self.assertEqual(session_to_der(again), der)
            details = session_details(again)
            self.assertEqual(details.protocol_version, 0x0303)
            self.assertTrue(details.has_ticket)
            self.assertEqual(details.ticket_lifetime_hint, 600)
            self.assertGreater(details.time, 0)
            self.assertTrue(details.resumable)
            self.assertNotIn(details.ticket.hex(), repr(details))

        return ensureDeferred(run())
