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
        self.assertIn("resumed=True mechanism=ticket_tls13", lines[1])
        self.assertIn("full=1 resumed_ticket_tls13=1", lines[2])


class ServedExamplesTests(TestCase):
    """The --factory and --wsgi examples under a real twist resumetls."""

    timeout = 90

    def test_echo_factory(self):
        import socket
        import ssl

        from . import support

        port = support.free_port()
        support.start_twist(self, port, "--factory", "examples.echo.EchoFactory")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        session, lines = None, []
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(
                    raw, server_hostname="localhost", session=session
                ) as s:
                    s.sendall(b"hello\n")
                    data = b""
                    while not data.endswith(b"\n"):
                        data += s.recv(4096)
                    lines.append(data.decode().strip())
                    session = s.session
        self.assertEqual(lines[0], "[TLSv1.3, full handshake] hello")
        self.assertEqual(lines[1], "[TLSv1.3, resumed by TLS 1.3 session ticket] hello")

    def test_wsgi(self):
        from . import support

        port = support.free_port()
        support.start_twist(self, port, "--wsgi", "examples.wsgi_app.application")
        status, body, session, _ = support.https_get(port, "/")
        self.assertEqual(body, b"hello from WSGI over TLS with resumption\n")
        _, _, _, reused = support.https_get(port, "/", session)
        self.assertTrue(reused)


class ClientExampleTests(TestCase):
    timeout = 60

    def test_client_resume(self):
        from . import support

        port = support.free_port()
        proc = support.start_twist(self, port)
        cert = os.path.join(proc.tmp, "data", "resumetls", "dev-cert.pem")
        out = subprocess.run(
            [
                sys.executable,
                os.path.join(ROOT, "examples", "client_resume.py"),
                f"https://localhost:{port}/status.json",
                cert,
            ],
            env={**os.environ, "PYTHONPATH": ROOT},
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertIn("'resumed': False", lines[0])
        self.assertIn("'resumed': True", lines[1])
        self.assertEqual(lines[2], "connections that resumed: 1")
