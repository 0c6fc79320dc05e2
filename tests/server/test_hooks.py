"""
The handshake hooks (L{resumetls.server.hooks}): what OpenSSL's callbacks
call, what they count and record per connection, and how each kind of
session cache is used: one that answers at once inside the handshake, one
that answers with Deferreds (used when the answer has already fired, else a
counted full handshake), corrupt entries and failing backends; an object
that is no cache is refused.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from resumetls import (
    IHandshakeHooks,
    ISessionCache,
    KeyRing,
    MemorySessionCache,
    ResumingContextFactory,
    ResumptionSettings,
    TicketKey,
)
from resumetls.server.hooks import HandshakeHooks

from .. import support
from ..support import listen, s_client
from .test_resumption import coroutine, make_factory

if support.OPENSSL is None:  # pragma: no cover - .ci/run installs it
    raise SkipTest("the openssl command is needed (apt-get install openssl)")

TLS12, TLS13 = 0x0303, 0x0304


def capture_events(testcase):
    """The log events emitted while the test runs, as a list."""
    from twisted.logger import globalLogPublisher

    events = []
    globalLogPublisher.addObserver(events.append)
    testcase.addCleanup(globalLogPublisher.removeObserver, events.append)
    return events


def assert_event(testcase, events, name, secrets=()):
    """
    Exactly one event named C{name} (our stable C{event} field), and neither
    it nor its rendered text shows any of the C{secrets} (bytes), raw, hex or
    base64.
    """
    import base64

    from twisted.logger import formatEvent

    found = [e for e in events if e.get("event") == name]
    testcase.assertEqual(len(found), 1, [e.get("event") for e in events])
    shown = repr(found[0]) + formatEvent(found[0])
    for secret in secrets:
        for form in (repr(secret), secret.hex(), base64.b64encode(secret).decode()):
            testcase.assertNotIn(form, shown)
    return found[0]


class _Corrupt(MemorySessionCache):
    ENTRY = b"\x30\x03garbage"

    def lookup_now(self, session_id):
        return self.ENTRY


@implementer(ISessionCache)
class _Deferring:
    """
    A cache that answers only with Deferreds (it provides L{ISessionCache},
    not L{IImmediateSessionCache}): lookups fire at once (C{delay=0}), after
    C{delay} seconds, never (C{delay=None}), or fail.
    """

    def __init__(self, delay=0, fail=False):
        self.entries = {}
        self.delay = delay
        self.fail = fail

    def store(self, session_id, der, lifetime):
        self.entries[session_id] = der
        return succeed(None)

    def lookup(self, session_id):
        if self.fail:
            return fail(ConnectionRefusedError("cache backend is down"))
        if self.delay == 0:
            return succeed(self.entries.get(session_id))
        d = Deferred()
        if self.delay is not None:
            reactor.callLater(self.delay, d.callback, self.entries.get(session_id))
        return d

    def remove(self, session_id):
        self.entries.pop(session_id, None)
        return succeed(None)

    def stats(self):
        return None


class _NotACache:
    """Has the methods of a cache but declares no interface."""

    def lookup_now(self, session_id):
        return None

    def store_now(self, session_id, der, lifetime):
        pass


class CorruptEntryTests(TestCase):
    timeout = 60

    @coroutine
    async def test_corrupt_cache_entry(self):
        """A cache entry that is not a session: counted, full handshake."""
        events = capture_events(self)
        factory = make_factory(ResumptionSettings(tickets=False), cache=_Corrupt())
        port, _ = await listen(self, factory)
        sess = os.path.abspath(self.mktemp())
        await s_client(port, None, sess, "-tls1_2", "-no_ticket")
        result = await s_client(port, sess, None, "-tls1_2", "-no_ticket")
        self.assertFalse(result["reused"])
        self.assertEqual(factory.stats().cache_corrupt, 1)
        self.assertEqual(factory.stats().full_handshakes, 2)
        self.assertEqual(factory.stats().callback_errors, 0)
        assert_event(self, events, "resumetls.cache.corrupt", [_Corrupt.ENTRY])


class AsynchronousCacheTests(TestCase):
    """
    A cache that provides only L{ISessionCache} resumes when its Deferred has
    already fired; one that cannot answer within the handshake, or fails,
    costs the client a full handshake, counted; it never stalls or breaks it.
    """

    timeout = 60

    async def _twice(self, cache, flags=("-tls1_2", "-no_ticket")):
        factory = make_factory(ResumptionSettings(tickets=False), cache=cache)
        port, _ = await listen(self, factory)
        sess = os.path.abspath(self.mktemp())
        await s_client(port, None, sess, *flags)
        return factory, await s_client(port, sess, None, *flags)

    @coroutine
    async def test_fired_answer_resumes(self):
        """
        A Deferred-only cache whose lookup has fired by the time it returns
        resumes, by session ID in TLS 1.2 and by stateful ticket in TLS 1.3.
        """
        for flags in (("-tls1_3",), ("-tls1_2", "-no_ticket")):
            cache = _Deferring(delay=0)
            factory, result = await self._twice(cache, flags)
            self.assertTrue(result["reused"], flags)
            self.assertEqual(result["server"]["mechanism"], "session_id")
            stats = factory.stats()
            self.assertEqual(stats.resumed_session_id, 1, flags)
            self.assertEqual(stats.cache_hits, 1)
            self.assertEqual(stats.cache_lookups_late, 0)
            # Stored through store(): the full handshake's session (TLS 1.3: its
            # two stateful tickets, and the one sent after the resumption).
            self.assertEqual(len(cache.entries), 3 if flags == ("-tls1_3",) else 1)

    @coroutine
    async def test_late_answer(self):
        factory, result = await self._twice(_Deferring(delay=0.5))
        self.assertFalse(result["reused"])
        self.assertEqual(factory.stats().cache_lookups_late, 1)
        self.assertEqual(factory.stats().full_handshakes, 2)
        await deferLater(reactor, 0.6, lambda: None)

    @coroutine
    async def test_never_answers(self):
        """A lookup that never fires: counted as late, a full handshake."""
        cache = _Deferring(delay=None)
        factory, result = await self._twice(cache)
        self.assertFalse(result["reused"])
        self.assertEqual(result["server"]["resumed"], False)
        stats = factory.stats()
        self.assertEqual(stats.cache_lookups_late, 1)
        self.assertEqual(stats.full_handshakes, 2)
        self.assertEqual((stats.cache_hits, stats.cache_misses), (0, 0))
        self.assertEqual(stats.callback_errors, 0)

    @coroutine
    async def test_backend_down(self):
        events = capture_events(self)
        cache = _Deferring(fail=True)
        factory, result = await self._twice(cache)
        self.assertFalse(result["reused"])
        self.assertEqual(result["server"]["resumed"], False)
        self.assertEqual(factory.stats().cache_errors, 1)
        self.assertEqual(factory.stats().cache_lookups_late, 0)
        self.assertEqual(len(cache.entries), 2)  # both full handshakes' sessions
        event = assert_event(
            self, events, "resumetls.cache.error", list(cache.entries.values())
        )
        self.assertEqual(event["what"], "lookup")
        self.assertIn("cache backend is down", event["error"])


class CacheInterfaceTests(SynchronousTestCase):
    """The server tells the kind of cache by the interface it provides."""

    def test_neither_interface_refused(self):
        """
        An object that provides neither cache interface (even with the
        methods) is refused, with a TypeError that names both interfaces.
        """
        options = support.options()
        e = self.assertRaises(
            TypeError,
            ResumingContextFactory,
            options,
            ResumptionSettings(),
            key_ring=KeyRing.from_keys(TicketKey.generate()),
            cache=_NotACache(),
        )
        self.assertIn("_NotACache", str(e))
        self.assertIn("resumetls.interfaces.IImmediateSessionCache", str(e))
        self.assertIn("resumetls.interfaces.ISessionCache", str(e))
        # Refused before the options were touched: they still serve.
        self.assertFalse(options.enableSessionTickets)

    def test_kinds(self):
        """Immediate for the memory cache; Deferred-only otherwise."""
        immediate = make_factory(ResumptionSettings()).hooks
        deferring = make_factory(ResumptionSettings(), cache=_Deferring()).hooks
        self.assertTrue(immediate._immediate)
        self.assertFalse(deferring._immediate)


class HooksTests(SynchronousTestCase):
    """The hooks on their own, called the way OpenSSL's callbacks call them."""

    def setUp(self):
        self.key = TicketKey.generate()
        self.cache = MemorySessionCache(clock=reactor)
        self.hooks = HandshakeHooks(
            ResumptionSettings(),
            KeyRing.from_keys(self.key),
            self.cache,
            key_prefix=b"p" * 16,
        )

    def test_provides(self):
        """The factory hands OpenSSL a declared L{IHandshakeHooks}."""
        self.assertTrue(verifyObject(IHandshakeHooks, self.hooks))
        factory = make_factory(ResumptionSettings())
        self.assertTrue(verifyObject(IHandshakeHooks, factory.hooks))
        self.assertIs(factory.hooks.cache, factory.cache)
        self.assertIs(factory.hooks.key_ring, factory.key_ring)

    def test_mechanisms(self):
        """
        Each kind of resumption is recorded on the connection under one
        name, the same as the metrics' C{kind} label, and counted once.
        """
        conns = {}
        for name, version in (("ticket_tls12", TLS12), ("ticket_tls13", TLS13)):
            conn = conns[name] = SimpleNamespace()
            self.assertIsNotNone(self.hooks.ticket_decrypt(conn, self.key.name))
            self.hooks.handshake_done(conn, True, version)
        conn = conns["session_id"] = SimpleNamespace()
        self.hooks.session_new(conn, b"i" * 32, b"der", 60, TLS12)
        self.assertEqual(self.hooks.session_get(conn, b"i" * 32), b"der")
        self.hooks.handshake_done(conn, True, TLS12)
        conn = conns["unknown"] = SimpleNamespace()
        self.hooks.handshake_done(conn, True, TLS13)
        self.hooks.handshake_done(conn, True, TLS13)  # TLS 1.3 says it twice
        for name, conn in conns.items():
            self.assertEqual(conn._resumetls_state.mechanism, name)
        stats = self.hooks.stats()
        self.assertEqual(
            (
                stats.resumed_ticket_tls12,
                stats.resumed_ticket_tls13,
                stats.resumed_session_id,
                stats.resumed_unknown,
                stats.full_handshakes,
            ),
            (1, 1, 1, 1, 0),
        )
        self.assertEqual(self.cache.lookup_now(b"p" * 16 + b"i" * 32), b"der")

    def test_full_handshake_after_named_ticket(self):
        """A ticket that named our key but did not resume: rejected, full."""
        conn = SimpleNamespace()
        self.hooks.ticket_decrypt(conn, self.key.name)
        self.hooks.handshake_done(conn, False, TLS13)
        stats = self.hooks.stats()
        self.assertEqual((stats.full_handshakes, stats.tickets_rejected), (1, 1))
        self.assertIsNone(conn._resumetls_state.mechanism)

    def test_tls13_stateless_sessions_not_stored(self):
        """With tickets on, TLS 1.3 sessions travel in tickets, not the cache."""
        self.hooks.session_new(None, b"i" * 32, b"der", 60, TLS13)
        self.assertEqual(self.hooks.stats().sessions_stored, 0)
        self.assertEqual(self.cache.stats().entries, 0)

    def test_lifetime_capped(self):
        """A session is stored for at most the service's session timeout."""
        hooks = HandshakeHooks(
            ResumptionSettings(session_timeout=5), None, self.cache, b"q" * 16
        )
        stored = []
        self.patch(self.cache, "store_now", lambda *a: stored.append(a))
        hooks.session_new(None, b"i" * 32, b"der", 7200, TLS12)
        self.assertEqual(stored, [(b"q" * 16 + b"i" * 32, b"der", 5)])

    def test_session_found(self):
        """
        C{session_found} hears of each session a lookup found, with the
        connection and the namespaced cache key; never of a miss.
        """
        found = []
        self.hooks.session_found = lambda conn, key: found.append((conn, key))
        conn = SimpleNamespace()
        self.assertIsNone(self.hooks.session_get(conn, b"m" * 32))
        self.assertEqual(found, [])
        self.hooks.session_new(conn, b"i" * 32, b"der", 60, TLS12)
        self.assertEqual(self.hooks.session_get(conn, b"i" * 32), b"der")
        self.assertEqual(found, [(conn, b"p" * 16 + b"i" * 32)])
