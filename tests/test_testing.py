"""
The public test helpers, L{resumetls.testing}: the in-memory handshake pump
resumes for real, the fixed keys are fixed, the cache doubles behave as
documented, and the contract mixins pass good implementations and fail bad
ones.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, LoopingCall
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.trial.reporter import TestResult
from twisted.trial.runner import TestLoader
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from resumetls import (
    IImmediateSessionCache,
    IKeySource,
    ISessionCache,
    KeyRing,
    KeySet,
    MemorySessionCache,
    ResumingContextFactory,
    ResumptionSettings,
    RotationPolicy,
)
from resumetls.server.protocol import ResumingTLSProtocol
from resumetls.testing.cache_contract import SessionCacheContractMixin
from resumetls.testing.caches import (
    BreakableSessionCache,
    CorruptSessionCache,
    FailingSessionCache,
    SessionCacheDown,
    SlowSessionCache,
)
from resumetls.testing.keys import (
    StaticKeySource,
    fixed_key,
    fixed_key_ring,
    fixed_key_set,
)
from resumetls.testing.keysource_contract import KeySourceContractMixin
from resumetls.testing.pump import TestClient, handshake

from .support.certificates import options

_log = Logger(namespace="resumetls")


def server(settings=None, cache=None, key_ring=None):
    return ResumingContextFactory(
        options(),
        settings if settings is not None else ResumptionSettings(),
        key_ring=key_ring if key_ring is not None else fixed_key_ring(),
        cache=cache if cache is not None else MemorySessionCache(clock=Clock()),
    )


def failures_of(case_class):
    """Run a test case class; the names of the tests that failed or erred."""
    result = TestResult()
    TestLoader().loadClass(case_class).run(result)
    names = [t.id().rsplit(".", 1)[-1] for t, _ in result.failures + result.errors]
    return sorted(names), result


class PumpTests(SynchronousTestCase):
    def test_tls13_ticket_resumes(self):
        """The second connection of a client resumes by TLS 1.3 ticket."""
        factory = server(ResumptionSettings(session_ids=False))
        client = TestClient(SSL.TLS1_3_VERSION)
        first = handshake(factory, client)
        self.assertTrue(first.completed)
        self.assertEqual(first.received, b"ok")
        self.assertFalse(first.info.resumed)
        self.assertIsNotNone(client.session)
        again = handshake(factory, client)
        self.assertTrue(again.completed)
        self.assertEqual(again.received, b"ok")
        self.assertTrue(again.info.resumed)
        self.assertEqual(again.info.mechanism, "ticket_tls13")
        stats = factory.stats()
        self.assertEqual((stats.full_handshakes, stats.resumed_ticket_tls13), (1, 1))

    def test_listener_layer(self):
        """
        With C{listener_layer}, the server side is a resumetls listener's
        TLS layer; handshakes complete and resume the same way.
        """
        factory = server(ResumptionSettings(session_ids=False))
        client = TestClient(SSL.TLS1_2_VERSION)
        first = handshake(factory, client, listener_layer=True)
        again = handshake(factory, client, listener_layer=True)
        self.assertIsInstance(first.server, ResumingTLSProtocol)
        self.assertEqual((first.received, again.received), (b"ok", b"ok"))
        self.assertEqual(again.info.mechanism, "ticket_tls12")
        self.assertIsInstance(handshake(factory).server, TLSMemoryBIOProtocol)

    def test_tls12_session_id_resumes(self):
        """Without tickets, TLS 1.2 resumes by session ID from the cache."""
        cache = MemorySessionCache(clock=Clock())
        factory = server(ResumptionSettings(tickets=False), cache=cache)
        client = TestClient(SSL.TLS1_2_VERSION, tickets=False)
        handshake(factory, client)
        again = handshake(factory, client)
        self.assertTrue(again.info.resumed)
        self.assertEqual(again.info.mechanism, "session_id")
        self.assertEqual(factory.stats().resumed_session_id, 1)
        self.assertEqual((cache.stats().stores, cache.stats().hits), (1, 1))

    def test_new_client_full_handshake(self):
        """A client with no session to offer gets a full handshake."""
        factory = server()
        handshake(factory, TestClient(SSL.TLS1_3_VERSION))
        other = handshake(factory, TestClient(SSL.TLS1_3_VERSION))
        self.assertTrue(other.completed)
        self.assertFalse(other.info.resumed)
        self.assertEqual(factory.stats().full_handshakes, 2)

    def test_failed_handshake_not_completed(self):
        """A handshake that cannot succeed leaves C{completed} false."""
        factory = server(ResumptionSettings())
        client = TestClient(SSL.TLS1_1_VERSION)
        result = handshake(factory, client)
        self.assertFalse(result.completed)
        self.assertEqual(result.received, b"")
        self.flushLoggedErrors()

    def test_clock_used(self):
        """Both ends use the clock given; a session outlives it no longer."""
        clock = Clock()
        cache = MemorySessionCache(clock=clock)
        factory = server(
            ResumptionSettings(tickets=False, session_timeout=60), cache=cache
        )
        client = TestClient(SSL.TLS1_2_VERSION, tickets=False)
        first = handshake(factory, client, clock=clock)
        self.assertIs(first.clock, clock)
        clock.advance(61)
        again = handshake(factory, client, clock=clock)
        self.assertTrue(again.completed)
        self.assertFalse(again.info.resumed)


class FixedKeyTests(SynchronousTestCase):
    def test_same_every_run(self):
        """The keys are pinned: the same name in every run, on every machine."""
        self.assertEqual(fixed_key(0).name.hex(), "c4f7ec820a5f5a03b40632ed4cb454fe")
        self.assertEqual(fixed_key(0), fixed_key(0))
        names = {fixed_key(i).name for i in range(10)}
        secrets = {fixed_key(i).aes_key for i in range(10)}
        self.assertEqual((len(names), len(secrets)), (10, 10))
        self.assertNotEqual(fixed_key(0).aes_key, fixed_key(0).hmac_key)
        self.assertEqual(fixed_key(0).bits, 256)

    def test_ring_roles(self):
        """Key 0 encrypts, then the decrypt-only keys, then the pending ones."""
        ring = fixed_key_ring(decrypt_only=2, pending=1)
        self.assertEqual(ring.encrypting_key(), fixed_key(0))
        self.assertEqual(ring.decrypting_key(fixed_key(2).name), (fixed_key(2), True))
        self.assertEqual(ring.decrypting_key(fixed_key(3).name), (fixed_key(3), False))
        self.assertIsNone(ring.decrypting_key(fixed_key(4).name))
        self.assertEqual(
            fixed_key_set(1, 1).all, (fixed_key(0), fixed_key(1), fixed_key(2))
        )

    def test_ring_rotates_on_clock(self):
        """With a policy, the first pending key encrypts after one interval."""
        clock = Clock()
        ring = fixed_key_ring(pending=1, clock=clock, policy=RotationPolicy(100, 1))
        clock.advance(100)
        self.assertEqual(ring.encrypting_key(), fixed_key(1))
        self.assertEqual(ring.decrypting_key(fixed_key(0).name), (fixed_key(0), True))

    def test_servers_share_tickets(self):
        """Two servers on the fixed keys open each other's tickets."""
        client = TestClient(SSL.TLS1_3_VERSION)
        settings = ResumptionSettings(session_ids=False)
        handshake(server(settings), client)
        other = server(settings)
        self.assertTrue(handshake(other, client).info.resumed)
        stranger = server(settings, key_ring=KeyRing.from_keys(fixed_key(9)))
        self.assertFalse(handshake(stranger, client).info.resumed)


