"""
The context factory: a pyOpenSSL C{Context} with session resumption under our
control, usable wherever Twisted wants a server context factory.

L{ResumingContextFactory} wraps any C{IOpenSSLContextFactory} (a
C{CertificateOptions}, typically), builds its C{Context} once and, before any
connection is made from it, installs our ticket-key callback (tickets opened
with keys from an L{ITicketKeys}), an external session cache (an
L{ISessionCache}) and a per-service session ID context.  It counts what
happened to every handshake, and L{resumption_info} tells an application how
its own connection was set up.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import attrs
from OpenSSL import SSL
from twisted.internet.interfaces import (
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
)
from twisted.logger import Logger
from zope.interface import implementer

from resumetls.openssl import binding as _openssl
from resumetls.server.settings import Capabilities, ResumptionSettings

__all__ = [
    "Capabilities",
    "ResumingContextFactory",
    "ResumptionInfo",
    "ResumptionSettings",
    "ResumptionStats",
    "resumption_info",
]

_log = Logger(namespace="resumetls")

@attrs.frozen
class ResumptionInfo:
    """
    How one connection was set up.

    @ivar mechanism: C{"ticket"}, C{"session-id"} (a server cache hit: TLS
        1.2 session ID or TLS 1.3 stateful ticket), C{"unknown"} (resumed but
        not through our callbacks) or L{None} for a full handshake.
    """

    resumed: bool
    mechanism: str | None
    version: str | None
    cipher: str | None


@attrs.frozen
class ResumptionStats:
    """
    Counters of one L{ResumingContextFactory}, plus its cache and key ring.
    """

    full_handshakes: int
    resumed_session_id: int
    resumed_ticket_tls12: int
    resumed_ticket_tls13: int
    resumed_unknown: int
    tickets_issued: int
    tickets_renewed: int
    tickets_rejected: int
    sessions_stored: int
    cache_hits: int
    cache_misses: int
    cache_lookups_late: int
    cache_corrupt: int
    cache_errors: int
    callback_errors: int
    cache: Any = None
    keys: Any = None

    @property
    def resumed(self) -> int:
        return (
            self.resumed_session_id
            + self.resumed_ticket_tls12
            + self.resumed_ticket_tls13
            + self.resumed_unknown
        )

    def as_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self, recurse=False)
        for name in ("cache", "keys"):
            value = d[name]
            if value is not None:
                d[name] = (
                    value.as_dict()
                    if hasattr(value, "as_dict")
                    else (attrs.asdict(value) if attrs.has(type(value)) else value)
                )
        d["resumed"] = self.resumed
        return d


class _Counters:
    __slots__ = [
        a.name for a in attrs.fields(ResumptionStats) if a.name not in ("cache", "keys")
    ]

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)


class _ConnectionState:
    """What our callbacks learned about one connection's handshake."""

    __slots__ = ("ticket_opened", "ticket_renew", "cache_hit", "counted", "mechanism")

    def __init__(self) -> None:
        self.ticket_opened = False
        self.ticket_renew = False
        self.cache_hit = False
        self.counted = False
        self.mechanism: str | None = None


_STATE = "_resumetls_state"
_FACTORY = "_resumetls_factory"


def _state(conn: Any) -> _ConnectionState | None:
    if conn is None:
        return None
    state = getattr(conn, _STATE, None)
    if state is None:
        state = _ConnectionState()
        setattr(conn, _STATE, state)
    return state


def session_id_context(
    service: str,
    certificates: list[bytes],
    verify_mode: int,
    client_cas: list[bytes],
) -> bytes:
    """
    The session ID context of a service: a digest of its name, its
    certificate chain and its client verification settings, so a session
    never resumes on a service with other certificates or other client
    authentication (nginx does the same, CVE-2014-3616), and so processes of
    one service agree (Twisted's own is random per process).
    """
    h = hashlib.sha256(b"resumetls session id context v1\0")
    for part in [
        service.encode("utf-8"),
        verify_mode.to_bytes(4, "big"),
        *certificates,
        b"client-cas",
        *client_cas,
    ]:
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()  # 32 bytes: SSL_MAX_SID_CTX_LENGTH


