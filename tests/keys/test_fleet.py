"""
Fleet ticket keys in a real C{redis-server}: every server learns a key as
pending before any encrypts with it, roles change on each server's clock,
racing servers make exactly one next key, keys are sealed at rest, a server
that starts while Redis is away runs on its own keys and joins later.
"""

from __future__ import annotations

from twisted.internet.defer import gatherResults
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from resumetls.keys.fleet import FleetSchedule
from resumetls.keys.redis import RedisKeySource
from resumetls.keys.ring import KeySet, RotationPolicy, TicketKey
from resumetls.keys.sources import KeySourceError, key_source_from_spec

from ..cache.test_redis import settle, spin
from ..support.redis import RedisServer

INTERVAL = 3600.0
POLICY = RotationPolicy(interval=INTERVAL, keep=2)
SEAL = bytes(range(32))


class FleetKeysTests(SynchronousTestCase):
    def setUp(self):
        self.redis = RedisServer(self)
        self.clock = Clock()
        self.clock.advance(1_800_000_000)

    def source(self, url=None, clock=None, key=SEAL) -> RedisKeySource:
        source = key_source_from_spec(
            url or self.redis.url, clock or self.clock, POLICY
        )
        source.store.seal_with(key)
        source.store.client.connect()
        self.addCleanup(lambda: settle(self, _stopped(source)))
        spin(lambda: source.store.client.available)
        return source

    def test_pending_before_active(self):
        a, b = self.source(), self.source()
        settle(self, a.sync())
        settle(self, b.sync())
        self.assertTrue(a.joined and b.joined)
        current = a.key_ring.encrypting_key()
        self.assertEqual(b.key_ring.encrypting_key().name, current.name)
        [pending] = [
            k
            for k in b.key_ring.schedule.keys
            if k.role(self.clock.seconds()) == "pending"
        ]
        # B knows the next key, and opens tickets under it, before A uses it.
        self.assertIsNotNone(b.key_ring.decrypting_key(pending.key.name))
        self.assertEqual(pending.active_from - self.clock.seconds(), INTERVAL)
        # Time passes with Redis untouched: both switch on their own clocks.
        self.clock.advance(INTERVAL)
        for source in (a, b):
            self.assertEqual(source.key_ring.encrypting_key().name, pending.key.name)
            # The old key's tickets still open, and are renewed.
            self.assertEqual(
                source.key_ring.decrypting_key(current.name), (current, True)
            )
        # The next sync publishes the following key, once.
        settle(self, gatherResults([a.sync(), b.sync()]))
        # Whichever lost the race reads the winner's key on its next sync
        # (or sooner, through pub/sub): one sync each, in turn.
        settle(self, a.sync())
        settle(self, b.sync())
        self.assertEqual(a.version, b.version)
        self.assertEqual(a.key_ring.schedule, b.key_ring.schedule)
        self.assertEqual(self.redis.command("GET", b"resumetls:k:version"), b"2")
        # Past keep * interval after it stopped encrypting, a key is gone.
        self.clock.advance(INTERVAL * 3 + 1)
        self.assertIsNone(a.key_ring.decrypting_key(current.name))

    def test_learned_by_pubsub(self):
        """
        A started source subscribes: a key another server publishes is
        known as pending within a second, though its poll (driven by a
        clock that never moves here) never runs.
        """
        import time

        a, b = self.source(), self.source()
        settle(self, a.sync())
        b.start()
        spin(lambda: b.joined and b.syncs == 1)  # subscribed, then read once
        self.assertEqual(b.poll, 5.0)
        now = self.clock.seconds()
        published = time.monotonic()
        rotated = settle(
            self, a.store.change(now, lambda s: s.rotated(now, 30, INTERVAL, 2))
        )
        [new] = [k for k in rotated.keys if k.role(now) == "pending"]
        spin(lambda: new in b.key_ring.schedule.keys, timeout=5)
        self.assertLess(time.monotonic() - published, 1.0)
        self.assertEqual(b.key_ring.schedule, rotated)
        self.assertEqual(b.fleet_status()["notices"], 1)
        self.assertEqual(b.version, 2)
        # B opens tickets under it before anyone encrypts with it.
        self.assertIsNotNone(b.key_ring.decrypting_key(new.key.name))
        [listed] = [
            k for k in b.fleet_status()["keys"] if k["fingerprint"] == new.key.fingerprint
        ]
        self.assertEqual((listed["role"], listed["active_from"]), ("pending", now + 30))

    def test_race(self):
        """Eight servers syncing at once make one ring, then one next key."""
        sources = [self.source() for _ in range(8)]
        settle(self, gatherResults([s.sync() for s in sources]))
        names = {s.key_ring.encrypting_key().name for s in sources}
        self.assertEqual(len(names), 1)
        self.assertEqual(self.redis.command("GET", b"resumetls:k:version"), b"1")
        self.clock.advance(INTERVAL)
        settle(self, gatherResults([s.sync() for s in sources]))
        settle(self, gatherResults([s.sync() for s in sources]))
        self.assertEqual(self.redis.command("GET", b"resumetls:k:version"), b"2")
        schedules = {s.key_ring.schedule for s in sources}
        self.assertEqual(len(schedules), 1)
        now = self.clock.seconds()
        roles = [k.role(now) for k in schedules.pop().keys]
        self.assertEqual(roles, ["decrypt_only", "active", "pending"])

    def test_sealed(self):
        a = self.source()
        settle(self, a.sync())
        stored = self.redis.all_bytes()
        for k in a.key_ring.schedule.keys:
            for secret in (k.key.aes_key, k.key.hmac_key):
                self.assertNotIn(secret, stored)
                self.assertNotIn(secret.hex().encode(), stored)
        self.assertNotIn(b"aes", stored)

    def test_foreign_sealing_key(self):
        """A server with another TLS key cannot read the ring: keys kept, said."""
        a = self.source()
        settle(self, a.sync())
        other = self.source(key=bytes(32))
        before = other.key_ring.encrypting_key()
        settle(self, other.sync())
        self.assertFalse(other.joined)
        self.assertEqual(other.failures, 1)
        self.assertEqual(other.key_ring.encrypting_key(), before)

    def test_starts_while_redis_is_down(self):
        self.redis.kill()
        source = key_source_from_spec(
            f"{self.redis.url}?timeout=0.2", self.clock, POLICY
        )
        source.store.seal_with(SEAL)
        source.store.client.connect()
        self.addCleanup(lambda: settle(self, _stopped(source)))
        settle(self, source.sync())
        self.assertFalse(source.joined)
        own = source.key_ring.encrypting_key()  # a ticket is issued with it
        self.assertEqual(source.key_ring.describe().source, "local")
        # One line says so (the client's, with what it means for the keys).
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        spin(lambda: any(e.get("event") == "resumetls.redis.down" for e in events))
        [down] = [e for e in events if e.get("event") == "resumetls.redis.down"]
        self.assertIn("ticket keys are this server's own", formatEvent(down))
        self.redis.start()
        spin(lambda: source.store.client.available, timeout=20)
        settle(self, source.sync())
        self.assertTrue(source.joined)
        self.assertNotEqual(source.key_ring.encrypting_key().name, own.name)
        # Its own key still opens the tickets it issued, renewed.
        self.assertEqual(source.key_ring.decrypting_key(own.name), (own, True))
        self.assertEqual(source.fleet_status()["roles"]["decrypt_only"], 1)

    def test_bad_specs(self):
        for spec, words in [
            ("redis://h/0?size=3", "unknown parameter size"),
            ("redis://h:port/0", "port must be a number"),
            ("redis+unix://h/x", "no host"),
        ]:
            e = self.assertRaises(KeySourceError, key_source_from_spec, spec, Clock())
            self.assertIn(words, str(e))


class ScheduleTests(SynchronousTestCase):
    def test_rotated_and_imported(self):
        now = 1000.0
        s = FleetSchedule().extended(now, INTERVAL, 2)
        active, pending = s.keys
        r = s.rotated(now, 30, INTERVAL, 2)
        self.assertEqual([k.role(now) for k in r.keys], ["active", "pending"])
        self.assertEqual(r.keys[1].key, pending.key)
        self.assertEqual(r.keys[1].active_from, now + 30)
        self.assertEqual(r.keys[0].encrypt_until, now + 30)
        extra = TicketKey.generate()
        imported = s.imported(
            now, 30, INTERVAL, 2, KeySet(extra, (TicketKey.generate(),))
        )
        roles = {k.key.name: k.role(now) for k in imported.keys}
        self.assertEqual(roles[extra.name], "pending")
        self.assertEqual(list(roles.values()).count("pending"), 1)
        self.assertEqual(FleetSchedule.decode(imported.encode()), imported)
        self.assertRaises(ValueError, FleetSchedule.decode, b"[{]")


def _stopped(source):
    from twisted.internet.defer import maybeDeferred

    return maybeDeferred(source.stop)