class StaticKeySourceContractTests(KeySourceContractMixin, SynchronousTestCase):
    def make_source(self, clock):
        return StaticKeySource()


class StaticKeySourceTests(SynchronousTestCase):
    def test_counts(self):
        source = StaticKeySource()
        source.start()
        self.assertFalse(source.reload("SIGHUP"))
        source.stop()
        self.assertEqual((source.starts, source.stops), (1, 1))
        self.assertEqual(source.reloads, ["SIGHUP"])
        self.assertIn(fixed_key(0).fingerprint, source.describe())


# -- a reloading key source, good and bad, to test the key source mixin ---------


@implementer(IKeySource)
class _PolledSource:
    """Keys read from C{store} (None: unreadable), polled every 10 seconds."""

    def __init__(self, clock):
        self.store = fixed_key_set()
        self.key_ring = KeyRing(self.store, source="test")
        self._loop = LoopingCall(self.reload, "poll")
        self._loop.clock = clock

    def start(self):
        if not self._loop.running:
            self._loop.start(10, now=False)

    def stop(self):
        if self._loop.running:
            self._loop.stop()

    def reload(self, why):
        if self.store is None:
            _log.error("refused: unreadable", event="resumetls.keys.reload_refused")
            return False
        if self.store == self.key_ring.keys():
            return False
        self.key_ring.replace(self.store)
        return True

    def describe(self):
        return f"test store: {self.key_ring.encrypting_key().fingerprint} encrypts"


