"""
Twisted clients that resume, proven against C{openssl s_server} (a server
nobody here wrote): its C{-www} page says C{Reused,} or C{New,} for the
connection that carried the request.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from cryptography.hazmat.primitives import serialization
from OpenSSL.crypto import X509, PKey
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.endpoints import HostnameEndpoint, clientFromString, wrapClientTLS
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, KeyPair, PrivateCertificate
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from twisted.web.client import Agent, PartialDownloadError, readBody

from resumetls import (
    ClientStoreError,
    FileClientSessionStore,
    MemoryClientSessionStore,
    ResumingClientCreator,
    ResumingPolicyForHTTPS,
)

from .. import _support


def s_server(testcase, *flags, certificate=None):
    """
    Start C{openssl s_server -www} on a free port; returns (port, cert path).

    @param certificate: (certificate, key); default: one for localhost.
    """
    cert, key = certificate or _support.certificate()
    cert_path, key_path = _support.write_pem(
        os.path.abspath(testcase.mktemp()), cert, key
    )
    port = _support.free_port()
    proc = subprocess.Popen(
        [
            _support.OPENSSL,
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            "-cert",
            cert_path,
            "-key",
            key_path,
            "-www",
            "-quiet",
            *flags,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def stop():
        proc.kill()
        proc.wait(10)

    testcase.addCleanup(stop)
    _support.wait_for_port(port, proc)
    return port, cert_path


def trust(cert_path):
    with open(cert_path, "rb") as f:
        return Certificate.loadPEM(f.read())


class _Fetch(Protocol):
    def connectionMade(self):
        self.data = b""
        self.protocol = None
        self.transport.write(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")

    def dataReceived(self, data):
        if not self.data:
            self.protocol = self.transport.negotiatedProtocol
        self.data += data

    def connectionLost(self, reason):
        self.factory.done.append(self.data)
        if hasattr(self.factory, "protocols"):
            self.factory.protocols.append(self.protocol)


async def fetch_through(endpoint, polls=200):
    """
    One request through a client C{endpoint}; returns the page (C{b""} when
    the handshake failed) and the ALPN protocol the connection negotiated.
    Waits for the connection to end for at most C{polls} × 50 ms.
    """
    factory = Factory.forProtocol(_Fetch)
    factory.done = []
    factory.protocols = []
    await endpoint.connect(factory)
    for _ in range(polls):
        if factory.done:
            break
        await deferLater(reactor, 0.05, lambda: None)
    return factory.done[0], factory.protocols[0]


async def fetch_page(creator, port):
    """One request through wrapClientTLS: see L{fetch_through}."""
    endpoint = wrapClientTLS(creator, HostnameEndpoint(reactor, "127.0.0.1", port))
    return await fetch_through(endpoint)


async def fetch(creator, port):
    """One request through wrapClientTLS; returns 'New' or 'Reused'."""
    page, _ = await fetch_page(creator, port)
    return verdict(page)


def client_identity(name):
    """A client certificate (a Twisted C{PrivateCertificate}) for C{name}."""
    cert, key = _support.make_certificate(name)
    return PrivateCertificate.fromCertificateAndKeyPair(
        Certificate(X509.from_cryptography(cert)),
        KeyPair(PKey.from_cryptography_key(key)),
    )


def certificate_without_san(common_name="localhost"):
    """
    A self-signed certificate naming C{common_name} in its subject only:
    service-identity refuses it with C{CertificateError}, which Twisted's
    verify callback only logs, so the handshake goes on.
    """
    return _support.issue(common_name)


def verdict(page: bytes) -> str:
    m = re.search(rb"^(New|Reused), (TLSv[0-9.]+)", page, re.M)
    if m is None:
        raise AssertionError(f"no verdict in {page[-500:]!r}")
    return f"{m.group(1).decode()} {m.group(2).decode()}"


class ClientTests(TestCase):
    timeout = 60

    def _resumes(self, server_flags, expected_version):
        async def run():
            port, cert = s_server(self, *server_flags)
            creator = ResumingClientCreator(
                "localhost", trust(cert), port=port, store=MemoryClientSessionStore()
            )
            self.assertEqual(await fetch(creator, port), f"New {expected_version}")
            self.assertEqual(await fetch(creator, port), f"Reused {expected_version}")
            self.assertEqual(await fetch(creator, port), f"Reused {expected_version}")
            self.assertEqual(creator.resumed, 2)

        return ensureDeferred(run())

    def test_tls12_session_id(self):
        return self._resumes(["-tls1_2", "-no_ticket"], "TLSv1.2")

    def test_tls12_ticket(self):
        return self._resumes(["-tls1_2"], "TLSv1.2")

    def test_tls13(self):
        return self._resumes(["-tls1_3"], "TLSv1.3")

    def test_tls13_tickets_used_once(self):
        """
        Each TLS 1.3 ticket is offered once; the store keeps the fresh ones
        the server sends.
        """

        async def run():
            port, cert = s_server(self, "-tls1_3")
            store = MemoryClientSessionStore()
            creator = ResumingClientCreator(
                "localhost", trust(cert), port=port, store=store
            )
            await fetch(creator, port)
            held = store.count(creator.key)
            self.assertGreaterEqual(held, 1)
            await fetch(creator, port)
            self.assertEqual(creator.offered, 1)
            self.assertLessEqual(store.count(creator.key), 4)

        return ensureDeferred(run())

    def test_agent(self):
        """An Agent with the policy resumes on its second request."""

        async def run():
            port, cert = s_server(self)
            agent = Agent(reactor, ResumingPolicyForHTTPS(trustRoot=trust(cert)))
            pages = []
            for _ in range(2):
                response = await agent.request(
                    b"GET", f"https://localhost:{port}/".encode()
                )
                try:
                    body = await readBody(response)
                except PartialDownloadError as e:
                    # s_server -www closes without a length or close_notify
                    body = e.response
                pages.append(verdict(body))
            self.assertEqual(pages, ["New TLSv1.3", "Reused TLSv1.3"])

        return ensureDeferred(run())

    def test_other_host_not_offered(self):
        """A session stored for one host name is never offered to another."""

        async def run():
            port, cert = s_server(self, "-tls1_2")
            store = MemoryClientSessionStore()
            one = ResumingClientCreator(
                "localhost", trust(cert), port=port, store=store
            )
            await fetch(one, port)
            other_port = ResumingClientCreator(
                "localhost", trust(cert), port=port + 1, store=store
            )
            self.assertIsNone(store.take(other_port.key, 0))
            self.assertEqual(other_port.offered, 0)
            self.assertEqual(await fetch(one, port), "Reused TLSv1.2")

        return ensureDeferred(run())

    def test_other_host_name_not_offered(self):
        """
        Same server, same store, a certificate valid for both names: a client
        for the second name makes a full handshake (s_server says New), then
        resumes its own session, and the first name's session still works.
        """

        async def run():
            both = _support.make_certificate("other.localhost")
            port, cert = s_server(self, "-tls1_2", certificate=both)
            store = MemoryClientSessionStore()
            one = ResumingClientCreator(
                "localhost", trust(cert), port=port, store=store
            )
            other = ResumingClientCreator(
                "other.localhost", trust(cert), port=port, store=store
            )
            self.assertEqual(await fetch(one, port), "New TLSv1.2")
            self.assertEqual(store.count(one.key), 1)
            self.assertEqual(await fetch(other, port), "New TLSv1.2")
            self.assertEqual(other.offered, 0)
            self.assertEqual(await fetch(other, port), "Reused TLSv1.2")
            self.assertEqual(await fetch(one, port), "Reused TLSv1.2")
            self.assertEqual((one.offered, other.offered), (1, 1))

        return ensureDeferred(run())

    def test_treq(self):
        """treq with an Agent built on the policy resumes too."""
        try:
            import treq
        except ImportError:
            raise SkipTest("treq is not installed (pip install treq)") from None
        from treq.client import HTTPClient

        async def run():
            port, cert = s_server(self, "-tls1_2")
            client = HTTPClient(
                Agent(reactor, ResumingPolicyForHTTPS(trustRoot=trust(cert)))
            )
            pages = []
            for _ in range(2):
                response = await client.get(f"https://localhost:{port}/")
                try:
                    body = await treq.content(response)
                except PartialDownloadError as e:
                    body = e.response
                pages.append(verdict(body))
            self.assertEqual(pages, ["New TLSv1.2", "Reused TLSv1.2"])

        return ensureDeferred(run())

    def test_verification_failure_stores_nothing(self):
        async def run():
            port, cert = s_server(self)
            store = MemoryClientSessionStore()
            creator = ResumingClientCreator(
                "wrong.example", trust(cert), port=port, store=store
            )
            factory = Factory.forProtocol(_Fetch)
            factory.done = []
            endpoint = wrapClientTLS(
                creator, HostnameEndpoint(reactor, "127.0.0.1", port)
            )
            await endpoint.connect(factory)
            for _ in range(100):
                if factory.done:
                    break
                await deferLater(reactor, 0.05, lambda: None)
            self.assertEqual(factory.done, [b""])
            self.assertEqual(creator.saved, 0)
            self.assertIsNone(store.take(creator.key, 0))
            self.flushLoggedErrors()

        return ensureDeferred(run())

    def test_broken_store_costs_a_full_handshake(self):
        """
        A session file damaged while in use is logged, and the connection
        still goes ahead with a full handshake.
        """

        async def run():
            port, cert = s_server(self, "-tls1_2")
            path = os.path.abspath(self.mktemp())
            creator = ResumingClientCreator(
                "localhost", trust(cert), port=port, store=FileClientSessionStore(path)
            )
            self.assertEqual(await fetch(creator, port), "New TLSv1.2")
            with open(path, "w") as f:
                f.write('{"sessions": []}')
            self.assertEqual(await fetch(creator, port), "New TLSv1.2")
            self.assertEqual(len(self.flushLoggedErrors(ClientStoreError)), 2)

        return ensureDeferred(run())

    def test_client_endpoint_string(self):
        async def run():
            port, cert = s_server(self)
            sessions = os.path.abspath(self.mktemp())
            description = (
                f"resumetls:host=localhost:port={port}:trustRoots={cert}"
                f":sessions={sessions}"
            )
            pages = []
            for _ in range(2):
                endpoint = clientFromString(reactor, description)
                page, _ = await fetch_through(endpoint, polls=100)
                pages.append(verdict(page))
            self.assertEqual(pages, ["New TLSv1.3", "Reused TLSv1.3"])
            self.assertEqual(os.stat(sessions).st_mode & 0o777, 0o600)
            self.assertEqual(len(FileClientSessionStore(sessions)._sessions), 1)

        return ensureDeferred(run())


class ProfileTests(TestCase):
    """
    A session is only offered to a creator that would have made it: same
    client certificate, same trust roots, same ALPN, and a server identity
    that was really verified.
    """

    timeout = 60

    def _client_certificates(self, flags, store):
        async def run():
            port, cert = s_server(self, "-verify", "1", *flags)
            one = ResumingClientCreator(
                "localhost",
                trust(cert),
                client_identity("client-one"),
                port=port,
                store=store,
            )
            two = ResumingClientCreator(
                "localhost",
                trust(cert),
                client_identity("client-two"),
                port=port,
                store=store,
            )
            page, _ = await fetch_page(one, port)
            self.assertTrue(verdict(page).startswith("New"))
            self.assertIn(b"Subject: CN=client-one", page)
            # The server must see client-two's own certificate: a full
            # handshake, not client-one's session.
            page, _ = await fetch_page(two, port)
            self.assertEqual((verdict(page)[:3], two.offered), ("New", 0))
            self.assertIn(b"Subject: CN=client-two", page)
            self.assertNotIn(b"client-one", page)
            # Each resumes its own session, with its own identity.
            for creator, name in ((two, b"client-two"), (one, b"client-one")):
                page, _ = await fetch_page(creator, port)
                self.assertTrue(verdict(page).startswith("Reused"))
                self.assertIn(b"Subject: CN=" + name, page)

        return ensureDeferred(run())

    def test_client_certificates_tls12(self):
        """Two client certificates, one store: neither gets the other's session."""
        return self._client_certificates(["-tls1_2"], MemoryClientSessionStore())

    def test_client_certificates_tls13_default_store(self):
        """The same with TLS 1.3 tickets and the process-wide default store."""
        return self._client_certificates(["-tls1_3"], None)

    def test_other_trust_roots_not_offered(self):
        """
        A creator whose trust roots do not trust the server fails
        verification, even when a creator that trusts it stored a session in
        the same store: resuming would skip verification.
        """
        from twisted.internet.ssl import trustRootFromCertificates

        async def run():
            for flags in (["-tls1_2"], ["-tls1_3"]):
                port, cert = s_server(self, *flags)
                store = MemoryClientSessionStore()
                other_ca = Certificate(
                    X509.from_cryptography(_support.make_certificate("ca")[0])
                )
                trusting = ResumingClientCreator(
                    "localhost",
                    trustRootFromCertificates([other_ca, trust(cert)]),
                    port=port,
                    store=store,
                )
                distrusting = ResumingClientCreator(
                    "localhost",
                    trustRootFromCertificates([other_ca]),
                    port=port,
                    store=store,
                )
                self.assertEqual((await fetch(trusting, port))[:3], "New")
                self.assertGreaterEqual(store.count(trusting.key), 1)
                page, _ = await fetch_page(distrusting, port)
                self.assertEqual((page, distrusting.offered), (b"", 0))
                self.assertEqual((await fetch(trusting, port))[:6], "Reused")
                self.flushLoggedErrors()

        return ensureDeferred(run())

    def test_unverified_name_not_stored(self):
        """
        A certificate without subjectAltName: Twisted's verification only
        logs service-identity's CertificateError and lets the handshake
        complete, but the session is not kept (the server identity was never
        checked), so the next connection is a full handshake again.
        """
        from service_identity.exceptions import CertificateError

        async def run():
            port, cert = s_server(
                self, "-tls1_2", certificate=certificate_without_san()
            )
            store = MemoryClientSessionStore()
            creator = ResumingClientCreator(
                "localhost", trust(cert), port=port, store=store
            )
            self.assertEqual(await fetch(creator, port), "New TLSv1.2")
            self.assertEqual(await fetch(creator, port), "New TLSv1.2")
            self.assertEqual((creator.saved, creator.offered), (0, 0))
            self.assertEqual(store.count(creator.key), 0)
            self.assertTrue(self.flushLoggedErrors(CertificateError))

        return ensureDeferred(run())

    def test_alpn(self):
        """
        A creator with ALPN offers its sessions only to the same ALPN
        profile, and the resumed connection negotiates the protocol again.
        """

        async def run():
            for flags in (["-tls1_2"], ["-tls1_3"]):
                port, cert = s_server(self, "-alpn", "h2,http/1.1", *flags)
                store = MemoryClientSessionStore()

                def creator(protocols, port=port, cert=cert, store=store):
                    return ResumingClientCreator(
                        "localhost",
                        trust(cert),
                        acceptableProtocols=protocols,
                        port=port,
                        store=store,
                    )

                http11, h2, none = (
                    creator([b"http/1.1"]),
                    creator([b"h2"]),
                    creator(None),
                )
                page, protocol = await fetch_page(http11, port)
                self.assertEqual((verdict(page)[:3], protocol), ("New", b"http/1.1"))
                for other in (h2, none):
                    page, _ = await fetch_page(other, port)
                    self.assertEqual((verdict(page)[:3], other.offered), ("New", 0))
                page, protocol = await fetch_page(http11, port)
                self.assertEqual(
                    (verdict(page)[:6], protocol, http11.offered),
                    ("Reused", b"http/1.1", 1),
                )
                page, protocol = await fetch_page(h2, port)
                self.assertEqual((verdict(page)[:6], protocol), ("Reused", b"h2"))

        return ensureDeferred(run())


