"""
C{tickets_rejected} (C{resumetls_tickets_total{event="rejected"}}) counts
connections, not ClientHellos: a forged TLS 1.3 ticket presented by
C{openssl s_client} with a key share the server does not choose, so that it
answers with a HelloRetryRequest and the ticket comes twice, counts once.
"""

from __future__ import annotations

import os

from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from resumetls import ResumingContextFactory, ResumptionSettings

from .. import support


class RejectedOnceTests(TestCase):
    timeout = 60

    def test_hello_retry_request(self):
        async def run():
            factory = ResumingContextFactory(
                support.options(), ResumptionSettings(session_ids=False)
            )
            port, _ = await support.listen(self, factory)
            good = os.path.abspath(self.mktemp())
            forged = os.path.abspath(self.mktemp())
            await support.s_client(port, None, good, "-tls1_3")
            ticket = support.session_ticket(good)
            support.rewrite_session(good, forged, ticket=os.urandom(len(ticket)))
            # The first key share is for P-384, which the server does not
            # prefer over X25519: it asks again (HelloRetryRequest).
            args = ["-tls1_3", "-groups", "P-384:X25519", "-msg", "-sess_in", forged]
            output = await deferToThread(support._s_client, port, args)
            self.assertEqual(output.count("ClientHello"), 2, output[-3000:])
            self.assertIn("New, TLSv1.3", output)
            stats = factory.stats()
            self.assertEqual((stats.tickets_rejected, stats.full_handshakes), (1, 2))

        return ensureDeferred(run())
