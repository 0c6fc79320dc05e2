"""
The client-hello callback (C{SSL_CTX_set_client_hello_cb}): what a client
offers to resume with, read before OpenSSL looks anything up, so a networked
session cache can be asked first while the handshake waits.

L{ClientHelloCallback} reads the TLS 1.2 session ID
(C{SSL_client_hello_get0_session_id}), the key name of a TLS 1.2 ticket
(extension 35), the TLS 1.3 PSK identities (extension 41) and whether TLS
1.3 is offered (extension 43) into a L{ClientHelloOffer}, and asks its
handler whether to go on (1) or to pause the handshake (-1,
C{SSL_CLIENT_HELLO_RETRY}: C{SSL_do_handshake} then fails with
C{SSL_ERROR_WANT_CLIENT_HELLO_CB}; calling it again runs this callback
again, and 1 continues from the stored ClientHello).  An exception in the
handler continues the handshake (a full one, at worst) and is reported.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

import attrs

from resumetls.openssl import compat
from resumetls.openssl.ffi import ffi
from resumetls.openssl.functions import (
    SSL_CLIENT_HELLO_RETRY,
    SSL_CLIENT_HELLO_SUCCESS,
    TLS1_3_VERSION,
    TLSEXT_PRE_SHARED_KEY,
    TLSEXT_SESSION_TICKET,
    TLSEXT_SUPPORTED_VERSIONS,
)

if TYPE_CHECKING:
    from resumetls.openssl.route import OpenSSLRoute

__all__ = ["ClientHelloCallback", "ClientHelloOffer", "psk_identities"]

CLIENT_HELLO_CB = "int(void *, int *, void *)"
_U16 = struct.Struct("!H")


@attrs.frozen
class ClientHelloOffer:
    """
    What a ClientHello offers for resumption (bytes only, read from the
    wire: nothing here is trusted).

    @ivar session_id: the legacy session ID (empty when none; random in TLS
        1.3 compatibility mode, so only a cache key when TLS 1.2 is used).
    @ivar ticket_name: the first 16 bytes of a TLS 1.2 ticket (its key
        name), or L{None} when no ticket is offered.
    @ivar psk_identities: the TLS 1.3 PSK identities (a stateful ticket is
        a session ID; a stateless one is a ticket starting with a key name).
    @ivar tls13: whether the client offers TLS 1.3.
    """

    session_id: bytes = b""
    ticket_name: bytes | None = None
    psk_identities: tuple[bytes, ...] = ()
    tls13: bool = False


def psk_identities(data: bytes) -> tuple[bytes, ...]:
    """
    The identities of a C{pre_shared_key} extension (RFC 8446, 4.2.11):
    C{u16 length, {u16 length, identity, u32 age}...}, then binders.
    Malformed data gives what was read before the damage.
    """
    found: list[bytes] = []
    if len(data) < 2:
        return ()
    (total,) = _U16.unpack_from(data)
    end = min(2 + total, len(data))
    at = 2
    while at + 2 <= end:
        (size,) = _U16.unpack_from(data, at)
        at += 2
        if size == 0 or at + size + 4 > end:
            break
        found.append(data[at : at + size])
        at += size + 4
    return tuple(found)


def _offers_tls13(data: bytes) -> bool:
    """Whether a client's C{supported_versions} list names TLS 1.3."""
    if not data:
        return False
    listed = data[1 : 1 + data[0]]
    return any(
        _U16.unpack_from(listed, i)[0] == TLS1_3_VERSION
        for i in range(0, len(listed) - 1, 2)
    )


class ClientHelloCallback:
    """
    The cffi callback for C{SSL_CTX_set_client_hello_cb}, kept alive in
    L{callback}.

    @param handler: an object with C{client_hello(connection, offer) ->
        bool} (L{True}: go on, L{False}: pause) and C{callback_failed(what,
        exc, tb)}.
    """

    what = "client-hello"

    def __init__(self, route: OpenSSLRoute, handler: Any) -> None:
        self._handler = handler
        self._session_id = route.function("SSL_client_hello_get0_session_id")
        self._get_ext = route.function("SSL_client_hello_get0_ext")
        self._connection = compat.connection_by_handle().get
        self._out = ffi.new("const unsigned char **")
        self._len = ffi.new("size_t *")
        self.callback = ffi.callback(
            CLIENT_HELLO_CB,
            self._call,
            error=SSL_CLIENT_HELLO_SUCCESS,
            onerror=self._onerror,
        )

    def _extension(self, ssl: Any, kind: int) -> bytes | None:
        if self._get_ext(ssl, kind, self._out, self._len) != 1:
            return None
        if self._len[0] == 0:
            return b""
        return ffi.buffer(self._out[0], self._len[0])[:]

    def offer(self, ssl: Any) -> ClientHelloOffer:
        """Read what the ClientHello of C{ssl} offers."""
        size = self._session_id(ssl, self._out)
        session_id = ffi.buffer(self._out[0], size)[:] if size else b""
        ticket = self._extension(ssl, TLSEXT_SESSION_TICKET)
        psk = self._extension(ssl, TLSEXT_PRE_SHARED_KEY)
        versions = self._extension(ssl, TLSEXT_SUPPORTED_VERSIONS)
        return ClientHelloOffer(
            session_id=session_id,
            ticket_name=ticket[:16] if ticket and len(ticket) >= 16 else None,
            psk_identities=psk_identities(psk) if psk else (),
            tls13=_offers_tls13(versions) if versions else False,
        )

    def _call(self, ssl: Any, alert: Any, arg: Any) -> int:
        go_on = self._handler.client_hello(self._connection(ssl), self.offer(ssl))
        return SSL_CLIENT_HELLO_SUCCESS if go_on else SSL_CLIENT_HELLO_RETRY

    def _onerror(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self._handler.callback_failed(self.what, exc, tb)
        except Exception:  # noqa: BLE001 - never raise into OpenSSL
            pass
