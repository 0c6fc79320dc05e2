"""
C{twist resumetls --workers 2}, with real processes and C{openssl s_client}:
sessions made by one worker resume on the other in all four modes; a worker
killed with SIGKILL is restarted and sessions still resume; SIGHUP reaches
every worker; SIGTERM, and the parent's death, leave nothing running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

from twisted.trial.unittest import TestCase

from tests import support
from tests.support.s_client import parse_s_client, run_s_client

# Resumptions in a row per mode: with two workers and the kernel's hash of
# the client port, all landing on one worker has a chance of 2 in 2**12.
ROUNDS = 12
#: The kernel hands a shared socket's connections to whichever worker wakes
#: first, so a few in a row may all land on one; ask up to this many times
#: until both workers have served.
MOST = 80
REQUEST = b"who\n"
_STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")


def _wait(what: str, check, timeout: float = 30.0, proc=None):
    """Poll C{check()} until it gives something true; fail after C{timeout}."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    output = support.read_output(proc)[-3000:] if proc is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n{output}")


def _scrape(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=20) as r:
        return r.read().decode()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie of ours counts as gone (it runs nothing).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


class _Workers:
    """A C{twist resumetls --workers 2} server for one test."""

    def start(
        self, *args: str, workers: int = 2, factory="tests.workers.app.WhoFactory"
    ):
        self.port = support.free_port()
        argv = [
            "-m",
            "twisted",
            "--log-format=text",
            "resumetls",
            "--workers",
            str(workers),
            "--port",
            str(self.port),
            "--interface",
            "127.0.0.1",
            *(["--factory", factory] if factory else []),
            *args,
        ]
        self.proc = support.start_process(self, argv)
        self.addCleanup(self._no_orphans)
        self.pids = _wait(
            f"{workers} workers", lambda: self.started(workers), proc=self.proc
        )
        return self.proc

    def started(self, count: int) -> dict[int, int] | None:
        """The newest pid of each worker once C{count} have started."""
        pids = {}
        for index, pid in _STARTED.findall(support.read_output(self.proc)):
            pids[int(index)] = int(pid)
        return pids if len(pids) >= count else None

    def _no_orphans(self) -> None:
        """After the test's server stopped, none of its workers runs."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        for pid in self.all_pids():
            _wait(f"worker pid {pid} to end", lambda pid=pid: _gone(pid))

    def all_pids(self) -> set[int]:
        return {int(p) for _, p in _STARTED.findall(support.read_output(self.proc))}

    def ask(self, *args: str) -> dict:
        output = run_s_client(self.port, list(args), REQUEST)
        return parse_s_client(output)

    def resume_many(self, version: str, session: str) -> list[dict]:
        """A full handshake, then L{ROUNDS} resumptions, each offering the last session."""
        first = self.ask(version, "-sess_out", session)
        self.assertFalse(first["reused"])
        return self.until_both(
            lambda: self.ask(version, "-sess_in", session, "-sess_out", session)
        )

    def until_both(self, one, worker=lambda a: a["server"]["worker"]) -> list:
        """
        C{one()} at least L{ROUNDS} times, and on until both workers have
        answered (at most L{MOST} times): the test then checks the answers.
        """
        answers = [one() for _ in range(ROUNDS)]
        while {worker(a) for a in answers} != {1, 2} and len(answers) < MOST:
            answers.append(one())
        return answers

    def assertCrossWorkers(self, answers: list[dict], mechanism: str) -> None:
        self.assertEqual([a["reused"] for a in answers], [True] * len(answers))
        self.assertEqual({a["server"]["mechanism"] for a in answers}, {mechanism})
        self.assertEqual(
            {a["server"]["worker"] for a in answers}, {1, 2}, "served by both workers"
        )
        self.assertEqual(len({a["server"]["pid"] for a in answers}), 2)


class SessionsCrossWorkersTests(_Workers, TestCase):
    """Every returning client resumes, whichever worker it lands on."""

    def test_tickets(self):
        """
        TLS 1.2 and TLS 1.3 tickets (keys rotated by the parent, shared);
        the parent's one metrics endpoint counts every worker's handshakes.
        """
        metrics = support.free_port()
        self.start("--metrics", str(metrics))
        tmp = self.mktemp()
        os.makedirs(tmp)
        counts = {}
        for version, mechanism in (
            ("-tls1_2", "ticket_tls12"),
            ("-tls1_3", "ticket_tls13"),
        ):
            answers = self.resume_many(version, os.path.join(tmp, version))
            counts[version] = len(answers)
            self.assertCrossWorkers(answers, mechanism)
            self.assertEqual(len({a["server"]["key"] for a in answers}), 1)
        text = _scrape(metrics)
        for kind, n in (
            ("full", 2),
            ("ticket_tls12", counts["-tls1_2"]),
            ("ticket_tls13", counts["-tls1_3"]),
        ):
            self.assertIn(
                f'resumetls_handshakes_total{{kind="{kind}",service="default"}} {n}.0',
                text,
            )
            per_worker = re.findall(
                rf'resumetls_worker_handshakes_total{{kind="{kind}",worker="\d"}} '
                r"(\d+)",
                text,
            )
            self.assertEqual(sum(int(v) for v in per_worker), n, kind)
        self.assertIn("resumetls_workers 2.0", text)

    def test_session_ids(self):
        """
        TLS 1.2 session IDs and TLS 1.3 stateful tickets, from the shared
        cache; the server says which worker's handshake made each session.
        """
        self.start("--no-tickets")
        tmp = self.mktemp()
        os.makedirs(tmp)
        for version in ("-tls1_2", "-tls1_3"):
            answers = self.resume_many(version, os.path.join(tmp, version))
            self.assertCrossWorkers(answers, "session_id")
            origins = {a["server"]["session_from_worker"] for a in answers}
            self.assertTrue(origins <= {1, 2} and origins, origins)
            # The TLS 1.2 session was made once, by one worker, and found by
            # both: one of them resumed a session the other made.
            if version == "-tls1_2":
                self.assertEqual(len(origins), 1)


class SupervisionTests(_Workers, TestCase):
    def test_sigkill_restarts(self):
        """
        A worker killed with SIGKILL under load is logged with its signal
        and restarted; sessions in the shared cache still resume on both.
        """
        self.start("--no-tickets")
        tmp = self.mktemp()
        os.makedirs(tmp)
        session = os.path.join(tmp, "session")
        self.assertFalse(self.ask("-tls1_2", "-sess_out", session)["reused"])
        victim = self.pids[1]
        os.kill(victim, signal.SIGKILL)
        # Clients keep coming while it is down and restarting.
        answers = [self.ask("-tls1_2", "-sess_in", session) for _ in range(4)]
        _wait(
            "the restarted worker",
            lambda: (self.started(2) or {}).get(1, victim) != victim,
            proc=self.proc,
        )
        output = support.read_output(self.proc)
        self.assertIn(
            f"worker 1 (pid {victim}) was killed by signal 9 (SIGKILL)", output
        )
        self.assertIn("restarting it in 0.1 s", output)
        answers += self.until_both(lambda: self.ask("-tls1_2", "-sess_in", session))
        self.assertEqual([a["reused"] for a in answers], [True] * len(answers))
        self.assertEqual({a["server"]["worker"] for a in answers[4:]}, {1, 2})

    def test_sighup_reaches_every_worker(self):
        """A changed key file, then SIGHUP: every worker encrypts with the new key."""
        from resumetls.keys.files import write_nginx_key
        from resumetls.keys.ring import TicketKey

        tmp = os.path.abspath(self.mktemp())
        os.makedirs(tmp)
        path = os.path.join(tmp, "ticket.keys")
        old, new = TicketKey.generate(), TicketKey.generate()
        write_nginx_key(path, old)
        self.start("--ticket-keys", path)
        first = {a["server"]["key"] for a in [self.ask("-tls1_2") for _ in range(8)]}
        self.assertEqual(first, {old.fingerprint})
        write_nginx_key(path, new)
        os.kill(self.proc.pid, signal.SIGHUP)
        _wait(
            "both workers to reload on SIGHUP",
            lambda: (
                {
                    int(m)
                    for m in re.findall(
                        r"\[worker (\d+) pid \d+\].*reloaded ticket keys.*SIGHUP",
                        support.read_output(self.proc),
                    )
                }
                == {1, 2}
            ),
            proc=self.proc,
        )
        answers = self.until_both(lambda: self.ask("-tls1_2"))
        self.assertEqual({a["server"]["key"] for a in answers}, {new.fingerprint})
        self.assertEqual({a["server"]["worker"] for a in answers}, {1, 2})

    def test_sigterm_ends_everything(self):
        """
        SIGTERM: every worker stops (exit status 0), then the parent (as
        twist does, by the signal), and the cache directory is removed.
        Start-up said each thing once: one development certificate warning
        and one generated key (the parent's), and each worker announced its
        listener (C{resumetls.started}) with that key.
        """
        proc = self.start()
        output = _wait(
            "both workers' resumetls.started",
            lambda: (out := support.read_output(proc)).count("resumetls listening on")
            >= 2
            and out,
            proc=proc,
        )
        self.assertEqual(output.count("self-signed development certificate"), 1)
        [key] = re.findall(r"generated ticket key (\w+)", output)
        listening = re.findall(
            rf"\[worker (\d) pid \d+\] .*resumetls listening on 127\.0\.0\.1:"
            rf"{self.port} .*ticket keys shared by the workers.* {key} encrypts",
            output,
        )
        self.assertEqual(sorted(listening), ["1", "2"])
        cache = re.search(r"shared session cache in (\S+),", support.read_output(proc))
        self.assertTrue(os.path.isdir(cache.group(1)))
        proc.terminate()
        self.assertIn(proc.wait(30), (0, -signal.SIGTERM))
        for pid in self.pids.values():
            _wait(f"worker {pid} to end", lambda pid=pid: _gone(pid))
        self.assertFalse(os.path.exists(cache.group(1)))
        output = support.read_output(proc)
        for index, pid in self.pids.items():
            self.assertIn(f"worker {index} (pid {pid}) exited with status 0", output)

    def test_parent_killed(self):
        """The parent SIGKILLed: its workers notice and end by themselves."""
        proc = self.start()
        proc.kill()
        proc.wait(10)
        for pid in self.pids.values():
            _wait(f"orphaned worker {pid} to end", lambda pid=pid: _gone(pid))


class SeparateProcessesTests(TestCase):
    def test_lmdb_url(self):
        """
        Two separate servers (no --workers) with one lmdb:// cache and one
        certificate resume each other's TLS 1.2 sessions by ID; its sealing
        key comes from their TLS key, so neither writes it anywhere.
        """
        tmp = os.path.abspath(self.mktemp())
        cert, key = support.write_pem(tmp, *support.certificate())
        cache = os.path.join(tmp, "cache")
        ports = [support.free_port(), support.free_port()]
        for port in ports:
            support.start_twist(
                self,
                port,
                "--interface",
                "127.0.0.1",
                "--certificate",
                cert,
                "--key",
                key,
                "--no-tickets",
                "--session-cache",
                f"lmdb://{cache}",
                "--factory",
                "tests.workers.app.WhoFactory",
            )
        session = os.path.join(tmp, "session")
        first = parse_s_client(
            run_s_client(ports[0], ["-tls1_2", "-sess_out", session], REQUEST)
        )
        self.assertFalse(first["reused"])
        other = parse_s_client(
            run_s_client(ports[1], ["-tls1_2", "-sess_in", session], REQUEST)
        )
        self.assertTrue(other["reused"])
        self.assertEqual(other["server"]["mechanism"], "session_id")
        self.assertNotEqual(other["server"]["pid"], first["server"]["pid"])
        with open(key, "rb") as f:
            from resumetls.cache.seal import derive_key

            sealing_key = derive_key(f.read(), b"sessions")
        for name in os.listdir(cache):
            with open(os.path.join(cache, name), "rb") as f:
                self.assertNotIn(sealing_key, f.read())


class DemoPageTests(_Workers, TestCase):
    def test_demo_names_the_worker(self):
        """
        With workers, the demo's status.json and page say which worker served
        the connection and which worker's handshake made a session found in
        the shared cache; status.json has the whole server's figures.
        """
        self.start("--no-tickets", factory=None)
        tmp = self.mktemp()
        os.makedirs(tmp)
        session = os.path.join(tmp, "session")
        request = b"GET /status.json HTTP/1.0\r\n\r\n"
        run_s_client(self.port, ["-tls1_2", "-sess_out", session], request)

        def one():
            output = run_s_client(self.port, ["-tls1_2", "-sess_in", session], request)
            return json.loads(output[output.index("\n{") : output.rindex("}") + 1])

        seen = self.until_both(one, lambda b: b["connection"]["worker"]["worker"])
        workers = {b["connection"]["worker"]["worker"] for b in seen}
        self.assertEqual(workers, {1, 2})
        origins = {b["connection"]["worker"]["session_from_worker"] for b in seen}
        self.assertEqual(len(origins), 1)
        self.assertIn(
            True,
            {b["connection"]["worker"]["session_from_another_worker"] for b in seen},
        )

        def whole():
            output = run_s_client(self.port, ["-tls1_2"], request)
            body = json.loads(output[output.index("\n{") : output.rindex("}") + 1])
            return body.get("workers")

        # Each worker refreshes the whole server's figures every second.
        last = _wait("the whole server's figures", whole, proc=self.proc)
        self.assertEqual([w["worker"] for w in last["workers"]], [1, 2])
        self.assertEqual(last["totals"]["workers"], 2)
        page = run_s_client(
            self.port, ["-tls1_2", "-sess_in", session], b"GET / HTTP/1.0\r\n\r\n"
        )
        self.assertRegex(
            page,
            r"served by worker [12] \(pid \d+\); its session came from "
            r"(worker [12]&#x27;s|this worker&#x27;s own) handshake",
        )
