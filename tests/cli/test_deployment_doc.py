"""
docs/deployment.md runs as written.

Every fenced block of the document carries a comment that says how it is
checked (C{<!-- check: KIND -->}); a block without one fails the test.
Commands run in a temporary directory: C{/etc/resumetls}, C{/opt/resumetls}
and C{/srv/www} are moved there (the programs under C{/opt/resumetls/bin} are
this checkout's, run with this Python), the service's ports 443 and 9100
become free loopback ports, and the C{resumetls} and C{root} owners become
the current user (nothing here creates users or touches the system).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from resumetls.keys.files import nginx_key, parse_haproxy_keys, read_key_data

from .. import support

DOC = os.path.join(support.ROOT, "docs", "deployment.md")
KINDS = {"syntax", "run", "unit", "cron", "cron-nginx", "haproxy"}


def blocks() -> list[tuple[str | None, str]]:
    """Every fenced block of the document: (its check kind or None, text)."""
    with open(DOC) as f:
        text = f.read()
    pattern = re.compile(r"(?:<!-- check: ([a-z-]+) -->\n)?```[a-z]*\n(.*?)```", re.S)
    return [(m.group(1), m.group(2)) for m in pattern.finditer(text)]


def block(kind: str, index: int = 0) -> str:
    return [text for k, text in blocks() if k == kind][index]


class Place:
    """Where the document's commands run: paths, ports and owners moved."""

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.port = support.free_port()
        self.metrics = support.free_port()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.group = grp.getgrgid(os.getgid()).gr_name
        self.env = support.environment(tmp)

    def path(self, path: str) -> str:
        return self.tmp + path

    def localize(self, text: str) -> str:
        python = shlex.quote(sys.executable)
        text = text.replace("/opt/resumetls/bin/twist", f"{python} -m twisted")
        text = text.replace("/opt/resumetls/bin/resumetls", f"{python} -m resumetls")
        for directory in ("/etc/resumetls", "/srv/www"):
            text = text.replace(directory, self.tmp + directory)
        text = text.replace("resumetls:resumetls", f"{self.user}:{self.group}")
        text = re.sub(r"-o (root|resumetls)\b", f"-o {self.user}", text)
        text = re.sub(r"-g resumetls\b", f"-g {self.group}", text)
        text = text.replace("--port 443", f"--port {self.port}")
        text = text.replace("--metrics 9100", f"--metrics {self.metrics}")
        return text.replace("127.0.0.1:9100", f"127.0.0.1:{self.metrics}")

    def run(self, script: str) -> str:
        """Run a block's commands with bash (stopping at the first failure)."""
        out = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", self.localize(script)],
            cwd=self.tmp,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            raise AssertionError(
                f"exit {out.returncode}:\n{self.localize(script)}\n{out.stdout}"
                f"\n{out.stderr}"
            )
        return out.stdout

    def cron(self, line: str) -> str:
        """Check a cron.d line's fields and run its command."""
        fields = line.split(None, 6)
        self.assertion(len(fields) == 7, line)
        minute, hour, day, month, weekday, user, command = fields
        for field in (minute, hour, day, month, weekday):
            self.assertion(re.fullmatch(r"[0-9*/,-]+", field), line)
        self.assertion(user == "resumetls", line)
        return self.run(command)

    @staticmethod
    def assertion(ok: object, line: str) -> None:
        if not ok:
            raise AssertionError(f"not a cron.d line: {line!r}")


def unit_exec_start() -> list[str]:
    """The unit's C{ExecStart}, split as systemd does (no shell)."""
    (line,) = [
        x for x in block("unit").splitlines() if x.startswith("ExecStart=")
    ]
    return shlex.split(line[len("ExecStart=") :])


