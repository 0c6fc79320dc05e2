"""
The benchmark's smoke mode: every server starts, every workload runs, and the
resumed workloads really resumed, by the servers' own counters; and
bench/loadgen.c, the load of the worker and per-core benchmarks, compiles and
resumes as it says.  Timing is not asserted (CI machines are noisy); that is
what bench/ is for.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import urllib.request
from typing import Any

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


def _bench_module(name: str) -> Any:
    """A script of bench/ imported by path (bench/ is not a package)."""
    bench = os.path.join(support.ROOT, "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module(name)


class LoadgenTests(TestCase):
    """
    bench/loadgen.c, the load of bench/workers.py and bench/percore.py,
    compiled here and run against a real `twist resumetls`: every client
    after its first connection resumes (or none does, in "new" mode), as
    the server's own counters confirm.
    """

    timeout = 120

    def setUp(self):
        handshakes = _bench_module("handshakes")
        work = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(work, "www"))
        with open(os.path.join(work, "www", "ok.txt"), "w") as f:
            f.write("ok\n")
        self.loadgen = handshakes.loadgen
        self.binary = handshakes.loadgen_binary(work)
        cert, key = support.pem_files(self)
        self.port, self.metrics = support.free_port(), support.free_port()
        support.start_twist(
            self,
            self.port,
            "--interface",
            "127.0.0.1",
            "--certificate",
            cert,
            "--key",
            key,
            "--path",
            os.path.join(work, "www"),
            "--metrics",
            str(self.metrics),
        )
        support.wait_for_port(self.metrics)

    def handshakes(self) -> dict[str, float]:
        """The server's handshake counters, by kind."""
        url = f"http://127.0.0.1:{self.metrics}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        return {
            m.group(1): float(m.group(2))
            for m in re.finditer(
                r'^resumetls_handshakes_total\{kind="(\w+)",service="default"\} '
                r"(\S+)$",
                text,
                re.M,
            )
        }

    def test_returning_clients_resume(self):
        n, reused, _ = self.loadgen(self.binary, self.port, True, 1, 3)
        self.assertGreater(n, 10)
        # Each of the 3 clients makes one full handshake, then resumes by
        # ticket, and the server saw the same.
        self.assertEqual(reused, n - 3)
        counted = self.handshakes()
        self.assertEqual(counted["full"], 3)
        self.assertEqual(counted["ticket_tls12"], n - 3)

    def test_new_never_resumes(self):
        n, reused, _ = self.loadgen(self.binary, self.port, False, 1, 3)
        self.assertGreater(n, 10)
        self.assertEqual(reused, 0)
        counted = self.handshakes()
        self.assertEqual(counted["full"], n)
        self.assertEqual(counted["ticket_tls12"], 0)

    def test_refuses_other_hosts(self):
        out = subprocess.run(
            [self.binary, "192.0.2.1", str(self.port), "1", "1"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        self.assertEqual(out.returncode, 64)
        self.assertIn("loopback only", out.stderr)
