"""
C{twist resumetls}'s options and the service tree C{makeService} builds, in
this process (the real subprocess is in C{test_twist}).
"""

from __future__ import annotations

import io
import os
import signal
import sys

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import Site
from twisted.web.static import File
from twisted.web.wsgi import WSGIResource

from resumetls import (
    GeneratedKeySource,
    KeyFileSource,
    ResumingContextFactory,
    ResumingServerEndpoint,
    TicketKey,
)
from resumetls.cli import tap as _tap
from resumetls.cli.demo import DemoPage
from resumetls.keys.files import write_haproxy_keys, write_nginx_key

from ..support import pem_files

# Targets for --factory and --wsgi (dotted names into this module).
echo_factory = Factory.forProtocol(Protocol)


def make_factory():
    return Factory.forProtocol(Protocol)


def broken_factory():
    raise RuntimeError("no database")


def not_a_factory():
    return 42


def wsgi_app(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]


NOT_CALLABLE = "just a string"


def private_data_dir(testcase):
    """Keep any development certificate out of the real home directory."""
    data = os.path.abspath(testcase.mktemp())
    testcase.patch(os, "environ", {**os.environ, "XDG_DATA_HOME": data})


class TapTestCase(SynchronousTestCase):
    """PEM files, a private data directory, and C{twist resumetls} options."""

    def setUp(self):
        self.cert, self.key = pem_files(self)
        private_data_dir(self)

    def options(self, *argv):
        options = _tap.Options()
        options.parseOptions(list(argv))
        return options


