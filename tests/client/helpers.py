"""
What the client tests share: C{openssl s_server -www} (a server nobody here
wrote: its page says C{Reused,} or C{New,} for the connection that carried
the request), requests through a creator or an endpoint, and client
certificates.
"""

from __future__ import annotations

import os
import re
import subprocess

from OpenSSL.crypto import X509, PKey
from twisted.internet import reactor
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, KeyPair, PrivateCertificate
from twisted.internet.task import deferLater

from .. import support


def s_server(testcase, *flags, certificate=None):
    """
    Start C{openssl s_server -www} on a free port; returns (port, cert path).

    @param certificate: (certificate, key); default: one for localhost.
    """
    cert, key = certificate or support.certificate()
    cert_path, key_path = support.write_pem(
        os.path.abspath(testcase.mktemp()), cert, key
    )
    port = support.free_port()
    proc = subprocess.Popen(
        [
            support.OPENSSL,
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
    support.wait_for_port(port, proc)
    return port, cert_path


def trust(cert_path):
    with open(cert_path, "rb") as f:
        return Certificate.loadPEM(f.read())


class Fetch(Protocol):
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
    factory = Factory.forProtocol(Fetch)
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
    cert, key = support.make_certificate(name)
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
    return support.issue(common_name)


def verdict(page: bytes) -> str:
    m = re.search(rb"^(New|Reused), (TLSv[0-9.]+)", page, re.M)
    if m is None:
        raise AssertionError(f"no verdict in {page[-500:]!r}")
    return f"{m.group(1).decode()} {m.group(2).decode()}"
