"""
A ticket forged by someone who knows everything but the HMAC key: the
server's key name, IV and encrypted state from a real ticket, sealed with
an HMAC keyed with nothing.  A server that keyed its ticket HMAC with an
empty key (a bug that leaves tickets forgeable) would resume it; ours gives
a full handshake and counts the ticket as rejected.  Over real loopback
sockets, with C{openssl s_client} presenting the ticket.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from resumetls import KeyRing, ResumptionSettings, TicketKey

from .. import support
from ..support import listen, s_client
from .test_resumption import make_factory


def sealed_without_key(ticket: bytes) -> bytes:
    """C{ticket} with its HMAC-SHA256 recomputed under an empty key."""
    body = ticket[:-32]
    return body + hmac.new(b"", body, hashlib.sha256).digest()


class EmptyHMACKeyTests(TestCase):
    timeout = 60

    async def _forge(self, flags):
        key = TicketKey.generate()
        factory = make_factory(
            ResumptionSettings(session_ids=False), key_ring=KeyRing.from_keys(key)
        )
        port, app = await listen(self, factory)
        good = os.path.abspath(self.mktemp())
        first = await s_client(port, None, good, *flags)
        self.assertFalse(first["reused"])
        ticket = support.session_ticket(good)
        self.assertEqual(ticket[:16], key.name)  # one of ours, opened by our callback
        forged = os.path.abspath(self.mktemp())
        support.rewrite_session(good, forged, ticket=sealed_without_key(ticket))
        before = factory.stats()

        result = await s_client(port, forged, None, *flags)
        self.assertFalse(result["reused"], f"{flags}: a forged ticket resumed")
        self.assertEqual(result["server"]["resumed"], False)
        self.assertEqual(result["server"]["version"], first["version"])
        after = factory.stats()
        self.assertEqual(
            (
                after.full_handshakes - before.full_handshakes,
                after.resumed - before.resumed,
                after.tickets_rejected - before.tickets_rejected,
                after.callback_errors,
            ),
            (1, 0, 1, 0),
        )
        # The real ticket, which differs only in its HMAC, still resumes.
        again = await s_client(port, good, None, *flags)
        self.assertTrue(again["reused"], flags)
        self.assertEqual(factory.stats().resumed, 1)
        self.assertEqual(len(app.infos), 3)

    def test_tls12(self):
        return ensureDeferred(self._forge(["-tls1_2"]))

    def test_tls13(self):
        return ensureDeferred(self._forge(["-tls1_3"]))
