"""
The TLS layer of a resuming listener: Twisted's own TLS protocol
(C{BufferingTLSTransport}, what C{listenSSL} and C{wrapServerTLS} use) with
what a server facing the Internet needs around the handshake:

  - a handshake timeout: a client that sends part of a ClientHello and
    stalls is disconnected after C{handshake_timeout} seconds (nginx's
    C{ssl_handshake_timeout}), counted as C{handshake_timeouts};
  - a bound on connections still in the handshake: over C{max_handshakes},
    a new connection is closed at once, counted as C{handshakes_refused};
  - plain HTTP sent to the TLS port (its first byte is an ASCII capital,
    where TLS starts with a record type) gets a short C{HTTP/1.1 400} that
    names the mistake, as nginx answers, counted as C{plain_http};
  - the transport's interfaces declared once per transport class, instead
    of Twisted's C{directlyProvides} calls on every connection (a loop over
    the transport's interfaces, each call replacing the last, then one call
    with all of them); the result is the same declaration.
  - the handshake's completion reported to the context factory's
    observer (C{handshake_reporter}) when Twisted marks it done, so the
    context needs no info callback (OpenSSL calls one about 14 times a
    handshake, each a crossing from C into Python, to say "done" once).

Each connection is made cheaper without changing what it does (measured by
C{bench/percore.py}): handshake deadlines sit in one queue per factory
behind one timer; a handshake flight goes to the socket at once
(L{resumetls.openssl.compat.send_now}); reads that would find nothing are
skipped (C{buffers}, L{resumetls.openssl.buffers}); and writes made while
received bytes are handled go out without a timer
(L{resumetls.server.writes}).

L{ResumingTLSProtocol.continue_handshake} drives a handshake again when
something that paused it (a networked session cache's answer) arrives.
Counts go to the context factory's counters (L{resumetls.ResumptionStats}).

Private names of Twisted's C{TLSMemoryBIOProtocol} used here (checked
against Twisted 26.10): C{_handshakeDone}, C{_aborted},
C{_checkHandshakeStatus}, C{_appSendBuffer}, C{_unbufferPendingWrites},
C{_flushReceiveBIO}, C{_flushSendBIO}, C{_lostTLSConnection},
C{_shutdownTLS}, C{_tlsShutdownFinished}, what its C{makeConnection}
uses (C{_creatorCallable}, C{_connectWrapped}, C{_tlsConnection}), and of
C{BufferingTLSTransport}, C{_aggregator} and the factory's C{_clock}.  When
Twisted's C{makeConnection}, C{_flushReceiveBIO} or
C{BufferingTLSTransport.__init__} is not the one we know (by the names it
uses, L{resumetls.server.twistedtls}), Twisted's own runs.
"""

from __future__ import annotations

from collections import deque
from types import MethodType
from typing import Any

from OpenSSL.SSL import Error, WantReadError, ZeroReturnError
from twisted.internet.protocol import Protocol
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import (
    BufferingTLSTransport,
    TLSMemoryBIOFactory,
    TLSMemoryBIOProtocol,
)
from twisted.python.failure import Failure
from zope.interface import implementedBy, providedBy

from resumetls.openssl.compat import send_now
from resumetls.server.twistedtls import (
    SAME_BUFFERING_INIT,
    SAME_MAKE_CONNECTION,
    SAME_RECEIVE_LOOP,
)
from resumetls.server.writes import GatheredWrites

__all__ = ["PLAIN_HTTP_RESPONSE", "ResumingTLSFactory", "ResumingTLSProtocol"]

_PLAIN_HTTP_BODY = b"400 Bad Request: The plain HTTP request was sent to HTTPS port\n"

#: What a client that speaks plain HTTP to the TLS port is told.
PLAIN_HTTP_RESPONSE = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: close\r\n"
    b"\r\n" % len(_PLAIN_HTTP_BODY)
) + _PLAIN_HTTP_BODY

# The first byte of an HTTP request (a method: GET, POST, ...).  A TLS
# connection starts with a record type (22, a handshake) and SSLv2 with the
# high bit set, so the two never meet.
_PLAIN_HTTP_FIRST = frozenset(range(ord("A"), ord("Z") + 1))


