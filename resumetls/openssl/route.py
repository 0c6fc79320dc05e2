"""
L{OpenSSLRoute}: typed calls to the OpenSSL functions pyOpenSSL does not
expose, on pyOpenSSL C{Context} objects, once the symbol table was read and
self-checked (L{resumetls.openssl.symbols.route} builds it).

Everything a caller passes or gets back is a pyOpenSSL object, bytes or a
number; pointers stay here and in the callback classes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from resumetls.openssl import compat
from resumetls.openssl.callbacks import (
    GetSessionCallback,
    HandshakeObserver,
    NewSessionCallback,
    TicketKeyCallback,
)
from resumetls.openssl.errors import OpenSSLRouteUnavailable
from resumetls.openssl.ffi import as_void, ffi, i2d_bytes
from resumetls.openssl.functions import (
    CACHE_CALLBACKS,
    CLIENT_HELLO_PAUSE,
    CONTEXT_CERTIFICATE,
    CUSTOM_TICKET_KEYS,
    EXTERNAL_CACHE,
    HANDSHAKE_OBSERVER,
    SIGNATURES,
    SSL_CTRL_GET_MAX_PROTO_VERSION,
    SSL_CTRL_GET_SESS_CACHE_SIZE,
    SSL_CTRL_SESS_NUMBER,
    SSL_CTRL_SET_SESS_CACHE_SIZE,
    SSL_OP_NO_TICKET,
    STILL_WORKS,
    TICKET_CALLBACK,
    unique,
)

if TYPE_CHECKING:
    from OpenSSL import SSL

    from resumetls.interfaces import IHandshakeHooks

__all__ = ["OpenSSLRoute"]


class OpenSSLRoute:
    """
    Typed access to the OpenSSL functions pyOpenSSL does not expose.

    Build it through L{resumetls.openssl.symbols.route}; it only exists after
    the self-check passed.

    @ivar path: the binary the functions were found in.
    @ivar base: its load base.
    @ivar from_cache: whether the offsets came from the on-disk cache.
    @ivar missing: the functions of the table not found, sorted.
    @ivar custom_ticket_keys: every function custom ticket keys need resolved.
    @ivar external_cache: every function an external session cache needs.
    @ivar context_certificate: the certificate can be read from a context.
    """

    def __init__(self, path: str, base: int, symbols: dict[str, int], cached: bool):
        self.path = path
        self.base = base
        self.from_cache = cached
        self.missing = sorted(n for n in SIGNATURES if n not in symbols)
        self._fn: dict[str, Any] = {}
        for name, sig in SIGNATURES.items():
            if name in symbols:
                self._fn[name] = ffi.cast(sig, base + symbols[name])
        f = self._fn
        self.custom_ticket_keys = all(n in f for n in CUSTOM_TICKET_KEYS)
        self.external_cache = all(n in f for n in EXTERNAL_CACHE)
        self.context_certificate = all(n in f for n in CONTEXT_CERTIFICATE)

    def __repr__(self) -> str:
        return (
            f"<OpenSSLRoute {self.path} base={self.base:#x} "
            f"tickets={self.custom_ticket_keys} cache={self.external_cache}>"
        )

    def require(self, names: Iterable[str]) -> None:
        """
        Check that every function in C{names} was resolved, before anything
        is changed.

        @raise OpenSSLRouteUnavailable: naming the missing functions and
            saying what still works.
        """
        missing = [n for n in dict.fromkeys(names) if n not in self._fn]
        if missing:
            verb = "was" if len(missing) == 1 else "were"
            raise OpenSSLRouteUnavailable(
                f"{', '.join(missing)} {verb} not found in {self.path}. " + STILL_WORKS
            )

    def function(self, name: str) -> Any:
        """A resolved function pointer; L{OpenSSLRouteUnavailable} if missing."""
        self.require([name])
        return self._fn[name]

    def optional(self, name: str) -> Any:
        """A resolved function pointer, or L{None} when it was not found."""
        return self._fn.get(name)

    # -- contexts -------------------------------------------------------------

    @staticmethod
    def _ctx(context: SSL.Context) -> Any:
        return as_void(compat.context_handle(context))

    def clear_options(self, context: SSL.Context, options: int) -> int:
        """C{SSL_CTX_clear_options}; pyOpenSSL only has C{set_options}."""
        return int(self.function("SSL_CTX_clear_options")(self._ctx(context), options))

    def set_num_tickets(self, context: SSL.Context, count: int) -> None:
        """How many TLS 1.3 tickets a full handshake issues."""
        if self.function("SSL_CTX_set_num_tickets")(self._ctx(context), count) != 1:
            raise ValueError(f"SSL_CTX_set_num_tickets({count}) failed")

    def set_internal_cache_size(self, context: SSL.Context, size: int) -> None:
        """C{SSL_CTX_sess_set_cache_size} (a macro over C{SSL_CTX_ctrl})."""
        self.function("SSL_CTX_ctrl")(
            self._ctx(context), SSL_CTRL_SET_SESS_CACHE_SIZE, size, ffi.NULL
        )

    def internal_cache_size(self, context: SSL.Context) -> int:
        """C{SSL_CTX_sess_get_cache_size}: the bound of OpenSSL's own cache."""
        return int(
            self.function("SSL_CTX_ctrl")(
                self._ctx(context), SSL_CTRL_GET_SESS_CACHE_SIZE, 0, ffi.NULL
            )
        )

    def internal_cache_entries(self, context: SSL.Context) -> int:
        """C{SSL_CTX_sess_number}: sessions in OpenSSL's own cache."""
        return int(
            self.function("SSL_CTX_ctrl")(
                self._ctx(context), SSL_CTRL_SESS_NUMBER, 0, ffi.NULL
            )
        )

    def max_version(self, context: SSL.Context) -> int:
        """
        C{SSL_CTX_get_max_proto_version} (a macro over C{SSL_CTX_ctrl}): the
        highest version the context allows, 0 for "the highest OpenSSL has".
        """
        return int(
            self.function("SSL_CTX_ctrl")(
                self._ctx(context), SSL_CTRL_GET_MAX_PROTO_VERSION, 0, ffi.NULL
            )
        )

    def install_client_hello(self, context: SSL.Context, handler: Any) -> Any:
        """
        Install a L{resumetls.openssl.clienthello.ClientHelloCallback} calling
        C{handler} on a not yet used C{context}.

        @return: the callback object; keep it alive as long as the context
            (OpenSSL holds only the C function pointer).
        @raise OpenSSLRouteUnavailable: a function it needs is missing.
        """
        from resumetls.openssl.clienthello import ClientHelloCallback

        self.require(CLIENT_HELLO_PAUSE)
        callback = ClientHelloCallback(self, handler)
        self._fn["SSL_CTX_set_client_hello_cb"](
            self._ctx(context), callback.callback, ffi.NULL
        )
        return callback

    def certificate_der(self, context: SSL.Context) -> bytes | None:
        """The DER of the context's current certificate, if any."""
        x509 = self.function("SSL_CTX_get0_certificate")(self._ctx(context))
        if x509 == ffi.NULL:
            return None
        return i2d_bytes(self.function("i2d_X509"), x509)

    # -- server callbacks -----------------------------------------------------

    def install_server_callbacks(
        self,
        context: SSL.Context,
        hooks: IHandshakeHooks,
        *,
        tickets: bool,
        session_cache: bool,
        observe: bool = True,
        install_observer: bool = True,
    ) -> HandshakeObserver | None:
        """
        Install the ticket-key callback, the external session cache callbacks
        and the handshake-done observer (L{resumetls.openssl.callbacks}) on a
        not yet used C{context}; each calls C{hooks}.  Returns the observer
        (L{None} without C{observe}); with C{install_observer} false it is
        built and kept alive but not set: its C{install} sets it later.

        Every function they need is checked first: a missing one raises
        before the context is changed.  The callbacks are kept alive on the
        context object (L{compat.keep_alive}).

        @raise OpenSSLRouteUnavailable: a function is missing, or OpenSSL
            refused the ticket callback.
        """
        self.require(
            unique(
                TICKET_CALLBACK if tickets else (),
                CACHE_CALLBACKS if session_cache else (),
                HANDSHAKE_OBSERVER if observe else (),
            )
        )
        ctx = self._ctx(context)
        keep: list[Any] = []
        if tickets:
            ticket = TicketKeyCallback(self, hooks)
            keep.append(ticket)
            self.clear_options(context, SSL_OP_NO_TICKET)
            set_cb = self._fn["SSL_CTX_set_tlsext_ticket_key_evp_cb"]
            if set_cb(ctx, ticket.callback) != 1:
                raise OpenSSLRouteUnavailable(
                    "SSL_CTX_set_tlsext_ticket_key_evp_cb refused the callback"
                )
        if session_cache:
            new = NewSessionCallback(self, hooks, tickets=tickets)
            get = GetSessionCallback(self, hooks)
            keep += [new, get]
            self._fn["SSL_CTX_sess_set_new_cb"](ctx, new.callback)
            self._fn["SSL_CTX_sess_set_get_cb"](ctx, get.callback)
        info = None
        if observe:
            info = HandshakeObserver(self, hooks, ctx)
            keep.append(info)
            if install_observer:
                info.install()
        compat.keep_alive(context, keep)
        return info