class _RecordingStore(MemoryClientSessionStore):
    """A memory store that remembers what it was given to keep."""

    def __init__(self):
        super().__init__()
        self.puts = []

    def put(self, key, der, expires, single_use):
        self.puts.append((expires, single_use))
        super().put(key, der, expires, single_use)


class ExpiryTests(TestCase):
    """Sessions are kept for the handshake time plus the ticket lifetime hint."""

    timeout = 60

    def test_lifetime_hint(self):
        """
        Against our server with a 1000 s session timeout (the hint it sends,
        shorter than the client's own 7200 s timeout), in TLS 1.2 and 1.3.
        """
        import time

        from twisted.internet.endpoints import SSL4ServerEndpoint
        from twisted.internet.ssl import TLSVersion

        from resumetls import ResumingContextFactory, ResumptionSettings

        class Page(Protocol):
            def dataReceived(self, data):
                self.transport.write(b"New, TLSv1.x\n")
                self.transport.loseConnection()

        async def run():
            cert, key = _support.certificate()
            cert_path, key_path = _support.write_pem(
                os.path.abspath(self.mktemp()), cert, key
            )
            factory = ResumingContextFactory.from_files(
                cert_path, key_path, ResumptionSettings(session_timeout=1000)
            )
            port = await SSL4ServerEndpoint(
                reactor, 0, factory, interface="127.0.0.1"
            ).listen(Factory.forProtocol(Page))
            self.addCleanup(port.stopListening)
            number = port.getHost().port
            for maximum, single_use in ((TLSVersion.TLSv1_2, False), (None, True)):
                store = _RecordingStore()
                creator = ResumingClientCreator(
                    "localhost",
                    trust(cert_path),
                    port=number,
                    store=store,
                    extraCertificateOptions={"lowerMaximumSecurityTo": maximum}
                    if maximum
                    else None,
                )
                before = time.time()
                await fetch_page(creator, number)
                after = time.time()
                self.assertTrue(store.puts)
                for expires, used_once in store.puts:
                    self.assertEqual(used_once, single_use)
                    # The session's time has a resolution of one second.
                    self.assertGreaterEqual(expires, int(before) + 1000)
                    self.assertLessEqual(expires, after + 1000)

        return ensureDeferred(run())

    def test_expiry_rules(self):
        """The shortest of timeout, hint and 7 days, from the session's time."""
        from OpenSSL import SSL

        from resumetls.client.capture import session_expiry
        from resumetls.openssl.binding import SessionDetails

        def details(version=SSL.TLS1_3_VERSION, hint=None, time=None, timeout=7200):
            return SessionDetails(version, hint is not None, hint, time, timeout, True)

        now = 1_000_000.0
        self.assertEqual(session_expiry(details(hint=300), now), now + 300)
        self.assertEqual(
            session_expiry(details(hint=300, time=999_990), now), 999_990 + 300
        )
        # a session time in the future (clock change) is not trusted
        self.assertEqual(
            session_expiry(details(hint=300, time=2_000_000), now), now + 300
        )
        self.assertEqual(
            session_expiry(details(hint=10**9, timeout=10**9), now), now + 7 * 86400
        )
        self.assertEqual(session_expiry(details(hint=9000), now), now + 7200)
        self.assertEqual(session_expiry(details(timeout=None), now), now + 7200)
        # TLS 1.3: lifetime 0 means "do not keep"; TLS 1.2: 0 means "not said"
        self.assertIsNone(session_expiry(details(hint=0), now))
        self.assertEqual(
            session_expiry(details(SSL.TLS1_2_VERSION, hint=0), now), now + 7200
        )


