"""
Key sources: keys generated in memory and a key file reloaded when it
changes and on SIGHUP (both held to the L{IKeySource} contract of
L{resumetls.testing.keysource_contract}), the one SIGHUP handler they share,
and the registry that builds a source from a specification.
"""

from __future__ import annotations

import os
import signal

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from resumetls import (
    GeneratedKeySource,
    IKeySource,
    KeyFileSource,
    KeySourceError,
    RotationPolicy,
    TicketKey,
    key_source_from_spec,
    register_key_source,
)
from resumetls.keys import sighup as _sighup
from resumetls.keys import sources as _sources
from resumetls.keys.files import KeyFileError, write_haproxy_keys, write_nginx_key
from resumetls.keys.sources import load_key_files
from resumetls.testing.keysource_contract import KeySourceContractMixin

from .test_ring import EventsMixin, secret_texts


def key_file(testcase, count=3):
    """A HAProxy key file of C{count} new keys: (path, keys)."""
    path = os.path.abspath(testcase.mktemp())
    keys = [TicketKey.generate() for _ in range(count)]
    write_haproxy_keys(path, keys)
    return path, keys


class ImmediateReactor:
    """Runs what a SIGHUP handler schedules at once."""

    def callFromThread(self, f, *args):  # noqa: N802
        f(*args)


def immediate_sighup(testcase):
    """SIGHUP reloads run at once; the real handler is put back afterwards."""
    previous = signal.getsignal(signal.SIGHUP)
    testcase.addCleanup(signal.signal, signal.SIGHUP, previous)
    testcase.patch(_sighup, "reloads", _sighup.SighupReloads(ImmediateReactor()))
    return previous


class GeneratedContractTests(KeySourceContractMixin, SynchronousTestCase):
    def make_source(self, clock):
        return GeneratedKeySource(clock, RotationPolicy(interval=100, keep=1))


class KeyFileContractTests(KeySourceContractMixin, SynchronousTestCase):
    def make_source(self, clock):
        self.path, _ = key_file(self)
        return key_source_from_spec(self.path, clock)

    def change_source(self, source):
        write_haproxy_keys(self.path, [TicketKey.generate() for _ in range(3)])

    def break_source(self, source):
        with open(self.path, "w") as f:
            f.write("not base64 at all!\n")


class GeneratedKeySourceTests(SynchronousTestCase):
    def test_rotates_by_policy(self):
        """The ring rotates on the policy's interval, keeping C{keep} old keys."""
        clock = Clock()
        source = GeneratedKeySource(clock, RotationPolicy(interval=600, keep=1))
        first = source.key_ring.encrypting_key()
        clock.advance(599)
        self.assertEqual(source.key_ring.encrypting_key(), first)
        clock.advance(1)
        self.assertNotEqual(source.key_ring.encrypting_key(), first)
        self.assertEqual(source.key_ring.decrypting_key(first.name), (first, True))

    def test_default_policy(self):
        """Without a policy: the table's defaults (12 hours, two old keys)."""
        source = GeneratedKeySource(Clock())
        self.assertEqual(source.policy, RotationPolicy(interval=43200, keep=2))
        self.assertEqual(
            source.describe().split(":")[0],
            "ticket keys generated in memory, rotated every 43200s, 2 old kept",
        )

    def test_sighup_untouched(self):
        """Generated keys have nothing to reload: SIGHUP keeps its meaning."""
        previous = signal.getsignal(signal.SIGHUP)
        source = GeneratedKeySource(Clock())
        source.start()
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)
        self.assertFalse(source.reload("SIGHUP"))
        source.stop()


