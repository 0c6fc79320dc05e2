"""
C{resumetls probe} against C{openssl s_server}, a non-TLS port and nothing.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import sys
import threading

from twisted.trial.unittest import TestCase

from resumetls.cli import probe as _probe
from resumetls.cli.probing import Outcome, tickets_work

from ..client.helpers import s_server


def raw_server(testcase, mode):
    """
    A plain TCP server on a free loopback port that answers every
    connection in one way: C{close} at once, C{reset} (RST), C{read} one
    chunk then close, or C{echo} everything back.  Stopped at cleanup.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()

    def answer(conn):
        if mode == "reset":
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        elif mode == "read":
            conn.recv(4096)
        elif mode == "echo":
            while data := conn.recv(4096):
                conn.sendall(data)

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                conn.settimeout(10)
                answer(conn)
            except OSError:
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def close():
        stop.set()
        thread.join(10)
        listener.close()

    testcase.addCleanup(close)
    return listener.getsockname()[1]


class ProbeTests(TestCase):
    timeout = 120

    def run_probe(self, *argv, quiet=True):
        """Run the command (without progress lines unless C{quiet=False})."""
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        code = _probe.main(["--count", "3", *(["--quiet"] if quiet else []), *argv])
        return code, out.getvalue(), err.getvalue()

    def by_row(self, text):
        rows = {}
        for line in text.splitlines()[2:]:
            cells = line.split()
            rows[(cells[0] + " " + cells[1], cells[2])] = line
        return rows

    def test_session_ids_only(self):
        """Against s_server -no_ticket: IDs yes, tickets no."""
        port, cert = s_server(self, "-no_ticket")
        code, out, _ = self.run_probe(f"localhost:{port}", "--cafile", cert)
        self.assertEqual(code, 0)
        rows = self.by_row(out)
        self.assertIn("yes (3/3)", rows[("session ID", "TLSv1.2")])
        self.assertIn("no ticket issued", rows[("session ticket", "TLSv1.2")])
        self.assertIn(("stateful ticket", "TLSv1.3"), rows)
        code, out, _ = self.run_probe(f"localhost:{port}", "--cafile", cert, "--json")
        results = json.loads(out)["results"]
        self.assertFalse(tickets_work([Outcome(**r) for r in results]))

    def test_tickets(self):
        """Against plain s_server: tickets yes, renewed in TLS 1.3."""
        port, cert = s_server(self)
        code, out, _ = self.run_probe(f"localhost:{port}", "--insecure", "--json")
        self.assertEqual(code, 0)
        data = json.loads(out)
        results = {(r["mechanism"], r["version"]): r for r in data["results"]}
        tls12 = results[("session ticket", "TLSv1.2")]
        tls13 = results[("session ticket", "TLSv1.3")]
        self.assertTrue(tls12["resumes"])
        self.assertEqual(tls12["lifetime_hint"], 7200)
        # OpenSSL keeps a TLS 1.2 ticket that opens with its current key
        self.assertIs(tls12["renewed"], False)
        self.assertIsNone(results[("session ID", "TLSv1.2")]["renewed"])
        self.assertTrue(tls13["resumes"])
        self.assertTrue(tls13["renewed"])
        self.assertTrue(results[("session ID", "TLSv1.2")]["resumes"])
        self.assertGreater(tls13["full_ms"], 0)
        self.assertTrue(tickets_work([Outcome(**r) for r in data["results"]]))

    def test_nothing_resumes(self):
        """Against s_server -no_ticket -no_cache: nothing resumes, exit 1."""
        port, cert = s_server(self, "-no_ticket", "-no_cache")
        code, out, err = self.run_probe(f"localhost:{port}", "--cafile", cert)
        self.assertEqual((code, err), (1, ""))
        rows = self.by_row(out)
        self.assertIn("no (0/3)", rows[("session ID", "TLSv1.2")])
        self.assertIn("no (0/3)", rows[("stateful ticket", "TLSv1.3")])

    def test_tickets_only(self):
        """
        Against s_server -no_cache (no session cache, tickets only): session
        IDs no, tickets yes in TLS 1.2 and 1.3.
        """
        port, cert = s_server(self, "-no_cache")
        code, out, _ = self.run_probe(f"localhost:{port}", "--cafile", cert)
        self.assertEqual(code, 0)
        rows = self.by_row(out)
        self.assertIn("no (0/3)", rows[("session ID", "TLSv1.2")])
        self.assertIn("yes (3/3)", rows[("session ticket", "TLSv1.2")])
        self.assertIn("yes (3/3)", rows[("session ticket", "TLSv1.3")])
        code, out, _ = self.run_probe(f"localhost:{port}", "--cafile", cert, "--json")
        results = {
            (r["mechanism"], r["version"]): r for r in json.loads(out)["results"]
        }
        self.assertEqual(
            [results[k]["resumes"] for k in sorted(results)], [False, True, True]
        )

    def test_tls13_only(self):
        """
        A TLS 1.3-only server: the TLS 1.2 rows say "not offered", the TLS 1.3
        row is measured, and it is no error.
        """
        port, cert = s_server(self, "-tls1_3")
        code, out, err = self.run_probe(f"localhost:{port}", "--cafile", cert)
        self.assertEqual((code, err), (0, ""))
        rows = self.by_row(out)
        for mechanism in ("session ID", "session ticket"):
            self.assertIn("not offered (", rows[(mechanism, "TLSv1.2")])
        self.assertIn("yes (3/3)", rows[("session ticket", "TLSv1.3")])

    def _not_tls(self, mode, *lines):
        port = raw_server(self, mode)
        code, out, err = self.run_probe(f"127.0.0.1:{port}", "--insecure")
        self.assertEqual((code, out), (2, ""))
        expected = [f"resumetls probe: 127.0.0.1:{port}{line}\n" for line in lines]
        self.assertIn(err, expected)
        code, out, err = self.run_probe(f"127.0.0.1:{port}", "--insecure", "--json")
        self.assertEqual(code, 2)
        self.assertIn(err, expected)
        self.assertEqual(
            json.loads(out),
            {
                "error": err[len("resumetls probe: ") : -1],
                "target": f"127.0.0.1:{port}",
                "host": "127.0.0.1",
                "port": port,
            },
        )

    def test_closes_at_once(self):
        """
        A port that accepts and closes: one line, exit 2 (the operating
        system may report the close as a reset).
        """
        self._not_tls(
            "close",
            " closed the connection during the TLS handshake (is it a TLS port?)",
            " reset the connection during the TLS handshake (is it a TLS port?)",
        )

    def test_resets(self):
        self._not_tls(
            "reset",
            " reset the connection during the TLS handshake (is it a TLS port?)",
        )

    def test_reads_and_closes(self):
        self._not_tls(
            "read",
            " closed the connection during the TLS handshake (is it a TLS port?)",
            " reset the connection during the TLS handshake (is it a TLS port?)",
        )

    def test_echoes(self):
        """An echo server sends our ClientHello back: not TLS."""
        self._not_tls("echo", " does not speak TLS (unexpected message)")

    def test_bad_timeout(self):
        """--timeout: one line and exit 2, also as JSON."""
        for value in ("-1", "0", "nan", "inf", "1e9", "soon"):
            code, out, err = self.run_probe("localhost:1", "--timeout", value)
            message = (
                "--timeout must be a number of seconds above 0 and at most "
                f"86400, not {value!r}"
            )
            self.assertEqual((code, out, err), (2, "", f"resumetls probe: {message}\n"))
            code, out, _ = self.run_probe("localhost:1", "--timeout", value, "--json")
            self.assertEqual(code, 2)
            self.assertEqual(json.loads(out)["error"], message)

    def test_json_errors(self):
        """With --json, an unprobeable target also gives a JSON object."""
        code, out, err = self.run_probe("no-port-here", "--json")
        self.assertEqual(code, 2)
        self.assertEqual(
            json.loads(out),
            {
                "error": "give HOST:PORT, not 'no-port-here'",
                "target": "no-port-here",
                "host": None,
                "port": None,
            },
        )
        self.assertEqual(err, "resumetls probe: give HOST:PORT, not 'no-port-here'\n")

    def test_certificate_errors(self):
        """Untrusted or misnamed certificates: one line, exit 2."""
        port, cert = s_server(self)
        code, out, err = self.run_probe(f"localhost:{port}")
        self.assertEqual((code, out), (2, ""))
        self.assertEqual(
            err,
            f"resumetls probe: localhost:{port}: certificate verification failed "
            "(use --cafile FILE for a private CA, or --insecure for a self-signed "
            "server)\n",
        )
        code, out, err = self.run_probe(f"127.0.0.1:{port}", "--cafile", cert)
        self.assertEqual((code, out), (2, ""))
        self.assertEqual(
            err,
            f"resumetls probe: 127.0.0.1:{port}: the certificate is not valid for "
            "127.0.0.1; use --servername NAME for the name it was issued to, or "
            "--insecure to probe anyway\n",
        )
        code, _, _ = self.run_probe(
            f"127.0.0.1:{port}", "--cafile", cert, "--servername", "localhost"
        )
        self.assertEqual(code, 0)

    def test_progress(self):
        """
        Progress goes to stderr, terminal or not: one line per mechanism,
        started before it is probed and completed with what it showed;
        never to stdout.
        """

        class TTY(io.StringIO):
            def isatty(self):
                return True

        port, cert = s_server(self, "-no_cache")
        for stream in (io.StringIO(), TTY()):
            out = io.StringIO()
            self.patch(sys, "stdout", out)
            self.patch(sys, "stderr", stream)
            code = _probe.main(["--count", "2", "--insecure", f"localhost:{port}"])
            self.assertEqual(code, 0)
            self.assertEqual(
                stream.getvalue(),
                "probing session ID (TLS 1.2)... does not resume (0/2)\n"
                "probing session ticket (TLS 1.2)... resumes (2/2)\n"
                "probing session ticket (TLS 1.3)... resumes (2/2)\n",
            )
            self.assertNotIn("probing", out.getvalue())
        code, out, err = self.run_probe(
            f"localhost:{port}", "--insecure", "--json", quiet=False
        )
        self.assertEqual(len(err.splitlines()), 3)
        self.assertEqual(len(json.loads(out)["results"]), 3)

    def test_progress_then_error(self):
        """A probe that fails ends its progress line before the error line."""
        from .. import support

        port = support.free_port()
        code, _, err = self.run_probe(f"127.0.0.1:{port}", quiet=False)
        self.assertEqual(code, 2)
        self.assertEqual(
            err,
            "probing session ID (TLS 1.2)...\n"
            f"resumetls probe: cannot connect to 127.0.0.1:{port}: Connection refused\n",
        )

    def test_help_is_plain_text(self):
        """C{--help} shows words, not epytext markup."""
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        self.assertRaises(SystemExit, _probe.main, ["--help"])
        text = out.getvalue()
        self.assertIn("Check whether the TLS server at HOST:PORT resumes", text)
        self.assertIn("Exit status: 0 when some mechanism resumes", text)
        self.assertNotRegex(text, r"[CLIB]\{")

    def test_not_tls(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        self.addCleanup(listener.close)

        def serve():
            try:
                conn, _ = listener.accept()
                conn.recv(1024)
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
                conn.close()
            except OSError:
                pass

        threading.Thread(target=serve, daemon=True).start()
        port = listener.getsockname()[1]
        code, out, err = self.run_probe(f"127.0.0.1:{port}", "--insecure")
        self.assertEqual(code, 2)
        self.assertEqual(
            err,
            f"resumetls probe: 127.0.0.1:{port} does not speak TLS "
            "(wrong version number)\n",
        )
        self.assertEqual(out, "")

    def test_unreachable(self):
        from .. import support

        port = support.free_port()
        code, _, err = self.run_probe(f"127.0.0.1:{port}")
        self.assertEqual(code, 2)
        self.assertEqual(
            err,
            f"resumetls probe: cannot connect to 127.0.0.1:{port}: Connection refused\n",
        )

    def test_timeout(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts TCP, never answers TLS
        self.addCleanup(listener.close)
        port = listener.getsockname()[1]
        code, _, err = self.run_probe(f"127.0.0.1:{port}", "--timeout", "0.5")
        self.assertEqual(code, 2)
        self.assertIn("TLS handshake timed out after 0.5 s", err)

    def test_bad_target(self):
        code, _, err = self.run_probe("no-port-here")
        self.assertEqual(code, 2)
        self.assertIn("give HOST:PORT", err)


class OwnServerTests(TestCase):
    """C{resumetls probe} against a resumetls server (the demo page)."""

    timeout = 60

    def test_fast_on_loopback(self):
        """
        A whole probe with the default count takes about a second on
        loopback (it took 9 s when each handshake waited 0.3 s for TLS 1.3
        tickets), and every mechanism resumes every time.
        """
        import time

        from twisted.internet.defer import ensureDeferred
        from twisted.internet.threads import deferToThread

        from .test_demo import serve_demo

        def probe(port):
            out, err = io.StringIO(), io.StringIO()
            self.patch(sys, "stdout", out)
            self.patch(sys, "stderr", err)
            start = time.monotonic()
            code = _probe.main(["--insecure", "--json", f"127.0.0.1:{port}"])
            return code, out.getvalue(), err.getvalue(), time.monotonic() - start

        async def run():
            port, factory = await serve_demo(self)
            code, out, err, seconds = await deferToThread(probe, port)
            self.assertEqual(code, 0, err)
            results = json.loads(out)["results"]
            self.assertEqual(
                [(r["mechanism"], r["version"], r["resumed"]) for r in results],
                [
                    ("session ID", "TLSv1.2", 5),
                    ("session ticket", "TLSv1.2", 5),
                    ("session ticket", "TLSv1.3", 5),
                ],
            )
            self.assertTrue(results[2]["renewed"])  # a fresh ticket each time
            self.assertLess(seconds, 2.5, err)
            stats = factory.stats()
            self.assertEqual(stats.full_handshakes, 15)
            self.assertEqual(stats.resumed, 15)

        return ensureDeferred(run())