class EndpointTests(TestCase):
    """The resumetls: client endpoint string."""

    timeout = 60

    def test_trust_roots_bundle(self):
        """
        trustRoots= trusts every certificate of a PEM bundle: here the
        server's is the second.
        """

        async def run():
            port, cert = s_server(self)
            other, _ = _support.make_certificate("ca-a")
            bundle = os.path.abspath(self.mktemp())
            with open(cert, "rb") as f, open(bundle, "wb") as out:
                out.write(other.public_bytes(serialization.Encoding.PEM))
                out.write(f.read())
            description = f"resumetls:host=localhost:port={port}:trustRoots={bundle}"
            pages = []
            for _ in range(2):
                endpoint = clientFromString(reactor, description)
                page, _ = await fetch_through(endpoint, polls=100)
                pages.append(verdict(page) if page else "failed")
            self.assertEqual(pages, ["New TLSv1.3", "Reused TLSv1.3"])

        return ensureDeferred(run())

    def test_errors(self):
        """Bad options are one ValueError each, naming what to fix."""
        empty = os.path.abspath(self.mktemp())
        with open(empty, "w") as f:
            f.write("not a certificate\n")
        missing = os.path.abspath(self.mktemp())
        cases = {
            f"resumetls:host=localhost:trustRoots={empty}": (
                f"resumetls: trustRoots {empty} holds no PEM certificate"
            ),
            f"resumetls:host=localhost:trustRoots={missing}": (
                f"resumetls: cannot read trustRoots {missing}: No such file or "
                "directory"
            ),
            "resumetls:host=localhost:port=99999": (
                "resumetls: port must be a number, not '99999'"
            ),
            "resumetls:host=localhost:timeout=-1": (
                "resumetls: timeout must be a number of seconds above 0, not '-1'"
            ),
            "resumetls:host=localhost:timeout=nan": (
                "resumetls: timeout must be a number of seconds above 0, not 'nan'"
            ),
            "resumetls:port=443": "resumetls: client endpoints need host=",
            "resumetls:host=localhost:colour=blue": (
                "resumetls: unknown client option colour"
            ),
        }
        for description, message in cases.items():
            e = self.assertRaises(ValueError, clientFromString, reactor, description)
            self.assertEqual(str(e), message)

    def test_bind_address(self):
        """bindAddress= is passed on (Twisted's tcp: takes a host)."""
        endpoint = clientFromString(
            reactor, "resumetls:host=localhost:port=1:bindAddress=127.0.0.2"
        )
        self.assertEqual(endpoint._wrappedEndpoint._bindAddress, ("127.0.0.2", 0))


