"""
Ticket keys and the key ring: sizes, reprs without secrets, roles, rotation by
the clock (including catching up after an idle spell), replacement, events.

Key files are tested in L{tests.keys.test_files}, the C{resumetls keys} command
in L{tests.cli.test_keytool}.
"""

from __future__ import annotations

import base64
import os

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from resumetls import ITicketKeys
from resumetls.keys.files import load_key_file, write_haproxy_keys
from resumetls.keys.ring import (
    KeyRing,
    KeyRingSummary,
    KeySet,
    RotationPolicy,
    TicketKey,
    TicketKeyError,
)


def secret_texts(key: TicketKey) -> list[str]:
    """Every way a key's secret halves could leak into text."""
    out = []
    for secret in (key.hmac_key, key.aes_key):
        out += [secret.hex(), repr(secret), base64.b64encode(secret).decode()]
    return out


class EventsMixin:
    def capture_events(self) -> list[dict]:
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    @staticmethod
    def named(events: list[dict], name: str) -> list[dict]:
        return [e for e in events if e.get("event") == name]


class TicketKeyTests(SynchronousTestCase):
    def test_generate(self):
        """Generated keys are 16/32/32 bytes (AES-256, HMAC-SHA256), random."""
        key = TicketKey.generate()
        self.assertEqual(
            (len(key.name), len(key.hmac_key), len(key.aes_key)), (16, 32, 32)
        )
        self.assertNotEqual(key, TicketKey.generate())
        self.assertEqual(key.bits, 256)

    def test_repr_has_no_secrets(self):
        """repr and str show a fingerprint of the name and sizes, no key bytes."""
        key = TicketKey.generate()
        ring = KeyRing.from_keys(key)
        text = repr(key) + str(key) + repr(KeySet(key)) + repr(ring)
        text += repr(ring.describe()) + repr(ring.describe().as_dict())
        for secret in secret_texts(key):
            self.assertNotIn(secret, text)
        self.assertEqual(repr(key), f"<TicketKey {key.fingerprint} AES-256 hmac=32B>")
        self.assertEqual(str(key), repr(key))

    def test_fingerprint(self):
        """The fingerprint is a short digest of the name: stable, not the name."""
        key = TicketKey(b"n" * 16, b"h" * 32, b"a" * 32)
        self.assertEqual(key.fingerprint, "c37981c132b7")  # sha256(name)[:12]
        self.assertEqual(len(key.fingerprint), 12)
        self.assertNotIn(key.name.hex()[:12], key.fingerprint)
        other = TicketKey(b"m" * 16, b"h" * 32, b"a" * 32)
        self.assertNotEqual(key.fingerprint, other.fingerprint)

    def test_sizes(self):
        """Wrong sizes are refused with a TicketKeyError naming the part."""
        e = self.assertRaises(
            TicketKeyError, TicketKey, b"n" * 15, b"h" * 32, b"a" * 32
        )
        self.assertEqual(str(e), "a ticket key's name must be 16 bytes, not 15")
        e = self.assertRaises(
            TicketKeyError, TicketKey, b"n" * 16, b"h" * 20, b"a" * 32
        )
        self.assertEqual(
            str(e), "a ticket key's hmac_key must be 16 or 32 bytes, not 20"
        )
        e = self.assertRaises(
            TicketKeyError, TicketKey, b"n" * 16, b"h" * 32, b"a" * 24
        )
        self.assertIn("aes_key must be 16 or 32 bytes, not 24", str(e))
        e = self.assertRaises(ValueError, TicketKey, b"n" * 16, b"h" * 32, "a" * 32)
        self.assertIn("not str", str(e))
        self.assertNotIn("aaaa", str(e))

    def test_aes128(self):
        """48-byte layouts (AES-128, 16-byte HMAC key) are valid keys."""
        key = TicketKey(os.urandom(16), os.urandom(16), os.urandom(16))
        self.assertEqual(key.bits, 128)
        self.assertIn("AES-128 hmac=16B", repr(key))