class _PolledContract(KeySourceContractMixin):
    def make_source(self, clock):
        return self.source_class(clock)

    def change_source(self, source):
        source.store = KeySet(fixed_key(5))

    def break_source(self, source):
        source.store = None


class PolledSourceContractTests(_PolledContract, SynchronousTestCase):
    source_class = _PolledSource


class _LeakySource(_PolledSource):
    def describe(self):
        return f"key {self.key_ring.encrypting_key().aes_key.hex()}"


class _TimerLeftBehind(_PolledSource):
    def stop(self):
        pass


class _DropsKeysWhenBroken(_PolledSource):
    def reload(self, why):
        if self.store is None:
            self.key_ring.replace(fixed_key(7))
            return False
        return super().reload(why)


class KeySourceMixinCatchesTests(SynchronousTestCase):
    """The key source contract fails sources that break it."""

    def check(self, source_class, expected):
        case = type("Case", (_PolledContract, SynchronousTestCase), {})
        case.source_class = source_class
        failed, _ = failures_of(case)
        self.assertEqual(failed, expected)

    def test_key_material_in_describe(self):
        self.check(_LeakySource, ["test_describe"])

    def test_timer_left_running(self):
        self.check(_TimerLeftBehind, ["test_stop_undoes_start"])

    def test_keys_dropped(self):
        self.check(_DropsKeysWhenBroken, ["test_reload_refused_keeps_keys"])

    def test_hooked_tests_only_with_hooks(self):
        """Tests that need a hook exist only in classes that define it."""
        names = TestLoader().getTestCaseNames(StaticKeySourceContractTests)
        self.assertNotIn("_reload_changed", names)
        self.assertIn("_reload_unchanged", names)
        names = TestLoader().getTestCaseNames(PolledSourceContractTests)
        self.assertIn("_reload_changed", names)
        self.assertIn("_reload_refused_keeps_keys", names)


# -- cache doubles ---------------------------------------------------------------


class SlowSessionCacheTests(SynchronousTestCase):
    def test_answers_when_told(self):
        cache = SlowSessionCache()
        self.assertFalse(IImmediateSessionCache.providedBy(cache))
        self.assertTrue(verifyObject(ISessionCache, cache))
        stored = cache.store(b"id", b"der", 60)
        found = cache.lookup(b"id")
        self.assertNoResult(stored)
        self.assertEqual(cache.pending, [("store", b"id"), ("lookup", b"id")])
        cache.answer_next()
        self.assertIsNone(self.successResultOf(stored))
        self.assertNoResult(found)
        self.assertEqual(cache.answer_all(), 1)
        self.assertEqual(self.successResultOf(found), b"der")
        self.assertEqual(cache.stats().backend, "slow")

    def test_fail_all(self):
        cache = SlowSessionCache()
        d = cache.lookup(b"id")
        self.assertEqual(cache.fail_all(), 1)
        self.failureResultOf(d, SessionCacheDown)
        self.assertEqual(cache.stats().errors, 1)
        self.assertEqual(cache.pending, [])

    def test_server_never_stalls(self):
        """
        A server on a slow cache completes every handshake once the cache
        has answered, and asks the cache for the offered session.
        """
        cache = SlowSessionCache()
        factory = server(ResumptionSettings(tickets=False), cache=cache)
        client = TestClient(SSL.TLS1_2_VERSION, tickets=False)
        first = handshake(factory, client)
        self.assertTrue(first.completed)
        self.assertEqual([name for name, _ in cache.pending], ["store"])
        cache.answer_all()
        again = handshake(factory, client)
        self.assertEqual(cache.pending[0], ("lookup", cache.pending[0][1]))
        cache.answer_all()
        again.flush()
        self.assertTrue(again.completed)
        self.assertEqual(again.received, b"ok")


class SlowSessionCacheContractTests(SessionCacheContractMixin, SynchronousTestCase):
    """Answered when asked, the slow cache honours the contract."""

    def setUp(self):
        self.made = []

    def make_cache(self, clock, max_entries):
        cache = SlowSessionCache(clock, max_entries)
        self.made.append(cache)
        return cache

    def settle(self, d, clock):
        for cache in self.made:
            cache.answer_all()
        return self.successResultOf(d)