class DocumentTests(SynchronousTestCase):
    def test_every_block_checked(self):
        found = blocks()
        self.assertGreaterEqual(len(found), 10)
        unchecked = [text for kind, text in found if kind not in KINDS]
        self.assertEqual(unchecked, [])

    def test_shell_syntax(self):
        """Blocks that change the system (users, systemd, sysctl, nft) are
        only parsed, by bash."""
        for kind, text in blocks():
            if kind in ("syntax", "run"):
                out = subprocess.run(
                    ["bash", "-n"], input=text, capture_output=True, text=True
                )
                self.assertEqual(out.returncode, 0, f"{text}\n{out.stderr}")

    def test_unit_verifies(self):
        """
        C{systemd-analyze verify} finds nothing wrong with the unit but the
        program it starts, which is not installed under /opt here.
        """
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            raise SkipTest("systemd-analyze is missing (.ci/run installs systemd)")
        tmp = os.path.abspath(self.mktemp())
        os.makedirs(tmp)
        unit = os.path.join(tmp, "resumetls.service")
        with open(unit, "w") as f:
            f.write(block("unit"))
        out = subprocess.run(
            [analyze, "verify", "--man=no", "--generators=no", unit],
            capture_output=True,
            text=True,
            timeout=60,
        )
        complaints = [
            line
            for line in (out.stdout + out.stderr).splitlines()
            if line.strip()
            and not (
                not os.path.exists("/opt/resumetls/bin/twist")
                and "Command /opt/resumetls/bin/twist is not executable" in line
            )
        ]
        self.assertEqual(complaints, [])
        self.assertEqual(unit_exec_start()[:2], ["/opt/resumetls/bin/twist", "resumetls"])

    def test_haproxy_config(self):
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not os.path.exists(haproxy):
            raise SkipTest("haproxy is missing (.ci/run installs it)")
        tmp = os.path.abspath(self.mktemp())
        os.makedirs(tmp)
        config = os.path.join(tmp, "haproxy.cfg")
        with open(config, "w") as f:
            f.write(block("haproxy"))
        out = subprocess.run(
            [haproxy, "-c", "-f", config], capture_output=True, text=True, timeout=60
        )
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("Configuration file is valid", out.stdout + out.stderr)


def _s_client(port: int, *args: str) -> str:
    """One TLS 1.2 C{openssl s_client} connection that sends an HTTP request
    (so the server answers and closes); what it printed."""
    return support._s_client(port, ["-tls1_2", *args], support.HTTP_REQUEST)


def ticket_name(port: int, session_out: str) -> bytes:
    """The key name of the ticket a new TLS 1.2 session gets."""
    output = _s_client(port, "-sess_out", session_out)
    if not os.path.exists(session_out):
        raise AssertionError(f"s_client saved no session:\n{output[-1500:]}")
    return support.session_ticket(session_out)[:16]


def resumes(port: int, session_in: str) -> bool:
    """Whether a TLS 1.2 connection offering C{session_in} resumes."""
    return support.parse_s_client(_s_client(port, "-sess_in", session_in))["reused"]


