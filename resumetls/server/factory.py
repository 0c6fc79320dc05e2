"""
The context factory: a pyOpenSSL C{Context} with session resumption under our
control, usable wherever Twisted wants a server context factory.

L{ResumingContextFactory} wraps any C{IOpenSSLContextFactory} (a
C{CertificateOptions}, typically), builds its C{Context} once and, before any
connection is made from it, sets the session ID context
(L{resumetls.server.sidcontext}), timeouts and cache mode, and installs the
OpenSSL callbacks, which call into its L{HandshakeHooks}
(L{resumetls.server.hooks}): tickets opened with keys from an
L{ITicketKeys}, sessions kept in an L{ISessionCache}.  Where those callbacks
cannot be installed it falls back to OpenSSL's built-in cache and ticket
keys, and says so.  What happened is reported by L{resumetls.server.stats}.
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import (
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger
from zope.interface import implementer

from resumetls.openssl import compat, symbols
from resumetls.openssl.buffers import BufferCheck
from resumetls.openssl.errors import OpenSSLRouteUnavailable
from resumetls.openssl.functions import SSL_CB_HANDSHAKE_DONE, server_functions
from resumetls.openssl.sessions import connection_reused
from resumetls.server import alpn, sidcontext
from resumetls.server.hooks import HandshakeHooks, check_cache
from resumetls.server.protocol import ResumingTLSProtocol
from resumetls.server.settings import Capabilities, ResumptionSettings
from resumetls.server.stats import ResumptionStats, mark_served

__all__ = [
    "ContextAlreadyUsedError",
    "ResumingContextFactory",
]

_log = Logger(namespace="resumetls")


class ContextAlreadyUsedError(ValueError):
    """The wrapped options' context already made connections."""


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLContextFactory)
class ResumingContextFactory:
    """
    A server context factory that resumes sessions by ticket and session ID.

    @param options: the C{IOpenSSLContextFactory} to wrap, typically a
        C{CertificateOptions}; its context must not have made a connection
        yet (pyOpenSSL forbids changing it afterwards).
    @param settings: a L{ResumptionSettings}.
    @param key_ring: the L{ITicketKeys}; default: keys generated in memory,
        rotated every 12 hours.
    @param cache: the session cache; default: an in-memory LRU cache.  One
        that provides L{IImmediateSessionCache} is asked inside the
        handshake; one that provides only L{ISessionCache} (it answers with
        Deferreds) resumes only when its answer has already fired, and
        counts C{cache_lookups_late} otherwise.
    @param clock: an C{IReactorTime} for the default key ring and cache.

    @raise TypeError: when C{cache} provides neither cache interface.
    @raise ContextAlreadyUsedError: when the options' context already made
        a connection.

    @ivar hooks: the L{HandshakeHooks} OpenSSL's callbacks call.

    The counters and the mechanism L{resumption_info} reports come from the
    end of each handshake.  A L{ResumingTLSProtocol} (every resumetls
    listener) reports it itself.  For connections made another way (another
    TLS protocol, such as C{listenSSL}'s, or from C{getContext()}), an info
    callback is set on the context the first time one is made.  OpenSSL
    calls a connection's own info callback I{instead of} the context's: an
    application that calls C{Connection.set_info_callback} on such a
    connection (or replaces the context's with
    C{getContext().set_info_callback}) takes those handshakes out of the
    counters, and a resumed one is reported with mechanism C{"unknown"}
    (resumed, version and cipher stay right).
    """

    _observer: Any = None  # the context's HandshakeObserver (none: fallback)
    _buffers: BufferCheck | None = None  # asks connections' BIOs (none: fallback)

    def __init__(
        self,
        options: Any,
        settings: ResumptionSettings | None = None,
        key_ring: Any = None,
        cache: Any = None,
        clock: Any = None,
    ) -> None:
        self.settings = settings if settings is not None else ResumptionSettings()
        self._options = options
        if clock is None and (key_ring is None or cache is None):
            from twisted.internet import reactor as clock  # noqa: N813
        if key_ring is None and self.settings.tickets:
            from resumetls.keys.ring import KeyRing, RotationPolicy

            key_ring = KeyRing.generate(clock, RotationPolicy())
        if cache is None and self.settings.session_ids:
            from resumetls.cache.memory import MemorySessionCache

            cache = MemorySessionCache(clock=clock)
        if cache is not None:
            check_cache(cache)  # refuse a foreign cache before any change
        self.key_ring = key_ring
        self.cache = cache
        self._prepare_options(options)
        self._ssl_context = options.getContext()
        if compat.context_used(self._ssl_context):
            raise ContextAlreadyUsedError(
                "the context of these options has already been used to make a "
                "connection, so it cannot be changed any more; wrap the options "
                "in ResumingContextFactory before listening with them"
            )
        sid = sidcontext.compute(options, self._ssl_context, self.settings.service)
        self._certificate_from_context = sid.certificate_from_context
        self.session_id_context = sid.value
        self.hooks = HandshakeHooks(
            self.settings, key_ring, cache, key_prefix=self.session_id_context[:16]
        )
        self._clock = clock
        self.capabilities = self._configure()

    @classmethod
    def from_files(
        cls,
        certificate: str,
        key: str,
        settings: ResumptionSettings | None = None,
        chain: str | None = None,
        **kwargs: Any,
    ) -> ResumingContextFactory:
        """
        Build from PEM files, the way Twisted's C{ssl:} endpoint reads them:
        C{certificate} holds the leaf certificate (and possibly chain
        certificates after it), C{key} the private key (it may be the same
        file), C{chain} optionally more chain certificates.  Other arguments
        as for the constructor.

        @raise ValueError: when a file cannot be read or parsed, or the key
            does not belong to the certificate; the message names the file.
        """
        from resumetls.server.pem import certificate_options

        return cls(certificate_options(certificate, key, chain), settings, **kwargs)

    def __repr__(self) -> str:
        stats = self.stats()
        return (
            f"<ResumingContextFactory service={self.settings.service!r} "
            f"full={stats.full_handshakes} resumed={stats.resumed}>"
        )

    @property
    def options(self) -> Any:
        """The wrapped options new connections are made with."""
        return self._options

    def replace_certificate(self, options: Any) -> None:
        """
        Serve new connections with C{options} (a new certificate and key,
        typically reloaded from files) from now on; connections already made
        keep the context they were made with.  pyOpenSSL forbids changing a
        used context, so a new one is built and configured like the first,
        with the same settings, key ring, cache, hooks and counters.

        The session ID context is derived from the certificate, so it
        changes too: sessions and tickets made under the old certificate
        get a full handshake (OpenSSL treats a session of another context
        as a cache miss), as after a restart with the new certificate.

        @raise ContextAlreadyUsedError: C{options}' context already made a
            connection; nothing changes.
        @raise ValueError: the new context cannot be configured; nothing
            changes.
        """
        self._prepare_options(options)
        context = options.getContext()
        if compat.context_used(context):
            raise ContextAlreadyUsedError(
                "the context of the new options has already been used"
            )
        sid = sidcontext.compute(options, context, self.settings.service)
        old = self.__dict__.copy()
        self._options, self._ssl_context = options, context
        self._certificate_from_context = sid.certificate_from_context
        self.session_id_context = sid.value
        try:
            capabilities = self._configure()
        except Exception:
            self.__dict__.update(old)
            raise
        self.capabilities = capabilities
        self.hooks.key_prefix = self.session_id_context[:16]

    # -- building the context ---------------------------------------------------

    def _prepare_options(self, options: Any) -> None:
        """
        Tell a C{CertificateOptions} not to turn resumption off before its
        context exists (the fallback path relies on this; with the OpenSSL
        route we set everything on the context anyway).
        """
        if compat.certificate_options_built(options):
            return
        if hasattr(options, "enableSessions"):
            options.enableSessions = self.settings.session_ids
        if hasattr(options, "enableSessionTickets"):
            options.enableSessionTickets = self.settings.tickets
            # CertificateOptions turned its tickets flag into OP_NO_TICKET in
            # __init__ already, and pyOpenSSL cannot clear an option: take it
            # out of the options it will set.
            flags = compat.certificate_options_flags(options)
            if self.settings.tickets and flags is not None:
                compat.set_certificate_options_flags(options, flags & ~SSL.OP_NO_TICKET)

    def _configure(self) -> Capabilities:
        s = self.settings
        ctx = self._ssl_context
        alpn.install(ctx, self._options)
        ctx.set_session_id(self.session_id_context)
        ctx.set_timeout(int(s.session_timeout))
        try:
            route = symbols.route()
            # Every function this configuration calls, checked before the
            # context changes: one missing function means the fallback.
            route.require(
                server_functions(
                    tickets=s.tickets,
                    session_cache=s.session_ids,
                    context_certificate=self._certificate_from_context,
                )
            )
        except OpenSSLRouteUnavailable as e:
            return self._configure_fallback(str(e))
        if s.tickets:
            if self.key_ring is None:
                raise ValueError("tickets are on but there is no key ring")
        else:
            ctx.set_options(SSL.OP_NO_TICKET)
        if s.session_ids:
            ctx.set_session_cache_mode(
                SSL.SESS_CACHE_SERVER | SSL.SESS_CACHE_NO_INTERNAL
            )
        else:
            ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        route.set_num_tickets(
            ctx, s.tls13_tickets if (s.tickets or s.session_ids) else 0
        )
        self._buffers = BufferCheck.for_route(route)
        try:
            # The observer goes on the context only when a connection needs
            # it (see serverConnectionForTLS).
            self._observer = route.install_server_callbacks(
                ctx,
                self.hooks,
                tickets=s.tickets,
                session_cache=s.session_ids,
                install_observer=False,
            )
        except OpenSSLRouteUnavailable as e:
            # OpenSSL refused a callback: nothing of ours is left installed
            # that the fallback does not replace.
            return self._configure_fallback(str(e))
        if s.session_ids and not check_cache(self.cache):
            # A cache that answers later: pause handshakes while it does.
            from resumetls.server.pause import install_pauser

            install_pauser(route, ctx, self.hooks, s, self._clock)
        return Capabilities(custom_tickets=True, external_cache=True, reason=None)

    def _configure_fallback(self, reason: str) -> Capabilities:
        s = self.settings
        ctx = self._ssl_context
        self._observer = None
        self._buffers = None
        _log.warn(
            "resumetls cannot reach the OpenSSL functions it needs, so this "
            "service uses OpenSSL's built-in session cache and per-process ticket "
            "keys: {reason}",
            reason=reason,
            event="resumetls.route.unavailable",
        )
        if s.session_ids:
            ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
        else:
            ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        if not s.tickets:
            ctx.set_options(SSL.OP_NO_TICKET)
        ctx.set_info_callback(self._fallback_info)
        return Capabilities(custom_tickets=False, external_cache=False, reason=reason)

    def _fallback_info(self, conn: Any, where: int, ret: int) -> None:
        if where & SSL_CB_HANDSHAKE_DONE:
            self.hooks.handshake_done(conn, connection_reused(conn), 0)

    # -- IOpenSSLContextFactory / IOpenSSLServerConnectionCreator ----------------

    def getContext(self) -> SSL.Context:
        # Connections made from the bare context are observed by it.
        if self._observer is not None:
            self._observer.install()
        return self._ssl_context

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        options = self._options
        if type(options) is CertificateOptions:
            # What its serverConnectionForTLS makes, a Connection on this
            # context, without the ALPN list it also sets on it: a list a
            # client offers, which a server ignores (its choice is the
            # context's select callback, server/alpn.py), found through an
            # interface lookup each connection.
            conn = SSL.Connection(self._ssl_context, None)
        elif IOpenSSLServerConnectionCreator.providedBy(options):
            conn = options.serverConnectionForTLS(tlsProtocol)
            if conn.get_context() is not self._ssl_context:
                raise ContextAlreadyUsedError(
                    "the wrapped options built a new context; resumption "
                    "settings would be lost"
                )
        else:
            conn = SSL.Connection(self._ssl_context, None)
        if self.hooks.pauser is not None:
            self.hooks.pauser.adopt(conn, tlsProtocol)
        mark_served(conn, self)
        observer = self._observer
        resuming = isinstance(tlsProtocol, ResumingTLSProtocol)
        if observer is not None:
            if resuming:
                tlsProtocol.handshake_reporter = observer.report
            else:
                observer.install()  # another TLS protocol: OpenSSL tells us
        if resuming and self._buffers is not None:
            tlsProtocol.buffers = self._buffers.watch(conn)
        return conn

    # -- observability -----------------------------------------------------------

    def stats(self) -> ResumptionStats:
        """The counters now, with the cache's and the key ring's figures."""
        return self.hooks.stats()
