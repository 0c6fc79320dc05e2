"""
Ticket keys, the key ring's rotation, key files in nginx's and HAProxy's
formats, and the C{resumetls keys} command.
"""

from __future__ import annotations

import base64
import io
import os
import sys

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from resumetls import _keytool
from resumetls._keyfiles import (
    KeyFileError,
    load_haproxy_keys,
    load_key_file,
    load_nginx_keys,
    write_haproxy_keys,
    write_nginx_key,
)
from resumetls._keys import KeyRing, KeySet, RotationPolicy, TicketKey
from resumetls.interfaces import ITicketKeys


def secret_texts(key: TicketKey) -> list[str]:
    out = []
    for secret in (key.hmac_key, key.aes_key):
        out += [secret.hex(), repr(secret), base64.b64encode(secret).decode()]
    return out


class TicketKeyTests(SynchronousTestCase):
    def test_generate(self):
        key = TicketKey.generate()
        self.assertEqual(
            (len(key.name), len(key.hmac_key), len(key.aes_key)), (16, 32, 32)
        )
        self.assertNotEqual(key, TicketKey.generate())
        self.assertEqual(key.bits, 256)

    def test_repr_has_no_secrets(self):
        key = TicketKey.generate()
        text = repr(key) + str(key) + repr(KeySet(key)) + repr(KeyRing.from_keys(key))
        for secret in secret_texts(key):
            self.assertNotIn(secret, text)
        self.assertIn(key.fingerprint, repr(key))

    def test_sizes(self):
        e = self.assertRaises(ValueError, TicketKey, b"n" * 15, b"h" * 32, b"a" * 32)
        self.assertEqual(str(e), "a ticket key's name must be 16 bytes, not 15")
        e = self.assertRaises(ValueError, TicketKey, b"n" * 16, b"h" * 20, b"a" * 32)
        self.assertIn("hmac_key must be 16 or 32 bytes, not 20", str(e))
        self.assertRaises(ValueError, TicketKey, b"n" * 16, b"h" * 32, "a" * 32)


class KeyRingTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def named(self, name):
        return [e for e in self.events if e.get("event") == name]

    def test_interface(self):
        self.assertTrue(verifyObject(ITicketKeys, KeyRing.generate(self.clock)))

    def test_roles(self):
        a, b, c = (TicketKey.generate() for _ in range(3))
        ring = KeyRing.from_keys(a, decrypt_only=[b], pending=[c])
        self.assertIs(ring.encrypting_key(), a)
        self.assertEqual(ring.decrypting_key(a.name), (a, False))
        self.assertEqual(ring.decrypting_key(b.name), (b, True))
        self.assertEqual(ring.decrypting_key(c.name), (c, False))
        self.assertIsNone(ring.decrypting_key(os.urandom(16)))
        self.assertIsNone(ring.decrypting_key(b""))

    def test_rotation_by_clock(self):
        """
        When the interval has passed, a new key encrypts, the old one is
        decrypt-only (renew), and after C{keep} more rotations it is gone.
        """
        ring = KeyRing.generate(self.clock, RotationPolicy(interval=100, keep=2))
        first = ring.encrypting_key()
        self.assertEqual(len(self.named("resumetls.key.generated")), 1)
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
        rotated = self.named("resumetls.key.rotated")
        self.assertEqual(len(rotated), 3)
        self.assertEqual(rotated[0]["old"], first.fingerprint)
        for event in self.events:
            for secret in secret_texts(first) + secret_texts(second):
                self.assertNotIn(secret, repr(event))

    def test_pending_becomes_encrypting(self):
        a, b = TicketKey.generate(), TicketKey.generate()
        ring = KeyRing.from_keys(
            a, pending=[b], clock=self.clock, policy=RotationPolicy(interval=10)
        )
        self.assertEqual(ring.decrypting_key(b.name), (b, False))
        self.clock.advance(10)
        self.assertIs(ring.encrypting_key(), b)
        self.assertEqual(ring.decrypting_key(a.name), (a, True))
        self.assertEqual(ring.describe().pending, 0)

    def test_replace(self):
        a, b = TicketKey.generate(), TicketKey.generate()
        ring = KeyRing.from_keys(a)
        generation = ring.generation
        ring.replace(b, decrypt_only=[a])
        self.assertIs(ring.encrypting_key(), b)
        self.assertEqual(ring.decrypting_key(a.name), (a, True))
        ring.replace(KeySet(b))
        self.assertIsNone(ring.decrypting_key(a.name))
        self.assertEqual(ring.generation, generation + 2)

    def test_duplicate_names(self):
        a = TicketKey.generate()
        e = self.assertRaises(ValueError, KeyRing.from_keys, a, decrypt_only=[a])
        self.assertIn("same name", str(e))

    def test_describe(self):
        ring = KeyRing.generate(self.clock, RotationPolicy(interval=60))
        self.clock.advance(5)
        d = ring.describe()
        self.assertEqual(d.encrypting, ring.encrypting_key().fingerprint)
        self.assertEqual(d.encrypting_age, 5)
        self.assertEqual(d.next_rotation, 60)
        self.assertEqual(d.as_dict()["source"], "memory")

    def test_policy_validation(self):
        e = self.assertRaises(ValueError, RotationPolicy, interval=0)
        self.assertIn("rotation interval must be positive", str(e))
        e = self.assertRaises(ValueError, RotationPolicy, keep=-1)
        self.assertIn("0 or more", str(e))
        self.assertEqual(RotationPolicy().interval, 12 * 3600)
        self.assertRaises(
            ValueError, KeyRing, KeySet(TicketKey.generate()), None, RotationPolicy()
        )