class DocsTests(TestCase):
    """docs/client.md's snippets run as written."""

    timeout = 120

    def test_snippets_run(self):
        """
        Every Python snippet of docs/client.md runs in a fresh interpreter,
        imports included (nothing in them connects; HOME is a temporary
        directory).
        """
        with open(os.path.join(_support.ROOT, "docs", "client.md")) as f:
            snippets = re.findall(r"```python\n(.*?)```", f.read(), re.S)
        self.assertTrue(snippets)
        tmp = os.path.abspath(self.mktemp())
        env = _support.environment(tmp)
        env["HOME"] = os.path.join(tmp, "home")
        for snippet in snippets:
            out = subprocess.run(
                [sys.executable, "-c", snippet],
                cwd=_support.ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            self.assertEqual(out.returncode, 0, out.stderr)


_RESTART_SCRIPT = """
import sys
from twisted.internet import task
from twisted.internet.defer import ensureDeferred
from twisted.internet.ssl import Certificate
from resumetls import ResumingClientCreator
from resumetls import FileClientSessionStore
from tests.client.test_creator import fetch

async def main(reactor):
    port, cert, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open(cert, "rb") as f:
        root = Certificate.loadPEM(f.read())
    creator = ResumingClientCreator("localhost", root, port=port,
                                    store=FileClientSessionStore(path))
    print(await fetch(creator, port))

task.react(lambda r: ensureDeferred(main(r)))
"""


class FileStoreTests(TestCase):
    timeout = 60

    def test_survives_restart(self):
        """Two client processes, one session file: the second resumes."""
        port, cert = s_server(self, "-tls1_2")
        path = os.path.abspath(self.mktemp())
        env = _support.environment(os.path.abspath(self.mktemp()))
        runs = []
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", _RESTART_SCRIPT, str(port), cert, path],
                env=env,
                cwd=_support.ROOT,
                capture_output=True,
                text=True,
                timeout=30,
            )
            self.assertEqual(out.returncode, 0, out.stderr)
            runs.append(out.stdout.strip())
        self.assertEqual(runs, ["New TLSv1.2", "Reused TLSv1.2"])
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)


