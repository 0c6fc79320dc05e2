"""
The benchmark's smoke mode: every server starts, every workload runs, and the
resumed workloads really resumed, by the servers' own counters.  Timing is
not asserted (CI machines are noisy); that is what bench/ is for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from twisted.trial.unittest import TestCase

from . import support


class BenchSmokeTests(TestCase):
    timeout = 300

    def test_smoke(self):
        out_path = os.path.abspath(self.mktemp())
        env = support.environment(os.path.abspath(self.mktemp()))
        proc = subprocess.run(
            [
                sys.executable,
                os.path.join(support.ROOT, "bench", "handshakes.py"),
                "--smoke",
                "--json",
                out_path,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=280,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        self.assertIn("| TLS | key | workload |", proc.stdout)
        with open(out_path) as f:
            report = json.load(f)
        seen = set()
        for r in report["results"]:
            seen.add(r["server"])
            for run in r["runs"]:
                n = run["handshakes"]
                self.assertGreater(n, 10, r)
                if r["workload"] == "full":
                    self.assertEqual(run["client_reused"], 0, r)
                    if "server_resumed" in run:
                        self.assertEqual(run["server_resumed"], 0, r)
                        self.assertGreaterEqual(run["server_full"], n, r)
                    continue
                # Every timed connection offered the session and got it back;
                # the server also saw s_time's untimed first, full, connection.
                self.assertGreaterEqual(run["client_reused"], 0.95 * n, r)
                if "server_resumed" in run:
                    self.assertGreaterEqual(run["server_resumed"], 0.95 * n, r)
                    self.assertLessEqual(run["server_full"], 0.05 * n + 1, r)
        expected = {"resumetls", "twisted", "s_server"}
        if os.path.exists("/usr/sbin/nginx"):
            expected.add("nginx")
        self.assertEqual(seen, expected)
