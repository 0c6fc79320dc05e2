"""
Client session stores: in memory, and in a private file shared by stores
and processes.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase, TestCase

from resumetls import ClientStoreError, FileClientSessionStore, MemoryClientSessionStore

from .. import support
from .helpers import s_server


class MemoryStoreTests(SynchronousTestCase):
    def test_single_use_and_expiry(self):
        store = MemoryClientSessionStore(keep=3)
        store.put("k", b"t1", 100, True)
        store.put("k", b"t2", 100, True)
        self.assertEqual(store.take("k", 50), b"t2")
        self.assertEqual(store.take("k", 50), b"t1")
        self.assertIsNone(store.take("k", 50))
        store.put("k", b"s", 100, False)
        self.assertEqual(store.take("k", 50), b"s")
        self.assertEqual(store.take("k", 50), b"s")  # reusable
        self.assertIsNone(store.take("k", 100))  # expired
        for i in range(5):
            store.put("k", b"%d" % i, 100, True)
        self.assertEqual(store.count("k"), 3)

    def test_memory_store_drops_expired(self):
        """The memory store sweeps other servers' expired sessions on put."""
        from resumetls.client import memorystore as _clientstore

        class Clock:
            now = 1000.0

            def time(self):
                return self.now

        clock = Clock()
        self.patch(_clientstore, "time", clock)
        store = MemoryClientSessionStore()
        store.put("old", b"O", 1010, False)
        store.put("live", b"L", 5000, False)
        clock.now = 1000 + _clientstore.SWEEP_INTERVAL
        store.put("new", b"N", 5000, False)
        self.assertEqual(
            (store.count("old"), store.count("live"), store.count("new")), (0, 1, 1)
        )


_RESTART_SCRIPT = """
import sys
from twisted.internet import task
from twisted.internet.defer import ensureDeferred
from twisted.internet.ssl import Certificate
from resumetls import ResumingClientCreator
from resumetls import FileClientSessionStore
from tests.client.helpers import fetch

async def main(reactor):
    port, cert, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open(cert, "rb") as f:
        root = Certificate.loadPEM(f.read())
    creator = ResumingClientCreator("localhost", root, port=port,
                                    store=FileClientSessionStore(path))
    print(await fetch(creator, port))

task.react(lambda r: ensureDeferred(main(r)))
"""


class FileStoreTests(TestCase):
    timeout = 60

    def test_survives_restart(self):
        """Two client processes, one session file: the second resumes."""
        port, cert = s_server(self, "-tls1_2")
        path = os.path.abspath(self.mktemp())
        env = support.environment(os.path.abspath(self.mktemp()))
        runs = []
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", _RESTART_SCRIPT, str(port), cert, path],
                env=env,
                cwd=support.ROOT,
                capture_output=True,
                text=True,
                timeout=30,
            )
            self.assertEqual(out.returncode, 0, out.stderr)
            runs.append(out.stdout.strip())
        self.assertEqual(runs, ["New TLSv1.2", "Reused TLSv1.2"])
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)


