"""
Both ends of a TLS connection in one process: an in-memory handshake
between a server connection creator (a L{ResumingContextFactory}, or any
C{IOpenSSLServerConnectionCreator}) and a pyOpenSSL client, through
Twisted's C{TLSMemoryBIOFactory} and C{twisted.test.iosim}, on a C{Clock}.
No sockets, no reactor, the same bytes every run::

    client = TestClient(SSL.TLS1_3_VERSION)
    first = handshake(factory, client)
    again = handshake(factory, client)        # offers first's session
    assert again.info.resumed and again.info.mechanism == "ticket_tls13"

Both C{TLSMemoryBIOFactory}s get C{clock=}: without it their writes wait on
the global reactor's C{callLater(0)}, which a C{Clock}-driven pump never
runs.
"""

from __future__ import annotations

from typing import Any

import attrs
from OpenSSL import SSL
from twisted.internet import protocol
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
)
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test import iosim
from zope.interface import implementer

_ADDRESS = IPv4Address("TCP", "127.0.0.1", 443)


@implementer(IOpenSSLClientConnectionCreator)
class TestClient:
    """
    A minimal pyOpenSSL client that offers again the last session it got.

    It keeps one C{Context} (pyOpenSSL refuses a session from another
    context) and every connection it made: OpenSSL marks a session not
    resumable when the connection that made it is freed without a TLS
    shutdown, so the connections stay alive as long as the client.

    @param version: the one protocol version to speak (such as
        C{SSL.TLS1_2_VERSION}); any when L{None}.
    @param tickets: L{False} to refuse session tickets (TLS 1.2 session
        IDs, TLS 1.3 stateful tickets).
    @ivar session: the session the next connection offers, or L{None};
        L{handshake} sets it to the newest session after each connection.
    """

    __test__ = False  # a helper, not a test class (for pytest)

    def __init__(
        self,
        version: int | None = None,
        tickets: bool = True,
        hostname: bytes = b"localhost",
    ) -> None:
        self.context = SSL.Context(SSL.TLS_METHOD)
        if version is not None:
            self.context.set_min_proto_version(version)
            self.context.set_max_proto_version(version)
        if not tickets:
            self.context.set_options(SSL.OP_NO_TICKET)
        self.hostname = hostname
        self.session: Any = None
        self.connections: list[SSL.Connection] = []

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        conn = SSL.Connection(self.context, None)
        conn.set_tlsext_host_name(self.hostname)
        if self.session is not None:
            conn.set_session(self.session)
        self.connections.append(conn)
        return conn


@implementer(IHandshakeListener)
class ServerApp(protocol.Protocol):
    """Answers C{b"ok"} to whatever it receives; notes its handshake."""

    handshake_done = False

    def handshakeCompleted(self) -> None:
        self.handshake_done = True

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"ok")


@implementer(IHandshakeListener)
class ClientApp(protocol.Protocol):
    """Says C{b"hi"} at once and keeps what it receives."""

    handshake_done = False

    def __init__(self) -> None:
        self.received = b""

    def connectionMade(self) -> None:
        self.transport.write(b"hi")

    def handshakeCompleted(self) -> None:
        self.handshake_done = True

    def dataReceived(self, data: bytes) -> None:
        self.received += data


@attrs.define
class Handshake:
    """
    One in-memory connection, pumped until nothing moved.

    @ivar server: the server's TLS protocol (its transport, as an
        application sees it: pass it to L{resumetls.resumption_info}).
    @ivar client: the client's TLS protocol.
    @ivar server_app: the server's application protocol.
    @ivar client_app: the client's application protocol.
    @ivar pump: the C{iosim} pump; L{flush} drives it again (after a slow
        cache answered, say).
    @ivar clock: the clock both sides use.
    """

    server: Any
    client: Any
    server_app: Any
    client_app: Any
    pump: iosim.IOPump
    clock: Clock

    def flush(self) -> Handshake:
        """Move bytes and run due calls until nothing moves; returns self."""
        self.pump.flush()
        return self

    @property
    def completed(self) -> bool:
        """Both ends saw the handshake complete."""
        return bool(self.server_app.handshake_done and self.client_app.handshake_done)

    @property
    def info(self) -> Any:
        """The server's L{resumetls.ResumptionInfo} for this connection."""
        from resumetls.server.stats import resumption_info

        return resumption_info(self.server)

    @property
    def session(self) -> Any:
        """
        The client's session now (a pyOpenSSL C{Session}), to offer again;
        L{None} once the connection is gone or when there is none.
        """
        handle = self.client.getHandle()
        return handle.get_session() if handle is not None else None

    @property
    def received(self) -> bytes:
        """What the client's application received."""
        return getattr(self.client_app, "received", b"")


def handshake(
    server_creator: Any,
    client_creator: Any = None,
    *,
    clock: Clock | None = None,
    server_app: protocol.Protocol | None = None,
    client_app: protocol.Protocol | None = None,
    listener_layer: bool = False,
) -> Handshake:
    """
    Connect a new client to the server in memory and pump until quiet.

    @param server_creator: an C{IOpenSSLServerConnectionCreator}, such as a
        L{resumetls.ResumingContextFactory}.
    @param client_creator: an C{IOpenSSLClientConnectionCreator}; a new
        L{TestClient} when L{None}.  A L{TestClient} is left holding this
        connection's session (if any), so calling again resumes.
    @param clock: the C{Clock} both ends use; a new one when L{None}.
    @param server_app: the server's application protocol (a L{ServerApp}
        by default); C{client_app} likewise (a L{ClientApp}).
    @param listener_layer: the server side goes through the TLS layer a
        resumetls listener uses (L{resumetls.server.protocol}: handshake
        timeout, write gathering, ...) rather than Twisted's.
    @return: a L{Handshake}; check C{completed} before trusting the rest.
    """
    if clock is None:
        clock = Clock()
    if client_creator is None:
        client_creator = TestClient()
    server_app = server_app if server_app is not None else ServerApp()
    client_app = client_app if client_app is not None else ClientApp()
    server_factory = protocol.Factory.forProtocol(lambda: server_app)
    if listener_layer:
        from resumetls.server.protocol import ResumingTLSFactory

        server_tls = ResumingTLSFactory(server_creator, server_factory, clock, 10, 1024)
    else:
        server_tls = TLSMemoryBIOFactory(server_creator, False, server_factory, clock)
    server = server_tls.buildProtocol(_ADDRESS)
    client = TLSMemoryBIOFactory(
        client_creator, True, protocol.Factory.forProtocol(lambda: client_app), clock
    ).buildProtocol(_ADDRESS)
    pump = iosim.connect(
        server,
        iosim.makeFakeServer(server),
        client,
        iosim.makeFakeClient(client),
        greet=False,
        clock=clock,
    )
    result = Handshake(server, client, server_app, client_app, pump, clock).flush()
    if isinstance(client_creator, TestClient):
        session = result.session
        if session is not None:
            client_creator.session = session
    return result
