"""
What a client keeps of a session: for the handshake time plus the ticket
lifetime hint, bounded (L{resumetls.client.capture.session_expiry}).
"""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from resumetls import MemoryClientSessionStore, ResumingClientCreator

from .. import support
from .helpers import fetch_page, trust


class _RecordingStore(MemoryClientSessionStore):
    """A memory store that remembers what it was given to keep."""

    def __init__(self):
        super().__init__()
        self.puts = []

    def put(self, key, der, expires, single_use):
        self.puts.append((expires, single_use))
        super().put(key, der, expires, single_use)


class ExpiryTests(TestCase):
    """Sessions are kept for the handshake time plus the ticket lifetime hint."""

    timeout = 60

    def test_lifetime_hint(self):
        """
        Against our server with a 1000 s session timeout (the hint it sends,
        shorter than the client's own 7200 s timeout), in TLS 1.2 and 1.3.
        """
        import time

        from twisted.internet.endpoints import SSL4ServerEndpoint
        from twisted.internet.ssl import TLSVersion

        from resumetls import ResumingContextFactory, ResumptionSettings

        class Page(Protocol):
            def dataReceived(self, data):
                self.transport.write(b"New, TLSv1.x\n")
                self.transport.loseConnection()

        async def run():
            cert, key = support.certificate()
            cert_path, key_path = support.write_pem(
                os.path.abspath(self.mktemp()), cert, key
            )
            factory = ResumingContextFactory.from_files(
                cert_path, key_path, ResumptionSettings(session_timeout=1000)
            )
            port = await SSL4ServerEndpoint(
                reactor, 0, factory, interface="127.0.0.1"
            ).listen(Factory.forProtocol(Page))
            self.addCleanup(port.stopListening)
            number = port.getHost().port
            for maximum, single_use in ((TLSVersion.TLSv1_2, False), (None, True)):
                store = _RecordingStore()
                creator = ResumingClientCreator(
                    "localhost",
                    trust(cert_path),
                    port=number,
                    store=store,
                    extraCertificateOptions={"lowerMaximumSecurityTo": maximum}
                    if maximum
                    else None,
                )
                before = time.time()
                await fetch_page(creator, number)
                after = time.time()
                self.assertTrue(store.puts)
                for expires, used_once in store.puts:
                    self.assertEqual(used_once, single_use)
                    # The session's time has a resolution of one second.
                    self.assertGreaterEqual(expires, int(before) + 1000)
                    self.assertLessEqual(expires, after + 1000)

        return ensureDeferred(run())

    def test_expiry_rules(self):
        """The shortest of timeout, hint and 7 days, from the session's time."""
        from OpenSSL import SSL

        from resumetls.client.capture import session_expiry
        from resumetls.openssl.sessions import SessionDetails

        def details(version=SSL.TLS1_3_VERSION, hint=None, time=None, timeout=7200):
            return SessionDetails(version, hint is not None, hint, time, timeout, True)

        now = 1_000_000.0
        self.assertEqual(session_expiry(details(hint=300), now), now + 300)
        self.assertEqual(
            session_expiry(details(hint=300, time=999_990), now), 999_990 + 300
        )
        # a session time in the future (clock change) is not trusted
        self.assertEqual(
            session_expiry(details(hint=300, time=2_000_000), now), now + 300
        )
        self.assertEqual(
            session_expiry(details(hint=10**9, timeout=10**9), now), now + 7 * 86400
        )
        self.assertEqual(session_expiry(details(hint=9000), now), now + 7200)
        self.assertEqual(session_expiry(details(timeout=None), now), now + 7200)
        # TLS 1.3: lifetime 0 means "do not keep"; TLS 1.2: 0 means "not said"
        self.assertIsNone(session_expiry(details(hint=0), now))
        self.assertEqual(
            session_expiry(details(SSL.TLS1_2_VERSION, hint=0), now), now + 7200
        )