class FileStoreFormatTests(SynchronousTestCase):
    def test_file_permissions(self):
        path = os.path.abspath(self.mktemp())
        store = FileClientSessionStore(path)
        store.put("k", b"secret-session", 2e9, False)
        self.assertEqual(FileClientSessionStore(path).take("k", 0), b"secret-session")
        os.chmod(path, 0o644)
        e = self.assertRaises(ClientStoreError, FileClientSessionStore, path)
        self.assertEqual(
            str(e),
            f"{path} is readable by group or others (mode 0644); it holds TLS "
            f"session secrets: run `chmod 600 {path}`",
        )
        self.assertNotIn("secret", repr(store))

    def test_corrupt_file(self):
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("{broken")
        os.chmod(path, 0o600)
        e = self.assertRaises(ClientStoreError, FileClientSessionStore, path)
        self.assertIn("is not a resumetls session file", str(e))

    def test_damaged_files(self):
        """
        Whatever a session file holds, reading it gives the store or a
        ClientStoreError saying to remove it (never another exception), and
        the error never quotes the file.
        """
        entry = '{"der": "c2VjcmV0", "expires": 2e9, "single_use": false}'

        def session(old="", new=""):
            return ('{"sessions": {"k": [' + entry.replace(old, new) + "]}}").encode()

        der, expires, single_use = (
            'a session\'s "der" is',
            'a session\'s "expires" is not a number',
            'a session\'s "single_use" is not true or false',
        )
        damaged = [
            (b"{broken", "not JSON"),
            (b"", "not JSON"),
            (b"[]", "not a JSON object"),
            (b"null", "not a JSON object"),
            (b"\xff\xfe", "not UTF-8"),
            (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
            (
                b'{"sessions": {"k": ' + b"[" * 100000 + b"]" * 100000 + b"}}",
                "nested too deeply",
            ),
            (b'{"version": 2, "sessions": {}}', "unknown version"),
            (b"{}", '"sessions" is not an object'),
            (b'{"sessions": []}', '"sessions" is not an object'),
            (b'{"sessions": "x"}', '"sessions" is not an object'),
            (b'{"sessions": {"k": "x"}}', "a server's sessions are not a list"),
            (
                b'{"sessions": {"k": {"der": "c2VjcmV0"}}}',
                "a server's sessions are not a list",
            ),
            (b'{"sessions": {"k": [5]}}', "a session is not an object"),
            (b'{"sessions": {"k": [[]]}}', "a session is not an object"),
            (b'{"sessions": {"k": [{}]}}', der + " not a string"),
            (session('"c2VjcmV0"', "5"), der + " not a string"),
            (session('"c2VjcmV0"', "null"), der + " not a string"),
            (session("c2VjcmV0", "c2VjcmV0!!"), der + " not base64"),
            (session("c2VjcmV0", "c2VjcmV"), der + " not base64"),
            (session("c2VjcmV0", "c2Vj cmV0"), der + " not base64"),
            (session("c2VjcmV0", "c2Vj\\ncmV0"), der + " not base64"),
            (session("c2VjcmV0", "c2VjcmV0\\u00e9"), der + " not base64"),
            (session("c2VjcmV0", ""), der + " empty"),
            (session("2e9", '"soon"'), expires),
            (session("2e9", "true"), expires),
            (session("2e9", "null"), expires),
            (session("2e9", "NaN"), expires),
            (session("2e9", "-Infinity"), expires),
            (session("false", '"no"'), single_use),
            (session("false", "0"), single_use),
            (session(', "single_use": false', ""), single_use),
        ]
        path = os.path.abspath(self.mktemp())
        for content, reason in damaged:
            with open(path, "wb") as f:
                f.write(content)
            os.chmod(path, 0o600)
            e = self.assertRaises(ClientStoreError, FileClientSessionStore, path)
            self.assertEqual(
                str(e),
                f"{path} is not a resumetls session file ({reason}); remove "
                "it to start afresh",
            )
            self.assertNotIn("c2Vj", str(e))
        with open(path, "wb") as f:
            f.write(session())
        self.assertEqual(FileClientSessionStore(path).take("k", 0), b"secret")

    def test_damaged_later(self):
        """A file damaged after the store read it is refused when read again."""
        path = os.path.abspath(self.mktemp())
        store = FileClientSessionStore(path)
        store.put("k", b"session", 2e9, False)
        with open(path, "w") as f:
            f.write('{"sessions": []}')
        e = self.assertRaises(ClientStoreError, store.take, "k", 0)
        self.assertIn("is not a resumetls session file", str(e))
        self.assertRaises(ClientStoreError, store.put, "k", b"session", 2e9, False)

    def test_two_stores_one_file(self):
        """
        Two store objects on one file keep each other's sessions, see each
        other's new ones, and a TLS 1.3 ticket is handed out once.
        """
        path = os.path.abspath(self.mktemp())
        one, two = FileClientSessionStore(path), FileClientSessionStore(path)
        one.put("a", b"A", 2e9, False)
        two.put("b", b"B", 2e9, False)
        one.put("a", b"A2", 2e9, False)
        three = FileClientSessionStore(path)
        self.assertEqual((three.take("a", 0), three.take("b", 0)), (b"A2", b"B"))
        self.assertEqual(one.take("b", 0), b"B")
        self.assertEqual(two.take("a", 0), b"A2")
        # the same profile: tickets from both are kept, each taken once
        one.put("t", b"T1", 2e9, True)
        two.put("t", b"T2", 2e9, True)
        self.assertEqual(one.count("t"), 2)
        taken = [one.take("t", 0), two.take("t", 0), one.take("t", 0), two.take("t", 0)]
        self.assertEqual(taken, [b"T2", b"T1", None, None])
        two.forget("a")
        self.assertIsNone(one.take("a", 0))
        self.assertEqual(one.take("b", 0), b"B")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(path + ".lock").st_mode & 0o777, 0o600)

    def test_file_removed(self):
        """Removing the file starts afresh, also for a store that had read it."""
        path = os.path.abspath(self.mktemp())
        store = FileClientSessionStore(path)
        store.put("a", b"A", 2e9, False)
        os.unlink(path)
        self.assertIsNone(store.take("a", 0))
        store.put("b", b"B", 2e9, False)
        self.assertEqual(FileClientSessionStore(path).take("b", 0), b"B")

    def test_expired_other_profiles_dropped(self):
        """
        Writing the file drops other servers' expired sessions (the server
        being written keeps its own: C{take} judges those).
        """
        import time

        path = os.path.abspath(self.mktemp())
        store = FileClientSessionStore(path)
        store.put("live", b"L", time.time() + 3600, True)
        store.put("old", b"O", time.time() - 1, False)
        self.assertEqual(FileClientSessionStore(path).count("old"), 1)
        store.put("new", b"N", time.time() + 3600, False)
        again = FileClientSessionStore(path)
        self.assertEqual(
            (again.count("old"), again.count("live"), again.count("new")), (0, 1, 1)
        )