class KeyFileSourceTests(EventsMixin, SynchronousTestCase):
    """The key file is reloaded when it changes; a broken file is refused."""

    def test_reload_on_change(self):
        events = self.capture_events()
        clock = Clock()
        path, (a, b, c) = key_file(self)
        d = TicketKey.generate()
        source = KeyFileSource.open(path, clock, interval=2)
        ring = source.key_ring
        source.start()
        self.addCleanup(source.stop)
        clock.advance(2)
        self.assertEqual(source.reloads, 0)  # unchanged: nothing to do
        write_haproxy_keys(path, [b, c, d])
        clock.advance(2)
        self.assertEqual(source.reloads, 1)
        self.assertEqual(ring.encrypting_key(), c)
        self.assertEqual(ring.decrypting_key(b.name), (b, True))
        with open(path, "w") as f:
            f.write("not base64 at all!\n")
        clock.advance(2)
        self.assertEqual(source.refusals, 1)
        self.assertEqual(ring.encrypting_key(), c)  # the keys in use stay
        refused = self.named(events, "resumetls.keys.reload_refused")
        self.assertIn("line 1: not valid base64", refused[0]["reason"])
        reloaded = self.named(events, "resumetls.keys.reloaded")
        self.assertEqual(reloaded[0]["fingerprint"], c.fingerprint)
        self.assertEqual(reloaded[0]["why"], "the file changed")
        for event in events:
            for key in (a, b, c, d):
                for secret in secret_texts(key):
                    self.assertNotIn(secret, repr(event))

    def test_stopped_source_does_not_poll(self):
        clock = Clock()
        path, (_, b, c) = key_file(self)
        source = KeyFileSource.open(path, clock, interval=2)
        source.start()
        self.assertTrue(source.running)
        source.stop()
        self.assertFalse(source.running)
        write_haproxy_keys(path, [b, c, TicketKey.generate()])
        clock.advance(10)
        self.assertEqual((source.reloads, source.key_ring.encrypting_key()), (0, b))

    def test_describe(self):
        path, (_, b, _) = key_file(self)
        source = KeyFileSource.open(path, Clock())
        self.assertEqual(
            source.describe(),
            f"ticket keys from {path} (reloaded on SIGHUP and when it changes): "
            f"{b.fingerprint} encrypts, 1 decrypt only, 1 pending",
        )
        self.assertEqual(repr(source), f"<KeyFileSource {path} reloads=0>")

    def test_sighup(self):
        """
        Starting installs a SIGHUP handler that reloads every started
        source; stopping the last one restores the previous handler.
        """
        previous = immediate_sighup(self)
        sources = [KeyFileSource.open(key_file(self)[0], Clock()) for _ in range(2)]
        for source in sources:
            source.start()
        self.assertTrue(all(s.running for s in sources))
        handler = signal.getsignal(signal.SIGHUP)
        self.assertNotEqual(handler, previous)
        handler(signal.SIGHUP, None)
        self.assertEqual([s.reloads for s in sources], [1, 1])
        sources[0].stop()
        self.assertEqual(signal.getsignal(signal.SIGHUP), handler)
        handler(signal.SIGHUP, None)
        self.assertEqual([s.reloads for s in sources], [1, 2])
        sources[1].stop()
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)
        self.assertFalse(any(s.running for s in sources))

    def test_previous_handler_called(self):
        """A Python SIGHUP handler that was there before still runs."""
        immediate_sighup(self)
        calls = []
        signal.signal(signal.SIGHUP, lambda n, f: calls.append(n))
        source = KeyFileSource.open(key_file(self)[0], Clock())
        source.start()
        signal.getsignal(signal.SIGHUP)(signal.SIGHUP, None)
        self.assertEqual((source.reloads, calls), (1, [signal.SIGHUP]))
        source.stop()
        signal.getsignal(signal.SIGHUP)(signal.SIGHUP, None)
        self.assertEqual((source.reloads, calls), (1, [signal.SIGHUP] * 2))

    def test_reload_answers_whether_keys_changed(self):
        path, (_, b, c) = key_file(self)
        source = KeyFileSource.open(path, Clock())
        self.assertFalse(source.reload("SIGHUP"))
        write_haproxy_keys(path, [b, c, TicketKey.generate()])
        self.assertTrue(source.reload("SIGHUP"))
        self.assertEqual(source.reloads, 2)


@implementer(IKeySource)
class _FleetSource(GeneratedKeySource):
    """A stand-in for a source another package registers."""

    def __init__(self, location, clock, policy):
        super().__init__(clock, policy)
        self.location = location