class KeyFileTests(SynchronousTestCase):
    def path(self, data: bytes | None = None, mode: int = 0o600) -> str:
        p = os.path.abspath(self.mktemp())
        if data is not None:
            with open(p, "wb") as f:
                f.write(data)
            os.chmod(p, mode)
        return p

    def test_nginx_80(self):
        """80 bytes: name, HMAC-32, AES-32 (ngx_ssl_session_ticket_keys)."""
        raw = bytes(range(80))
        keys = load_key_file(self.path(raw))
        key = keys.encrypting
        self.assertEqual(key.name, raw[:16])
        self.assertEqual(key.hmac_key, raw[16:48])
        self.assertEqual(key.aes_key, raw[48:80])

    def test_nginx_48(self):
        """48 bytes: name, AES-16, HMAC-16."""
        raw = bytes(range(48))
        key = load_key_file(self.path(raw)).encrypting
        self.assertEqual(key.name, raw[:16])
        self.assertEqual(key.aes_key, raw[16:32])
        self.assertEqual(key.hmac_key, raw[32:48])
        self.assertEqual(key.bits, 128)

    def test_nginx_several_files_first_encrypts(self):
        a, b = TicketKey.generate(), TicketKey.generate()
        pa, pb = self.path(), self.path()
        write_nginx_key(pa, a)
        write_nginx_key(pb, b)
        keys = load_nginx_keys([pa, pb])
        self.assertEqual(keys.encrypting, a)
        self.assertEqual(keys.decrypt_only, (b,))
        self.assertEqual(os.stat(pa).st_mode & 0o777, 0o600)

    def test_nginx_wrong_size(self):
        p = self.path(os.urandom(57))
        e = self.assertRaises(KeyFileError, load_nginx_keys, [p])
        self.assertEqual(
            str(e), f"{p}: is 57 bytes; nginx ticket keys are 48 or 80 bytes"
        )

    def test_haproxy_roles(self):
        """
        HAProxy: the second-to-last line encrypts, the last is next (pending),
        the third-to-last decrypts; fields are name, AES, HMAC.
        """
        keys = [os.urandom(80) for _ in range(4)]
        p = self.path(b"\n".join(base64.b64encode(k) for k in keys) + b"\n")
        ks = load_haproxy_keys(p)
        self.assertEqual(ks.encrypting.name, keys[2][:16])
        self.assertEqual(ks.encrypting.aes_key, keys[2][16:48])
        self.assertEqual(ks.encrypting.hmac_key, keys[2][48:80])
        self.assertEqual([k.name for k in ks.pending], [keys[3][:16]])
        self.assertEqual([k.name for k in ks.decrypt_only], [keys[1][:16]])

    def test_haproxy_48(self):
        keys = [os.urandom(48) for _ in range(3)]
        p = self.path(b"\r\n".join(base64.b64encode(k) for k in keys))
        ks = load_key_file(p)
        self.assertEqual(ks.encrypting.aes_key, keys[1][16:32])
        self.assertEqual(ks.encrypting.hmac_key, keys[1][32:48])

    def test_haproxy_round_trip(self):
        keys = [TicketKey.generate() for _ in range(3)]
        p = self.path()
        write_haproxy_keys(p, keys)
        ks = load_key_file(p)
        self.assertEqual(ks, KeySet(keys[1], (keys[0],), (keys[2],)))
        self.assertEqual(os.stat(p).st_mode & 0o777, 0o600)

    def test_haproxy_errors(self):
        good = base64.b64encode(os.urandom(80))
        small = base64.b64encode(os.urandom(48))
        cases = [
            (good + b"\n" + b"not base64!!\n" + good, "line 2: not valid base64"),
            (
                good + b"\n" + base64.b64encode(os.urandom(50)) + b"\n" + good,
                "line 2: the key is 50 bytes; HAProxy keys are 48 or 80 bytes",
            ),
            (
                good + b"\n" + small + b"\n" + good,
                "line 2: a 48-byte key among 80-byte keys",
            ),
            (
                good + b"\n" + good,
                "has 2 key(s); HAProxy ticket key files need at least 3",
            ),
            (good + b"\n\n" + good + b"\n" + good, "line 2: empty line"),
            (b"\xff\xfe binary junk" * 7, "not a text file of base64 keys"),
        ]
        for data, message in cases:
            p = self.path(data)
            e = self.assertRaises(KeyFileError, load_key_file, p)
            self.assertIn(p, str(e))
            self.assertIn(message, str(e))
            self.assertNotIn(good.decode(), str(e))

    def test_empty_missing_directory(self):
        p = self.path(b"")
        self.assertEqual(
            str(self.assertRaises(KeyFileError, load_key_file, p)),
            f"{p}: the ticket key file is empty",
        )
        missing = self.path()
        self.assertEqual(
            str(self.assertRaises(KeyFileError, load_key_file, missing)),
            f"{missing}: no such ticket key file",
        )
        d = self.path()
        os.mkdir(d, 0o700)
        self.assertIn(
            "is a directory", str(self.assertRaises(KeyFileError, load_key_file, d))
        )

    def test_permissions_refused(self):
        for mode in (0o644, 0o640, 0o604, 0o660):
            p = self.path(os.urandom(80), mode)
            e = self.assertRaises(KeyFileError, load_key_file, p)
            self.assertEqual(
                str(e),
                f"{p} is readable by group or others (mode {mode:04o}); ticket keys "
                f"are secrets: run `chmod 600 {p}`",
            )
        p = self.path(os.urandom(80), 0o644)
        load_key_file(p, check_mode=False)  # explicit opt-out only

    def test_ring_from_file(self):
        keys = [TicketKey.generate() for _ in range(3)]
        p = self.path()
        write_haproxy_keys(p, keys)
        ring = KeyRing.from_keyset(load_key_file(p))
        self.assertEqual(ring.encrypting_key(), keys[1])
        self.assertEqual(ring.decrypting_key(keys[2].name), (keys[2], False))
        self.assertEqual(ring.describe().source, "file")


