"""
Pausing a handshake while a networked cache answers, in memory (iosim, a
Clock, L{SlowSessionCache}): the handshake waits for its lookup and resumes,
others do not wait, the budget bounds the wait, the circuit breaker stops
pausing while the cache keeps failing, and a ticket of ours needs no lookup.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from resumetls import ResumingContextFactory, ResumptionSettings
from resumetls.openssl.clienthello import psk_identities
from resumetls.server.pause import PausableConnection
from resumetls.testing.caches import SlowSessionCache
from resumetls.testing.keys import fixed_key_ring
from resumetls.testing.pump import TestClient, handshake

from ..support.certificates import options

BUDGET = 0.05


class PauseTests(SynchronousTestCase):
    def factory(self, tickets=False, cache=None, budget=BUDGET):
        self.clock = Clock()
        self.cache = cache if cache is not None else SlowSessionCache(self.clock)
        factory = ResumingContextFactory(
            options(),
            ResumptionSettings(tickets=tickets, lookup_budget=budget),
            key_ring=fixed_key_ring(),
            cache=self.cache,
            clock=self.clock,
        )
        self.pauser = factory.hooks.pauser
        self.assertIsNotNone(self.pauser)
        return factory

    def first(self, factory, client):
        """A full handshake whose session reaches the cache."""
        done = handshake(factory, client, clock=self.clock)
        self.assertTrue(done.completed)
        self.cache.answer_all()  # the store(s)
        return done

    def lookups(self):
        return [key for name, key in self.cache.pending if name == "lookup"]

    def check_resumes_after_pause(self, version):
        self.check_resumed_with(self.factory(), version)

    def check_resumed_with(self, factory, version):
        client = TestClient(version, tickets=False)
        first = self.first(factory, client)
        again = handshake(factory, client, clock=self.clock)
        self.assertFalse(again.completed, "the handshake waits for its lookup")
        self.assertEqual(len(self.lookups()), 1)
        self.assertIsInstance(again.server.getHandle(), PausableConnection)
        self.cache.answer_next()
        again.flush()
        self.assertTrue(again.completed)
        self.assertTrue(again.info.resumed)
        self.assertEqual(again.info.mechanism, "session_id")
        stats = factory.stats()
        self.assertEqual((stats.resumed_session_id, stats.cache_hits), (1, 1))
        self.assertEqual(stats.cache_lookups_late, 0)
        figures = self.pauser.figures()
        self.assertEqual((figures["paused"], figures["pending"]), (1, 0))
        self.assertEqual(figures["latency_count"], 1)
        self.assertEqual(first.received, b"ok")
        self.assertEqual(again.received, b"ok")

    def test_tls12_session_id(self):
        self.check_resumes_after_pause(SSL.TLS1_2_VERSION)
        self.assertEqual(self.cache.inner.stats().stores, 1)

    def test_tls13_stateful_ticket(self):
        self.check_resumes_after_pause(SSL.TLS1_3_VERSION)

    def test_miss_after_pause(self):
        """An answer of nothing: a full handshake, counted as a miss."""
        factory = self.factory()
        client = TestClient(SSL.TLS1_2_VERSION, tickets=False)
        self.first(factory, client)
        self.cache.inner._entries.clear()
        again = handshake(factory, client, clock=self.clock)
        self.cache.answer_next()
        again.flush()
        self.assertTrue(again.completed)
        self.assertFalse(again.info.resumed)
        stats = factory.stats()
        self.assertEqual((stats.cache_misses, stats.full_handshakes), (1, 2))

    def test_budget(self):
        """No answer within the budget: a full handshake, counted late."""
        factory = self.factory()
        client = TestClient(SSL.TLS1_2_VERSION, tickets=False)
        self.first(factory, client)
        again = handshake(factory, client, clock=self.clock)
        self.clock.advance(BUDGET * 0.9)
        again.flush()
        self.assertFalse(again.completed)
        self.clock.advance(BUDGET * 0.2)
        again.flush()
        self.assertTrue(again.completed)
        self.assertFalse(again.info.resumed)
        self.assertEqual(factory.stats().cache_lookups_late, 1)
        self.cache.answer_all()  # the late answer is counted, then ignored
        self.assertEqual(self.pauser.figures()["late_answers"], 1)
        self.assertEqual(factory.stats().full_handshakes, 2)

    def test_others_do_not_wait(self):
        """While one handshake waits, new clients complete at once."""
        factory = self.factory()
        client = TestClient(SSL.TLS1_2_VERSION, tickets=False)
        self.first(factory, client)
        waiting = handshake(factory, client, clock=self.clock)
        self.assertFalse(waiting.completed)
        for version in (SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION):
            other = handshake(factory, TestClient(version), clock=self.clock)
            self.assertTrue(other.completed)
        self.assertFalse(waiting.completed)
        self.cache.answer_all()
        waiting.flush()
        self.assertTrue(waiting.info.resumed)

    def test_circuit_breaker(self):
        """
        Three late lookups open the circuit: handshakes stop pausing (full
        at once) until the cool-down passes; one success closes it again.
        """
        factory = self.factory()
        client = TestClient(SSL.TLS1_2_VERSION, tickets=False)
        self.first(factory, client)
        session = client.session
        for _ in range(3):
            client.session = session
            late = handshake(factory, client, clock=self.clock)
            self.clock.advance(BUDGET)
            late.flush()
            self.assertTrue(late.completed)
        self.assertEqual(self.pauser.breaker.state, "open")
        self.cache.fail_all()  # the late ones' answers, ignored
        client.session = session
        skipped = handshake(factory, client, clock=self.clock)
        self.assertTrue(skipped.completed, "no pause while the circuit is open")
        self.assertEqual(self.pauser.figures()["skipped_down"], 1)
        self.assertEqual(self.lookups(), [])
        self.clock.advance(self.pauser.breaker.cooldown)
        client.session = session
        trial = handshake(factory, client, clock=self.clock)
        self.assertFalse(trial.completed)
        self.cache.answer_all()
        trial.flush()
        self.assertTrue(trial.completed)
        self.assertEqual(self.pauser.breaker.state, "closed")

    def test_unavailable_cache_not_waited_for(self):
        factory = self.factory()
        client = TestClient(SSL.TLS1_2_VERSION, tickets=False)
        self.first(factory, client)
        self.cache.available = lambda: False
        again = handshake(factory, client, clock=self.clock)
        self.assertTrue(again.completed)
        self.assertFalse(again.info.resumed)
        self.assertEqual(self.lookups(), [])

    def test_after_certificate_replaced(self):
        """
        A new certificate changes the service's namespace: lookups use the
        new one (the hooks' key prefix), and sessions still resume.
        """
        factory = self.factory()
        old_prefix = factory.hooks.key_prefix
        factory.replace_certificate(options("rsa"))
        self.assertNotEqual(factory.hooks.key_prefix, old_prefix)
        self.pauser = factory.hooks.pauser
        # (It resumes only if the lookup's key is the one get-session asks.)
        self.check_resumed_with(factory, SSL.TLS1_2_VERSION)

    def test_our_ticket_needs_no_lookup(self):
        """
        A TLS 1.2 client offering a ticket named by one of our keys (and a
        session ID) resumes by ticket without a lookup or a pause.
        """
        factory = self.factory(tickets=True)
        client = TestClient(SSL.TLS1_2_VERSION)
        self.first(factory, client)
        again = handshake(factory, client, clock=self.clock)
        self.assertTrue(again.completed)
        self.assertEqual(again.info.mechanism, "ticket_tls12")
        self.assertEqual(self.lookups(), [])
        self.assertEqual(self.pauser.figures()["paused"], 0)

    def test_tls13_ticket_needs_no_lookup(self):
        factory = self.factory(tickets=True)
        client = TestClient(SSL.TLS1_3_VERSION)
        self.first(factory, client)
        again = handshake(factory, client, clock=self.clock)
        self.assertTrue(again.completed)
        self.assertEqual(again.info.mechanism, "ticket_tls13")
        self.assertEqual(self.lookups(), [])

    def test_connection_lost_while_paused(self):
        factory = self.factory()
        client = TestClient(SSL.TLS1_2_VERSION, tickets=False)
        self.first(factory, client)
        again = handshake(factory, client, clock=self.clock)
        again.client.transport.abortConnection()
        again.flush()
        self.cache.answer_all()
        self.assertEqual(self.pauser.figures()["abandoned"], 1)
        self.assertEqual(factory.stats().callback_errors, 0)


class PSKIdentityTests(SynchronousTestCase):
    def test_parse(self):
        ext = (
            b"\x00\x2e"
            + b"\x00\x20"
            + b"I" * 32
            + b"\x00\x00\x00\x01"
            + b"\x00\x02"
            + b"AB"
            + b"\x00\x00\x00\x02"
            + b"\x00\x21\x20"
            + b"b" * 32
        )
        self.assertEqual(psk_identities(ext), (b"I" * 32, b"AB"))

    def test_malformed(self):
        for data in (
            b"",
            b"\x00",
            b"\xff\xff",
            b"\x00\x10\x00\x20abc",
            b"\x00\x06\x00\x00",
        ):
            self.assertIsInstance(psk_identities(data), tuple)
        self.assertEqual(psk_identities(b"\x00\x08\x00\x20" + b"x" * 4), ())
