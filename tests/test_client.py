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

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.endpoints import HostnameEndpoint, clientFromString, wrapClientTLS
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from twisted.web.client import Agent, PartialDownloadError, readBody

from resumetls._client import ResumingClientCreator, ResumingPolicyForHTTPS
from resumetls._clientstore import (
    ClientStoreError,
    FileClientSessionStore,
    MemoryClientSessionStore,
)

from . import _support


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
        self.transport.write(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.factory.done.append(self.data)


async def fetch(creator, port):
    """One request through wrapClientTLS; returns 'New' or 'Reused'."""
    factory = Factory.forProtocol(_Fetch)
    factory.done = []
    endpoint = wrapClientTLS(creator, HostnameEndpoint(reactor, "127.0.0.1", port))
    await endpoint.connect(factory)
    for _ in range(200):
        if factory.done:
            break
        await deferLater(reactor, 0.05, lambda: None)
    return verdict(factory.done[0])


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
                factory = Factory.forProtocol(_Fetch)
                factory.done = []
                await clientFromString(reactor, description).connect(factory)
                for _ in range(100):
                    if factory.done:
                        break
                    await deferLater(reactor, 0.05, lambda: None)
                pages.append(verdict(factory.done[0]))
            self.assertEqual(pages, ["New TLSv1.3", "Reused TLSv1.3"])
            self.assertEqual(os.stat(sessions).st_mode & 0o777, 0o600)
            self.assertEqual(len(FileClientSessionStore(sessions)._sessions), 1)

        return ensureDeferred(run())


_RESTART_SCRIPT = """
import sys
from twisted.internet import task
from twisted.internet.defer import ensureDeferred
from twisted.internet.ssl import Certificate
from resumetls._client import ResumingClientCreator
from resumetls._clientstore import FileClientSessionStore
from tests.test_client import fetch

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


class AgainstResumetlsTests(TestCase):
    """Our client against our server: TLS 1.3 tickets are renewed."""

    timeout = 60

    def test_single_use_tickets_keep_resuming(self):
        """
        A client that uses each TLS 1.3 ticket once keeps resuming: the server
        sends a fresh ticket on every resumption (without that, it would run
        out after the two tickets of the first handshake).
        """
        from resumetls._context import ResumingContextFactory

        class Info(Protocol):
            def dataReceived(self, data):
                from resumetls._context import resumption_info

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
