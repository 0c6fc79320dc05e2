"""
End-to-end resumption over real loopback sockets, proven by clients nobody
here wrote: C{openssl s_client -sess_out/-sess_in} and Python's C{ssl} module.
What the handshake hooks count and how each kind of cache is used:
L{tests.server.test_hooks}.
"""

from __future__ import annotations

import os
import ssl

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from resumetls import (
    KeyRing,
    MemorySessionCache,
    ResumingContextFactory,
    ResumptionSettings,
    TicketKey,
)

from .. import support
from ..support import listen, open_ticket, options, python_client, s_client

if support.OPENSSL is None:  # pragma: no cover - .ci/run installs it
    raise SkipTest("the openssl command is needed (apt-get install openssl)")

# name: (settings, s_client flags, Python ssl version, client refuses tickets,
#        the mechanism the server must report)
MODES = {
    "tls12-session-id": (
        ResumptionSettings(tickets=False),
        ["-tls1_2", "-no_ticket"],
        ssl.TLSVersion.TLSv1_2,
        True,
        "session_id",
    ),
    "tls12-ticket": (
        ResumptionSettings(session_ids=False),
        ["-tls1_2"],
        ssl.TLSVersion.TLSv1_2,
        False,
        "ticket_tls12",
    ),
    "tls13-ticket": (
        ResumptionSettings(session_ids=False),
        ["-tls1_3"],
        ssl.TLSVersion.TLSv1_3,
        False,
        "ticket_tls13",
    ),
    "tls13-stateful": (
        ResumptionSettings(tickets=False),
        ["-tls1_3"],
        ssl.TLSVersion.TLSv1_3,
        False,
        "session_id",
    ),
}

COUNTER = {
    ("tls12-session-id"): "resumed_session_id",
    ("tls12-ticket"): "resumed_ticket_tls12",
    ("tls13-ticket"): "resumed_ticket_tls13",
    ("tls13-stateful"): "resumed_session_id",
}


def make_factory(settings, key_ring=None, cache=None, **kw):
    if key_ring is None:
        key_ring = KeyRing.from_keys(TicketKey.generate())
    if cache is None:
        cache = MemorySessionCache(clock=reactor)
    return ResumingContextFactory(
        options(**kw), settings, key_ring=key_ring, cache=cache
    )


def coroutine(f):
    def wrapper(self, *a, **kw):
        return ensureDeferred(f(self, *a, **kw))

    wrapper.__name__ = f.__name__
    return wrapper


class EveryModeMixin:
    """
    One test for each of the four L{MODES}; the class that mixes this in
    says in C{_mode(name)} how a client resumes in that mode.
    """

    @coroutine
    async def test_tls12_session_id(self):
        await self._mode("tls12-session-id")

    @coroutine
    async def test_tls12_ticket(self):
        await self._mode("tls12-ticket")

    @coroutine
    async def test_tls13_ticket(self):
        await self._mode("tls13-ticket")

    @coroutine
    async def test_tls13_stateful(self):
        await self._mode("tls13-stateful")


