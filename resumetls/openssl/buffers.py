"""
Whether a pyOpenSSL memory-BIO connection has bytes to move, asked of
OpenSSL directly.

Twisted's TLS protocol finds out by trying: after every read it calls
C{Connection.recv} until it raises C{WantReadError}, and C{bio_read} on the
outgoing BIO, which raises the same when nothing is there.  A resumed
handshake makes several such calls that find nothing, and each raised
exception costs more than the C call that answers the question
(C{BIO_ctrl(BIO_CTRL_PENDING)}, C{SSL_has_pending}): measured with
C{bench/percore.py}.  L{ConnectionBuffers} is what
L{resumetls.server.protocol.ResumingTLSProtocol} asks.
"""

from __future__ import annotations

from typing import Any

from resumetls.openssl import compat
from resumetls.openssl.ffi import as_void, ffi
from resumetls.openssl.functions import BIO_CTRL_PENDING, BUFFER_CHECKS
from resumetls.openssl.route import OpenSSLRoute

__all__ = ["BufferCheck", "ConnectionBuffers"]

_NULL = ffi.NULL


class ConnectionBuffers:
    """The byte counts of one connection's memory BIOs (see the module)."""

    __slots__ = ("_ctrl", "_has_pending", "_incoming", "_outgoing", "_ssl")

    def __init__(
        self, check: BufferCheck, connection: Any, incoming: Any, outgoing: Any
    ) -> None:
        self._ctrl = check._ctrl
        self._has_pending = check._has_pending
        self._incoming = as_void(incoming)
        self._outgoing = as_void(outgoing)
        self._ssl = as_void(compat.connection_handle(connection))

    def outgoing(self) -> int:
        """Bytes OpenSSL has written for the network and nobody read yet."""
        return int(self._ctrl(self._outgoing, BIO_CTRL_PENDING, 0, _NULL))

    def incoming(self) -> bool:
        """
        Whether C{recv} could make progress without more bytes from the
        network: bytes from the network not yet read by OpenSSL, or records
        it holds (read ahead, or decrypted and not yet returned).
        """
        return bool(
            self._ctrl(self._incoming, BIO_CTRL_PENDING, 0, _NULL)
            or self._has_pending(self._ssl)
        )


class BufferCheck:
    """
    Makes a L{ConnectionBuffers} for each connection; L{for_route} gives
    L{None} when OpenSSL's functions for it are not reachable (the TLS
    protocol then tries, as Twisted's does).
    """

    def __init__(self, ctrl: Any, has_pending: Any) -> None:
        self._ctrl = ctrl
        self._has_pending = has_pending

    @classmethod
    def for_route(cls, route: OpenSSLRoute) -> BufferCheck | None:
        found = [route.optional(name) for name in BUFFER_CHECKS]
        if any(f is None for f in found):
            return None
        return cls(*found)

    def watch(self, connection: Any) -> ConnectionBuffers | None:
        """The buffers of C{connection}; L{None} for one on a socket."""
        incoming, outgoing = compat.memory_bios(connection)
        if incoming is None or outgoing is None:
            return None
        return ConnectionBuffers(self, connection, incoming, outgoing)
