"""
The examples run as a user would run them, and show what the README says.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WrapWebSiteTests(TestCase):
    def test_second_connection_resumes(self):
        out = subprocess.run(
            [sys.executable, os.path.join(ROOT, "examples", "wrap_web_site.py")],
            env={**os.environ, "PYTHONPATH": ROOT},
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertIn("client says session_reused=False", lines[0])
        self.assertIn("resumed=False mechanism=None", lines[0])
        self.assertIn("client says session_reused=True", lines[1])
        self.assertIn("resumed=True mechanism=ticket", lines[1])
        self.assertIn("full=1 resumed_ticket_tls13=1", lines[2])
