"""
The application's writes on a resuming TLS connection, gathered into few
TLS records, as Twisted's C{BufferingTLSTransport} gathers them, without a
timer for each response.

Twisted's aggregator holds small writes and sends them on the reactor's
next turn (C{callLater(0)}): one timer set, and usually run for nothing,
for every connection that answers (its C{loseConnection} flushes first).
Most writes happen while the connection handles bytes it received (an
application answers a request in C{dataReceived}, or greets in
C{handshakeCompleted}); those are held until the TLS protocol is done with
the bytes and then sent together, which gathers the same writes into the
same records, with no timer.  Writes made at any other time (from a timer,
another connection, a thread's result) wait for the reactor's next turn as
in Twisted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["GatheredWrites"]


class GatheredWrites:
    """
    What L{resumetls.server.protocol.ResumingTLSProtocol} writes through
    (in place of Twisted's C{_AggregateSmallWrites}: the same C{write},
    C{flush} and C{close}).

    @param write: sends bytes through TLS (Twisted's unbuffered write).
    @param clock: the C{IReactorTime} of the next-turn flush.
    @ivar receiving: set by the protocol while it handles received bytes;
        it calls L{flush} when it is done.
    """

    #: Held bytes above which they are sent at once (Twisted's figure).
    MAX_BUFFER_SIZE = 64_000

    __slots__ = ("_buffer", "_clock", "_left", "_scheduled", "_write", "receiving")

    def __init__(self, write: Callable[[bytes], object], clock: Any) -> None:
        self._write = write
        self._clock = clock
        self._buffer: list[bytes] = []
        self._left = self.MAX_BUFFER_SIZE
        self._scheduled: Any = None
        self.receiving = False

    def write(self, data: bytes) -> None:
        # A copy, as Twisted makes: the caller may reuse a bytearray.
        self._buffer.append(data + b"")
        self._left -= len(data)
        if self._left < 0:
            self.flush()
        elif not self.receiving and self._scheduled is None:
            self._scheduled = self._clock.callLater(0, self._next_turn)

    def _next_turn(self) -> None:
        self._scheduled = None
        self.flush()

    def flush(self) -> None:
        """Send what is held, now."""
        if self._buffer:
            self._left = self.MAX_BUFFER_SIZE
            data = b"".join(self._buffer)
            del self._buffer[:]
            self._write(data)

    def close(self) -> None:
        """The connection is going: send what is held, cancel the timer."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        self.flush()