class StoreTests(SynchronousTestCase):
    def test_single_use_and_expiry(self):
        store = MemoryClientSessionStore(keep=3)
        store.put("k", b"t1", 100, True)
        store.put("k", b"t2", 100, True)
        self.assertEqual(store.take("k", 50), b"t2")
        self.assertEqual(store.take("k", 50), b"t1")
        self.assertIsNone(store.take("k", 50))
        store.put("k", b"s", 100, False)
        self.assertEqual(store.take("k", 50), b"s")
        self.assertEqual(store.take("k", 50), b"s")  # reusable
        self.assertIsNone(store.take("k", 100))  # expired
        for i in range(5):
            store.put("k", b"%d" % i, 100, True)
        self.assertEqual(store.count("k"), 3)

    def test_profile_key(self):
        """
        Everything that must match is in the key, it is the same in another
        process (no object addresses).
        """
        from twisted.internet.ssl import AcceptableCiphers, TLSVersion

        base = ResumingClientCreator("localhost", port=443).key
        variants = [
            ResumingClientCreator("other.example", port=443).key,
            ResumingClientCreator("localhost", port=8443).key,
            ResumingClientCreator("localhost", port=443, sendServerName=False).key,
            ResumingClientCreator(
                "localhost", port=443, acceptableProtocols=[b"h2"]
            ).key,
            ResumingClientCreator(
                "localhost",
                port=443,
                extraCertificateOptions={"raiseMinimumTo": TLSVersion.TLSv1_3},
            ).key,
        ]
        self.assertEqual(len(set(variants + [base])), len(variants) + 1)
        self.assertEqual(ResumingClientCreator("LocalHost", port=443).key, base)
        keys = [
            ResumingClientCreator(
                "localhost",
                port=443,
                extraCertificateOptions={
                    "acceptableCiphers": AcceptableCiphers.fromOpenSSLCipherString(
                        "ECDHE+AESGCM"
                    )
                },
            ).key
            for _ in range(2)
        ]
        self.assertEqual(keys[0], keys[1])
        self.assertNotIn("0x", keys[0])

    def test_profile_key_identities(self):
        """
        Client certificates and trust roots are in the key by digest: a
        different certificate or CA set is another profile, the same ones
        (in any order, as a Certificate or a list) the same profile; trust
        roots that cannot be inspected never share a profile; no key
        material is in the key.
        """
        from twisted.internet._sslverify import IOpenSSLTrustRoot
        from twisted.internet.ssl import platformTrust, trustRootFromCertificates
        from zope.interface import implementer

        def key(trust=None, client=None):
            return ResumingClientCreator("localhost", trust, client, port=443).key

        one, two = client_identity("client-one"), client_identity("client-two")
        self.assertNotEqual(key(client=one), key(client=two))
        self.assertNotEqual(key(client=one), key())
        again = PrivateCertificate.loadPEM(one.dumpPEM())
        self.assertEqual(key(client=again), key(client=one))
        for secret in (one.privateKey.dump(1), one.privateKey.dump(2)):
            self.assertNotIn(secret.hex()[:40], key(client=one))

        a, b = (
            Certificate(X509.from_cryptography(_support.make_certificate(n)[0]))
            for n in ("ca-a", "ca-b")
        )
        self.assertEqual(key(platformTrust()), key())
        self.assertEqual(
            key(trustRootFromCertificates([a, b])),
            key(trustRootFromCertificates([b, a])),
        )
        self.assertEqual(key(trustRootFromCertificates([a])), key(a))
        variants = [
            key(),
            key(a),
            key(b),
            key(trustRootFromCertificates([a, b])),
            key(trustRootFromCertificates([])),
        ]
        self.assertEqual(len(set(variants)), len(variants))

        @implementer(IOpenSSLTrustRoot)
        class Custom:
            def _addCACertsToContext(self, context):
                context.get_cert_store().add_cert(a.original)

        first, second = Custom(), Custom()
        self.assertEqual(key(first), key(first))
        self.assertNotEqual(key(first), key(second))
        self.assertNotIn(key(first), (key(), key(a)))
        self.assertNotIn(str(id(first)), key(first))

    def test_profile_key_in_another_process(self):
        """
        The platform trust, certificate trust roots, client certificates and
        options give the same key in another process (the file store relies
        on that).
        """
        import json

        directory = os.path.abspath(self.mktemp())
        ca, _ = _support.make_certificate("ca-a")
        ca_path, _ = _support.write_pem(os.path.join(directory, "ca"), ca, _)
        cert, key = _support.make_certificate("client-one")
        cert_path, key_path = _support.write_pem(
            os.path.join(directory, "client"), cert, key
        )
        script = f"""
import json
from twisted.internet.ssl import (
    AcceptableCiphers, Certificate, PrivateCertificate, TLSVersion,
    trustRootFromCertificates,
)
from resumetls import ResumingClientCreator

ca = Certificate.loadPEM(open({ca_path!r}, "rb").read())
client = PrivateCertificate.loadPEM(
    open({cert_path!r}, "rb").read() + open({key_path!r}, "rb").read()
)
extra = dict(
    raiseMinimumTo=TLSVersion.TLSv1_2,
    acceptableCiphers=AcceptableCiphers.fromOpenSSLCipherString("ECDHE+AESGCM"),
)
print(json.dumps([
    ResumingClientCreator("localhost", port=443).key,
    ResumingClientCreator("localhost", ca, port=443).key,
    ResumingClientCreator("localhost", trustRootFromCertificates([ca]), client,
                          [b"h2"], port=443, extraCertificateOptions=extra).key,
]))
"""
        keys = []
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", script],
                cwd=_support.ROOT,
                capture_output=True,
                text=True,
                timeout=30,
            )
            self.assertEqual(out.returncode, 0, out.stderr)
            keys.append(json.loads(out.stdout))
        self.assertEqual(keys[0], keys[1])
        self.assertEqual(len(set(keys[0])), 3)
        self.assertNotIn("object:", "".join(keys[0]))

    def test_file_permissions(self):
        path = os.path.abspath(self.mktemp())
        store = FileClientSessionStore(path)
        store.put("k", b"secret-session", 2e9, False)
        self.assertEqual(FileClientSessionStore(path).take("k", 0), b"secret-session")
        os.chmod(path, 0o644)
        e = self.assertRaises(ClientStoreError, FileClientSessionStore, path)
        self.assertEqual(
            str(e),
            f"{path} is readable by group or others (mode 0644); it holds TLS "
            f"session secrets: run `chmod 600 {path}`",
        )
        self.assertNotIn("secret", repr(store))

    def test_corrupt_file(self):
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("{broken")
        os.chmod(path, 0o600)
        e = self.assertRaises(ClientStoreError, FileClientSessionStore, path)
        self.assertIn("is not a resumetls session file", str(e))

    def test_damaged_files(self):
        """
        Whatever a session file holds, reading it gives the store or a
        ClientStoreError saying to remove it (never another exception), and
        the error never quotes the file.
        """
        entry = '{"der": "c2VjcmV0", "expires": 2e9, "single_use": false}'

        def session(old="", new=""):
            return ('{"sessions": {"k": [' + entry.replace(old, new) + "]}}").encode()

        der, expires, single_use = (
            'a session\'s "der" is',
            'a session\'s "expires" is not a number',
            'a session\'s "single_use" is not true or false',
        )
        damaged = [
            (b"{broken", "not JSON"),
            (b"", "not JSON"),
            (b"[]", "not a JSON object"),
            (b"null", "not a JSON object"),
            (b"\xff\xfe", "not UTF-8"),
            (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
            (
                b'{"sessions": {"k": ' + b"[" * 100000 + b"]" * 100000 + b"}}",
                "nested too deeply",
            ),
            (b'{"version": 2, "sessions": {}}', "unknown version"),
            (b"{}", '"sessions" is not an object'),
            (b'{"sessions": []}', '"sessions" is not an object'),
            (b'{"sessions": "x"}', '"sessions" is not an object'),
            (b'{"sessions": {"k": "x"}}', "a server's sessions are not a list"),
            (
                b'{"sessions": {"k": {"der": "c2VjcmV0"}}}',
                "a server's sessions are not a list",
            ),
            (b'{"sessions": {"k": [5]}}', "a session is not an object"),
            (b'{"sessions": {"k": [[]]}}', "a session is not an object"),
            (b'{"sessions": {"k": [{}]}}', der + " not a string"),
            (session('"c2VjcmV0"', "5"), der + " not a string"),
            (session('"c2VjcmV0"', "null"), der + " not a string"),
            (session("c2VjcmV0", "c2VjcmV0!!"), der + " not base64"),
            (session("c2VjcmV0", "c2VjcmV"), der + " not base64"),
            (session("c2VjcmV0", "c2Vj cmV0"), der + " not base64"),
            (session("c2VjcmV0", "c2Vj\\ncmV0"), der + " not base64"),
            (session("c2VjcmV0", "c2VjcmV0\\u00e9"), der + " not base64"),
            (session("c2VjcmV0", ""), der + " empty"),
            (session("2e9", '"soon"'), expires),
            (session("2e9", "true"), expires),
            (session("2e9", "null"), expires),
            (session("2e9", "NaN"), expires),
            (session("2e9", "-Infinity"), expires),
            (session("false", '"no"'), single_use),
            (session("false", "0"), single_use),
            (session(', "single_use": false', ""), single_use),
        ]
        path = os.path.abspath(self.mktemp())
        for content, reason in damaged:
            with open(path, "wb") as f:
                f.write(content)
            os.chmod(path, 0o600)
            e = self.assertRaises(ClientStoreError, FileClientSessionStore, path)
            self.assertEqual(
                str(e),
                f"{path} is not a resumetls session file ({reason}); remove "
                "it to start afresh",
            )
            self.assertNotIn("c2Vj", str(e))
        with open(path, "wb") as f:
            f.write(session())
        self.assertEqual(FileClientSessionStore(path).take("k", 0), b"secret")

    def test_damaged_later(self):
        """A file damaged after the store read it is refused when read again."""
        path = os.path.abspath(self.mktemp())
        store = FileClientSessionStore(path)
        store.put("k", b"session", 2e9, False)
        with open(path, "w") as f:
            f.write('{"sessions": []}')
        e = self.assertRaises(ClientStoreError, store.take, "k", 0)
        self.assertIn("is not a resumetls session file", str(e))
        self.assertRaises(ClientStoreError, store.put, "k", b"session", 2e9, False)

    def test_two_stores_one_file(self):
        """
        Two store objects on one file keep each other's sessions, see each
        other's new ones, and a TLS 1.3 ticket is handed out once.
        """
        path = os.path.abspath(self.mktemp())
        one, two = FileClientSessionStore(path), FileClientSessionStore(path)
        one.put("a", b"A", 2e9, False)
        two.put("b", b"B", 2e9, False)
        one.put("a", b"A2", 2e9, False)
        three = FileClientSessionStore(path)
        self.assertEqual((three.take("a", 0), three.take("b", 0)), (b"A2", b"B"))
        self.assertEqual(one.take("b", 0), b"B")
        self.assertEqual(two.take("a", 0), b"A2")
        # the same profile: tickets from both are kept, each taken once
        one.put("t", b"T1", 2e9, True)
        two.put("t", b"T2", 2e9, True)
        self.assertEqual(one.count("t"), 2)
        taken = [one.take("t", 0), two.take("t", 0), one.take("t", 0), two.take("t", 0)]
        self.assertEqual(taken, [b"T2", b"T1", None, None])
        two.forget("a")
        self.assertIsNone(one.take("a", 0))
        self.assertEqual(one.take("b", 0), b"B")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(path + ".lock").st_mode & 0o777, 0o600)

    def test_file_removed(self):
        """Removing the file starts afresh, also for a store that had read it."""
        path = os.path.abspath(self.mktemp())
        store = FileClientSessionStore(path)
        store.put("a", b"A", 2e9, False)
        os.unlink(path)
        self.assertIsNone(store.take("a", 0))
        store.put("b", b"B", 2e9, False)
        self.assertEqual(FileClientSessionStore(path).take("b", 0), b"B")

    def test_expired_other_profiles_dropped(self):
        """
        Writing the file drops other servers' expired sessions (the server
        being written keeps its own: C{take} judges those).
        """
        import time

        path = os.path.abspath(self.mktemp())
        store = FileClientSessionStore(path)
        store.put("live", b"L", time.time() + 3600, True)
        store.put("old", b"O", time.time() - 1, False)
        self.assertEqual(FileClientSessionStore(path).count("old"), 1)
        store.put("new", b"N", time.time() + 3600, False)
        again = FileClientSessionStore(path)
        self.assertEqual(
            (again.count("old"), again.count("live"), again.count("new")), (0, 1, 1)
        )

    def test_memory_store_drops_expired(self):
        """The memory store sweeps other servers' expired sessions on put."""
        from resumetls.client import memorystore as _clientstore

        class Clock:
            now = 1000.0

            def time(self):
                return self.now

        clock = Clock()
        self.patch(_clientstore, "time", clock)
        store = MemoryClientSessionStore()
        store.put("old", b"O", 1010, False)
        store.put("live", b"L", 5000, False)
        clock.now = 1000 + _clientstore.SWEEP_INTERVAL
        store.put("new", b"N", 5000, False)
        self.assertEqual(
            (store.count("old"), store.count("live"), store.count("new")), (0, 1, 1)
        )

    def test_default_store(self):
        """
        Creators, policies and endpoint strings without a store share one
        per process; a store given is used.
        """
        from resumetls.client.creator import default_store

        self.assertIs(ResumingClientCreator("localhost", port=443).store, default_store)
        policy = ResumingPolicyForHTTPS()
        self.assertIs(policy.store, default_store)
        self.assertIs(policy.creatorForNetloc(b"localhost", 443).store, default_store)
        mine = MemoryClientSessionStore()
        self.assertIs(ResumingPolicyForHTTPS(store=mine).store, mine)