class RegistryTests(SynchronousTestCase):
    def setUp(self):
        self.patch(_sources, "_SCHEMES", dict(_sources._SCHEMES))

    def test_no_spec(self):
        """No specification: keys generated in memory, rotated by the policy."""
        policy = RotationPolicy(interval=600, keep=3)
        for spec in (None, ""):
            source = key_source_from_spec(spec, Clock(), policy)
            self.assertIsInstance(source, GeneratedKeySource)
            self.assertEqual(source.policy, policy)
            self.assertEqual(source.key_ring.policy, policy)

    def test_key_file(self):
        """A bare path and C{file:PATH} both name a key file source."""
        path, (_, b, _) = key_file(self)
        clock = Clock()
        for spec in (path, f"file:{path}", f"FILE:{path}"):
            source = key_source_from_spec(spec, clock)
            self.assertIsInstance(source, KeyFileSource)
            self.assertEqual(source.path, path)
            self.assertEqual(source.key_ring.encrypting_key(), b)
            self.assertEqual(source.key_ring.describe().source, "file")

    def test_path_with_a_colon(self):
        """An existing file whose name looks like a scheme is a path."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        here = os.getcwd()
        self.addCleanup(os.chdir, here)
        os.chdir(directory)
        write_haproxy_keys("keys:old", [TicketKey.generate() for _ in range(3)])
        source = key_source_from_spec("keys:old", Clock())
        self.assertIsInstance(source, KeyFileSource)
        self.assertEqual(_sources.checked_spec("keys:old"), "keys:old")

    def test_unknown_scheme(self):
        """Unknown schemes are refused, the known ones listed, no password."""
        # redis: is a source now (the fleet's keys): memcached: is not.
        e = self.assertRaises(
            KeySourceError,
            key_source_from_spec,
            "memcached://user:hunter2@127.0.0.1/0",
            Clock(),
        )
        self.assertEqual(
            str(e),
            "unknown ticket key source 'memcached://user:***@127.0.0.1/0'; known: "
            "a key file's path, file:, redis:, redis+sentinel:, redis+unix:, rediss:",
        )
        self.assertIsInstance(e, ValueError)
        # A redis: source's own refusal keeps the password out too.
        e = self.assertRaises(
            KeySourceError,
            key_source_from_spec,
            "redis://user:hunter2@127.0.0.1/0?size=1",
            Clock(),
        )
        self.assertNotIn("hunter2", str(e))
        self.assertIn("redis://user:***@127.0.0.1/0", str(e))

    def test_bad_file(self):
        """A key file that cannot be used: the key file's own error."""
        path, _ = key_file(self)
        os.chmod(path, 0o644)
        e = self.assertRaises(KeyFileError, key_source_from_spec, path, Clock())
        self.assertIn("chmod 600", str(e))

    def test_checked_spec(self):
        """Checked when options are parsed: the file exists and is readable."""
        path, _ = key_file(self)
        self.assertEqual(_sources.checked_spec(path), path)
        self.assertEqual(_sources.checked_spec(f"file:{path}"), f"file:{path}")
        e = self.assertRaises(ValueError, _sources.checked_spec, "/no/keys")
        self.assertEqual(str(e), "/no/keys: no such file")
        e = self.assertRaises(ValueError, _sources.checked_spec, "file:/no/keys")
        self.assertEqual(str(e), "/no/keys: no such file")
        e = self.assertRaises(KeySourceError, _sources.checked_spec, "zk://a/b")
        self.assertIn("known: a key file's path, file:", str(e))

    def test_register(self):
        """A registered scheme builds its source, given location, clock, policy."""
        checked = []

        def check(location):
            checked.append(location)
            return location.upper()

        register_key_source("Fleet", _FleetSource, check)
        clock, policy = Clock(), RotationPolicy(interval=300, keep=1)
        source = key_source_from_spec("fleet://store/keys", clock, policy)
        self.assertIsInstance(source, _FleetSource)
        self.assertEqual((source.location, source.policy), ("//store/keys", policy))
        self.assertEqual(_sources.checked_spec("fleet://a"), "fleet://A")
        self.assertEqual(checked, ["//a"])
        self.assertIn("fleet:", _sources.known_key_sources())

    def test_factory_must_make_a_source(self):
        register_key_source("nothing", lambda location, clock, policy: object())
        e = self.assertRaises(TypeError, key_source_from_spec, "nothing:x", Clock())
        self.assertEqual(str(e), "the nothing: key source did not make an IKeySource")


def nginx_file(testcase, name):
    """An nginx key file (one key) called C{name}: (path, key)."""
    directory = os.path.abspath(testcase.mktemp())
    os.makedirs(directory)
    path = os.path.join(directory, name)
    key = TicketKey.generate()
    write_nginx_key(path, key)
    return path, key