class RotationPolicyTests(SynchronousTestCase):
    def test_defaults(self):
        """12 hours, two old keys kept."""
        self.assertEqual(RotationPolicy(), RotationPolicy(interval=43200, keep=2))

    def test_validation(self):
        for bad in (0, -1, "12h", None, True):
            e = self.assertRaises(ValueError, RotationPolicy, interval=bad)
            self.assertIn(
                "rotation interval must be a positive number of seconds", str(e)
            )
        for bad in (-1, 1.5, "2", True):
            e = self.assertRaises(ValueError, RotationPolicy, keep=bad)
            self.assertIn("number of old keys kept must be 0 or more", str(e))
        self.assertEqual(RotationPolicy(interval=0.5, keep=0).keep, 0)

    def test_ring_needs_clock(self):
        e = self.assertRaises(
            ValueError, KeyRing, KeySet(TicketKey.generate()), None, RotationPolicy()
        )
        self.assertIn("needs a clock", str(e))


class KeyRingTests(EventsMixin, SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.events = self.capture_events()

    def test_interface(self):
        self.assertTrue(verifyObject(ITicketKeys, KeyRing.generate(self.clock)))
        self.assertTrue(
            verifyObject(ITicketKeys, KeyRing.from_keys(TicketKey.generate()))
        )

    def test_roles(self):
        """
        The encrypting and pending keys decrypt without renewal, decrypt-only
        keys with renewal, unknown names not at all.
        """
        a, b, c = (TicketKey.generate() for _ in range(3))
        ring = KeyRing.from_keys(a, decrypt_only=[b], pending=[c])
        self.assertIs(ring.encrypting_key(), a)
        self.assertEqual(ring.decrypting_key(a.name), (a, False))
        self.assertEqual(ring.decrypting_key(b.name), (b, True))
        self.assertEqual(ring.decrypting_key(c.name), (c, False))
        self.assertIsNone(ring.decrypting_key(os.urandom(16)))
        self.assertIsNone(ring.decrypting_key(b""))

    def test_no_policy_never_rotates(self):
        a = TicketKey.generate()
        ring = KeyRing.from_keys(a, clock=self.clock)
        self.clock.advance(10 * 365 * 86400)
        self.assertIs(ring.encrypting_key(), a)
        self.assertIsNone(ring.describe().next_rotation)

    def test_rotation_by_clock(self):
        """
        When the interval has passed, a new key encrypts, the old one is
        decrypt-only (renew), and after C{keep} more rotations it is gone.
        """
        ring = KeyRing.generate(self.clock, RotationPolicy(interval=100, keep=2))
        first = ring.encrypting_key()
        self.assertEqual(
            [
                e["fingerprint"]
                for e in self.named(self.events, "resumetls.key.generated")
            ],
            [first.fingerprint],
        )
        self.clock.advance(99)
        self.assertIs(ring.encrypting_key(), first)
        generation = ring.generation
        self.clock.advance(1)
        second = ring.encrypting_key()
        self.assertIsNot(second, first)
        self.assertGreater(ring.generation, generation)
        self.assertEqual(ring.decrypting_key(first.name), (first, True))
        self.assertEqual(ring.decrypting_key(second.name), (second, False))
        self.clock.advance(100)
        ring.encrypting_key()
        self.assertEqual(ring.decrypting_key(first.name), (first, True))
        self.clock.advance(100)
        ring.encrypting_key()
        self.assertIsNone(ring.decrypting_key(first.name))
        self.assertEqual(ring.describe().decrypt_only, 2)
        rotated = self.named(self.events, "resumetls.key.rotated")
        self.assertEqual(len(rotated), 3)
        self.assertEqual(rotated[0]["old"], first.fingerprint)
        self.assertEqual(rotated[0]["new"], second.fingerprint)
        generated = self.named(self.events, "resumetls.key.generated")
        self.assertEqual(len(generated), 4)
        self.assertEqual(generated[1]["fingerprint"], second.fingerprint)
        for event in self.events:
            for secret in secret_texts(first) + secret_texts(second):
                self.assertNotIn(secret, repr(event))

    def test_decrypting_key_rotates_too(self):
        """
        A resumption alone (no ticket issued) also notices that the interval
        passed: a ticket under the old key is then renewed.
        """
        a = TicketKey.generate()
        ring = KeyRing.from_keys(a, clock=self.clock, policy=RotationPolicy(10))
        self.assertEqual(ring.decrypting_key(a.name), (a, False))
        self.clock.advance(10)
        self.assertEqual(ring.decrypting_key(a.name), (a, True))
        self.assertIsNot(ring.encrypting_key(), a)

    def test_keep_zero(self):
        """With keep=0 the old key stops decrypting at once."""
        a = TicketKey.generate()
        ring = KeyRing.from_keys(
            a, clock=self.clock, policy=RotationPolicy(interval=5, keep=0)
        )
        self.clock.advance(5)
        self.assertIsNot(ring.encrypting_key(), a)
        self.assertIsNone(ring.decrypting_key(a.name))

    def test_catch_up_after_idle(self):
        """
        After an idle spell of several intervals, keys are as old as the
        schedule says: an old key is not accepted longer because nothing
        asked the ring meanwhile, and keys made for missed rotations (which
        never encrypted) are not kept.
        """
        a, b = TicketKey.generate(), TicketKey.generate()
        ring = KeyRing.from_keys(
            a,
            decrypt_only=[b],
            clock=self.clock,
            policy=RotationPolicy(interval=100, keep=2),
        )
        self.clock.advance(150)  # one rotation due: a decrypts only, b stays
        ring.encrypting_key()
        self.assertEqual(ring.decrypting_key(b.name), (b, True))
        self.assertEqual(ring.decrypting_key(a.name), (a, True))
        self.assertEqual(ring.describe().encrypting_age, 50)  # since t=100
        self.clock.advance(250)  # t=400: rotations due at 200, 300, 400
        current = ring.encrypting_key()
        self.assertIsNone(ring.decrypting_key(b.name))
        self.assertIsNone(ring.decrypting_key(a.name))
        summary = ring.describe()
        self.assertEqual(summary.decrypt_only, 0)  # fillers never encrypted
        self.assertEqual(summary.encrypting, current.fingerprint)
        self.assertEqual(summary.encrypting_age, 0)
        self.assertEqual(summary.next_rotation, 500)
        rotated = self.named(self.events, "resumetls.key.rotated")
        self.assertEqual([e["steps"] for e in rotated], [1, 3])

    def test_catch_up_keeps_recent(self):
        """Two intervals missed with keep=2: the last encrypting key stays."""
        a = TicketKey.generate()
        ring = KeyRing.from_keys(
            a, clock=self.clock, policy=RotationPolicy(interval=10, keep=2)
        )
        self.clock.advance(25)  # rotations due at 10 and 20
        ring.encrypting_key()
        self.assertEqual(ring.decrypting_key(a.name), (a, True))
        self.assertEqual(ring.describe().next_rotation, 30)

    def test_pending_becomes_encrypting(self):
        """Pending keys decrypt without renewal and encrypt at rotation."""
        a, b = TicketKey.generate(), TicketKey.generate()
        ring = KeyRing.from_keys(
            a, pending=[b], clock=self.clock, policy=RotationPolicy(interval=10)
        )
        self.assertEqual(ring.decrypting_key(b.name), (b, False))
        self.clock.advance(10)
        self.assertIs(ring.encrypting_key(), b)
        self.assertEqual(ring.decrypting_key(a.name), (a, True))
        self.assertEqual(ring.describe().pending, 0)
        self.assertEqual(self.named(self.events, "resumetls.key.generated"), [])

    def test_forced_rotate(self):
        """rotate() works without a policy and then drops no old key."""
        keys = [TicketKey.generate() for _ in range(4)]
        ring = KeyRing.from_keys(keys[0], decrypt_only=keys[1:3], pending=[keys[3]])
        generation = ring.generation
        self.assertIs(ring.rotate(), keys[3])
        self.assertEqual(ring.generation, generation + 1)
        self.assertEqual(ring.keys().decrypt_only, (keys[0], keys[1], keys[2]))
        new = ring.rotate()
        self.assertNotIn(new, keys)
        self.assertEqual(ring.describe().decrypt_only, 4)

    def test_forced_rotate_restarts_schedule(self):
        ring = KeyRing.generate(self.clock, RotationPolicy(interval=100))
        self.clock.advance(60)
        ring.rotate()
        self.assertEqual(ring.describe().next_rotation, 160)

    def test_replace(self):
        """replace() swaps every key at once and counts a generation."""
        a, b = TicketKey.generate(), TicketKey.generate()
        ring = KeyRing.from_keys(a)
        generation = ring.generation
        ring.replace(b, decrypt_only=[a])
        self.assertIs(ring.encrypting_key(), b)
        self.assertEqual(ring.decrypting_key(a.name), (a, True))
        ring.replace(KeySet(b))
        self.assertIsNone(ring.decrypting_key(a.name))
        self.assertEqual(ring.generation, generation + 2)

    def test_age_of_file_keys(self):
        """
        A ring read from a key file with a clock reports the encrypting key's
        age (the key age metric); a reload that keeps the encrypting key
        keeps its age, one that changes it starts again.
        """
        a, b = TicketKey.generate(), TicketKey.generate()
        ring = KeyRing.from_keyset(KeySet(a), clock=self.clock)
        self.clock.advance(30)
        self.assertEqual(ring.describe().encrypting_age, 30)
        ring.replace(KeySet(a, (b,)))
        self.clock.advance(10)
        self.assertEqual(ring.describe().encrypting_age, 40)
        ring.replace(KeySet(b, (a,)))
        self.clock.advance(5)
        self.assertEqual(ring.describe().encrypting_age, 5)
        self.assertIsNone(KeyRing.from_keyset(KeySet(a)).describe().encrypting_age)

    def test_replace_refused_keeps_keys(self):
        """Keys with a shared name are refused and the keys in use stay."""
        a, b = TicketKey.generate(), TicketKey.generate()
        ring = KeyRing.from_keys(a)
        generation = ring.generation
        e = self.assertRaises(TicketKeyError, ring.replace, b, decrypt_only=[b])
        self.assertIn("same name", str(e))
        self.assertIs(ring.encrypting_key(), a)
        self.assertEqual(ring.generation, generation)

    def test_duplicate_names(self):
        a = TicketKey.generate()
        e = self.assertRaises(TicketKeyError, KeyRing.from_keys, a, decrypt_only=[a])
        self.assertIn("same name", str(e))

    def test_describe(self):
        ring = KeyRing.generate(self.clock, RotationPolicy(interval=60))
        self.clock.advance(5)
        d = ring.describe()
        self.assertIsInstance(d, KeyRingSummary)
        self.assertEqual(d.encrypting, ring.encrypting_key().fingerprint)
        self.assertEqual(d.encrypting_age, 5)
        self.assertEqual(d.next_rotation, 60)
        self.assertEqual(
            d.as_dict(),
            {
                "encrypting": ring.encrypting_key().fingerprint,
                "encrypting_age": 5,
                "decrypt_only": 0,
                "pending": 0,
                "generation": ring.generation,
                "next_rotation": 60,
                "source": "memory",
            },
        )

    def test_describe_without_clock(self):
        d = KeyRing.from_keys(TicketKey.generate()).describe()
        self.assertIsNone(d.encrypting_age)
        self.assertIsNone(d.next_rotation)

    def test_from_keyset(self):
        keys = [TicketKey.generate() for _ in range(3)]
        p = os.path.abspath(self.mktemp())
        write_haproxy_keys(p, keys)
        ring = KeyRing.from_keyset(load_key_file(p))
        self.assertEqual(ring.encrypting_key(), keys[1])
        self.assertEqual(ring.decrypting_key(keys[0].name), (keys[0], True))
        self.assertEqual(ring.decrypting_key(keys[2].name), (keys[2], False))
        self.assertEqual(ring.describe().source, "file")
