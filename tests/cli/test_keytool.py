"""
C{resumetls keys}: generate, rotate and show key files through C{main(argv)},
with stdout and stderr captured; errors are one line and exit status 2.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from resumetls import TicketKey
from resumetls.cli import keytool as _keytool
from resumetls.keys.files import load_key_file, write_haproxy_keys, write_nginx_key
from tests import support
from tests.keys.test_ring import secret_texts


class KeyToolTests(SynchronousTestCase):
    def run_tool(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        code = _keytool.main(list(argv))
        return code, out.getvalue(), err.getvalue()

    def path(self) -> str:
        return os.path.abspath(self.mktemp())

    def test_generate_haproxy(self):
        """Three 80-byte keys by default, mode 0600, roles printed."""
        p = self.path()
        code, out, err = self.run_tool("generate", "-o", p)
        self.assertEqual((code, err), (0, ""))
        keys = load_key_file(p)
        self.assertEqual(
            out,
            f"wrote 3 HAProxy ticket keys (AES-256) to {p}: "
            f"{keys.encrypting.fingerprint} encrypts, "
            f"{keys.pending[0].fingerprint} is next\n",
        )
        self.assertEqual(os.stat(p).st_mode & 0o777, 0o600)
        with open(p, "rb") as f:
            self.assertEqual(len(f.read().splitlines()), 3)
        self.assertEqual(keys.encrypting.bits, 256)

    def test_generate_haproxy_128(self):
        p = self.path()
        code, _, _ = self.run_tool(
            "generate", "--format", "haproxy", "--bits", "128", "-o", p
        )
        self.assertEqual(code, 0)
        self.assertEqual({k.bits for k in load_key_file(p).all}, {128})

    def test_generate_nginx(self):
        for bits, size in (("128", 48), ("256", 80)):
            p = self.path()
            code, out, _ = self.run_tool(
                "generate", "--format", "nginx", "--bits", bits, "-o", p
            )
            self.assertEqual(code, 0)
            self.assertEqual(os.path.getsize(p), size)
            key = load_key_file(p).encrypting
            self.assertEqual(key.bits, int(bits))
            self.assertIn(f"(AES-{bits}, {key.fingerprint})", out)

    def test_generate_refuses_overwrite(self):
        p = self.path()
        self.run_tool("generate", "-o", p)
        before = load_key_file(p)
        code, out, err = self.run_tool("generate", "-o", p)
        self.assertEqual((code, out), (2, ""))
        self.assertEqual(
            err, f"resumetls keys: {p} exists; use --force to replace it\n"
        )
        self.assertEqual(load_key_file(p), before)
        code, _, _ = self.run_tool("generate", "--force", "-o", p)
        self.assertEqual(code, 0)
        self.assertNotEqual(load_key_file(p), before)

    def test_generate_unwritable(self):
        p = os.path.join(self.path(), "missing-dir", "keys")
        code, _, err = self.run_tool("generate", "-o", p)
        self.assertEqual(code, 2)
        self.assertEqual(
            err, f"resumetls keys: cannot write {p}: No such file or directory\n"
        )

    def test_rotate(self):
        """
        rotate: the next key encrypts, the encrypting key decrypts only, the
        oldest is dropped, a new next key is appended (HAProxy's own order).
        """
        keys = [TicketKey.generate() for _ in range(3)]
        p = self.path()
        write_haproxy_keys(p, keys)
        code, out, err = self.run_tool("rotate", p)
        self.assertEqual((code, err), (0, ""))
        after = load_key_file(p)
        self.assertEqual(after.encrypting, keys[2])
        self.assertEqual(after.decrypt_only, (keys[1],))
        self.assertNotIn(after.pending[0], keys)
        self.assertEqual(after.pending[0].bits, 256)
        self.assertEqual(
            out,
            f"rotated {p}: {keys[2].fingerprint} encrypts now, "
            f"{after.pending[0].fingerprint} is next, {keys[1].fingerprint} "
            f"decrypts only, {keys[0].fingerprint} was dropped\n",
        )
        self.assertEqual(os.stat(p).st_mode & 0o777, 0o600)
        for key in keys:
            for secret in secret_texts(key):
                self.assertNotIn(secret, out)

    def test_rotate_keeps_size_and_trims(self):
        """128-bit files stay 128-bit; lines beyond the last three go."""
        keys = [
            TicketKey(os.urandom(16), os.urandom(16), os.urandom(16)) for _ in range(5)
        ]
        p = self.path()
        write_haproxy_keys(p, keys)
        self.assertEqual(self.run_tool("rotate", p)[0], 0)
        with open(p, "rb") as f:
            self.assertEqual(len(f.read().splitlines()), 3)
        after = load_key_file(p)
        self.assertEqual(after.encrypting, keys[4])
        self.assertEqual({k.bits for k in after.all}, {128})

    def test_rotate_nginx_refused(self):
        p = self.path()
        write_nginx_key(p, TicketKey.generate())
        code, _, err = self.run_tool("rotate", p)
        self.assertEqual(code, 2)
        self.assertEqual(
            err,
            f"resumetls keys: {p} is an nginx key file (one key); rotate nginx "
            "keys by generating a new file and listing it first, the old one "
            "second\n",
        )

    def test_rotate_broken_file(self):
        p = self.path()
        with open(p, "w") as f:
            f.write("not base64 at all!\n")
        os.chmod(p, 0o600)
        code, _, err = self.run_tool("rotate", p)
        self.assertEqual(code, 2)
        self.assertEqual(err, f"resumetls keys: {p}, line 1: not valid base64\n")
        with open(p) as f:
            self.assertEqual(f.read(), "not base64 at all!\n")  # untouched

    def test_show(self):
        """show: format, roles, fingerprints, algorithms; never key material."""
        keys = [TicketKey.generate() for _ in range(3)]
        hp, np_ = self.path(), self.path()
        write_haproxy_keys(hp, keys)
        nkey = TicketKey(os.urandom(16), os.urandom(16), os.urandom(16))
        write_nginx_key(np_, nkey)
        code, out, err = self.run_tool("show", hp, np_)
        self.assertEqual((code, err), (0, ""))
        algo = "AES-256-CBC  HMAC-SHA256 (32-byte key)"
        self.assertEqual(
            out,
            f"{hp}: HAProxy key file\n"
            f"  {keys[0].fingerprint}  {algo}  decrypts only\n"
            f"  {keys[1].fingerprint}  {algo}  encrypts\n"
            f"  {keys[2].fingerprint}  {algo}  next (decrypts, encrypts after "
            "the next rotation)\n"
            f"{np_}: nginx key file\n"
            f"  {nkey.fingerprint}  AES-128-CBC  HMAC-SHA256 (16-byte key)  "
            "encrypts when listed first in ssl_session_ticket_key, else decrypts "
            "only\n",
        )
        for key in [*keys, nkey]:
            for secret in secret_texts(key) + [key.name.hex()]:
                self.assertNotIn(secret, out)

    def test_show_refuses_open_permissions(self):
        p = self.path()
        self.run_tool("generate", "-o", p)
        os.chmod(p, 0o644)
        code, out, err = self.run_tool("show", p)
        self.assertEqual((code, out), (2, ""))
        self.assertEqual(
            err,
            f"resumetls keys: {p} is readable by group or others (mode 0644); "
            f"ticket keys are secrets: run `chmod 600 {p}`\n",
        )

    def test_usage_errors(self):
        """Usage errors are one line, status 2, returned (not raised)."""
        for argv, expected in (
            ((), "the following arguments are required: {generate,rotate,show,fleet}"),
            (("bogus",), "invalid choice: 'bogus'"),
            (("show",), "the following arguments are required: FILE"),
            (("generate",), "the following arguments are required: -o/--output"),
            (("generate", "--bits", "512", "-o", "x"), "invalid choice: 512"),
        ):
            code, out, err = self.run_tool(*argv)
            self.assertEqual(code, 2, argv)
            self.assertEqual(err.count("\n"), 1, err)
            self.assertIn(expected, err)

    def test_help(self):
        code, out, _ = self.run_tool("rotate", "--help")
        self.assertEqual(code, 0)
        self.assertIn("drop the oldest key and append a new one", out)
        code, out, _ = self.run_tool("--help")
        self.assertEqual(code, 0)
        self.assertIn("resumetls keys: generate, rotate and inspect", out)
        self.assertNotIn("C{", out)

    def test_command_line(self):
        """python -m resumetls keys ... dispatches here."""
        p = self.path()
        env = dict(os.environ)
        root = support.ROOT
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        result = subprocess.run(
            [sys.executable, "-m", "resumetls", "keys", "show", p],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        self.assertEqual(result.returncode, 2)
        self.assertEqual(
            result.stderr, f"resumetls keys: {p}: no such ticket key file\n"
        )