class ResumingTLSProtocol(BufferingTLSTransport):
    """
    One TLS connection of a L{ResumingTLSFactory}: Twisted's buffering TLS
    transport with a handshake timeout, plain-HTTP detection and cheaper
    interface declarations (see the module's docstring).
    """

    factory: ResumingTLSFactory

    # The factory's deadline entry for this handshake: [deadline, self], its
    # second item cleared when the handshake is over.
    _deadline: Any = None
    _in_handshake = False
    _first_bytes = True
    _refused = False
    _in_flight = False
    _done = False

    #: Called with the C{Connection} when its handshake completes, before the
    #: application hears of it: set by L{resumetls.ResumingContextFactory},
    #: whose context then needs no info callback for this connection.
    handshake_reporter: Any = None

    #: Set by L{resumetls.ResumingContextFactory} when OpenSSL can be asked
    #: directly whether this connection's memory BIOs hold bytes
    #: (L{resumetls.openssl.buffers.ConnectionBuffers}): reads that would
    #: only raise C{WantReadError} are then skipped.
    buffers: Any = None

    def _get_handshake_done(self) -> bool:
        return self._done

    def _set_handshake_done(self, done: bool) -> None:
        # Twisted sets this once, when do_handshake succeeds, right before
        # it calls the application's handshakeCompleted.
        report = done and not self._done and self.handshake_reporter
        self._done = done
        if report:
            self.handshake_reporter(self._tlsConnection)

    _handshakeDone = property(_get_handshake_done, _set_handshake_done)

    # -- the connection's life ---------------------------------------------------

    def __init__(
        self, factory: Any, wrappedProtocol: Any, _connectWrapped: bool = True
    ) -> None:
        # BufferingTLSTransport's set-up with our aggregator in place of
        # Twisted's (resumetls.server.writes: no timer a response); what
        # BufferingTLSTransport does with it afterwards is unchanged.
        if not SAME_BUFFERING_INIT:
            # Not the set-up we know: Twisted's, with its own aggregator.
            super().__init__(factory, wrappedProtocol, _connectWrapped)
            return
        TLSMemoryBIOProtocol.__init__(self, factory, wrappedProtocol, _connectWrapped)
        self._aggregator = GatheredWrites(
            MethodType(TLSMemoryBIOProtocol.write, self), factory._clock
        )
        self.write = self._aggregator.write

    def makeConnection(self, transport: Any) -> None:  # noqa: N802 - Twisted's name
        factory = self.factory
        factory.handshaking += 1
        self._in_handshake = True
        self._deadline = factory.watch(self)
        kind = (type(transport), self._connectWrapped)
        provides = factory.declarations.get(kind)
        if (
            provides is None
            or not SAME_MAKE_CONNECTION
            or providedBy(transport) is not implementedBy(kind[0])
        ):
            # Twisted's own; the declaration it leaves depends only on the
            # transport's class when the transport declares nothing itself.
            super().makeConnection(transport)
            if providedBy(transport) is implementedBy(kind[0]):
                factory.declarations[kind] = self.__provides__
            return
        # Twisted's TLSMemoryBIOProtocol.makeConnection and the
        # ProtocolWrapper.makeConnection it calls, step for step, with their
        # directlyProvides calls (each replacing the last) replaced by the
        # declaration they left on the first connection of this class.
        self._tlsConnection = factory._creatorCallable(self)
        self._appSendBuffer = []
        self.__provides__ = provides
        Protocol.makeConnection(self, transport)
        factory.registerProtocol(self)
        if self._connectWrapped:
            Protocol.makeConnection(self, transport)
            factory.registerProtocol(self)
            self.wrappedProtocol.makeConnection(self)
        self._checkHandshakeStatus()

    def _checkHandshakeStatus(self) -> None:  # noqa: N802 - Twisted's name
        self._in_flight = True
        try:
            super()._checkHandshakeStatus()
        finally:
            self._in_flight = False
        if self._handshakeDone:
            self._handshake_over()

    def _flushReceiveBIO(self) -> None:  # noqa: N802 - Twisted's name
        buffers = self.buffers
        if buffers is None or not SAME_RECEIVE_LOOP:
            super()._flushReceiveBIO()
            return
        # Twisted's loop, step for step, except that it asks OpenSSL whether
        # there is anything to read, where Twisted reads until recv raises
        # WantReadError (at least once a call, often twice).
        connection = self._tlsConnection
        while not self._lostTLSConnection and buffers.incoming():
            try:
                data = connection.recv(2**15)
            except WantReadError:
                break  # part of a record: the rest is still to come
            except ZeroReturnError:
                # The peer's close_notify: TLS is over.
                self._shutdownTLS()
                self._tlsShutdownFinished(None)
            except Error:
                self._tlsShutdownFinished(Failure())
            else:
                if not self._aborted:
                    ProtocolWrapper.dataReceived(self, data)
        self._flushSendBIO()

    def _flushSendBIO(self) -> None:  # noqa: N802 - Twisted's name
        buffers = self.buffers
        if buffers is not None and not buffers.outgoing():
            return  # bio_read would raise WantReadError: nothing to send
        try:
            data = self._tlsConnection.bio_read(32768)
        except WantReadError:
            return  # nothing to send
        if self._in_flight:
            # A handshake flight: nothing else goes out before the client
            # answers, so it can go to the socket now (see the module).
            data = send_now(self.transport, data)
            if not data:
                return
        self.transport.write(data)

    def continue_handshake(self) -> None:
        """
        Drive the handshake again, as if bytes had arrived: for a handshake
        that paused (OpenSSL's client-hello callback asked to retry while a
        networked cache answers) once the answer is there.  Harmless when
        the handshake is over or the connection lost.
        """
        if self._handshakeDone or self._lostTLSConnection or self._aborted:
            return
        self._checkHandshakeStatus()
        if not self._handshakeDone:
            return
        if self._appSendBuffer:
            self._unbufferPendingWrites()
        self._flushReceiveBIO()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
        if self._refused:
            return
        if self._first_bytes and data:
            self._first_bytes = False
            if data[0] in _PLAIN_HTTP_FIRST:
                self._answer_plain_http()
                return
        writes = self._aggregator
        if type(writes) is not GatheredWrites:
            # Gone (Twisted's null aggregator), or Twisted's own aggregator.
            super().dataReceived(data)
            return
        writes.receiving = True
        try:
            super().dataReceived(data)
        finally:
            writes.receiving = False
        writes.flush()

    def connectionLost(self, reason: Any) -> None:  # noqa: N802 - Twisted's name
        self._handshake_over()
        super().connectionLost(reason)

    # -- what this class adds ------------------------------------------------------

    def _handshake_over(self) -> None:
        """The handshake finished or the connection went: stop counting it."""
        if self._deadline is not None:
            self._deadline[1] = None
            self._deadline = None
        if self._in_handshake:
            self._in_handshake = False
            factory = self.factory
            factory.handshaking -= 1
            if not factory.handshaking and not factory.numPorts:
                factory.stop_expiry()

    def _handshake_timed_out(self) -> None:
        self._deadline = None
        self.factory.count("handshake_timeouts")
        self.abortConnection()

    def _answer_plain_http(self) -> None:
        """Say in HTTP that this port speaks TLS, then close."""
        self._refused = True
        self._aborted = True  # nothing more reaches TLS or the application
        self.factory.count("plain_http")
        self.transport.write(PLAIN_HTTP_RESPONSE)
        self.transport.loseConnection()


