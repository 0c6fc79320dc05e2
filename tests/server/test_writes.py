"""
L{resumetls.server.writes}: what an application writes on a resuming TLS
connection is gathered into few TLS records; writes made while the
connection handles received bytes go out when it is done with them (no
timer), others on the reactor's next turn, as in Twisted.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from resumetls import ResumingContextFactory
from resumetls.keys.ring import KeyRing, TicketKey
from resumetls.server import protocol as protocol_module
from resumetls.server.writes import GatheredWrites
from resumetls.testing import pump

from .. import support


class GatheredWritesTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.sent: list[bytes] = []
        self.writes = GatheredWrites(self.sent.append, self.clock)

    def test_next_turn(self):
        """Outside received bytes: held, then sent together on the next turn."""
        self.writes.write(b"a")
        self.writes.write(bytearray(b"b"))
        self.assertEqual((self.sent, len(self.clock.getDelayedCalls())), ([], 1))
        self.clock.advance(0)
        self.assertEqual(self.sent, [b"ab"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_while_receiving(self):
        """While bytes are handled: held with no timer until flushed."""
        self.writes.receiving = True
        self.writes.write(b"a")
        self.writes.write(b"b")
        self.assertEqual((self.sent, self.clock.getDelayedCalls()), ([], []))
        self.writes.receiving = False
        self.writes.flush()
        self.assertEqual(self.sent, [b"ab"])

    def test_a_copy(self):
        """A bytearray the caller changes afterwards is sent as it was."""
        data = bytearray(b"abc")
        self.writes.write(data)
        data[:] = b"xyz"
        self.writes.flush()
        self.assertEqual(self.sent, [b"abc"])

    def test_large_sent_at_once(self):
        """Past the bound, everything held goes at once."""
        self.writes.write(b"a")
        self.writes.write(b"b" * GatheredWrites.MAX_BUFFER_SIZE)
        self.assertEqual(self.sent, [b"a" + b"b" * GatheredWrites.MAX_BUFFER_SIZE])
        self.clock.advance(0)  # the timer finds nothing left
        self.assertEqual(len(self.sent), 1)

    def test_close(self):
        """Closing sends what is held and cancels the timer."""
        self.writes.write(b"a")
        self.writes.close()
        self.assertEqual(self.sent, [b"a"])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class _Answers(pump.ServerApp):
    """Answers each piece of data at once, in two writes."""

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.transport.write(b"got ")
        self.transport.write(data)


class ConnectionTests(SynchronousTestCase):
    def test_answer_without_timer(self):
        """
        Through a resuming listener's TLS layer, in memory: the answer
        written in C{dataReceived} is sent without a timer; a write made at
        another time is sent from a next-turn timer, as Twisted's would.
        """
        clock = Clock()
        timers: list = []  # what the server's writes scheduled
        call_later = clock.callLater

        def recording(delay, f, *args, **kwargs):
            if getattr(f, "__func__", None) is GatheredWrites._next_turn:
                timers.append(delay)
            return call_later(delay, f, *args, **kwargs)

        clock.callLater = recording
        context = ResumingContextFactory(
            support.options(), key_ring=KeyRing.from_keys(TicketKey.generate())
        )
        server_app = _Answers()
        result = pump.handshake(
            context, clock=clock, server_app=server_app, listener_layer=True
        )
        self.assertTrue(result.completed)
        client_app = result.client_app  # said "hi" once connected
        self.assertEqual(client_app.received, b"got hi")
        self.assertEqual(timers, [])
        server_app.transport.write(b" later")  # not in dataReceived
        self.assertEqual(timers, [0])
        result.flush()
        self.assertEqual(client_app.received, b"got hi later")


class FallbackTests(SynchronousTestCase):
    """
    When Twisted's TLS code is not what resumetls copied from
    (L{resumetls.server.twistedtls}), Twisted's own runs, and connections
    work the same.
    """

    def _exchange(self):
        context = ResumingContextFactory(
            support.options(), key_ring=KeyRing.from_keys(TicketKey.generate())
        )
        client = pump.TestClient()
        first = pump.handshake(context, client, listener_layer=True)
        again = pump.handshake(context, client, listener_layer=True)
        self.assertEqual((first.received, again.received), (b"ok", b"ok"))
        self.assertTrue(again.info.resumed)
        return again.server

    def test_twisted_aggregator(self):
        self.patch(protocol_module, "SAME_BUFFERING_INIT", False)
        server = self._exchange()
        self.assertNotIsInstance(server._aggregator, GatheredWrites)

    def test_twisted_receive_loop(self):
        self.patch(protocol_module, "SAME_RECEIVE_LOOP", False)
        self.assertIsInstance(self._exchange()._aggregator, GatheredWrites)
