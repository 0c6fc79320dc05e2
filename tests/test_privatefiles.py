"""
L{resumetls.privatefiles}: one atomic write that leaves a file private, and
one check that refuses a secret file others can reach.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from resumetls import privatefiles
from resumetls.privatefiles import mode_problem, write_atomically


class WriteTests(SynchronousTestCase):
    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, "secret")

    def test_private_and_replaced(self):
        """
        Mode 0600 whatever the umask and the old file's mode; the returned
        stat is the file's; no temporary file is left; file and directory
        are fsynced.
        """
        with open(self.path, "wb") as f:
            f.write(b"old")
        os.chmod(self.path, 0o644)
        synced = []
        real = os.fsync
        self.patch(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
        old = os.umask(0)
        try:
            written = write_atomically(self.path, b"new")
        finally:
            os.umask(old)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"new")
        st = os.stat(self.path)
        self.assertEqual(st.st_mode & 0o777, 0o600)
        self.assertEqual((written.st_ino, written.st_size), (st.st_ino, 3))
        self.assertEqual(os.listdir(self.directory), ["secret"])
        self.assertEqual(len(synced), 2)

    def test_mode(self):
        write_atomically(self.path, b"public", mode=0o644)
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o644)

    def test_failure_leaves_old_file(self):
        """A failed write changes nothing and leaves no temporary file."""
        with open(self.path, "wb") as f:
            f.write(b"old")

        def fail(src, dst):
            raise OSError(28, "No space left on device")

        self.patch(privatefiles.os, "replace", fail)
        self.assertRaises(OSError, write_atomically, self.path, b"new")
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"old")
        self.assertEqual(os.listdir(self.directory), ["secret"])


class ModeTests(SynchronousTestCase):
    def test_problem(self):
        self.assertIsNone(mode_problem("/k", 0o100600, "keys are secrets"))
        self.assertIsNone(mode_problem("/k", 0o100400, "keys are secrets"))
        self.assertEqual(
            mode_problem("/k", 0o100640, "keys are secrets"),
            "/k is readable by group or others (mode 0640); keys are secrets: "
            "run `chmod 600 /k`",
        )
        self.assertEqual(
            mode_problem("/k", 0o100620, "keys are secrets"),
            "/k is writable by group or others (mode 0620); keys are secrets: "
            "run `chmod 600 /k`",
        )
