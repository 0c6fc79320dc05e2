"""
The development certificate's Chromium command: in the text of the
C{resumetls.devcert} warning (so it can be copied from C{twist}'s JSON log
lines too), and on demand from C{resumetls devcert}.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

from twisted.logger import eventAsJSON, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from resumetls.cli import devcert as _devcert
from resumetls.cli.devcert import spki_pin

from .. import support


def command(pin: str, port: int) -> str:
    return f"chromium --ignore-certificate-errors-spki-list={pin} https://localhost:{port}/"


class WarningTests(SynchronousTestCase):
    def setUp(self):
        self.data = os.path.abspath(self.mktemp())
        self.patch(os, "environ", {**os.environ, "XDG_DATA_HOME": self.data})
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def devcert_events(self):
        return [e for e in self.events if e.get("event") == "resumetls.devcert"]

    def test_command_in_the_text(self):
        """
        The ready-to-paste command, with the pin and the port, is in the
        rendered text and in the JSON line's format string itself.
        """
        cert, _ = _devcert.development_certificate(9443)
        expected = command(spki_pin(cert), 9443)
        (event,) = self.devcert_events()
        self.assertIn(": " + expected, formatEvent(event))
        line = json.loads(eventAsJSON(event))
        self.assertIn(expected, line["log_format"])
        self.assertEqual(line["chromium"], expected)
        self.assertEqual(line["cert"], cert)

    def test_braces_in_the_path(self):
        """A data directory with braces in its name renders as itself."""
        self.patch(
            os, "environ", {**os.environ, "XDG_DATA_HOME": self.data + "{x}"}
        )
        cert, _ = _devcert.development_certificate(None)
        (event,) = self.devcert_events()
        text = formatEvent(event)
        self.assertIn(cert, text)
        self.assertTrue(
            text.endswith(
                f"--ignore-certificate-errors-spki-list={spki_pin(cert)} "
                "https://localhost:PORT/"
            ),
            text,
        )


class CommandTests(SynchronousTestCase):
    def run_command(self, *argv):
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        return _devcert.main(list(argv)), out.getvalue()

    def test_prints_paths_pin_and_command(self):
        data = os.path.abspath(self.mktemp())
        self.patch(os, "environ", {**os.environ, "XDG_DATA_HOME": data})
        code, out = self.run_command("--port", "8444")
        cert = os.path.join(data, "resumetls", "dev-cert.pem")
        key = os.path.join(data, "resumetls", "dev-key.pem")
        pin = spki_pin(cert)
        self.assertEqual(code, 0)
        lines = out.splitlines()
        self.assertEqual(lines[0], f"certificate  {cert} (made now)")
        self.assertEqual(lines[1], f"key          {key}")
        self.assertEqual(lines[3], f"SPKI pin     {pin}")
        self.assertEqual(lines[-1], "    " + command(pin, 8444))
        # The second time it is the same certificate, not made again.
        code, out = self.run_command("--json")
        self.assertEqual(
            {k: v for k, v in json.loads(out).items() if k != "expires"},
            {
                "certificate": cert,
                "key": key,
                "made_now": False,
                "spki_pin": pin,
                "chromium": command(pin, 8443),
            },
        )

    def test_unwritable(self):
        """A data directory that cannot be made: one line, exit 2."""
        blocker = os.path.abspath(self.mktemp())
        with open(blocker, "w"):
            pass
        self.patch(os, "environ", {**os.environ, "XDG_DATA_HOME": blocker})
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        code, out = self.run_command()
        self.assertEqual((code, out), (2, ""))
        self.assertTrue(
            err.getvalue().startswith("resumetls devcert: cannot make the development")
        )


class TwistLogTests(TestCase):
    """Against a real C{twist resumetls} whose output is not a terminal."""

    timeout = 60

    def test_command_in_json_log(self):
        """
        C{twist} logs JSON lines here; the command can be copied from the
        raw line, and C{resumetls devcert} prints the same one.
        """
        port = support.free_port()
        proc = support.start_process(
            self, ["-m", "twisted", "resumetls", "--port", str(port)], port
        )
        cert = os.path.join(proc.tmp, "data", "resumetls", "dev-cert.pem")
        expected = command(spki_pin(cert), port)
        # The port listens a moment before the line reaches the log file.
        deadline = time.monotonic() + 20
        while True:
            raw = support.read_output(proc)
            found = [x for x in raw.split("\x1e") if '"resumetls.devcert"' in x]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        (line,) = found
        self.assertIn(expected, line)
        self.assertIn(expected, json.loads(line)["log_format"])
        printed = subprocess.run(
            [sys.executable, "-m", "resumetls", "devcert", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env=support.environment(proc.tmp),
            check=True,
        ).stdout
        self.assertIn(f"certificate  {cert}\n", printed)
        self.assertTrue(printed.endswith("    " + expected + "\n"), printed)