class FailingSessionCacheTests(SynchronousTestCase):
    def test_every_operation_fails(self):
        cache = FailingSessionCache()
        self.failureResultOf(cache.store(b"id", b"der", 60), SessionCacheDown)
        self.failureResultOf(cache.lookup(b"id"), SessionCacheDown)
        self.failureResultOf(cache.remove(b"id"), SessionCacheDown)
        stats = cache.stats()
        self.assertEqual((stats.errors, stats.misses, stats.backend), (3, 1, "failing"))

    def test_server_serves(self):
        """A server whose cache fails still serves, with full handshakes."""
        factory = server(ResumptionSettings(tickets=False), cache=FailingSessionCache())
        client = TestClient(SSL.TLS1_2_VERSION, tickets=False)
        for _ in range(2):
            result = handshake(factory, client)
            self.assertTrue(result.completed)
            self.assertFalse(result.info.resumed)
        # two stores (both handshakes were full) and a lookup failed
        self.assertEqual(factory.stats().cache_errors, 3)


class CorruptSessionCacheTests(SynchronousTestCase):
    def test_garbage_for_hits(self):
        cache = CorruptSessionCache()
        cache.store_now(b"id", b"der", 60)
        self.assertEqual(cache.lookup_now(b"id"), cache.garbage)
        self.assertEqual(self.successResultOf(cache.lookup(b"id")), cache.garbage)
        self.assertIsNone(cache.lookup_now(b"other"))

    def test_server_counts_corrupt(self):
        factory = server(ResumptionSettings(tickets=False), cache=CorruptSessionCache())
        client = TestClient(SSL.TLS1_2_VERSION, tickets=False)
        handshake(factory, client)
        again = handshake(factory, client)
        self.assertTrue(again.completed)
        self.assertFalse(again.info.resumed)
        self.assertEqual(factory.stats().cache_corrupt, 1)


class BreakableSessionCacheContractTests(
    SessionCacheContractMixin, SynchronousTestCase
):
    """The breakable cache honours the contract, failures included."""

    def make_cache(self, clock, max_entries):
        return BreakableSessionCache(clock, max_entries)

    def corrupt_entry(self, cache, session_id):
        cache.corrupt(session_id)

    def break_cache(self, cache):
        cache.break_backend()


class BreakableSessionCacheTests(SynchronousTestCase):
    def test_repair(self):
        cache = BreakableSessionCache()
        cache.store_now(b"id", b"der", 60)
        cache.break_backend()
        self.assertIsNone(cache.lookup_now(b"id"))
        cache.repair()
        self.assertEqual(cache.lookup_now(b"id"), b"der")
        self.assertEqual(cache.stats().errors, 1)


# -- caches that break the contract, to test the cache mixin ----------------------


class _RaisesWhenBroken(BreakableSessionCache):
    def lookup_now(self, session_id):
        if self.broken:
            raise SessionCacheDown("down")
        return super().lookup_now(session_id)


class _OldestFirst(MemorySessionCache):
    """Evicts in store order: a hit does not make an entry recent."""

    def lookup_now(self, session_id):
        found = super().lookup_now(session_id)
        if found is not None:
            self._entries.move_to_end(session_id, last=False)
        return found


class _LateDeferreds(MemorySessionCache):
    def lookup(self, session_id):
        return Deferred()


class CacheMixinCatchesTests(SynchronousTestCase):
    """The session cache contract fails caches that break it."""

    def check(self, cache_class, expected, **hooks):
        def make_cache(self, clock, max_entries):
            return cache_class(max_entries=max_entries, clock=clock)

        attributes = {"make_cache": make_cache, **hooks}
        case = type(
            "Case", (SessionCacheContractMixin, SynchronousTestCase), attributes
        )
        failed, _ = failures_of(case)
        self.assertEqual(failed, expected)

    def test_raises_when_broken(self):
        self.check(
            lambda max_entries, clock: _RaisesWhenBroken(clock, max_entries),
            ["test_failures_are_misses"],
            break_cache=lambda self, cache: cache.break_backend(),
        )

    def test_not_lru(self):
        self.check(_OldestFirst, ["test_least_recently_used_goes"])

    def test_oldest_first_may_say_so(self):
        self.check(_OldestFirst, [], evicts_least_recently_used=False)

    def test_deferred_never_fires(self):
        """Lookups whose Deferred never fires fail every test that looks up."""
        case = type(
            "Case",
            (SessionCacheContractMixin, SynchronousTestCase),
            {"make_cache": lambda self, clock, n: _LateDeferreds(n, clock)},
        )
        failed, _ = failures_of(case)
        for name in ("test_store_lookup_remove", "test_expiry", "test_size_bound"):
            self.assertIn(name, failed)
        for name in ("test_interfaces", "test_stats_value"):
            self.assertNotIn(name, failed)