class OpenSSLClientTests(EveryModeMixin, TestCase):
    """
    C{openssl s_client -sess_out} then C{-sess_in} says C{Reused,} in all four
    modes, the server agrees on the mechanism, and the counters say so.
    """

    timeout = 60

    async def _mode(self, name):
        settings, flags, _, _, mechanism = MODES[name]
        factory = make_factory(settings)
        port, app = await listen(self, factory)
        sess = os.path.abspath(self.mktemp())
        first = await s_client(port, None, sess, *flags)
        self.assertFalse(first["reused"])
        self.assertEqual(first["server"]["resumed"], False)
        second = await s_client(port, sess, sess, *flags)
        self.assertTrue(second["reused"], second)
        self.assertEqual(second["server"]["mechanism"], mechanism)
        self.assertEqual(second["version"], first["version"])
        third = await s_client(port, sess, None, *flags)
        self.assertTrue(third["reused"])
        stats = factory.stats()
        self.assertEqual(stats.full_handshakes, 1)
        self.assertEqual(getattr(stats, COUNTER[name]), 2)
        self.assertEqual(stats.resumed, 2)
        self.assertEqual(stats.callback_errors, 0)
        if mechanism in ("ticket_tls12", "ticket_tls13"):
            # One ticket after the full handshake; TLS 1.2 keeps it (its key is
            # current), TLS 1.3 gets two, then one after each resumption.
            self.assertEqual(stats.tickets_issued, 1 if name == "tls12-ticket" else 4)
            self.assertEqual(stats.cache_hits, 0)
        else:
            self.assertEqual(stats.tickets_issued, 0)
            self.assertEqual(stats.cache_hits, 2)
        return factory

    @coroutine
    async def test_both_mechanisms_on(self):
        """
        With tickets and session IDs on (the default), a TLS 1.2 client that
        refuses tickets resumes by session ID and one that takes tickets by
        ticket.
        """
        factory = make_factory(ResumptionSettings())
        port, _ = await listen(self, factory)
        for flags, mechanism in (
            (["-tls1_2", "-no_ticket"], "session_id"),
            (["-tls1_2"], "ticket_tls12"),
            (["-tls1_3"], "ticket_tls13"),
        ):
            sess = os.path.abspath(self.mktemp())
            await s_client(port, None, sess, *flags)
            second = await s_client(port, sess, None, *flags)
            self.assertTrue(second["reused"], flags)
            self.assertEqual(second["server"]["mechanism"], mechanism)


class PythonSSLClientTests(EveryModeMixin, TestCase):
    """
    Python's C{ssl} module (C{session=}, C{session_reused}) resumes in all
    four modes.
    """

    timeout = 60

    async def _mode(self, name, clean=True, server_mode="close"):
        settings, _, version, no_ticket, mechanism = MODES[name]
        factory = make_factory(settings)
        port, app = await listen(self, factory, mode=server_mode)
        cafile, _ = support.write_pem(self.mktemp(), *support.certificate())
        ctx = support.python_context(version, no_ticket, cafile)
        first = await python_client(port, ctx, clean=clean)
        self.assertFalse(first["reused"])
        self.assertTrue(first["session"].id or first["session"].has_ticket)
        second = await python_client(port, ctx, first["session"], clean)
        self.assertTrue(second["reused"], name)
        self.assertEqual(len(app.infos), 2)
        self.assertEqual(app.infos[-1].resumed, True)
        self.assertEqual(app.infos[-1].mechanism, mechanism)
        self.assertEqual(factory.stats().full_handshakes, 1)
        self.assertEqual(getattr(factory.stats(), COUNTER[name]), 1)

    @coroutine
    async def test_unclean_client_close_tls12(self):
        """
        A client that drops TCP without close_notify still resumes by session
        ID (RFC 4346 7.2.1; nginx does the same; plain OpenSSL servers drop
        such sessions).
        """
        await self._mode("tls12-session-id", clean=False, server_mode="wait")

    @coroutine
    async def test_unclean_client_close_tls13_stateful(self):
        await self._mode("tls13-stateful", clean=False, server_mode="wait")

    @coroutine
    async def test_server_aborts(self):
        """
        When the server side aborts the connection (Twisted closes without a
        TLS shutdown), the session still resumes.
        """
        await self._mode("tls12-session-id", server_mode="abort")