class OptionsTests(TapTestCase):

    def error(self, *argv):
        e = self.assertRaises(usage.UsageError, self.options, *argv)
        return str(e)

    def test_port_listener(self):
        """--port and the TLS options make one listener, built at once."""
        options = self.options(
            "--port",
            "9443",
            "--interface",
            "127.0.0.1",
            "--certificate",
            self.cert,
            "--key",
            self.key,
            "--no-session-ids",
            "--tls13-tickets",
            "1",
            "--service",
            "shop",
        )
        [(description, endpoint)] = options.listeners
        self.assertIsNone(description)
        self.assertIsInstance(endpoint, ResumingServerEndpoint)
        self.assertEqual((endpoint.port, endpoint.interface), (9443, "127.0.0.1"))
        self.assertEqual(
            (options.config.port, options.config.interface), (9443, "127.0.0.1")
        )
        factory = endpoint.context_factory
        self.assertIsInstance(factory, ResumingContextFactory)
        self.assertEqual(
            (
                factory.settings.session_ids,
                factory.settings.tickets,
                factory.settings.tls13_tickets,
                factory.settings.service,
            ),
            (False, True, 1, "shop"),
        )
        self.assertIsInstance(endpoint.key_source, GeneratedKeySource)
        self.assertEqual(options.what, "demo")

    def test_development_certificate(self):
        """Neither --certificate nor --key: the development certificate."""
        options = self.options("--port", "9443")
        self.assertIsInstance(
            options.listeners[0][1].context_factory, ResumingContextFactory
        )
        key = os.path.join(os.environ["XDG_DATA_HOME"], "resumetls", "dev-key.pem")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)

    def test_ticket_keys_watched(self):
        keyfile = os.path.abspath(self.mktemp())
        write_haproxy_keys(keyfile, [TicketKey.generate() for _ in range(3)])
        options = self.options(
            "--certificate", self.cert, "--key", self.key, "--ticket-keys", keyfile
        )
        source = options.listeners[0][1].key_source
        self.assertIsInstance(source, KeyFileSource)
        self.assertEqual(source.path, keyfile)
        self.assertFalse(source.running)  # started when the port listens

    def test_repeated_ticket_keys(self):
        """
        --ticket-keys new.key --ticket-keys old.key: nginx's rule, the first
        encrypts and the others decrypt (only the last was kept before).
        """
        keys = [TicketKey.generate() for _ in range(2)]
        paths = []
        for name, key in zip(("new.key", "old.key"), keys, strict=True):
            paths.append(os.path.join(os.path.dirname(self.key), name))
            write_nginx_key(paths[-1], key)
        options = self.options(
            "--certificate", self.cert, "--key", self.key,
            "--ticket-keys", paths[0], "--ticket-keys", paths[1],
        )  # fmt: skip
        self.assertEqual(options.config.ticket_keys, tuple(paths))
        source = options.listeners[0][1].key_source
        self.assertEqual(source.paths, tuple(paths))
        self.assertEqual(source.key_ring.encrypting_key(), keys[0])
        self.assertEqual(source.key_ring.decrypting_key(keys[1].name), (keys[1], True))
        self.assertEqual(
            self.error("--ticket-keys", paths[0], "--ticket-keys", "/no/old.key"),
            "--ticket-keys: /no/old.key: no such file",
        )
        self.assertIn("--ticket-keys", str(_tap.Options()))
        self.assertIn(
            "--ticket-keys does not apply with --listen",
            self.error("--listen", "resumetls:8443", "--ticket-keys", paths[0]),
        )

    def test_listener_limits(self):
        """--backlog (511 by default, as nginx), the handshake timeout and bound."""
        endpoint = self.options("--certificate", self.cert, "--key", self.key)
        endpoint = endpoint.listeners[0][1]
        self.assertEqual(
            (endpoint.backlog, endpoint.handshake_timeout, endpoint.max_handshakes),
            (511, 10.0, 1024),
        )
        endpoint = self.options(
            "--certificate", self.cert, "--key", self.key, "--backlog", "2048",
            "--handshake-timeout", "2.5", "--max-handshakes", "64",
        ).listeners[0][1]  # fmt: skip
        self.assertEqual(
            (endpoint.backlog, endpoint.handshake_timeout, endpoint.max_handshakes),
            (2048, 2.5, 64),
        )
        self.assertEqual(
            self.error("--backlog", "0"), "--backlog must be between 1 and 65535, not '0'"
        )
        self.assertEqual(
            self.error("--handshake-timeout", "0"),
            "--handshake-timeout must be between 0.1 and 3600, not '0'",
        )

    def test_path_holding_secrets(self):
        """
        --path refuses a directory that holds the private key or a ticket
        key file it uses, anywhere below it (the documented `--path .` served
        key.pem to anyone).
        """
        top = os.path.dirname(os.path.dirname(self.key))
        keyfile = os.path.abspath(self.mktemp())
        write_haproxy_keys(keyfile, [TicketKey.generate() for _ in range(3)])
        tls = ["--certificate", self.cert, "--key", self.key]
        for directory, secret in (
            (os.path.dirname(self.key), self.key),
            (top, self.key),
            (os.path.dirname(keyfile), keyfile),
        ):
            self.assertEqual(
                self.error(*tls, "--ticket-keys", keyfile, "--path", directory),
                f"--path {directory}: refusing to serve a directory that holds "
                f"{secret}, a secret this server uses (anyone could download it); "
                "keep keys outside the directory served, or serve a subdirectory "
                "without them",
            )
        link = os.path.abspath(self.mktemp())
        os.symlink(os.path.dirname(self.key), link)
        self.assertIn("refusing to serve", self.error(*tls, "--path", link))
        public = os.path.join(os.path.dirname(self.key), "public")
        os.makedirs(public)
        self.assertEqual(self.options(*tls, "--path", public).target, public)

    def test_private_key_mode(self):
        """A key others may read is refused with the chmod; group may read it."""
        os.chmod(self.key, 0o644)
        self.assertEqual(
            self.error("--certificate", self.cert, "--key", self.key),
            f"{self.key} is readable by others (mode 0644); a TLS private key is "
            f"a secret: run `chmod o-rwx {self.key}` (its group may read it, not "
            "others)",
        )
        os.chmod(self.key, 0o640)
        self.options("--certificate", self.cert, "--key", self.key)

    def test_version(self):
        """--version prints resumetls's version (it printed Twisted's)."""
        import twisted
        from resumetls import __version__

        out = io.StringIO()
        self.patch(sys, "stdout", out)
        e = self.assertRaises(SystemExit, self.options, "--version")
        self.assertEqual(e.code, 0)
        self.assertEqual(
            out.getvalue(), f"resumetls {__version__} (Twisted {twisted.__version__})\n"
        )

    def test_listen(self):
        """--listen strings: resumetls: ones built now, others kept for later."""
        options = self.options(
            "--listen",
            f"resumetls:9443:privateKey={self.key}:certKey={self.cert}:tickets=no",
            "--listen",
            "tcp:8080:interface=127.0.0.1",
        )
        first, second = options.listeners
        factory = first[1].context_factory
        self.assertIsInstance(factory, ResumingContextFactory)
        self.assertFalse(factory.settings.tickets)
        self.assertEqual(first[1].port, 9443)
        self.assertEqual(second, ("tcp:8080:interface=127.0.0.1", None))
        self.assertEqual(options.context_factories, [factory])

    def test_listen_errors(self):
        """A bad resumetls: string is an option error, not a traceback later."""
        self.assertEqual(
            self.error("--listen", "resumetls:8443:bogus=1").split(";")[0],
            "--listen resumetls:8443:bogus=1: unknown option bogus",
        )
        self.assertEqual(
            self.error("--listen", "resumetls:8443:certKey=/nope.pem"),
            "--listen resumetls:8443:certKey=/nope.pem: certKey: /nope.pem: no such "
            "file",
        )
        _, other = pem_files(self, "rsa")
        self.assertEqual(
            self.error(
                "--listen", f"resumetls:8443:certKey={self.cert}:privateKey={other}"
            ),
            f"--listen resumetls:8443:certKey={self.cert}:privateKey={other}: the "
            f"private key {other} does not match the certificate {self.cert}",
        )

    def test_listen_with_port_options(self):
        """Options of the --port listener would be ignored with --listen: refused."""
        for extra in (
            ["--certificate", self.cert, "--key", self.key],
            ["--port", "9000"],
            ["--no-tickets"],
            ["--session-timeout", "60"],
        ):
            message = self.error("--listen", "resumetls:8443", *extra)
            self.assertEqual(
                message,
                f"{extra[0]} does not apply with --listen: put the listener's "
                "options in its resumetls: string (e.g. resumetls:8443:"
                "certKey=cert.pem:privateKey=key.pem:ticketKeys=ticket.keys)",
            )

    def test_factory(self):
        """--factory takes a factory, or a callable returning one."""
        options = self.options(
            "--certificate",
            self.cert,
            "--key",
            self.key,
            "--factory",
            f"{__name__}.echo_factory",
        )
        self.assertIs(options.target, echo_factory)
        options = self.options(
            "--certificate",
            self.cert,
            "--key",
            self.key,
            "--factory",
            f"{__name__}.make_factory",
        )
        self.assertIsInstance(options.target, Factory)
        self.assertIsNot(options.target, echo_factory)

    def test_factory_errors(self):
        cases = [
            (
                "broken_factory",
                "--factory {}.broken_factory: calling it raised RuntimeError: no "
                "database",
            ),
            (
                "not_a_factory",
                "--factory {}.not_a_factory did not give a protocol factory (got int)",
            ),
            (
                "NOT_CALLABLE",
                "--factory {}.NOT_CALLABLE is neither a protocol factory nor callable",
            ),
        ]
        for name, message in cases:
            self.assertEqual(
                self.error("--factory", f"{__name__}.{name}"), message.format(__name__)
            )
        self.assertTrue(
            self.error("--factory", f"{__name__}.nothing").startswith(
                f"--factory {__name__}.nothing: cannot import it"
            )
        )

    def test_wsgi_errors(self):
        self.assertEqual(
            self.error("--wsgi", f"{__name__}.NOT_CALLABLE"),
            f"--wsgi {__name__}.NOT_CALLABLE is not callable",
        )
        self.assertEqual(
            self.error("--wsgi", "a", "--factory", "b"),
            "give only one of --factory, --wsgi and --path, not --factory and --wsgi",
        )

    def test_help_is_plain_text(self):
        """The help shows no epytext markup."""
        text = str(_tap.Options())
        self.assertIn("--listen", text)
        self.assertNotIn("C{", text)
        self.assertNotIn("L{", text)


