"""
Every private attribute of pyOpenSSL and Twisted that resumetls touches, one
small accessor each, with the reason we need it and the versions it was
checked against.

Neither project promises these names.  Keeping them here means an upgrade
that renames one breaks one function, found by one grep, and the tests of
this module (C{tests/openssl/test_compat.py}) say which.  Checked against
pyOpenSSL 26.4 and Twisted 26.10.

The pyOpenSSL accessors return raw cffi handles of cryptography's own ffi:
they are for L{resumetls.openssl} only (nothing above that package touches
pointers).  The Twisted accessors return plain Python objects and are for
anyone.

One exception, by necessity: L{resumetls.server.protocol.ResumingTLSProtocol}
subclasses Twisted's C{TLSMemoryBIOProtocol} and so overrides or calls its
private methods by name (C{_checkHandshakeStatus}, C{_flushReceiveBIO},
C{_unbufferPendingWrites}, C{_lostTLSConnection}, C{_handshakeDone},
C{_aborted}, C{_appSendBuffer}, and what its C{makeConnection} uses:
C{_creatorCallable}, C{_connectWrapped}, C{_tlsConnection}).  Its docstring
lists them; when Twisted's C{makeConnection} is not the one we know,
Twisted's own runs.
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL

__all__ = [
    "acceptable_ciphers",
    "acceptable_protocols",
    "certificate_authorities",
    "certificate_options_built",
    "certificate_options_flags",
    "client_certificate_options",
    "connection_by_handle",
    "connection_handle",
    "context_handle",
    "http2_connection",
    "context_used",
    "continue_handshake",
    "is_platform_trust",
    "keep_alive",
    "memory_bios",
    "new_session",
    "session_handle",
    "send_now",
    "set_certificate_options_flags",
    "unwrap_certificate",
]


# -- pyOpenSSL ----------------------------------------------------------------


def context_handle(context: SSL.Context) -> Any:
    """
    The C{SSL_CTX *} behind a pyOpenSSL C{Context} (C{Context._context}).

    Why: the callbacks and C{SSL_CTX_*} calls pyOpenSSL does not expose are
    made on it.  There since the cffi port (pyOpenSSL 0.14).
    """
    return context._context


def context_used(context: Any) -> bool:
    """
    Whether a C{Connection} was already made from C{context}
    (C{Context._used}).

    Why: since pyOpenSSL 26.2 such a context refuses every change
    (C{ValueError: Context has already been used}); we check first so the
    user gets our clear error, or so we skip a change that would fail.
    Older versions have no flag: L{False}, they allowed the change.
    """
    return bool(getattr(context, "_used", False))


def connection_handle(connection: SSL.Connection) -> Any:
    """
    The C{SSL *} behind a pyOpenSSL C{Connection} (C{Connection._ssl}).

    Why: C{SSL_session_reused} is exposed by cryptography but pyOpenSSL has
    no method for it.  There since pyOpenSSL 0.14.
    """
    return connection._ssl


def memory_bios(connection: SSL.Connection) -> tuple[Any, Any]:
    """
    The two memory C{BIO *}s of a pyOpenSSL C{Connection} made without a
    socket: what the network gave it and what it has for the network
    (C{Connection._into_ssl}, C{Connection._from_ssl}); L{None}s for a
    connection on a socket.

    Why: pyOpenSSL can only ask them for bytes with C{bio_read}/C{recv},
    which raise C{WantReadError} when there are none; asking how many bytes
    they hold (C{BIO_ctrl} with C{BIO_CTRL_PENDING}) costs a C call instead
    of an exception (L{resumetls.openssl.buffers}).
    There since pyOpenSSL 0.14.
    """
    return connection._into_ssl, connection._from_ssl


def connection_by_handle() -> Any:
    """
    pyOpenSSL's map from C{SSL *} handles to live C{Connection} objects
    (C{Connection._reverse_mapping}, a C{WeakValueDictionary}).

    Why: OpenSSL calls our C callbacks with an C{SSL *}; this is how
    pyOpenSSL's own callback helpers find the C{Connection} (C{SSL.py}), and
    how ours hand it to the server.  There since pyOpenSSL 0.14.
    """
    return SSL.Connection._reverse_mapping


def session_handle(session: SSL.Session) -> Any:
    """
    The C{SSL_SESSION *} behind a pyOpenSSL C{Session} (C{Session._session}).

    Why: serializing a session (C{i2d_SSL_SESSION}) and reading its details
    have no pyOpenSSL API.  There since pyOpenSSL 0.14.
    """
    return session._session


def new_session(handle: Any, context: SSL.Context) -> SSL.Session:
    """
    A pyOpenSSL C{Session} owning C{handle} (an C{SSL_SESSION *} already
    wrapped in C{ffi.gc}), pinned to C{context}.

    Why: pyOpenSSL cannot build a session from DER.  It builds its own the
    same way in C{Connection.get_session} (C{Session.__new__}, then
    C{_session} and C{_context}); since pyOpenSSL 26.3
    C{Connection.set_session} refuses a session whose C{_context} is not
    the connection's own context.
    """
    session = SSL.Session.__new__(SSL.Session)
    session._session = handle
    session._context = context
    return session


def keep_alive(context: SSL.Context, callbacks: list[Any]) -> None:
    """
    Keep the cffi callbacks we installed on C{context} alive as long as the
    context (an attribute of ours, C{_resumetls_callbacks}, on pyOpenSSL's
    object).

    Why: OpenSSL only holds the C function pointer; if the cffi callback
    object were collected, the next handshake would call freed memory.
    pyOpenSSL keeps its own helpers on the C{Context} the same way.  Relies
    on C{Context} having no C{__slots__} (true in every pyOpenSSL so far).
    """
    context._resumetls_callbacks = callbacks  # type: ignore[attr-defined]


# -- Twisted ------------------------------------------------------------------


def certificate_options_built(options: Any) -> bool:
    """
    Whether a C{CertificateOptions} already built its context
    (C{CertificateOptions._context}, set by C{getContext()}).

    Why: its C{enableSessions}/C{enableSessionTickets} attributes are only
    read when the context is built; after that, changing them does nothing.
    A plain context factory without the attribute counts as not built.
    """
    return getattr(options, "_context", None) is not None


def certificate_options_flags(options: Any) -> int | None:
    """
    The OpenSSL option flags a C{CertificateOptions} will set on its context
    (C{CertificateOptions._options}), or L{None} when it has none.

    Why: C{__init__} already turned C{enableSessionTickets=False} into
    C{OP_NO_TICKET} there, and pyOpenSSL cannot clear an option once set.
    """
    flags = getattr(options, "_options", None)
    return flags if isinstance(flags, int) else None


def set_certificate_options_flags(options: Any, flags: int) -> None:
    """
    Replace the flags L{certificate_options_flags} read, before the context
    is built (see there for why).
    """
    options._options = flags


def _sslverify() -> Any:
    # Imported on use: plugin discovery must not pay for Twisted's TLS code.
    from twisted.internet import _sslverify

    return _sslverify


def certificate_authorities(trust_root: Any) -> list[Any] | None:
    """
    The CA certificates of a trust root made by
    C{trustRootFromCertificates} or C{caCerts=}
    (C{OpenSSLCertificateAuthorities._caCerts}, a list of pyOpenSSL
    C{X509}), or L{None} for any other kind of trust root.

    Why: resumption skips peer verification, so the session ID context (and
    the client's profile key) must say exactly which CAs verify; Twisted has
    no public way to ask.  Exact type only: a subclass may verify
    differently.  The class dates from Twisted 14.0.
    """
    kind = getattr(_sslverify(), "OpenSSLCertificateAuthorities", None)
    if kind is None or type(trust_root) is not kind:
        return None
    return list(trust_root._caCerts)


def is_platform_trust(trust_root: Any) -> bool:
    """
    Whether C{trust_root} is C{platformTrust()}, OpenSSL's default verify
    paths (C{_sslverify.OpenSSLDefaultPaths}, exact type).

    Why: the class is not exported by C{twisted.internet.ssl}; it names the
    same trust in every process, so its sessions can be shared.  Since
    Twisted 14.0.
    """
    kind = getattr(_sslverify(), "OpenSSLDefaultPaths", None)
    return kind is not None and type(trust_root) is kind


def unwrap_certificate(value: Any) -> Any:
    """
    The pyOpenSSL object inside a Twisted C{Certificate} /
    C{PrivateCertificate} (any C{_sslverify.CertBase}: its C{original}), or
    C{value} unchanged.

    Why: C{CertBase} is the common base of Twisted's certificate wrappers and
    is only importable from the private module.
    """
    if isinstance(value, _sslverify().CertBase):
        return value.original
    return value


def acceptable_ciphers(value: Any) -> tuple[Any, ...] | None:
    """
    The ciphers of an C{OpenSSLAcceptableCiphers} (its C{_ciphers}, each
    with a C{fullName}), or L{None} for anything else.

    Why: a client's profile key must name the same cipher choice the same
    way in every process, and the class has no public accessor.
    """
    ciphers = getattr(value, "_ciphers", None)
    if type(value).__name__ != "OpenSSLAcceptableCiphers" or ciphers is None:
        return None
    return tuple(ciphers)


def client_certificate_options(creator: Any) -> Any:
    """
    The C{CertificateOptions} behind an C{optionsForClientTLS} creator
    (C{ClientTLSOptions._createConnection} is its bound C{_makeConnection}:
    C{__self__}), or L{None}.

    Why: the client pins its session ID context on that options' context
    (Twisted's is random per context, so saved sessions would never resume
    in another process).  Checked in Twisted 26.10.
    """
    create = getattr(creator, "_createConnection", None)
    return getattr(create, "__self__", None)


def http2_connection(channel: Any) -> Any:
    """
    The C{H2Connection} protocol under an HTTP/2 request's channel (Twisted's
    C{H2Stream} keeps it as C{_conn}), or L{None} for an HTTP/1.1 channel.
    An HTTP/2 request's C{transport} is not the TLS transport: this is the
    way to it (C{.transport}), and to closing the connection once the
    response is out (its C{setTimeout}).
    """
    return getattr(channel, "_conn", None)


def acceptable_protocols(options: Any) -> tuple[bytes, ...] | None:
    """
    The ALPN protocols a C{CertificateOptions} was given
    (C{acceptableProtocols=}, kept as C{_acceptableProtocols}), or L{None}.
    """
    value = getattr(options, "_acceptableProtocols", None)
    return tuple(value) if value else None


def continue_handshake(tls_protocol: Any) -> bool:
    """
    Drive a paused server handshake of a Twisted C{TLSMemoryBIOProtocol}
    again (its C{_checkHandshakeStatus}; then, if the handshake finished,
    what its C{dataReceived} does next: C{_unbufferPendingWrites} and
    C{_flushReceiveBIO}).  L{False} when the connection is gone
    (C{_lostTLSConnection}, C{_tlsConnection} cleared in C{connectionLost}).

    Why: a handshake paused by the client-hello callback (a session lookup
    in a networked cache) waits for no bytes from the peer, so nothing in
    Twisted would call C{do_handshake} again when the lookup answers.
    Checked in Twisted 26.10 (the methods date from Twisted 11.1).
    """
    if tls_protocol._lostTLSConnection or tls_protocol._tlsConnection is None:
        return False
    tls_protocol._checkHandshakeStatus()
    if tls_protocol._handshakeDone and not tls_protocol._lostTLSConnection:
        if tls_protocol._appSendBuffer:
            tls_protocol._unbufferPendingWrites()
        tls_protocol._flushReceiveBIO()
    return True


def send_now(transport: Any, data: bytes) -> bytes:
    """
    Send C{data} on a Twisted TCP connection at once when nothing is queued
    before it; return what the socket did not take (all of C{data} for any
    other transport, or when something is queued), for C{transport.write}.

    Why: C{FileDescriptor.write} always queues and sends on the reactor's
    next turn, which costs two C{epoll_ctl} calls and a dispatch a write.  A
    server's handshake flight is all it sends before the client answers, so
    sending it at once puts the same bytes on the wire, sooner and cheaper.
    Uses C{twisted.internet.tcp.Connection}'s C{dataBuffer},
    C{_tempDataBuffer}, C{_writeDisconnected} and C{writeSomeData} (checked
    in Twisted 26.10; the names date from Twisted 8).
    """
    from twisted.internet import tcp

    if (
        type(transport) is not tcp.Server
        or not transport.connected
        or transport.disconnecting
        or transport.dataBuffer
        or transport._tempDataBuffer
        or transport._writeDisconnected
    ):
        return data
    sent = transport.writeSomeData(data)
    # An int: bytes taken (0 when the socket would block); anything else is
    # an error the ordinary write path meets again and reports.
    if type(sent) is int and sent > 0:
        return data[sent:]
    return data