class RotationTests(TestCase):
    """
    Tickets under an old key resume and are renewed under the new key; once
    the old key is dropped its tickets give full handshakes, and no error.
    """

    timeout = 60

    @coroutine
    async def test_rotation_tls12(self):
        a, b = TicketKey.generate(), TicketKey.generate()
        ring = KeyRing.from_keys(a, pending=[b])
        factory = make_factory(ResumptionSettings(session_ids=False), key_ring=ring)
        port, _ = await listen(self, factory)
        under_a = os.path.abspath(self.mktemp())
        await s_client(port, None, under_a, "-tls1_2")
        self.assertEqual(support.session_ticket(under_a)[:16], a.name)

        ring.rotate()  # b encrypts now, a is decrypt-only
        second = await s_client(port, under_a, None, "-tls1_2")
        self.assertTrue(second["reused"])
        self.assertEqual(second["server"]["mechanism"], "ticket_tls12")
        self.assertEqual(factory.stats().tickets_renewed, 1)
        # s_client does not write -sess_out after a resumed TLS 1.2
        # handshake; it prints the session it now holds: a ticket under b.
        renewed_ticket = second["tickets"][-1]
        self.assertEqual(renewed_ticket[:16], b.name)
        renewed = os.path.abspath(self.mktemp())
        support.rewrite_session(under_a, renewed, ticket=renewed_ticket)

        ring.replace(b)  # a is gone
        third = await s_client(port, under_a, None, "-tls1_2")
        self.assertFalse(third["reused"])
        self.assertEqual(factory.stats().tickets_rejected, 1)
        # The renewed ticket (under b) still resumes.
        fourth = await s_client(port, renewed, None, "-tls1_2")
        self.assertTrue(fourth["reused"])
        self.assertEqual(factory.stats().callback_errors, 0)

    @coroutine
    async def test_rotation_tls13(self):
        a, b = TicketKey.generate(), TicketKey.generate()
        ring = KeyRing.from_keys(a)
        factory = make_factory(ResumptionSettings(session_ids=False), key_ring=ring)
        port, _ = await listen(self, factory)
        under_a = os.path.abspath(self.mktemp())
        await s_client(port, None, under_a, "-tls1_3")
        ring.replace(b, decrypt_only=[a])
        second = await s_client(port, under_a, None, "-tls1_3")
        self.assertTrue(second["reused"])
        self.assertEqual(factory.stats().tickets_renewed, 1)
        # TLS 1.3 always sends a new ticket after resumption: under b.
        self.assertEqual(second["tickets"][-1][:16], b.name)
        ring.replace(b)
        third = await s_client(port, under_a, None, "-tls1_3")
        self.assertFalse(third["reused"])

    @coroutine
    async def test_nginx_sized_keys(self):
        """48-byte nginx keys (AES-128, 16-byte HMAC key) work too."""
        key = TicketKey(os.urandom(16), os.urandom(16), os.urandom(16))
        factory = make_factory(
            ResumptionSettings(session_ids=False), key_ring=KeyRing.from_keys(key)
        )
        port, _ = await listen(self, factory)
        sess = os.path.abspath(self.mktemp())
        await s_client(port, None, sess, "-tls1_2")
        self.assertTrue((await s_client(port, sess, None, "-tls1_2"))["reused"])


