"""
C{twist resumetls} as a real subprocess, the C{resumetls:} endpoint through
C{serverFromString} and C{twist web --listen}, key file reloads, option
errors, the demo page and the metrics listener.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.threads import deferToThread
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import Site

from resumetls import TicketKey
from resumetls.cache.urls import known_schemes
from resumetls.cli import tap as _tap
from resumetls.cli.demo import DemoPage
from resumetls.keys.files import write_haproxy_keys

from .. import support
from ..support import free_port, https_get, pem_files, s_client, start_process


def twist(*args):
    return ["-m", "twisted", *args]


def serve(testcase, port, cert, key, *options):
    """C{twist resumetls} on C{port} with this certificate and key."""
    return support.start_twist(
        testcase, port, "--certificate", cert, "--key", key, *options
    )


class TwistResumetlsTests(TestCase):
    """The four modes against a real C{twist resumetls} process."""

    timeout = 120

    def test_four_modes(self):
        async def run():
            cert, key = pem_files(self)
            default, stateful = free_port(), free_port()
            serve(self, default, cert, key)
            serve(self, stateful, cert, key, "--no-tickets")
            for port, flags in (
                (default, ["-tls1_2", "-no_ticket"]),
                (default, ["-tls1_2"]),
                (default, ["-tls1_3"]),
                (stateful, ["-tls1_3"]),
            ):
                sess = os.path.abspath(self.mktemp())
                first = await s_client(port, None, sess, *flags, http=True)
                self.assertFalse(first["reused"], flags)
                second = await s_client(port, sess, None, *flags, http=True)
                self.assertTrue(second["reused"], flags)
            status = json.loads(
                (await deferToThread(https_get, default, "/status.json"))[1]
            )["server"]
            self.assertEqual(status["resumed_session_id"], 1)
            self.assertEqual(status["resumed_ticket_tls12"], 1)
            self.assertEqual(status["resumed_ticket_tls13"], 1)
            status = json.loads(
                (await deferToThread(https_get, stateful, "/status.json"))[1]
            )["server"]
            self.assertEqual(status["resumed_session_id"], 1)
            self.assertEqual(status["tickets_issued"], 0)

        return ensureDeferred(run())

    def test_development_certificate(self):
        """
        With no certificate, one is made for localhost in the user's data
        directory (key mode 0600), the log warns, and the demo page is
        served and resumes on reload.
        """
        port = free_port()
        proc = start_process(self, twist("resumetls", "--port", str(port)), port)
        key = os.path.join(proc.tmp, "data", "resumetls", "dev-key.pem")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        status, body, session, reused = https_get(port, "/")
        self.assertEqual(status, "HTTP/1.1 200 OK")
        self.assertIn(b"a full handshake", body)
        status, body, session, reused = https_get(port, "/", session)
        self.assertTrue(reused)
        self.assertIn(b"resumed (TLS 1.3 session ticket)", body)
        self.assertIn("development certificate", support.read_output(proc))

    def test_web_listen(self):
        """C{twist web --listen resumetls:…} serves files and resumes."""

        async def run():
            cert, key = pem_files(self)
            port = free_port()
            docs = os.path.abspath(self.mktemp())
            os.makedirs(docs)
            with open(os.path.join(docs, "index.html"), "w") as f:
                f.write("hello from twist web\n")
            start_process(
                self,
                twist(
                    "web",
                    "--listen",
                    f"resumetls:{port}:interface=127.0.0.1:privateKey={key}"
                    f":certKey={cert}:service=docs",
                    "--path",
                    docs,
                ),
                port,
            )
            status, body, session, _ = await deferToThread(https_get, port, "/")
            self.assertEqual(body, b"hello from twist web\n")
            _, _, _, reused = await deferToThread(https_get, port, "/", session)
            self.assertTrue(reused)
            sess = os.path.abspath(self.mktemp())
            await s_client(port, None, sess, "-tls1_2", "-no_ticket", http=True)
            again = await s_client(port, sess, None, "-tls1_2", "-no_ticket", http=True)
            self.assertTrue(again["reused"])

        return ensureDeferred(run())

    def test_certificate_chain(self):
        """
        C{--certificate} may hold the leaf followed by its chain: the server
        sends both, and a client that trusts only the issuing CA verifies it
        (and resumes).
        """

        async def run():
            from cryptography.hazmat.primitives import serialization

            ca, ca_key = support.issue("Test Issuing CA", ca=True)
            leaf, leaf_key = support.issue(
                "localhost", issuer=(ca, ca_key), san=["localhost"]
            )
            directory = os.path.abspath(self.mktemp())
            cert, key = support.write_pem(directory, leaf, leaf_key)
            with open(cert, "ab") as f:
                f.write(ca.public_bytes(serialization.Encoding.PEM))
            cafile = os.path.join(directory, "ca.pem")
            with open(cafile, "wb") as f:
                f.write(ca.public_bytes(serialization.Encoding.PEM))
            port = free_port()
            serve(self, port, cert, key)
            sess = os.path.abspath(self.mktemp())
            args = ["-CAfile", cafile, "-verify_return_error", "-showcerts"]
            out = await deferToThread(
                support._s_client,
                port,
                [*args, "-servername", "localhost", "-sess_out", sess],
                support.HTTP_REQUEST,
            )
            self.assertIn("Verify return code: 0 (ok)", out)
            self.assertIn("1 s:CN = Test Issuing CA", out)
            again = await s_client(port, sess, None, *args, http=True)
            self.assertTrue(again["reused"])

        return ensureDeferred(run())

    def test_web_listen_sighup(self):
        """
        Under C{twist web --listen resumetls:…:ticketKeys=…}, SIGHUP reloads
        the key file (it does not end the process, SIGHUP's default), and a
        ticket under the old key still resumes.
        """

        async def run():
            cert, key, keyfile, (a, b, c, d), port = self.key_file()
            docs = os.path.abspath(self.mktemp())
            os.makedirs(docs)
            with open(os.path.join(docs, "index.html"), "w") as f:
                f.write("hello\n")
            proc = start_process(
                self,
                twist(
                    "web",
                    "--listen",
                    f"resumetls:{port}:interface=127.0.0.1:privateKey={key}"
                    f":certKey={cert}:ticketKeys={keyfile}",
                    "--path",
                    docs,
                ),
                port,
            )
            under_b = os.path.abspath(self.mktemp())
            await s_client(port, None, under_b, "-tls1_2", http=True)
            self.assertEqual(support.session_ticket(under_b)[:16], b.name)
            write_haproxy_keys(keyfile, [b, c, d])
            os.kill(proc.pid, signal.SIGHUP)
            await self.wait_for_log(proc, "resumetls.keys.reloaded")
            self.assertIn('"why": "SIGHUP"', support.read_output(proc))
            self.assertIsNone(proc.poll())
            again = await s_client(port, under_b, None, "-tls1_2", http=True)
            self.assertTrue(again["reused"])
            self.assertEqual(again["tickets"][-1][:16], c.name)

        return ensureDeferred(run())

    def test_reload_keeps_connections(self):
        """
        A connection open while the key file is reloaded (SIGHUP) goes on
        working: reloading swaps keys, not listeners.
        """

        async def run():
            cert, key, keyfile, keys, port = self.key_file()
            proc = serve(
                self,
                port,
                cert,
                key,
                "--ticket-keys",
                keyfile,
                "--factory",
                "examples.echo.EchoFactory",
            )
            ctx = support.python_context(ssl.TLSVersion.TLSv1_3, False, cert)
            conn = await deferToThread(
                lambda: ctx.wrap_socket(
                    socket.create_connection(("127.0.0.1", port), timeout=10),
                    server_hostname="localhost",
                )
            )
            self.addCleanup(conn.close)

            def echo(text):
                conn.sendall(text + b"\n")
                line = b""
                while not line.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    line += chunk
                return line

            self.assertEqual(
                await deferToThread(echo, b"before"),
                b"[TLSv1.3, full handshake] before\n",
            )
            write_haproxy_keys(keyfile, keys[1:])
            os.kill(proc.pid, signal.SIGHUP)
            await self.wait_for_log(proc, "resumetls.keys.reloaded")
            self.assertEqual(
                await deferToThread(echo, b"after"),
                b"[TLSv1.3, full handshake] after\n",
            )

        return ensureDeferred(run())

    def test_key_file_reload(self):
        """
        A ticket issued under the old key still resumes after the key file
        rotates (SIGHUP), and is renewed under the new key; a broken file is
        refused and the keys in use stay.
        """

        async def run():
            # b encrypts, c is next
            cert, key, keyfile, (a, b, c, d), port = self.key_file()
            proc = serve(self, port, cert, key, "--ticket-keys", keyfile)
            under_b = os.path.abspath(self.mktemp())
            await s_client(port, None, under_b, "-tls1_2", http=True)
            self.assertEqual(support.session_ticket(under_b)[:16], b.name)

            write_haproxy_keys(keyfile, [b, c, d])  # c encrypts, b decrypts only
            os.kill(proc.pid, signal.SIGHUP)
            await self.wait_for_log(proc, "resumetls.keys.reloaded")
            again = await s_client(port, under_b, None, "-tls1_2", http=True)
            self.assertTrue(again["reused"])
            self.assertEqual(again["tickets"][-1][:16], c.name)
            status = json.loads(
                (await deferToThread(https_get, port, "/status.json"))[1]
            )
            self.assertEqual(status["server"]["tickets_renewed"], 1)
            # the encrypting key's age is known for file keys too (a metric)
            self.assertGreaterEqual(status["server"]["keys"]["encrypting_age"], 0)

            with open(keyfile, "w") as f:
                f.write("garbage\n")
            os.kill(proc.pid, signal.SIGHUP)
            await self.wait_for_log(proc, "resumetls.keys.reload_refused")
            self.assertIn("line 1: not valid base64", support.read_output(proc))
            again = await s_client(port, under_b, None, "-tls1_2", http=True)
            self.assertTrue(again["reused"])

        return ensureDeferred(run())

    def test_key_file_change(self):
        """
        Without a SIGHUP, a rewritten key file is noticed (stat poll) and
        reloaded: the old encrypting key's ticket resumes and is renewed.
        The key file is named as a key source, C{file:PATH}.
        """

        async def run():
            cert, key, keyfile, (a, b, c, d), port = self.key_file()
            proc = serve(self, port, cert, key, "--ticket-keys", f"file:{keyfile}")
            under_b = os.path.abspath(self.mktemp())
            await s_client(port, None, under_b, "-tls1_2", http=True)
            write_haproxy_keys(keyfile, [b, c, d])
            await self.wait_for_log(proc, "the file changed")
            self.assertIn("resumetls.keys.reloaded", support.read_output(proc))
            again = await s_client(port, under_b, None, "-tls1_2", http=True)
            self.assertTrue(again["reused"])
            self.assertEqual(again["tickets"][-1][:16], c.name)
            # No key material in the log, in hex or base64.
            log = support.read_output(proc)
            for k in (a, b, c, d):
                for secret in (k.hmac_key, k.aes_key):
                    self.assertNotIn(secret.hex(), log)
                    self.assertNotIn(base64.b64encode(secret).decode(), log)

        return ensureDeferred(run())

    def key_file(self):
        """
        PEM files, an HAProxy key file holding the first three of four fresh
        keys (the second encrypts, the third is next), and a free port.
        """
        cert, key = pem_files(self)
        keyfile = os.path.abspath(self.mktemp())
        keys = tuple(TicketKey.generate() for _ in range(4))
        write_haproxy_keys(keyfile, keys[:3])
        return cert, key, keyfile, keys, free_port()

    async def wait_for_log(self, proc, event):
        for _ in range(100):
            if event in support.read_output(proc):
                return
            await deferToThread(time.sleep, 0.1)
        self.fail(f"no {event} in the log:\n{support.read_output(proc)[-3000:]}")

    def test_metrics(self):
        """The metrics listener's counters move as handshakes happen."""

        async def run():
            cert, key = pem_files(self)
            port, metrics = free_port(), free_port()
            serve(self, port, cert, key, "--metrics", str(metrics))
            support.wait_for_port(metrics)

            def scrape():
                url = f"http://127.0.0.1:{metrics}/metrics"
                with urllib.request.urlopen(url, timeout=10) as r:
                    text = r.read().decode()
                return {
                    m.group(1): float(m.group(2))
                    for m in re.finditer(r"^(resumetls_\S+) (\S+)$", text, re.M)
                }

            before = await deferToThread(scrape)
            sess = os.path.abspath(self.mktemp())
            await s_client(port, None, sess, "-tls1_3", http=True)
            await s_client(port, sess, None, "-tls1_3", http=True)
            after = await deferToThread(scrape)
            full = 'resumetls_handshakes_total{kind="full",service="default"}'
            tls13 = 'resumetls_handshakes_total{kind="ticket_tls13",service="default"}'
            self.assertEqual(after[full] - before[full], 1)
            self.assertEqual(after[tls13] - before[tls13], 1)
            issued = 'resumetls_tickets_total{event="issued",service="default"}'
            # Two tickets after the full handshake, one after the resumption.
            self.assertEqual(after[issued] - before[issued], 3)
            self.assertIn('resumetls_ticket_key_age_seconds{service="default"}', after)

        return ensureDeferred(run())


class OptionErrorTests(SynchronousTestCase):
    """Every option error is one line and a non-zero exit, never a traceback."""

    def error(self, *argv):
        options = _tap.Options()
        e = self.assertRaises(usage.UsageError, options.parseOptions, list(argv))
        return str(e)

    def test_messages(self):
        cert, key = pem_files(self)
        _, other_key = pem_files(self, "rsa")
        self.assertEqual(
            self.error("--certificate", "/nope.pem", "--key", key),
            "--certificate: /nope.pem: no such file",
        )
        self.assertEqual(
            self.error("--certificate", cert, "--key", other_key),
            f"the private key {other_key} does not match the certificate {cert}",
        )
        self.assertEqual(
            self.error("--port", "70000"),
            "--port must be between 0 and 65535, not '70000'",
        )
        self.assertEqual(
            self.error("--port", "http"), "--port must be a number, not 'http'"
        )
        self.assertEqual(
            self.error("--session-cache", "memcached://127.0.0.1"),
            "unknown session cache 'memcached://127.0.0.1'; known: "
            + known_schemes(),
        )
        self.assertEqual(
            self.error("--session-cache", "redis://127.0.0.1/0?colour=red"),
            "session cache 'redis://127.0.0.1/0?colour=red': unknown parameter "
            "colour; redis:// knows: ca, db, password_env, password_file, prefix, "
            "seal_key_file, size, timeout",
        )
        self.assertEqual(
            self.error("--certificate", cert),
            "--certificate was given without --key: give both, or neither for a "
            "development certificate",
        )
        self.assertIn(
            "--factory no.such.module.Factory: cannot import it",
            self.error("--factory", "no.such.module.Factory"),
        )
        self.assertEqual(
            self.error("--factory", "os.path", "--path", "."),
            "give only one of --factory, --wsgi and --path, not --factory and --path",
        )
        self.assertEqual(
            self.error("--path", "/no/such/dir"), "--path /no/such/dir: not a directory"
        )
        self.assertEqual(
            self.error("--session-timeout", "0"),
            "--session-timeout must be between 1 and 604800, not '0'",
        )
        keyfile = os.path.abspath(self.mktemp())
        with open(keyfile, "wb") as f:
            f.write(os.urandom(80))
        os.chmod(keyfile, 0o644)
        self.assertIn("chmod 600", self.error("--ticket-keys", keyfile))

    def test_listen_errors_command_line(self):
        """
        Bad --listen strings, ours and another parser's, and --listen mixed
        with --port options: one line each, non-zero exit, no traceback.
        """
        cases = [
            (
                ["--listen", "resumetls:8443:bogus=1"],
                "--listen resumetls:8443:bogus=1: unknown option bogus",
            ),
            (
                ["--listen", "resumetls:8443:certKey=/nope.pem"],
                "certKey: /nope.pem: no such file",
            ),
            (["--listen", "tcp:http"], "Error: --listen tcp:http: "),
            (["--listen", "tcp:8080", "--no-tickets"], "--no-tickets does not apply"),
            (["--factory", "no.such.Thing"], "--factory no.such.Thing: cannot import"),
        ]
        for argv, message in cases:
            out = subprocess.run(
                [sys.executable, "-m", "twisted", "resumetls", *argv],
                env=support.environment(os.path.abspath(self.mktemp())),
                capture_output=True,
                text=True,
                timeout=60,
            )
            text = out.stderr + out.stdout
            self.assertNotEqual(out.returncode, 0, argv)
            self.assertIn(message, text, argv)
            self.assertNotIn("Traceback", text, argv)

    def run_twist(self, *argv):
        return subprocess.run(
            [sys.executable, "-m", "twisted", "resumetls", *argv],
            env=support.environment(os.path.abspath(self.mktemp())),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def test_command_line(self):
        """
        From the command line, a refused value is that one line on stderr
        and exit status 64 (EX_USAGE), without the usage text; an unknown
        option still shows the usage.
        """
        cert, key = pem_files(self)
        _, other_key = pem_files(self, "rsa")
        cases = [
            (["--port", "nope"], "--port must be a number, not 'nope'"),
            (
                ["--certificate", cert, "--key", other_key],
                f"the private key {other_key} does not match the certificate {cert}",
            ),
            (
                ["--certificate", "/nope.pem", "--key", key],
                "--certificate: /nope.pem: no such file",
            ),
            (
                ["--wsgi", "no.such.module.app"],
                "--wsgi no.such.module.app: cannot import it ('no.such.module.app' does "
                "not name an object)",
            ),
            (
                ["--session-cache", "memcached://127.0.0.1"],
                "unknown session cache 'memcached://127.0.0.1'; known: "
                + known_schemes(),
            ),
        ]
        for argv, message in cases:
            out = self.run_twist(*argv)
            self.assertEqual((out.returncode, out.stderr), (64, f"Error: {message}\n"))
            self.assertEqual(out.stdout, "")
        out = self.run_twist("--bogus")
        self.assertEqual(out.returncode, 64)
        self.assertIn("Error: option --bogus not recognized", out.stderr + out.stdout)
        self.assertIn("--ticket-keys", out.stderr + out.stdout)

    def test_cannot_listen(self):
        """
        A port in use (for the server or the metrics) or an interface that
        does not exist: one line naming the option, exit 1, and the process
        ends rather than running without listening.
        """
        import socket

        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            (
                ["--port", str(port), "--interface", "127.0.0.1"],
                f"--port {port}: cannot listen on 127.0.0.1 port {port}: "
                "Address already in use",
            ),
            (
                [
                    "--port",
                    str(free_port()),
                    "--interface",
                    "127.0.0.1",
                    "--metrics",
                    str(port),
                ],
                f"--metrics {port}: cannot listen on 127.0.0.1 port {port}: "
                "Address already in use",
            ),
            (
                ["--port", "0", "--interface", "no-such-host.invalid"],
                "--port 0: cannot listen on no-such-host.invalid port 0: ",
            ),
        ]
        for argv, message in cases:
            out = self.run_twist(*argv)
            self.assertEqual(out.returncode, 1, out.stderr)
            self.assertEqual(len(out.stderr.splitlines()), 1, out.stderr)
            self.assertTrue(out.stderr.startswith(f"Error: {message}"), out.stderr)
            self.assertNotIn("Traceback", out.stderr + out.stdout)


class EndpointTests(TestCase):
    """C{serverFromString(reactor, "resumetls:…")} in this process."""

    timeout = 60

    def test_server_from_string(self):
        async def run():
            cert, key = pem_files(self)
            port = free_port()
            endpoint = serverFromString(
                reactor,
                f"resumetls:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}"
                ":tickets=no:sessionTimeout=600:tls13Tickets=1",
            )
            listening = await endpoint.listen(Site(DemoPage()))
            self.addCleanup(listening.stopListening)
            factory = endpoint.context_factory
            self.assertFalse(factory.settings.tickets)
            self.assertEqual(factory.settings.session_timeout, 600)
            _, body, session, _ = await deferToThread(https_get, port, "/status.json")
            self.assertFalse(json.loads(body)["connection"]["resumed"])
            _, body, _, reused = await deferToThread(
                https_get, port, "/status.json", session
            )
            self.assertTrue(reused)
            info = json.loads(body)
            self.assertEqual(info["connection"]["mechanism"], "session_id")
            self.assertEqual(info["server"]["resumed_session_id"], 1)

        return ensureDeferred(run())

    def test_stop_listening_stops_key_file(self):
        """
        A C{resumetls:…:ticketKeys=…} port that stops listening stops
        watching its key file and gives SIGHUP back.
        """

        async def run():
            cert, key = pem_files(self)
            keyfile = os.path.abspath(self.mktemp())
            write_haproxy_keys(keyfile, [TicketKey.generate() for _ in range(3)])
            previous = signal.getsignal(signal.SIGHUP)
            self.addCleanup(signal.signal, signal.SIGHUP, previous)
            endpoint = serverFromString(
                reactor,
                f"resumetls:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
                f":ticketKeys={keyfile}",
            )
            listening = await endpoint.listen(Site(DemoPage()))
            self.assertTrue(endpoint.key_source.running)
            self.assertNotEqual(signal.getsignal(signal.SIGHUP), previous)
            await listening.stopListening()
            self.assertFalse(endpoint.key_source.running)
            self.assertEqual(signal.getsignal(signal.SIGHUP), previous)

        return ensureDeferred(run())

    def test_bad_strings(self):
        cert, key = pem_files(self)
        from resumetls import ConfigError

        e = self.assertRaises(
            ConfigError,
            serverFromString,
            reactor,
            f"resumetls:8443:privateKey={key}:certKey={cert}:tickets=maybe",
        )
        self.assertEqual(str(e), "tickets must be yes or no, not 'maybe'")
        e = self.assertRaises(
            ConfigError, serverFromString, reactor, "resumetls:8443:bogus=1"
        )
        self.assertIn("unknown option bogus; known:", str(e))
        self.assertIn("privateKey", str(e))


class OperatorTests(TestCase):
    """What an operator coming from nginx expects of a real process."""

    timeout = 120

    def run_command(self, *argv):
        return subprocess.run(
            [sys.executable, *argv],
            env=support.environment(os.path.abspath(self.mktemp())),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def test_versions(self):
        """Both commands print resumetls's version."""
        from resumetls import __version__

        out = self.run_command("-m", "resumetls", "--version")
        self.assertEqual((out.returncode, out.stdout), (0, f"resumetls {__version__}\n"))
        out = self.run_command(*twist("resumetls", "--version"))
        self.assertEqual(out.returncode, 0)
        self.assertTrue(out.stdout.startswith(f"resumetls {__version__} (Twisted "))

    def test_refused_files(self):
        """
        `--path .` beside the key (the README's old example) and a key others
        may read: one line, exit status 64.
        """
        cert, key = pem_files(self)
        directory = os.path.dirname(key)
        out = self.run_command(
            *twist("resumetls", "--certificate", cert, "--key", key, "--path", directory)
        )
        self.assertEqual(out.returncode, 64)
        self.assertEqual(out.stderr.count("\n"), 1, out.stderr)
        self.assertTrue(
            out.stderr.startswith(
                f"Error: --path {directory}: refusing to serve a directory that "
                f"holds {key}"
            ),
            out.stderr,
        )
        os.chmod(key, 0o604)
        out = self.run_command(*twist("resumetls", "--certificate", cert, "--key", key))
        self.assertEqual(
            (out.returncode, out.stderr),
            (
                64,
                f"Error: {key} is readable by others (mode 0604); a TLS private key "
                f"is a secret: run `chmod o-rwx {key}` (its group may read it, not "
                "others)\n",
            ),
        )

    def test_web_listen_example_refuses_the_key(self):
        """examples/web_listen.sh will not serve the directory holding the key."""
        cert, key = pem_files(self)
        out = subprocess.run(
            ["sh", os.path.join(support.ROOT, "examples", "web_listen.sh"), cert, key,
             os.path.dirname(key)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        self.assertEqual(
            (out.returncode, out.stderr),
            (
                64,
                f"refusing to serve {os.path.dirname(key)}: it holds the private "
                f"key {key}\n",
            ),
        )

    def test_start_up_and_plain_http(self):
        """
        The start-up log says what the server runs with (resumetls.started);
        plain HTTP to the TLS port gets the HTTP 400 that names the mistake.
        """

        async def run():
            cert, key = pem_files(self)
            port = free_port()
            proc = serve(self, port, cert, key, "--backlog", "300")

            def plain_http():
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    data = b""
                    while chunk := s.recv(4096):
                        data += chunk
                    return data

            answer = await deferToThread(plain_http)
            self.assertTrue(answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"))
            self.assertIn(b"The plain HTTP request was sent to HTTPS port", answer)
            status = json.loads(
                (await deferToThread(https_get, port, "/status.json"))[1]
            )["server"]
            self.assertEqual(status["plain_http"], 1)
            started = [
                json.loads(line)
                for line in support.read_output(proc).splitlines()
                if '"resumetls.started"' in line
            ]
            self.assertEqual(len(started), 1, support.read_output(proc))
            event = started[0]
            self.assertEqual(event["backlog"], 300)
            self.assertEqual(event["handshake_timeout"], 10.0)
            self.assertEqual((event["cache"], event["cache_size"]), ("memory", 20480))
            self.assertTrue(event["keys"].startswith("ticket keys generated in memory"))
            self.assertTrue(event["certificate"].endswith(f" from {cert}"))

        return ensureDeferred(run())
