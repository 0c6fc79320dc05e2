"""
pyOpenSSL sessions as bytes and facts: DER in and out (through the bindings
cryptography exposes), what a session says about itself, and whether a
connection was resumed.
"""

from __future__ import annotations

from typing import Any

import attrs
from OpenSSL import SSL

from resumetls.openssl import compat, symbols
from resumetls.openssl.errors import OpenSSLRouteUnavailable
from resumetls.openssl.ffi import as_void, ffi, rust_ffi, rust_lib

__all__ = [
    "SessionDetails",
    "connection_reused",
    "session_details",
    "session_from_der",
    "session_to_der",
]


@attrs.frozen
class SessionDetails:
    """
    What a session says about itself (no secrets).  Fields are L{None} when
    the OpenSSL route is unavailable.
    """

    protocol_version: int | None
    has_ticket: bool | None
    ticket_lifetime_hint: int | None
    time: int | None
    timeout: int | None
    resumable: bool | None
    ticket: bytes | None = attrs.field(repr=False, default=None)


def session_to_der(session: SSL.Session) -> bytes:
    """
    Serialize a pyOpenSSL C{Session} (C{i2d_SSL_SESSION}).  The result holds
    the session's master secret: treat it as a secret.
    """
    ptr = compat.session_handle(session)
    size = rust_lib.i2d_SSL_SESSION(ptr, rust_ffi.NULL)
    if size <= 0:
        raise ValueError("this session cannot be serialized")
    buf = rust_ffi.new("unsigned char[]", size)
    p = rust_ffi.new("unsigned char **", buf)
    if rust_lib.i2d_SSL_SESSION(ptr, p) != size:
        raise ValueError("this session cannot be serialized")
    return rust_ffi.buffer(buf, size)[:]


def session_from_der(der: bytes, context: SSL.Context) -> SSL.Session:
    """
    Rebuild a C{Session} from DER, pinned to C{context} (pyOpenSSL only lets
    a connection use sessions of its own context).

    @raise ValueError: when C{der} is not a serialized session.
    """
    if not isinstance(der, bytes) or not der:
        raise ValueError("not a serialized TLS session")
    buf = rust_ffi.from_buffer("unsigned char[]", der)
    p = rust_ffi.new("const unsigned char **", buf)
    ptr = rust_lib.d2i_SSL_SESSION(rust_ffi.NULL, p, len(der))
    if ptr == rust_ffi.NULL:
        rust_lib.ERR_clear_error()
        raise ValueError("not a serialized TLS session")
    return compat.new_session(rust_ffi.gc(ptr, rust_lib.SSL_SESSION_free), context)


_UNKNOWN = SessionDetails(None, None, None, None, None, None)


def session_details(session: SSL.Session) -> SessionDetails:
    """
    Protocol version, ticket presence and lifetime hint, time and timeout of
    a session; fields are L{None} when the OpenSSL route (or that one
    function) is unavailable.
    """
    try:
        r = symbols.route()
    except OpenSSLRouteUnavailable:
        return _UNKNOWN
    ptr = as_void(compat.session_handle(session))
    ticket = None
    get0_ticket = r.optional("SSL_SESSION_get0_ticket")
    if get0_ticket is not None:
        tick = ffi.new("const unsigned char **")
        length = ffi.new("size_t *")
        get0_ticket(ptr, tick, length)
        if tick[0] != ffi.NULL and length[0]:
            ticket = ffi.buffer(tick[0], length[0])[:]

    def call(name: str, cast: Any) -> Any:
        f = r.optional(name)
        return cast(f(ptr)) if f is not None else None

    return SessionDetails(
        protocol_version=call("SSL_SESSION_get_protocol_version", int),
        has_ticket=call("SSL_SESSION_has_ticket", bool),
        ticket_lifetime_hint=call("SSL_SESSION_get_ticket_lifetime_hint", int),
        time=call("SSL_SESSION_get_time", int),
        timeout=call("SSL_SESSION_get_timeout", int),
        resumable=call("SSL_SESSION_is_resumable", bool),
        ticket=ticket,
    )


def connection_reused(connection: SSL.Connection) -> bool:
    """C{SSL_session_reused} for a pyOpenSSL C{Connection}."""
    return bool(rust_lib.SSL_session_reused(compat.connection_handle(connection)))