class BoundaryTests(TestCase):
    """Expiry, service separation, and fleets that share keys and caches."""

    timeout = 60

    @coroutine
    async def test_expired_ticket_and_session(self):
        for settings, flags in (
            (ResumptionSettings(session_ids=False, session_timeout=1), ["-tls1_2"]),
            (ResumptionSettings(tickets=False, session_timeout=1), ["-tls1_2"]),
            (ResumptionSettings(session_ids=False, session_timeout=1), ["-tls1_3"]),
            (ResumptionSettings(tickets=False, session_timeout=1), ["-tls1_3"]),
        ):
            factory = make_factory(settings)
            port, _ = await listen(self, factory)
            sess = os.path.abspath(self.mktemp())
            await s_client(port, None, sess, *flags)
            await deferLater(reactor, 2.2, lambda: None)
            again = await s_client(port, sess, None, *flags)
            self.assertFalse(again["reused"], (settings, flags))
            self.assertEqual(factory.stats().full_handshakes, 2)

    @coroutine
    async def test_other_service_does_not_resume(self):
        """
        Same certificate, same keys, same cache, another service name: the
        session does not resume; the same service name in another factory (a
        second process of a fleet) does.
        """
        ring = KeyRing.from_keys(TicketKey.generate())
        cache = MemorySessionCache(clock=reactor)
        for flags, settings in (
            (["-tls1_2", "-no_ticket"], {"tickets": False}),
            (["-tls1_2"], {"session_ids": False}),
            (["-tls1_3"], {"session_ids": False}),
            (["-tls1_3"], {"tickets": False}),  # TLS 1.3 stateful tickets
        ):
            x = make_factory(ResumptionSettings(service="x", **settings), ring, cache)
            y = make_factory(ResumptionSettings(service="y", **settings), ring, cache)
            x2 = make_factory(ResumptionSettings(service="x", **settings), ring, cache)
            port_x, _ = await listen(self, x)
            port_y, _ = await listen(self, y)
            port_x2, _ = await listen(self, x2)
            sess = os.path.abspath(self.mktemp())
            await s_client(port_x, None, sess, *flags)
            on_y = await s_client(port_y, sess, None, *flags)
            self.assertFalse(on_y["reused"], flags)
            on_x2 = await s_client(port_x2, sess, None, *flags)
            self.assertTrue(on_x2["reused"], flags)

    def test_session_id_context_depends_on_certificate(self):
        a = make_factory(ResumptionSettings(), kind="ec")
        b = make_factory(ResumptionSettings(), kind="rsa")
        c = make_factory(ResumptionSettings(service="other"), kind="ec")
        d = make_factory(ResumptionSettings(), kind="ec")
        self.assertNotEqual(a.session_id_context, b.session_id_context)
        self.assertNotEqual(a.session_id_context, c.session_id_context)
        self.assertEqual(a.session_id_context, d.session_id_context)
        self.assertEqual(len(a.session_id_context), 32)


class TicketTests(TestCase):
    """What our server puts in tickets, read by the client that got them."""

    timeout = 60

    @coroutine
    async def test_tls12_ticket_layout(self):
        """
        Each TLS 1.2 ticket is key name | a fresh random IV | AES-CBC of the
        session | HMAC-SHA256, and opens with our key (both key sizes).
        """
        for key in (
            TicketKey.generate(),
            TicketKey(os.urandom(16), os.urandom(16), os.urandom(16)),  # nginx 48 B
        ):
            factory = make_factory(
                ResumptionSettings(session_ids=False), key_ring=KeyRing.from_keys(key)
            )
            port, _ = await listen(self, factory)
            ivs = set()
            for _ in range(4):
                sess = os.path.abspath(self.mktemp())
                await s_client(port, None, sess, "-tls1_2")
                ticket = support.session_ticket(sess)
                self.assertEqual(ticket[:16], key.name)
                ivs.add(ticket[16:32])
                state = open_ticket(ticket, key)
                self.assertEqual(state[:1], b"\x30")  # a DER SSL_SESSION
            self.assertEqual(len(ivs), 4, "ticket IVs repeat")
            self.assertNotIn(bytes(16), ivs)

    async def _tickets(self, settings):
        """Tickets a TLS 1.3 client gets in one full handshake, and its session."""
        factory = make_factory(settings)
        port, _ = await listen(self, factory)
        sess = os.path.abspath(self.mktemp())
        output = await deferToThread(
            support._s_client, port, ["-tls1_3", "-sess_out", sess]
        )
        self.assertIn("New, TLSv1.3", output)
        arrived = output.count("Post-Handshake New Session Ticket arrived")
        stats = factory.stats()
        if not os.path.exists(sess):
            return arrived, False, stats  # s_client had no session to keep
        again = await s_client(port, sess, None, "-tls1_3")
        return arrived, again["reused"], stats

    @coroutine
    async def test_tls13_ticket_count(self):
        """
        C{tls13_tickets} is how many tickets a TLS 1.3 client gets after a
        full handshake, for stateless and stateful tickets; 0 means none,
        and no resumption.
        """
        for tickets in (True, False):
            for count in (1, 3):
                settings = ResumptionSettings(
                    tickets=tickets, session_ids=not tickets, tls13_tickets=count
                )
                arrived, reused, stats = await self._tickets(settings)
                self.assertEqual(arrived, count, (tickets, count))
                self.assertTrue(reused, (tickets, count))
                if tickets:
                    self.assertEqual(stats.tickets_issued, count)
                else:
                    self.assertEqual(stats.sessions_stored, count)
            settings = ResumptionSettings(
                tickets=tickets, session_ids=not tickets, tls13_tickets=0
            )
            arrived, reused, stats = await self._tickets(settings)
            self.assertEqual(arrived, 0, tickets)
            self.assertFalse(reused, tickets)
            self.assertEqual(stats.tickets_issued, 0)
            self.assertEqual(stats.sessions_stored, 0)