class MakeServiceTests(TapTestCase):
    def service(self, *argv):
        options = self.options(*argv)
        return options, _tap.makeService(options)

    def servers(self, top):
        return [s for s in top if isinstance(s, StreamServerEndpointService)]

    def test_port(self):
        options, top = self.service(
            "--port", "9443", "--certificate", self.cert, "--key", self.key
        )
        [server] = self.servers(top)
        self.assertIsInstance(server.endpoint, ResumingServerEndpoint)
        self.assertEqual(server.endpoint.port, 9443)
        self.assertIs(server.endpoint.context_factory, options.context_factories[0])
        self.assertIsInstance(server.factory, Site)
        self.assertIsInstance(server.factory.resource, DemoPage)

    def test_what_to_serve(self):
        base = ["--certificate", self.cert, "--key", self.key]
        public = os.path.abspath(self.mktemp())
        os.makedirs(public)
        _, top = self.service(*base, "--path", public)
        resource = self.servers(top)[0].factory.resource
        self.assertIsInstance(resource, File)
        self.assertEqual(resource.path, public)
        _, top = self.service(*base, "--wsgi", f"{__name__}.wsgi_app")
        self.assertIsInstance(self.servers(top)[0].factory.resource, WSGIResource)
        _, top = self.service(*base, "--factory", f"{__name__}.echo_factory")
        self.assertIs(self.servers(top)[0].factory, echo_factory)

    def test_listen_and_metrics(self):
        """Each --listen is a server; --metrics PORT listens on loopback only."""
        _, top = self.service(
            "--listen",
            f"resumetls:9443:privateKey={self.key}:certKey={self.cert}",
            "--listen",
            "tcp:8080",
            "--metrics",
            "9100",
        )
        tls, plain, metrics = self.servers(top)
        self.assertIsInstance(tls.endpoint, ResumingServerEndpoint)
        self.assertIsInstance(plain.endpoint, TCP4ServerEndpoint)
        self.assertIs(tls.factory, plain.factory)
        self.assertIsInstance(metrics.endpoint, TCP4ServerEndpoint)
        self.assertEqual(
            (metrics.endpoint._port, metrics.endpoint._interface), (9100, "127.0.0.1")
        )
        self.assertIsNot(metrics.factory, tls.factory)

    def test_bad_late_endpoint(self):
        """Another parser's error is one line and an exit, not a traceback."""
        options = _tap.Options()
        options.parseOptions(["--listen", "tcp:http"])
        e = self.assertRaises(SystemExit, _tap.makeService, options)
        self.assertTrue(str(e.code).startswith("Error: --listen tcp:http: "), e.code)