class ResumingTLSFactory(TLSMemoryBIOFactory):
    """
    Wraps an application's protocol factory in L{ResumingTLSProtocol}s, the
    way C{wrapServerTLS} and C{listenSSL} wrap it in Twisted's.

    @param context_factory: the server's connection creator, usually a
        L{resumetls.ResumingContextFactory} (whose counters receive
        C{handshake_timeouts}, C{handshakes_refused} and C{plain_http}).
    @param wrapped: the application's protocol factory.
    @param clock: the C{IReactorTime} for timeouts and write buffering.
    @param handshake_timeout: seconds a client has to finish the handshake.
    @param max_handshakes: connections allowed in the handshake at once.

    @ivar handshaking: connections in the handshake now.
    """

    protocol = ResumingTLSProtocol

    def __init__(
        self,
        context_factory: Any,
        wrapped: Any,
        clock: Any,
        handshake_timeout: float,
        max_handshakes: int,
    ) -> None:
        super().__init__(context_factory, False, wrapped, clock)
        self.context_factory = context_factory
        self.clock = clock
        self.handshake_timeout = handshake_timeout
        self.max_handshakes = max_handshakes
        self.handshaking = 0
        # Transport class -> the interface declaration its connections get.
        self.declarations: dict[type, Any] = {}
        # [deadline, protocol] of each handshake, oldest first (the protocol
        # None once its handshake is over), and the one timer, for the oldest.
        self._deadlines: deque[list[Any]] = deque()
        self._expiry: Any = None

    def watch(self, protocol: ResumingTLSProtocol) -> list[Any]:
        """
        Time C{protocol}'s handshake out after C{handshake_timeout} seconds,
        unless it clears the entry returned (C{entry[1] = None}) before.
        """
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] is None:
            deadlines.popleft()  # handshakes over, in order: forget them
        entry = [self.clock.seconds() + self.handshake_timeout, protocol]
        deadlines.append(entry)
        if self._expiry is None:
            self._expiry = self.clock.callLater(self.handshake_timeout, self._expire)
        return entry

    def stop_expiry(self) -> None:
        """
        Cancel the deadline timer: called once no port listens and no
        handshake is left (so nothing is left pending in the reactor).
        While a port listens the timer stays, so connections that come
        one at a time do not set and cancel one each.
        """
        if self._expiry is not None:
            if self._expiry.active():
                self._expiry.cancel()
            self._expiry = None
        self._deadlines.clear()

    def stopFactory(self) -> None:  # noqa: N802 - Twisted's name
        super().stopFactory()
        if not self.handshaking:
            self.stop_expiry()

    def _expire(self) -> None:
        """Time out every handshake whose deadline has come; wait for the next."""
        self._expiry = None
        deadlines = self._deadlines
        now = self.clock.seconds()
        while deadlines:
            deadline, protocol = deadlines[0]
            if protocol is not None and deadline > now:
                self._expiry = self.clock.callLater(deadline - now, self._expire)
                return
            deadlines.popleft()
            if protocol is not None:
                protocol._handshake_timed_out()

    def count(self, counter: str) -> None:
        """Add one to a counter of the context factory, if it has counters."""
        hooks = getattr(self.context_factory, "hooks", None)
        counters = getattr(hooks, "counters", None)
        if counters is not None:
            setattr(counters, counter, getattr(counters, counter) + 1)

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802 - Twisted's name
        if self.handshaking >= self.max_handshakes:
            # The listening port closes a connection it gets no protocol for,
            # before the application sees it.
            self.count("handshakes_refused")
            return None
        return super().buildProtocol(addr)
