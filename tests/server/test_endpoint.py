"""
The C{resumetls:} server endpoint string parser against
C{MemoryReactorClock} (what C{listenSSL} receives), its migration from
C{ssl:}, the key source's life with the listening port, the plugin's
discovery and its import cost.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamServerEndpointStringParser
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase

from resumetls import (
    ConfigError,
    GeneratedKeySource,
    ResumingContextFactory,
    ResumingServerEndpoint,
    TicketKey,
)
from resumetls.keys.files import write_haproxy_keys, write_nginx_key
from resumetls.server import registry as _registry
from resumetls.server.endpoint import ResumeTLSServerParser
from resumetls.server.protocol import ResumingTLSFactory

from .. import support
from ..support import pem_files


def der(certificate):
    """DER of a pyOpenSSL or cryptography certificate."""
    from cryptography.hazmat.primitives.serialization import Encoding

    if hasattr(certificate, "to_cryptography"):
        certificate = certificate.to_cryptography()
    return certificate.public_bytes(Encoding.DER)


def as_ssl(tcp_server):
    """
    What C{listenTCP} got, as C{listenSSL}'s arguments: (port, application
    factory, context factory, backlog, interface).  Our endpoint listens on
    TCP with our TLS layer (L{ResumingTLSFactory}) around the application.
    """
    port, tls, backlog, interface = tcp_server
    assert isinstance(tls, ResumingTLSFactory), tls
    return port, tls.wrappedFactory, tls.context_factory, backlog, interface


class ParserTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.cert, self.key = pem_files(self)

    def listen(self, description):
        """
        Listen on C{description}; returns the endpoint, the port, what the
        listener got as C{listenSSL} would have (port, application factory,
        context factory, backlog, interface) and the application factory.
        """
        endpoint = serverFromString(self.reactor, description)
        factory = Factory.forProtocol(Protocol)
        port = self.successResultOf(endpoint.listen(factory))
        self.addCleanup(port.stopListening)  # its watches answer SIGHUP
        self.assertEqual(len(self.reactor.tcpServers), 1)
        self.assertEqual(self.reactor.sslServers, [])
        return endpoint, port, as_ssl(self.reactor.tcpServers[0]), factory

    def test_listen_ssl(self):
        """Port, backlog, interface and a resuming context factory reach listenSSL."""
        endpoint, _, (port, app, context, backlog, interface), factory = self.listen(
            f"resumetls:9443:interface=127.0.0.1:backlog=7:privateKey={self.key}"
            f":certKey={self.cert}:tickets=no:sessionTimeout=300:tls13Tickets=4"
            ":service=shop:sessionCache=memory\\://?size=9"
        )
        self.assertEqual((port, backlog, interface), (9443, 7, "127.0.0.1"))
        self.assertIs(app, factory)
        self.assertIsInstance(context, ResumingContextFactory)
        self.assertIs(context, endpoint.context_factory)
        s = context.settings
        self.assertEqual(
            (s.tickets, s.session_ids, s.session_timeout, s.tls13_tickets, s.service),
            (False, True, 300, 4, "shop"),
        )
        self.assertEqual(context.cache.stats().max_entries, 9)
        self.assertIn(context, _registry.factories())

    def test_listener_limits(self):
        """
        The backlog is 511 unless given (nginx's; Twisted's 50 overflowed
        under 200 clients); the handshake timeout and bound reach the TLS
        layer.
        """
        endpoint, _, (_, _, _, backlog, _), _ = self.listen(
            f"resumetls:9443:privateKey={self.key}:certKey={self.cert}"
        )
        self.assertEqual(backlog, 511)
        tls = self.reactor.tcpServers[0][1]
        self.assertEqual((tls.handshake_timeout, tls.max_handshakes), (10.0, 1024))
        self.reactor.tcpServers.clear()
        _, _, (_, _, _, backlog, _), _ = self.listen(
            f"resumetls:9443:privateKey={self.key}:certKey={self.cert}"
            ":backlog=1024:handshakeTimeout=3:maxHandshakes=5"
        )
        tls = self.reactor.tcpServers[0][1]
        self.assertEqual(
            (backlog, tls.handshake_timeout, tls.max_handshakes), (1024, 3.0, 5)
        )

    def test_started_event(self):
        """
        Listening logs C{resumetls.started}: address, backlog, key source
        (which file's key encrypts, by fingerprint), cache backend and size,
        handshake timeout and bound, certificate; no secrets.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        directory = os.path.dirname(self.key)
        new, old = TicketKey.generate(), TicketKey.generate()
        write_nginx_key(os.path.join(directory, "new.key"), new)
        write_nginx_key(os.path.join(directory, "old.key"), old)
        new_path = os.path.join(directory, "new.key")
        old_path = os.path.join(directory, "old.key")
        self.listen(
            f"resumetls:9443:interface=127.0.0.1:privateKey={self.key}"
            f":certKey={self.cert}:ticketKeys={new_path},{old_path}"
            ":sessionCache=memory\\://?size=77:handshakeTimeout=4"
        )
        [started] = [e for e in events if e.get("event") == "resumetls.started"]
        self.assertTrue(started["address"].endswith(":9443"))  # the fake reactor's host
        self.assertEqual(started["backlog"], 511)
        self.assertEqual(
            (started["cache"], started["cache_size"]), ("memory", 77)
        )
        self.assertEqual(
            (started["handshake_timeout"], started["max_handshakes"]), (4.0, 1024)
        )
        self.assertIn(f"{new.fingerprint} from {new_path} encrypts", started["keys"])
        self.assertTrue(started["certificate"].endswith(f" from {self.cert}"))
        text = formatEvent(started)
        self.assertIn("backlog 511", text)
        self.assertIn("handshake timeout 4s", text)
        for key in (new, old):
            for secret in (key.hmac_key, key.aes_key):
                self.assertNotIn(secret.hex(), repr(started))

    def test_from_ssl_string(self):
        """
        An C{ssl:} string with the prefix changed is the whole migration:
        the same port, interface, backlog, certificate and chain.
        """
        ssl_string = (
            f"ssl:8443:interface=127.0.0.1:backlog=20:privateKey={self.key}"
            f":certKey={self.cert}:extraCertChain={self.cert}"
        )
        serverFromString(self.reactor, ssl_string).listen(Factory())
        ours = "resumetls" + ssl_string[len("ssl") :]
        port = self.successResultOf(
            serverFromString(self.reactor, ours).listen(Factory())
        )
        self.addCleanup(port.stopListening)
        [plain] = self.reactor.sslServers
        resuming = as_ssl(self.reactor.tcpServers[0])
        self.assertEqual(
            (plain[0], plain[3], plain[4]), (resuming[0], resuming[3], resuming[4])
        )
        self.assertIsInstance(plain[2], CertificateOptions)
        self.assertIsInstance(resuming[2], ResumingContextFactory)
        self.assertEqual(
            der(plain[2].certificate), der(resuming[2]._options.certificate)
        )
        self.assertEqual(
            [der(c) for c in plain[2].extraCertChain],
            [der(c) for c in resuming[2]._options.extraCertChain],
        )

    def test_escaped_colons(self):
        """Paths with colons are written with C{\\:}, as for C{ssl:}."""
        directory = os.path.abspath(self.mktemp()) + ":x"
        cert, key = support.write_pem(directory, *support.certificate())
        with open(key, "a") as out, open(cert) as f:
            out.write(f.read())  # one file with both, read for both
        escaped = key.replace(":", "\\:")
        _, _, (port, _, context, _, _), _ = self.listen(
            f"resumetls:port=8000:privateKey={escaped}"
        )
        self.assertEqual(port, 8000)
        self.assertIsInstance(context, ResumingContextFactory)

    def test_key_file_watched_once_listening(self):
        """A key file is watched from the moment the endpoint listens."""
        keyfile = os.path.abspath(self.mktemp())
        a, b, c, d = (TicketKey.generate() for _ in range(4))
        write_haproxy_keys(keyfile, [a, b, c])
        endpoint = serverFromString(
            self.reactor,
            f"resumetls:8443:privateKey={self.key}:certKey={self.cert}"
            f":ticketKeys={keyfile}",
        )
        ring = endpoint.context_factory.key_ring
        self.assertEqual(ring.encrypting_key().name, b.name)
        write_haproxy_keys(keyfile, [b, c, d])
        self.reactor.advance(10)
        self.assertEqual(ring.encrypting_key().name, b.name)  # not listening yet
        port = self.successResultOf(endpoint.listen(Factory()))
        self.addCleanup(port.stopListening)
        self.reactor.advance(endpoint.key_source.interval)
        self.assertEqual(ring.encrypting_key().name, c.name)
        self.assertEqual(endpoint.key_source.reloads, 1)

    def key_file_endpoint(self):
        keyfile = os.path.abspath(self.mktemp())
        keys = [TicketKey.generate() for _ in range(4)]
        write_haproxy_keys(keyfile, keys[:3])
        endpoint = serverFromString(
            self.reactor,
            f"resumetls:8443:privateKey={self.key}:certKey={self.cert}"
            f":ticketKeys={keyfile}",
        )
        return endpoint, keyfile, keys

    def test_stop_listening_stops_key_source(self):
        """
        When the port stops listening, its key source stops too: the file is
        no longer watched and SIGHUP gets its previous handler back (it used
        to stay watched, with nothing to stop it).
        """
        previous = signal.getsignal(signal.SIGHUP)
        self.addCleanup(signal.signal, signal.SIGHUP, previous)
        endpoint, keyfile, (a, b, c, d) = self.key_file_endpoint()
        self.assertIsInstance(endpoint, ResumingServerEndpoint)
        source = endpoint.key_source
        port = self.successResultOf(endpoint.listen(Factory()))
        self.assertTrue(source.running)
        self.assertNotEqual(signal.getsignal(signal.SIGHUP), previous)
        self.assertEqual(port.getHost().port, 8443)
        self.assertIsNone(self.successResultOf(port.stopListening()))
        self.assertFalse(source.running)
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        write_haproxy_keys(keyfile, [b, c, d])
        self.reactor.advance(10)
        self.assertEqual(source.reloads, 0)
        self.assertEqual(source.key_ring.encrypting_key().name, b.name)
        # stopping again is harmless
        self.assertIsNone(self.successResultOf(port.stopListening()))

    def test_adopted_socket(self):
        """
        A socket adopted from a parent (a worker's) is served like one the
        endpoint binds: registered, key source and certificate watch
        started, C{resumetls.started} logged; stopping the port stops both.
        """
        previous = signal.getsignal(signal.SIGHUP)
        self.addCleanup(signal.signal, signal.SIGHUP, previous)
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        endpoint, _, _ = self.key_file_endpoint()
        app = Factory()
        port = endpoint.adopt(7, socket.AF_INET, app)
        [(fd, family, tls)] = self.reactor.adoptedPorts
        self.assertEqual((fd, family), (7, socket.AF_INET))
        self.assertIsInstance(tls, ResumingTLSFactory)
        self.assertIs(tls.wrappedFactory, app)
        self.assertIn(endpoint.context_factory, _registry.factories())
        self.assertTrue(endpoint.key_source.running)
        self.assertTrue(endpoint.certificate_watch.running)
        started = [e for e in events if e.get("event") == "resumetls.started"]
        self.assertEqual(len(started), 1)
        self.successResultOf(port.stopListening())
        self.assertFalse(endpoint.key_source.running)
        self.assertFalse(endpoint.certificate_watch.running)
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)

    def test_last_port_stops_key_source(self):
        """Listening twice on one endpoint: the source runs until both stop."""
        previous = signal.getsignal(signal.SIGHUP)
        self.addCleanup(signal.signal, signal.SIGHUP, previous)
        endpoint, _, _ = self.key_file_endpoint()
        first = self.successResultOf(endpoint.listen(Factory()))
        second = self.successResultOf(endpoint.listen(Factory()))
        self.successResultOf(first.stopListening())
        self.successResultOf(first.stopListening())
        self.assertTrue(endpoint.key_source.running)
        self.successResultOf(second.stopListening())
        self.assertFalse(endpoint.key_source.running)
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)

    def test_listen_failure_starts_nothing(self):
        """A port that cannot listen leaves the key source stopped."""
        from twisted.internet.error import CannotListenError

        endpoint, _, _ = self.key_file_endpoint()

        def refuse(*args, **kwargs):
            raise CannotListenError("", 8443, OSError("in use"))

        self.patch(self.reactor, "listenTCP", refuse)
        self.failureResultOf(endpoint.listen(Factory()), CannotListenError)
        self.assertFalse(endpoint.key_source.running)

    def test_generated_keys(self):
        """Without ticketKeys: generated keys, nothing to watch."""
        endpoint = serverFromString(
            self.reactor,
            f"resumetls:8443:privateKey={self.key}:certKey={self.cert}:rotateEvery=90",
        )
        self.assertIsInstance(endpoint.key_source, GeneratedKeySource)
        self.assertEqual(endpoint.key_source.policy.interval, 90)
        self.assertIs(endpoint.key_source.key_ring, endpoint.context_factory.key_ring)
        port = self.successResultOf(endpoint.listen(Factory()))
        self.successResultOf(port.stopListening())
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_errors(self):
        """Bad strings raise ConfigError (a ValueError) with one line."""
        cases = [
            (
                f"resumetls:8443:privateKey={self.key}:tickets=maybe",
                "tickets must be yes or no, not 'maybe'",
            ),
            ("resumetls:", "port must be a number, not ''"),
            (
                "resumetls:interface=127.0.0.1",
                "resumetls: needs a port, e.g. resumetls:8443",
            ),
            (
                "resumetls:8443:interface=::1",
                "resumetls: takes one positional argument, the port; got '8443', "
                "'', '1' (options are name=value; write a colon inside a value "
                "as \\:)",
            ),
            ("resumetls:8443:certKey=/nope.pem", "certKey: /nope.pem: no such file"),
            (
                f"resumetls:8443:privateKey={self.key}:sslmethod=TLSv1_2_METHOD",
                "sslmethod is not supported: resumetls: negotiates the TLS "
                "versions Twisted allows by default; remove it",
            ),
        ]
        for description, message in cases:
            e = self.assertRaises(
                ConfigError, serverFromString, self.reactor, description
            )
            self.assertIsInstance(e, ValueError)
            self.assertEqual(str(e), message, description)
        self.assertEqual(self.reactor.sslServers, [])


class PluginTests(SynchronousTestCase):
    def test_discovered(self):
        """Twisted finds our parser among the endpoint plugins."""
        parsers = [
            p
            for p in getPlugins(IStreamServerEndpointStringParser)
            if getattr(p, "prefix", None) == "resumetls"
        ]
        self.assertEqual(len(parsers), 1)
        self.assertIsInstance(parsers[0], ResumeTLSServerParser)

    def test_import_is_cheap(self):
        """
        Importing the plugin file (every plugin scan does) loads no OpenSSL,
        no cryptography, no reactor and none of our engine.
        """
        code = (
            "import sys, twisted.plugins.resumetls_plugins\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('OpenSSL', 'cryptography', 'prometheus_client', 'redis') or m in "
            "('twisted.internet.reactor', 'resumetls.server.factory', "
            "'resumetls.openssl.symbols', 'resumetls.server.config', "
            "'resumetls.options', 'resumetls.keys.sources', 'twisted.web.server')]\n"
            "print(sorted(heavy))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=support.environment(os.path.abspath(self.mktemp())),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        self.assertEqual(out.stdout.strip(), "[]", out.stderr)