_CHILD_STORE_SCRIPT = """
import sys
from resumetls import FileClientSessionStore

path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = FileClientSessionStore(path)
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    store.put(f"{prefix}-{i}", b"session %d" % i, 2e9, i % 2 == 0)
print(store.take(f"{prefix}-0", 0).decode())
"""


class FileStoreProcessTests(TestCase):
    """Two processes on one session file lose nothing."""

    timeout = 60

    def _child(self, path, prefix, count):
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD_STORE_SCRIPT, path, prefix, str(count)],
            cwd=support.ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(proc.wait, 10)
        self.addCleanup(proc.kill)
        self.assertEqual(proc.stdout.readline(), "ready\n")
        return proc

    def test_second_process(self):
        """
        A store made before another process saved sessions sees them, and
        its own writes keep them.
        """
        path = os.path.abspath(self.mktemp())
        store = FileClientSessionStore(path)
        store.put("parent", b"P", 2e9, False)
        child = self._child(path, "child", 3)
        out, _ = child.communicate("go\n", timeout=30)
        self.assertEqual(out, "session 0\n")
        self.assertEqual(store.take("child-1", 0), b"session 1")
        store.put("parent", b"P2", 2e9, False)
        again = FileClientSessionStore(path)
        self.assertEqual(again.take("child-2", 0), b"session 2")
        self.assertEqual(again.take("parent", 0), b"P2")

    def test_concurrent_writers(self):
        """Two processes writing at the same time: every session is kept."""
        path = os.path.abspath(self.mktemp())
        children = [self._child(path, name, 150) for name in ("one", "two")]
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            out, _ = child.communicate(timeout=30)
            self.assertEqual(out, "session 0\n")
        store = FileClientSessionStore(path)
        missing = [
            f"{name}-{i}"
            for name in ("one", "two")
            for i in range(1, 150)
            if store.count(f"{name}-{i}") != 1
        ]
        self.assertEqual(missing, [])
        self.assertEqual(store.count("one-0") + store.count("two-0"), 0)  # taken