def _der(cert: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    if hasattr(cert, "public_bytes"):
        return cert.public_bytes(Encoding.DER)
    if hasattr(cert, "to_cryptography"):  # pyOpenSSL X509
        return cert.to_cryptography().public_bytes(Encoding.DER)
    if hasattr(cert, "dump"):  # twisted Certificate
        from OpenSSL.crypto import FILETYPE_ASN1

        return cert.dump(FILETYPE_ASN1)
    return repr(cert).encode()


def _client_verification(
    options: Any, verify_mode: int
) -> tuple[list[bytes], str | None]:
    """
    What the client verification of C{options} accepts, as parts of the
    session ID context, and why it cannot be known (L{None} when it can).

    A certificate accepted by one service must never resume on a service
    that would refuse it in a full handshake (resumption skips verification),
    so the accepted CAs go into the context: the DER digests of Twisted's
    C{OpenSSLCertificateAuthorities} (what C{trustRootFromCertificates} and
    C{caCerts=} give; sorted, so their order does not matter), a fixed label
    for OpenSSL's default verify paths (C{platformTrust()}).  When peers are
    verified against CAs we cannot see (another trust root type, a plain
    context factory), a random value makes the context unique to this
    factory: safety over sharing.
    """
    from twisted.internet import _sslverify

    trust = getattr(options, "trustRoot", None)
    if type(trust) is getattr(_sslverify, "OpenSSLCertificateAuthorities", None):
        digests = sorted(hashlib.sha256(_der(c)).digest() for c in trust._caCerts)
        return [b"certificate-authorities", *digests], None
    if type(trust) is getattr(_sslverify, "OpenSSLDefaultPaths", None):
        return [b"openssl-default-verify-paths"], None
    if verify_mode == SSL.VERIFY_NONE:
        return [b"no-client-verification"], None
    if trust is not None:
        why = (
            f"its trust root, a {type(trust).__module__}.{type(trust).__qualname__}, "
            "does not say which client CAs it accepts (use "
            "twisted.internet.ssl.trustRootFromCertificates to share sessions)"
        )
    else:
        why = (
            f"its context factory, a {type(options).__module__}."
            f"{type(options).__qualname__}, verifies client certificates but "
            "does not say which CAs it accepts (wrap a CertificateOptions with "
            "trustRoot=trustRootFromCertificates(...) to share sessions)"
        )
    return [b"unidentified-client-cas", os.urandom(32)], why


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
    @param cache: the L{ISessionCache}; default: an in-memory LRU cache.
    @param clock: an C{IReactorTime} for the default key ring and cache.

    The counters and the mechanism L{resumption_info} reports come from an
    info callback on the context.  OpenSSL calls a connection's own info
    callback I{instead of} the context's: an application that calls
    C{Connection.set_info_callback} on a connection made here (or replaces
    the context's with C{getContext().set_info_callback}) takes those
    handshakes out of the counters, and a resumed one is reported with
    mechanism C{"unknown"} (resumed, version and cipher stay right).
    """

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
        self.key_ring = key_ring
        self.cache = cache
        self._counters = _Counters()
        self._lookup_now = getattr(cache, "lookup_now", None)
        self._store_now = getattr(cache, "store_now", None)
        self._prepare_options(options)
        self._context = options.getContext()
        if getattr(self._context, "_used", False):
            raise ContextAlreadyUsedError(
                "the context of these options has already been used to make a "
                "connection, so it cannot be changed any more; wrap the options "
                "in ResumingContextFactory before listening with them"
            )
        self._certificate_from_context = False
        self.session_id_context = self._compute_sid_ctx()
        self._key_prefix = self.session_id_context[:16]
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
        import re

        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        from twisted.internet.ssl import CertificateOptions

        def read(path: str, what: str) -> bytes:
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError as e:
                raise ValueError(
                    f"cannot read the {what} {path}: {e.strerror}"
                ) from None

        def certificates(path: str, what: str) -> list[Any]:
            data = read(path, what)
            try:
                found = x509.load_pem_x509_certificates(data)
            except ValueError:
                found = []
            if not found:
                raise ValueError(f"{path} does not hold a PEM certificate")
            return found

        leaf_and_chain = certificates(certificate, "certificate")
        extra = certificates(chain, "certificate chain") if chain else []
        key_pem = read(key, "private key")
        block = re.search(
            rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----",
            key_pem,
            re.S,
        )
        try:
            if block is None:
                raise ValueError
            private_key = load_pem_private_key(block.group(0), None)
        except (ValueError, TypeError):
            raise ValueError(
                f"{key} does not hold an unencrypted PEM private key"
            ) from None
        if leaf_and_chain[0].public_key() != private_key.public_key():
            raise ValueError(
                f"the private key {key} does not match the certificate {certificate}"
            )
        options = CertificateOptions(
            privateKey=private_key,
            certificate=leaf_and_chain[0],
            extraCertChain=leaf_and_chain[1:] + extra,
        )
        return cls(options, settings, **kwargs)

    def __repr__(self) -> str:
        c = self._counters
        return (
            f"<ResumingContextFactory service={self.settings.service!r} "
            f"full={c.full_handshakes} resumed={self.stats().resumed}>"
        )

    # -- building the context ---------------------------------------------------

    def _prepare_options(self, options: Any) -> None:
        """
        Tell a C{CertificateOptions} not to turn resumption off before its
        context exists (the fallback path relies on this; with the OpenSSL
        route we set everything on the context anyway).
        """
        if getattr(options, "_context", None) is None:
            if hasattr(options, "enableSessions"):
                options.enableSessions = self.settings.session_ids
            if hasattr(options, "enableSessionTickets"):
                options.enableSessionTickets = self.settings.tickets
                # CertificateOptions turned its tickets flag into
                # OP_NO_TICKET in __init__ already, and pyOpenSSL cannot
                # clear an option: take it out of the options it will set.
                flags = getattr(options, "_options", None)
                if self.settings.tickets and isinstance(flags, int):
                    options._options = flags & ~SSL.OP_NO_TICKET

    def _compute_sid_ctx(self) -> bytes:
        certificates: list[bytes] = []
        cert = getattr(self._options, "certificate", None)
        if cert is not None:
            certificates.append(_der(cert))
            for extra in getattr(self._options, "extraCertChain", None) or []:
                certificates.append(_der(extra))
        else:
            self._certificate_from_context = True
            try:
                der = _openssl.route().certificate_der(self._context)
            except _openssl.OpenSSLRouteUnavailable:
                # _configure falls back to OpenSSL's cache and ticket keys,
                # which belong to this context alone: nothing can cross.
                der = None
            if der:
                certificates.append(der)
        verify_mode = self._context.get_verify_mode()
        accepted, unknown = _client_verification(self._options, verify_mode)
        if unknown is not None:
            _log.warn(
                "the session ID context of service {service!r} is random, so "
                "sessions of this service will not be shared across processes: "
                "{why}, and a session made with a client certificate must never "
                "resume on a service that would refuse that certificate",
                service=self.settings.service,
                why=unknown,
                event="resumetls.sid_context.random",
            )
        accepted.append(b"verify-depth=%d" % self._context.get_verify_depth())
        return session_id_context(
            self.settings.service, certificates, verify_mode, accepted
        )

    def _configure(self) -> Capabilities:
        s = self.settings
        ctx = self._context
        ctx.set_session_id(self.session_id_context)
        ctx.set_timeout(int(s.session_timeout))
        try:
            route = _openssl.route()
            # Every function this configuration calls, checked before the
            # context changes: one missing function means the fallback.
            route.require(
                _openssl.server_functions(
                    tickets=s.tickets,
                    session_cache=s.session_ids,
                    context_certificate=self._certificate_from_context,
                )
            )
        except _openssl.OpenSSLRouteUnavailable as e:
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
        try:
            route.install_server_callbacks(
                ctx, self, tickets=s.tickets, session_cache=s.session_ids
            )
        except _openssl.OpenSSLRouteUnavailable as e:
            # OpenSSL refused a callback: nothing of ours is left installed
            # that the fallback does not replace.
            return self._configure_fallback(str(e))
        return Capabilities(custom_tickets=True, external_cache=True, reason=None)

    def _configure_fallback(self, reason: str) -> Capabilities:
        s = self.settings
        ctx = self._context
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
        if where & _openssl.SSL_CB_HANDSHAKE_DONE:
            self.handshake_done(conn, _openssl.connection_reused(conn), 0)

    # -- IOpenSSLContextFactory / IOpenSSLServerConnectionCreator ----------------

    def getContext(self) -> SSL.Context:
        return self._context

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        if IOpenSSLServerConnectionCreator.providedBy(self._options):
            conn = self._options.serverConnectionForTLS(tlsProtocol)
            if conn.get_context() is not self._context:
                raise ContextAlreadyUsedError(
                    "the wrapped options built a new context; resumption "
                    "settings would be lost"
                )
        else:
            conn = SSL.Connection(self._context, None)
        setattr(conn, _FACTORY, self)
        return conn

    # -- hooks called by the OpenSSL callbacks (keep them cheap) ------------------

    def ticket_encrypt(self, conn: Any) -> Any:
        key = self.key_ring.encrypting_key()
        self._counters.tickets_issued += 1
        return key

    def ticket_decrypt(self, conn: Any, name: bytes) -> Any:
        found = self.key_ring.decrypting_key(name)
        if found is None:
            self._counters.tickets_rejected += 1
            return None
        state = _state(conn)
        if state is not None:
            state.ticket_opened = True
            state.ticket_renew = found[1]
        return found

    def session_new(
        self, conn: Any, session_id: bytes, der: bytes, lifetime: int, version: int
    ) -> None:
        if version == _openssl.TLS1_3_VERSION and self.settings.tickets:
            # Stateless TLS 1.3 tickets carry the session; a cache entry under
            # a session ID no client will ever present would only waste room.
            return
        self._counters.sessions_stored += 1
        key = self._key_prefix + session_id
        lifetime = min(lifetime, int(self.settings.session_timeout))
        if self._store_now is not None:
            self._store_now(key, der, lifetime)
        else:
            d = self.cache.store(key, der, lifetime)
            d.addErrback(self._cache_failed, "store")

    def session_get(self, conn: Any, session_id: bytes) -> bytes | None:
        key = self._key_prefix + session_id
        if self._lookup_now is not None:
            der = self._lookup_now(key)
        else:
            result: list[Any] = []
            d = self.cache.lookup(key)
            d.addCallbacks(
                result.append,
                lambda f: result.append(self._cache_failed(f, "lookup")),
            )
            if not result:
                # A networked cache that has not answered yet: the client gets
                # a full handshake rather than a stalled reactor.
                self._counters.cache_lookups_late += 1
                return None
            der = result[0]
        if der is None:
            self._counters.cache_misses += 1
            return None
        self._counters.cache_hits += 1
        state = _state(conn)
        if state is not None:
            state.cache_hit = True
        return der

    def handshake_done(self, conn: Any, reused: bool, version: int) -> None:
        state = _state(conn)
        if state is not None:
            if state.counted:
                return  # TLS 1.3 servers report "done" again after tickets
            state.counted = True
        c = self._counters
        if not reused:
            c.full_handshakes += 1
            if state is not None and state.ticket_opened:
                c.tickets_rejected += 1  # named a key, but did not open or expired
            return
        if state is not None and state.ticket_opened:
            state.mechanism = "ticket"
            if version == _openssl.TLS1_3_VERSION:
                c.resumed_ticket_tls13 += 1
            else:
                c.resumed_ticket_tls12 += 1
            if state.ticket_renew:
                c.tickets_renewed += 1
        elif state is not None and state.cache_hit:
            state.mechanism = "session-id"
            c.resumed_session_id += 1
        else:
            if state is not None:
                state.mechanism = "unknown"
            c.resumed_unknown += 1

    def session_corrupt(self, conn: Any) -> None:
        state = _state(conn)
        if state is not None:
            state.cache_hit = False
        self._counters.cache_corrupt += 1
        _log.warn(
            "the session cache returned an entry that is not a TLS session; "
            "the client gets a full handshake",
            event="resumetls.cache.corrupt",
        )

    def callback_failed(self, what: str, exc: Any = None, tb: Any = None) -> None:
        from twisted.python.failure import Failure

        self._counters.callback_errors += 1
        failure = Failure(exc, type(exc), tb) if exc is not None else None
        _log.failure(
            "resumetls {what} callback failed; the client gets a full handshake",
            failure=failure,
            what=what,
            event="resumetls.callback.failed",
        )

    def _cache_failed(self, failure: Any, what: str) -> None:
        self._counters.cache_errors += 1
        _log.warn(
            "session cache {what} failed: {error}; the client gets a full handshake",
            what=what,
            error=failure.getErrorMessage(),
            event="resumetls.cache.error",
        )
        return None

    # -- observability -----------------------------------------------------------

    def stats(self) -> ResumptionStats:
        c = self._counters
        return ResumptionStats(
            **{name: getattr(c, name) for name in _Counters.__slots__},
            cache=self.cache.stats() if self.cache is not None else None,
            keys=self.key_ring.describe() if self.key_ring is not None else None,
        )


def _connection(transport: Any) -> SSL.Connection:
    conn = transport
    for _ in range(3):
        if isinstance(conn, SSL.Connection):
            return conn
        get_handle = getattr(conn, "getHandle", None)
        if get_handle is None:
            break
        conn = get_handle()
    raise TypeError(f"{transport!r} is not a TLS connection")


def serving_factory(transport: Any) -> ResumingContextFactory | None:
    """
    The L{ResumingContextFactory} that set up the TLS connection under
    C{transport}, or L{None} when it was another context factory.
    """
    return getattr(_connection(transport), _FACTORY, None)


def resumption_info(transport: Any) -> ResumptionInfo:
    """
    How the TLS connection under C{transport} was set up: resumed or not, by
    which mechanism, TLS version and cipher.

    @param transport: a pyOpenSSL C{Connection}, or a Twisted TLS transport
        (C{request.transport}, C{protocol.transport}, anything whose
        C{getHandle()} is the C{Connection}).
    """
    conn = _connection(transport)
    resumed = _openssl.connection_reused(conn)
    state = getattr(conn, _STATE, None)
    if resumed:
        mechanism = (state.mechanism if state is not None else None) or "unknown"
    else:
        mechanism = None
    return ResumptionInfo(
        resumed=resumed,
        mechanism=mechanism,
        version=conn.get_protocol_version_name(),
        cipher=conn.get_cipher_name(),
    )
