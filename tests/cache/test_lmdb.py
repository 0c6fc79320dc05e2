"""
The host-shared LMDB session cache: the session cache contract, sealing,
sharing between processes, a full map, private files, damaged and foreign
stores, and the lmdb:// URL.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile

import lmdb
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from resumetls.cache import lmdb as _lmdbcache
from resumetls.cache import lmdbenv
from resumetls.cache.lmdb import LMDBCacheError, LMDBSessionCache
from resumetls.cache.seal import SessionSealer
from resumetls.cache.urls import CacheURLError, cache_from_url
from resumetls.testing.cache_contract import SessionCacheContractMixin, sid

KEY = bytes(range(32))


def sealer(key: bytes = KEY) -> SessionSealer:
    return SessionSealer(key, _lmdbcache.NAMESPACE)


class _Directories:
    """A fresh private directory per cache, removed after the test."""

    def directory(self) -> str:
        base = tempfile.mkdtemp(prefix="resumetls-lmdb-test-")
        self.addCleanup(_remove_tree, base)
        return os.path.join(base, "cache")

    def cache(self, clock=None, max_entries=3, path=None, key=KEY, origin=0):
        cache = LMDBSessionCache(
            path or self.directory(),
            max_entries,
            clock=clock or Clock(),
            sealer=sealer(key),
            origin=origin,
        )
        self.addCleanup(cache.close)
        return cache


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class LMDBContractTests(_Directories, SessionCacheContractMixin, SynchronousTestCase):
    """The LMDB cache honours the contract of every session cache."""

    # The entry that expires first goes (the oldest, with equal lifetimes);
    # a hit does not reorder (lookups are read-only transactions).
    evicts_least_recently_used = False

    def make_cache(self, clock, max_entries):
        return self.cache(clock, max_entries)

    def corrupt_entry(self, cache, session_id):
        with cache._env.begin(write=True) as txn:
            value = bytearray(txn.get(session_id, db=cache._db))
            value[-1] ^= 1
            txn.put(session_id, bytes(value), db=cache._db)

    def break_cache(self, cache):
        cache._env.close()


class LMDBCacheTests(_Directories, SynchronousTestCase):
    def test_sealed_at_rest(self):
        """The files hold no session in clear; the sealing key is not in them."""
        cache = self.cache()
        secret = b"\x30\x82master-secret-of-a-session-0123456789"
        cache.store_now(sid(1), secret, 60)
        cache._env.sync(True)
        data = b""
        for name in os.listdir(cache.path):
            with open(os.path.join(cache.path, name), "rb") as f:
                data += f.read()
        self.assertIn(sid(1), data)  # the key is not secret; the value is
        self.assertNotIn(secret, data)
        self.assertNotIn(KEY, data)

    def test_private_files(self):
        """The directory is 0700 and its files 0600."""
        cache = self.cache()
        self.assertEqual(stat.S_IMODE(os.stat(cache.path).st_mode), 0o700)
        for name in ("data.mdb", "lock.mdb"):
            mode = stat.S_IMODE(os.stat(os.path.join(cache.path, name)).st_mode)
            self.assertEqual(mode, 0o600, name)

    def test_open_directory_refused(self):
        path = self.directory()
        os.makedirs(path, mode=0o755)
        os.chmod(path, 0o755)
        e = self.assertRaises(LMDBCacheError, self.cache, path=path)
        self.assertEqual(
            str(e),
            f"the session cache directory {path} is open to group or others "
            f"(mode 755); sessions are secrets: chmod 700 {path}",
        )

    def test_not_lmdb_refused(self):
        """A file that is not LMDB is refused with what to do."""
        path = self.directory()
        os.makedirs(path, mode=0o700)
        with open(os.path.join(path, "data.mdb"), "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(b"not a database at all" * 1000)
        e = self.assertRaises(LMDBCacheError, self.cache, path=path)
        self.assertEqual(
            str(e),
            f"{path} holds a file that is not an LMDB database, so it is not a "
            "resumetls session cache; remove it or choose another directory",
        )

    def test_foreign_lmdb_refused(self):
        """An LMDB database of another program is refused, and left alone."""
        path = self.directory()
        os.makedirs(path, mode=0o700)
        env = lmdb.open(path, max_dbs=2, mode=0o600)
        with env.begin(write=True) as txn:
            txn.put(b"someone", b"else's data")
        env.close()
        e = self.assertRaises(LMDBCacheError, self.cache, path=path)
        self.assertIn("is an LMDB database but not a resumetls session cache", str(e))
        env = lmdb.open(path, max_dbs=2)
        with env.begin() as txn:
            self.assertEqual(txn.get(b"someone"), b"else's data")
        env.close()

    def test_other_key_emptied(self):
        """
        A cache sealed with another key (the TLS key changed) is emptied
        when opened, with a warning; then it works under the new key.
        """
        path = self.directory()
        old = self.cache(path=path, max_entries=10)
        old.store_now(sid(1), b"old session", 60)
        old.close()
        events = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        new = self.cache(path=path, max_entries=10, key=b"\x01" * 32)
        self.assertEqual(
            [e["event"] for e in events if "event" in e],
            ["resumetls.cache.lmdb.rekeyed"],
        )
        self.assertIsNone(new.lookup_now(sid(1)))
        self.assertEqual((new.stats().entries, new.stats().bytes), (0, 0))
        new.store_now(sid(2), b"new", 60)
        self.assertEqual(new.lookup_now(sid(2)), b"new")

    def test_shared_between_handles(self):
        """
        Two caches on one directory (two workers) see each other's entries
        and share one size bound; counts are each handle's own.
        """
        clock = Clock()
        path = self.directory()
        one = self.cache(clock, max_entries=4, path=path, origin=1)
        two = self.cache(clock, max_entries=4, path=path, origin=2)
        for i in range(3):
            one.store_now(sid(i), b"from one %d" % i, 60)
        two.store_now(sid(3), b"from two", 60)
        self.assertEqual(two.lookup_now(sid(0)), b"from one 0")
        self.assertEqual(one.lookup_now(sid(3)), b"from two")
        self.assertEqual(one.origin_of(sid(3)), 2)
        self.assertEqual(two.origin_of(sid(0)), 1)
        two.store_now(sid(4), b"evicts the first", 60)
        self.assertIsNone(one.lookup_now(sid(0)))
        s1, s2 = one.stats(), two.stats()
        self.assertEqual((s1.entries, s2.entries), (4, 4))
        self.assertEqual(s1.bytes, s2.bytes)
        self.assertEqual((s1.stores, s2.stores), (3, 2))
        self.assertEqual((s1.evictions, s2.evictions), (0, 1))
        self.assertEqual((s1.hits, s1.misses, s2.hits), (1, 1, 1))

    def test_full_map_keeps_storing(self):
        """
        When LMDB's map fills before the entry bound (sessions far larger
        than expected), stores still succeed: the oldest go, and the
        figures stay right.
        """
        self.patch(lmdbenv, "MIN_MAP_SIZE", 256 * 1024)
        self.patch(lmdbenv, "BYTES_PER_ENTRY", 1)
        cache = self.cache(max_entries=100000)
        der = os.urandom(6000)
        for i in range(300):
            cache.store_now(sid(i), der, 60)
        s = cache.stats()
        self.assertEqual(s.stores, 300)
        self.assertEqual(s.errors, 0)
        self.assertGreater(s.evictions, 0)
        self.assertEqual(s.entries + s.evictions, 300)
        self.assertEqual(s.bytes, s.entries * (len(sid(0)) + len(der)))
        self.assertEqual(cache.lookup_now(sid(299)), der)
        self.assertIsNone(cache.lookup_now(sid(0)))

    def test_survives_a_crash(self):
        """
        A process that stores and then dies without closing anything (as a
        SIGKILLed worker does) leaves every session it committed.
        """
        path = self.directory()
        code = (
            "import os, sys\n"
            "from twisted.internet.task import Clock\n"
            "from resumetls.cache.lmdb import LMDBSessionCache, NAMESPACE\n"
            "from resumetls.cache.seal import SessionSealer\n"
            "from resumetls.testing.cache_contract import sid\n"
            "c = LMDBSessionCache(sys.argv[1], 10, clock=Clock(), "
            "sealer=SessionSealer(bytes(range(32)), NAMESPACE))\n"
            "for i in range(5): c.store_now(sid(i), b'session %d' % i, 60)\n"
            "os.kill(os.getpid(), 9)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code, path], timeout=60)
        self.assertEqual(proc.returncode, -9)
        cache = self.cache(path=path, max_entries=10)
        for i in range(5):
            self.assertEqual(cache.lookup_now(sid(i)), b"session %d" % i)

    def test_url(self):
        """
        lmdb:///DIR?size=N builds the cache without touching the disk; the
        service's TLS key seals it once the server reads that key.
        """
        path = self.directory()
        cache = cache_from_url(f"lmdb://{path}?size=7", Clock())
        self.assertIsInstance(cache, LMDBSessionCache)
        self.assertEqual((cache.path, cache.max_entries), (path, 7))
        self.assertFalse(os.path.exists(path))
        from tests import support

        _, key_path = support.write_pem(os.path.dirname(path), *support.certificate())
        cache.use_service_key(key_path)
        self.addCleanup(cache.close)
        cache.store_now(sid(1), b"der", 60)
        other = LMDBSessionCache(path, 7, clock=Clock())
        other.use_service_key(key_path)
        self.addCleanup(other.close)
        self.assertEqual(other.lookup_now(sid(1)), b"der")

    def test_bad_urls(self):
        for url, message in [
            (
                "lmdb://host/x",
                "session cache 'lmdb://host/x': write lmdb:///ABSOLUTE/DIRECTORY "
                "(three slashes, no host) or lmdb:///DIRECTORY?size=N",
            ),
            (
                "lmdb:///x?size=0",
                "session cache 'lmdb:///x?size=0': size must be a positive "
                "integer, not '0'",
            ),
            (
                "lmdb:///x?ttl=5",
                "session cache 'lmdb:///x?ttl=5': unknown parameter ttl; "
                "lmdb:// knows: size",
            ),
        ]:
            e = self.assertRaises(CacheURLError, cache_from_url, url, Clock())
            self.assertEqual(str(e), message)

    def test_no_sealer_counts_errors(self):
        """Used before it has a key, the cache answers misses and counts errors."""
        cache = LMDBSessionCache(self.directory(), 3, clock=Clock())
        cache.store_now(sid(1), b"der", 60)
        self.assertIsNone(cache.lookup_now(sid(1)))
        self.assertEqual(cache.stats().errors, 2)