class WalkthroughTests(SynchronousTestCase):
    """The document from installing to rotating keys, against a real server."""

    def setUp(self):
        tmp = os.path.abspath(self.mktemp())
        os.makedirs(tmp)
        self.place = Place(tmp)
        support.write_pem(tmp, *support.certificate())
        os.rename(os.path.join(tmp, "cert.pem"), os.path.join(tmp, "server.pem"))
        os.rename(os.path.join(tmp, "key.pem"), os.path.join(tmp, "server.key"))

    def start(self, argv: list[str]):
        """Start the server C{argv} (the unit's ExecStart, localized)."""
        localized = shlex.split(self.place.localize(shlex.join(argv)))
        self.assertEqual(localized[:3], [sys.executable, "-m", "twisted"])
        proc = support.start_process(self, localized[1:], self.place.port)
        support.wait_for_port(self.place.metrics, proc)
        return proc

    def wait_for_key(self, expected: bytes, session: str) -> None:
        """Poll (bounded) until new tickets carry the key name C{expected}."""
        deadline = time.monotonic() + 20
        while True:
            name = ticket_name(self.place.port, session)
            if name == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(name, expected)

    def test_haproxy_keys(self):
        place = self.place
        self.assertIn("custom ticket keys", place.run(block("run", 0)).lower())
        shown = place.run(block("run", 1))
        keyfile = place.path("/etc/resumetls/ticket-keys/ticket.keys")
        self.assertIn(f"{keyfile}: HAProxy key file", shown)
        for path, mode in (
            ("/etc/resumetls", 0o750),
            ("/etc/resumetls/server.pem", 0o644),
            ("/etc/resumetls/server.key", 0o640),
            ("/etc/resumetls/ticket-keys", 0o700),
            ("/etc/resumetls/ticket-keys/ticket.keys", 0o600),
        ):
            self.assertEqual(stat.S_IMODE(os.stat(place.path(path)).st_mode), mode)
        with open(place.path("/srv/www/index.html"), "w") as f:
            f.write("served\n")

        proc = self.start(unit_exec_start())
        # A client resumes by session ID and by ticket (TLS 1.2 and 1.3).
        probe = subprocess.run(
            [sys.executable, "-m", "resumetls", "probe", "--quiet", "--cafile",
             "server.pem", f"localhost:{place.port}"],
            cwd=place.tmp, env=place.env, capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(probe.returncode, 0, probe.stdout + probe.stderr)
        self.assertEqual(probe.stdout.count(" yes (5/5)"), 3, probe.stdout)
        # The metrics block shows the three families it greps for.
        metrics = place.run(block("run", 2))
        for name in (
            "resumetls_handshakes_total",
            "resumetls_tickets_total",
            "resumetls_ticket_key_age_seconds",
        ):
            self.assertIn(name, metrics)

        keys = parse_haproxy_keys(read_key_data(keyfile), keyfile)
        old = os.path.join(place.tmp, "old.sess")
        self.assertEqual(ticket_name(place.port, old), keys.encrypting.name)

        # The cron line rotates: the next key encrypts, the old one decrypts.
        out = place.cron(block("cron").strip())
        self.assertIn(f"{keys.pending[0].fingerprint} encrypts now", out)
        self.wait_for_key(keys.pending[0].name, os.path.join(place.tmp, "new.sess"))
        self.assertTrue(resumes(place.port, old))

        # systemctl reload: SIGHUP; the server reads the files again and serves.
        os.kill(proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "resumetls.keys.reloaded" not in support.read_output(proc):
            self.assertLess(time.monotonic(), deadline, support.read_output(proc))
            time.sleep(0.1)
        status, body, _, _ = support.https_get(place.port, "/index.html")
        self.assertEqual((status, body), ("HTTP/1.1 200 OK", b"served\n"))
        self.assertIsNone(proc.poll())

    def test_nginx_keys(self):
        """Two nginx key files, the first encrypts; the cron line rotates them."""
        place = self.place
        place.run(block("run", 1))
        directory = place.path("/etc/resumetls/ticket-keys")
        for name in ("current.key", "previous.key"):
            subprocess.run(
                [sys.executable, "-m", "resumetls", "keys", "generate", "--format",
                 "nginx", "-o", os.path.join(directory, name)],
                env=place.env, check=True, capture_output=True, timeout=60,
            )
        current = os.path.join(directory, "current.key")
        argv = unit_exec_start()
        at = argv.index("--ticket-keys")
        argv[at : at + 2] = [
            "--ticket-keys", "/etc/resumetls/ticket-keys/current.key",
            "--ticket-keys", "/etc/resumetls/ticket-keys/previous.key",
        ]
        self.start(argv)
        first = nginx_key(read_key_data(current), current)
        old = os.path.join(place.tmp, "old.sess")
        self.assertEqual(ticket_name(place.port, old), first.name)

        place.cron(block("cron-nginx").strip())
        self.assertEqual(
            nginx_key(read_key_data(os.path.join(directory, "previous.key"))).name,
            first.name,
        )
        self.assertEqual(  # nothing left behind
            sorted(os.listdir(directory)),
            ["current.key", "previous.key", "ticket.keys"],
        )
        second = nginx_key(read_key_data(current), current)
        self.assertNotEqual(second.name, first.name)
        self.wait_for_key(second.name, os.path.join(place.tmp, "new.sess"))
        # A ticket of the old key still resumes: it is the second file now.
        self.assertTrue(resumes(place.port, old))