_CHILD_STORE_SCRIPT = """
import sys
from resumetls import FileClientSessionStore

path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = FileClientSessionStore(path)
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    store.put(f"{prefix}-{i}", b"session %d" % i, 2e9, i % 2 == 0)
print(store.take(f"{prefix}-0", 0).decode())
"""


class FileStoreProcessTests(TestCase):
    """Two processes on one session file lose nothing."""

    timeout = 60

    def _child(self, path, prefix, count):
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD_STORE_SCRIPT, path, prefix, str(count)],
            cwd=_support.ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(proc.wait, 10)
        self.addCleanup(proc.kill)
        self.assertEqual(proc.stdout.readline(), "ready\n")
        return proc

    def test_second_process(self):
        """
        A store made before another process saved sessions sees them, and
        its own writes keep them.
        """
        path = os.path.abspath(self.mktemp())
        store = FileClientSessionStore(path)
        store.put("parent", b"P", 2e9, False)
        child = self._child(path, "child", 3)
        out, _ = child.communicate("go\n", timeout=30)
        self.assertEqual(out, "session 0\n")
        self.assertEqual(store.take("child-1", 0), b"session 1")
        store.put("parent", b"P2", 2e9, False)
        again = FileClientSessionStore(path)
        self.assertEqual(again.take("child-2", 0), b"session 2")
        self.assertEqual(again.take("parent", 0), b"P2")

    def test_concurrent_writers(self):
        """Two processes writing at the same time: every session is kept."""
        path = os.path.abspath(self.mktemp())
        children = [self._child(path, name, 150) for name in ("one", "two")]
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            out, _ = child.communicate(timeout=30)
            self.assertEqual(out, "session 0\n")
        store = FileClientSessionStore(path)
        missing = [
            f"{name}-{i}"
            for name in ("one", "two")
            for i in range(1, 150)
            if store.count(f"{name}-{i}") != 1
        ]
        self.assertEqual(missing, [])
        self.assertEqual(store.count("one-0") + store.count("two-0"), 0)  # taken