class SeveralKeyFilesTests(EventsMixin, SynchronousTestCase):
    """
    Key files listed as nginx lists them: the first file's key encrypts, the
    others decrypt only, all reloaded together (only the last file was kept
    before).
    """

    def test_roles(self):
        new_path, new = nginx_file(self, "new.key")
        old_path, old = nginx_file(self, "old.key")
        haproxy, (a, b, c) = key_file(self)
        keys = load_key_files([new_path, old_path, haproxy])
        self.assertEqual(keys.encrypting, new)
        self.assertEqual(keys.decrypt_only, (old, b, a, c))
        self.assertEqual(keys.pending, ())
        # A HAProxy file first keeps its own roles.
        keys = load_key_files([haproxy, new_path])
        self.assertEqual((keys.encrypting, keys.decrypt_only), (b, (a, new)))
        self.assertEqual(keys.pending, (c,))
        self.assertEqual(load_key_files(new_path).encrypting, new)

    def test_same_name_twice(self):
        new_path, new = nginx_file(self, "new.key")
        other, _ = nginx_file(self, "other.key")
        write_nginx_key(other, TicketKey(new.name, os.urandom(32), os.urandom(32)))
        e = self.assertRaises(KeyFileError, load_key_files, [new_path, other])
        self.assertIn("two different keys share the name", str(e))
        self.assertEqual(load_key_files([new_path, new_path]).decrypt_only, ())

    def test_source(self):
        """From a list or from one text with commas: one source, first encrypts."""
        new_path, new = nginx_file(self, "new.key")
        old_path, old = nginx_file(self, "old.key")
        for spec in ([new_path, old_path], f"{new_path},{old_path}"):
            source = key_source_from_spec(spec, Clock())
            self.assertIsInstance(source, KeyFileSource)
            self.assertEqual(source.paths, (new_path, old_path))
            self.assertEqual(source.path, new_path)
            ring = source.key_ring
            self.assertEqual(ring.encrypting_key(), new)
            self.assertEqual(ring.decrypting_key(old.name), (old, True))
            self.assertEqual(ring.decrypting_key(new.name), (new, False))
        self.assertEqual(
            source.describe(),
            f"ticket keys from {new_path}, {old_path} (the first file's key "
            "encrypts, the others decrypt only, as nginx; reloaded on SIGHUP and "
            f"when one changes): {new.fingerprint} from {new_path} encrypts, "
            "1 decrypt only, 0 pending",
        )

    def test_reloaded_together(self):
        """
        A change to any file reloads them all; SIGHUP too; one broken file
        is refused and the keys in use stay.
        """
        immediate_sighup(self)
        events = self.capture_events()
        clock = Clock()
        new_path, new = nginx_file(self, "new.key")
        old_path, old = nginx_file(self, "old.key")
        source = KeyFileSource.open([new_path, old_path], clock, interval=2)
        ring = source.key_ring
        source.start()
        self.addCleanup(source.stop)
        older = TicketKey.generate()
        write_nginx_key(old_path, older)
        clock.advance(2)
        self.assertEqual(source.reloads, 1)
        self.assertEqual(ring.encrypting_key(), new)
        self.assertEqual(ring.decrypting_key(older.name), (older, True))
        self.assertIsNone(ring.decrypting_key(old.name))
        newest = TicketKey.generate()
        write_nginx_key(new_path, newest)
        signal.getsignal(signal.SIGHUP)(signal.SIGHUP, None)
        self.assertEqual(source.reloads, 2)
        self.assertEqual(ring.encrypting_key(), newest)
        clock.advance(2)  # SIGHUP saw the change already
        self.assertEqual(source.reloads, 2)
        with open(old_path, "wb") as f:
            f.write(b"short")
        clock.advance(2)
        self.assertEqual(source.refusals, 1)
        self.assertEqual(ring.encrypting_key(), newest)
        self.assertEqual(ring.decrypting_key(older.name), (older, True))
        [refused] = self.named(events, "resumetls.keys.reload_refused")
        self.assertIn(old_path, refused["reason"])
        reloaded = self.named(events, "resumetls.keys.reloaded")
        self.assertEqual(reloaded[-1]["fingerprint"], newest.fingerprint)

    def test_specs(self):
        """Commas separate key files; other sources cannot be listed."""
        new_path, _ = nginx_file(self, "new.key")
        old_path, _ = nginx_file(self, "old.key")
        self.assertEqual(
            _sources.split_specs(f"{new_path},{old_path},"), [new_path, old_path]
        )
        self.assertEqual(_sources.split_specs(""), [])
        comma = os.path.join(os.path.dirname(new_path), "a,b.key")
        write_nginx_key(comma, TicketKey.generate())
        self.assertEqual(_sources.split_specs(comma), [comma])
        self.patch(_sources, "_SCHEMES", dict(_sources._SCHEMES))
        register_key_source("fleet", _FleetSource)
        self.assertEqual(_sources.split_specs("fleet://a,b"), ["fleet://a,b"])
        e = self.assertRaises(
            KeySourceError, _sources.checked_specs, [new_path, "fleet://a"]
        )
        self.assertEqual(
            str(e),
            "'fleet://a' cannot be listed with other ticket key sources: only key "
            "files can be listed (the first encrypts, the others decrypt only)",
        )
        self.assertEqual(
            _sources.checked_specs([new_path, f"file:{old_path}"]),
            (new_path, f"file:{old_path}"),
        )