class ForgeryTests(TestCase):
    """
    Forged, truncated and random tickets and session IDs from the network give
    a full handshake; nothing escapes into the reactor (trial fails a test
    that logs an error) and the server goes on serving.  (Corrupt cache
    entries: L{tests.server.test_hooks}.)
    """

    timeout = 90

    @coroutine
    async def test_forged_tickets(self):
        key = TicketKey.generate()
        factory = make_factory(
            ResumptionSettings(session_ids=False), key_ring=KeyRing.from_keys(key)
        )
        port, _ = await listen(self, factory)
        for flags in (["-tls1_2"], ["-tls1_3"]):
            good = os.path.abspath(self.mktemp())
            await s_client(port, None, good, *flags)
            ticket = support.session_ticket(good)
            self.assertEqual(ticket[:16], key.name)
            forged = {
                "random": os.urandom(len(ticket)),
                "truncated": ticket[:40],
                "name-only": ticket[:16],
                "flipped-mac": ticket[:-1] + bytes([ticket[-1] ^ 1]),
                "flipped-body": ticket[:40] + bytes([ticket[40] ^ 0x80]) + ticket[41:],
                "huge": key.name + os.urandom(2000),
                "one-byte": b"\x00",
            }
            for label, bad in forged.items():
                path = os.path.abspath(self.mktemp())
                support.rewrite_session(good, path, ticket=bad)
                result = await s_client(port, path, None, *flags)
                self.assertFalse(result["reused"], (flags, label))
                self.assertEqual(result["server"]["resumed"], False)
            self.assertTrue((await s_client(port, good, None, *flags))["reused"])
        self.assertEqual(factory.stats().callback_errors, 0)
        self.assertEqual(factory.stats().tickets_rejected, 10)

    @coroutine
    async def test_forged_session_ids(self):
        """
        Random session IDs (TLS 1.2) and random stateful-ticket identities
        (TLS 1.3, where the ticket is the key into the cache).
        """
        factory = make_factory(ResumptionSettings(tickets=False))
        port, _ = await listen(self, factory)
        for flags, field in (
            (["-tls1_2", "-no_ticket"], "session_id"),
            (["-tls1_3"], "ticket"),
        ):
            good = os.path.abspath(self.mktemp())
            await s_client(port, None, good, *flags)
            for bad in (os.urandom(32), os.urandom(1), os.urandom(16), os.urandom(200)):
                if field == "session_id" and len(bad) > 32:
                    continue
                path = os.path.abspath(self.mktemp())
                support.rewrite_session(good, path, **{field: bad})
                result = await s_client(port, path, None, *flags)
                self.assertFalse(result["reused"], flags)
            self.assertTrue((await s_client(port, good, None, *flags))["reused"])
        stats = factory.stats()
        self.assertEqual(stats.callback_errors, 0)
        # Counted as cache misses: the three TLS 1.2 session IDs and the
        # 32-byte TLS 1.3 identity (OpenSSL looks up no other length).
        self.assertEqual(stats.cache_misses, 4)
        self.assertEqual(stats.tickets_rejected, 0)