class AgainstResumetlsTests(TestCase):
    """Our client against our server: TLS 1.3 tickets are renewed."""

    timeout = 60

    def test_single_use_tickets_keep_resuming(self):
        """
        A client that uses each TLS 1.3 ticket once keeps resuming: the server
        sends a fresh ticket on every resumption (without that, it would run
        out after the two tickets of the first handshake).
        """
        from resumetls import ResumingContextFactory

        class Info(Protocol):
            def dataReceived(self, data):
                from resumetls import resumption_info

                info = resumption_info(self.transport)
                word = b"Reused" if info.resumed else b"New"
                self.transport.write(word + b", " + info.version.encode() + b"\n")
                self.transport.loseConnection()

        async def run():
            cert, key = _support.certificate()
            cert_path, key_path = _support.write_pem(
                os.path.abspath(self.mktemp()), cert, key
            )
            factory = ResumingContextFactory.from_files(cert_path, key_path)
            from twisted.internet.endpoints import SSL4ServerEndpoint

            port = await SSL4ServerEndpoint(
                reactor, 0, factory, interface="127.0.0.1"
            ).listen(Factory.forProtocol(Info))
            self.addCleanup(port.stopListening)
            number = port.getHost().port
            store = MemoryClientSessionStore()
            creator = ResumingClientCreator(
                "localhost", trust(cert_path), port=number, store=store
            )
            results = []
            for _ in range(6):
                results.append(await fetch(creator, number))
                results.append(store.count(creator.key))
            self.assertEqual(results[::2], ["New TLSv1.3"] + ["Reused TLSv1.3"] * 5)
            # Each resumption used one ticket and brought a fresh one.
            self.assertEqual(results[1::2], [2] * 6)
            self.assertEqual(factory.stats().resumed_ticket_tls13, 5)
            self.assertEqual(factory.stats().tickets_renewed, 0)  # no key rotation

        return ensureDeferred(run())