class KeySourceLifeTests(TestCase):
    """
    The service tree starts each listener's key source when it listens and
    stops it when the service stops (SIGHUP dispatch itself is tested in
    L{tests.keys.test_sources}).
    """

    def setUp(self):
        self.cert, self.key = pem_files(self)
        private_data_dir(self)
        previous = signal.getsignal(signal.SIGHUP)
        self.addCleanup(signal.signal, signal.SIGHUP, previous)
        self.previous = previous

    def key_file(self):
        path = os.path.abspath(self.mktemp())
        write_haproxy_keys(path, [TicketKey.generate() for _ in range(3)])
        return path

    async def check_started_and_stopped(self, *argv):
        options = _tap.Options()
        options.parseOptions(list(argv))
        sources = [e.key_source for _, e in options.listeners]
        top = _tap.makeService(options)
        self.assertFalse(any(s.running for s in sources))
        top.privilegedStartService()
        top.startService()
        self.assertTrue(all(s.running for s in sources))
        self.assertNotEqual(signal.getsignal(signal.SIGHUP), self.previous)
        await top.stopService()
        self.assertFalse(any(s.running for s in sources))
        self.assertEqual(signal.getsignal(signal.SIGHUP), self.previous)

    async def test_port(self):
        """--port with --ticket-keys."""
        argv = f"--port 0 --interface 127.0.0.1 --certificate {self.cert} --key"
        await self.check_started_and_stopped(
            *argv.split(), self.key, "--ticket-keys", self.key_file()
        )

    async def test_listen(self):
        """Two --listen resumetls: strings, each with its key file."""
        argv = []
        for _ in range(2):
            argv += [
                "--listen",
                f"resumetls:0:interface=127.0.0.1:privateKey={self.key}"
                f":certKey={self.cert}:ticketKeys={self.key_file()}",
            ]
        await self.check_started_and_stopped(*argv)