class KeyToolTests(SynchronousTestCase):
    def run_tool(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        try:
            code = _keytool.main(list(argv))
        except SystemExit as e:
            code = e.code
        return code, out.getvalue(), err.getvalue()

    def test_generate_show_rotate(self):
        p = os.path.abspath(self.mktemp())
        code, out, _ = self.run_tool("generate", "-o", p)
        self.assertEqual(code, 0)
        self.assertIn("wrote 3 HAProxy ticket keys (AES-256)", out)
        self.assertEqual(os.stat(p).st_mode & 0o777, 0o600)
        before = load_key_file(p)
        code, out, _ = self.run_tool("show", p)
        self.assertEqual(code, 0)
        self.assertIn(f"{before.encrypting.fingerprint}  AES-256  encrypts", out)
        for key in before.all:
            for secret in secret_texts(key):
                self.assertNotIn(secret, out)
        code, out, _ = self.run_tool("rotate", p)
        self.assertEqual(code, 0)
        after = load_key_file(p)
        self.assertEqual(after.encrypting, before.pending[0])
        self.assertEqual(after.decrypt_only, (before.encrypting,))
        self.assertNotIn(after.pending[0], before.all)

    def test_generate_nginx(self):
        p = os.path.abspath(self.mktemp())
        code, out, _ = self.run_tool(
            "generate", "--format", "nginx", "--bits", "128", "-o", p
        )
        self.assertEqual(code, 0)
        self.assertEqual(os.path.getsize(p), 48)
        self.assertEqual(load_key_file(p).encrypting.bits, 128)

    def test_errors_are_one_line(self):
        p = os.path.abspath(self.mktemp())
        self.run_tool("generate", "-o", p)
        code, _, err = self.run_tool("generate", "-o", p)
        self.assertEqual(code, 2)
        self.assertEqual(
            err, f"resumetls keys: {p} exists; use --force to replace it\n"
        )
        os.chmod(p, 0o644)
        code, _, err = self.run_tool("show", p)
        self.assertEqual(code, 2)
        self.assertIn("chmod 600", err)
        self.assertEqual(err.count("\n"), 1)
        code, _, err = self.run_tool("bogus")
        self.assertEqual(code, 2)
        self.assertIn("invalid choice", err)


class KeyFileWatcherTests(SynchronousTestCase):
    """The key file is reloaded when it changes; a broken file is refused."""

    def test_reload_on_change(self):
        from resumetls._reload import KeyFileWatcher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        clock = Clock()
        path = os.path.abspath(self.mktemp())
        a, b, c, d = (TicketKey.generate() for _ in range(4))
        write_haproxy_keys(path, [a, b, c])
        ring = KeyRing.from_keyset(load_key_file(path))
        watcher = KeyFileWatcher(path, ring, clock, interval=2)
        watcher.start()
        self.addCleanup(watcher.stop)
        clock.advance(2)
        self.assertEqual(watcher.reloads, 0)  # unchanged: nothing to do
        write_haproxy_keys(path, [b, c, d])
        clock.advance(2)
        self.assertEqual(watcher.reloads, 1)
        self.assertEqual(ring.encrypting_key(), c)
        self.assertEqual(ring.decrypting_key(b.name), (b, True))
        with open(path, "w") as f:
            f.write("not base64 at all!\n")
        clock.advance(2)
        self.assertEqual(watcher.refusals, 1)
        self.assertEqual(ring.encrypting_key(), c)  # the keys in use stay
        refused = [
            e for e in events if e.get("event") == "resumetls.keys.reload_refused"
        ]
        self.assertIn("line 1: not valid base64", refused[0]["reason"])
        reloaded = [e for e in events if e.get("event") == "resumetls.keys.reloaded"]
        self.assertEqual(reloaded[0]["fingerprint"], c.fingerprint)
        for event in events:
            for key in (a, b, c, d):
                for secret in secret_texts(key):
                    self.assertNotIn(secret, repr(event))
