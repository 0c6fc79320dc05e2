"""
Twisted clients that resume: a client connection creator that keeps what
C{optionsForClientTLS} gives (certificate and hostname verification through
service-identity, trust roots, ALPN) and adds a session store, an Agent
policy, and a client endpoint string.

Sessions are saved per server profile and offered again with
C{Connection.set_session}.  TLS 1.3 tickets arrive after the handshake, so
they are captured when they arrive (the info callback's "read server session
ticket" state), each used once (RFC 8446, appendix C.4).  Only handshakes
that completed, that is passed verification, ever store a session.
"""

from __future__ import annotations

import collections
import hashlib
import json
import secrets
import time
import weakref
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from resumetls.client.stores import MemoryClientSessionStore
from resumetls.openssl import binding as _openssl

_log = Logger(namespace="resumetls")

_SSL_CB_LOOP = 0x01
_SSL_CB_HANDSHAKE_DONE = 0x20
_TICKET_STATE = b"read server session ticket"

#: The store creators and policies use when none is given: one for the whole
#: process, so every creator for the same server profile resumes the others'
#: sessions (the profile key keeps every other profile apart).
default_store = MemoryClientSessionStore()

#: RFC 8446, 4.6.1: a client must not keep a ticket longer than 7 days; we
#: apply the same bound to every session.
MAX_LIFETIME = 7 * 24 * 3600
#: OpenSSL's default session timeout, for sessions that do not say theirs.
DEFAULT_LIFETIME = 7200


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


# id(object) -> (reference, token): identities of objects we cannot describe
_identities: dict[int, tuple[Any, str]] = {}


def _identity(value: Any) -> str:
    """
    A random token for this very object, never shared with another object
    (not even an equal one, nor one that later gets the same address), and
    never the same in another process: what we cannot describe is never
    assumed to be the same as anything else.
    """
    entry = _identities.get(id(value))
    if entry is not None and entry[0]() is value:
        return entry[1]
    token = "object:" + secrets.token_hex(16)
    try:
        ref: Any = weakref.ref(value)
        weakref.finalize(value, _identities.pop, id(value), None)
    except TypeError:
        # Not weakly referenceable: keep it alive, so its address is never
        # reused by another object while the token is known.
        ref = (lambda kept: lambda: kept)(value)
    _identities[id(value)] = (ref, token)
    return token


def _certificate_der(value: Any) -> bytes | None:
    """
    The DER of a certificate given as a Twisted C{Certificate} (or
    C{PrivateCertificate}), a pyOpenSSL C{X509} or a cryptography
    certificate; L{None} for anything else.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from OpenSSL import crypto
    from twisted.internet._sslverify import CertBase

    if isinstance(value, CertBase):
        value = value.original
    if isinstance(value, crypto.X509):
        value = value.to_cryptography()
    if isinstance(value, x509.Certificate):
        return value.public_bytes(Encoding.DER)
    return None


def _public_key_der(value: Any) -> bytes | None:
    """
    The public half (SubjectPublicKeyInfo DER) of a key given as a Twisted
    C{KeyPair}, a pyOpenSSL C{PKey} or a cryptography key; L{None} for
    anything else.  The private half never leaves the key object.
    """
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
    )
    from OpenSSL import crypto
    from twisted.internet.ssl import KeyPair

    if isinstance(value, KeyPair):
        value = value.original
    if isinstance(value, crypto.PKey):
        value = value.to_cryptography_key()
    if callable(getattr(value, "private_bytes", None)):
        value = value.public_key()
    if callable(getattr(value, "public_bytes", None)):
        try:
            return value.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        except (TypeError, ValueError):
            return None
    return None


def _trust_id(trust_root: Any) -> str:
    """
    The trust part of a profile key: which certificate authorities verify
    the server.  A session resumed skips verification, so two creators may
    share sessions only when they trust exactly the same authorities.

    The platform's default trust and explicit certificates (a C{Certificate}
    or C{trustRootFromCertificates([...])}) give the same key in every
    process (the file store relies on that); any other C{IOpenSSLTrustRoot}
    cannot be inspected and gets an identity of its own (L{_identity}).
    """
    from twisted.internet._sslverify import (
        OpenSSLCertificateAuthorities,
        OpenSSLDefaultPaths,
    )
    from twisted.internet.ssl import Certificate, PrivateCertificate

    kind = type(trust_root)
    if trust_root is None or kind is OpenSSLDefaultPaths:
        return "platform"
    if kind in (Certificate, PrivateCertificate):
        certificates = [trust_root]
    elif kind is OpenSSLCertificateAuthorities:
        certificates = list(trust_root._caCerts)
    else:
        return _identity(trust_root)
    ders = [_certificate_der(c) for c in certificates]
    if any(der is None for der in ders):
        return _identity(trust_root)
    return "cas:" + _digest("".join(sorted(_digest(d) for d in ders)).encode())


def _client_id(client_certificate: Any) -> str:
    """
    Which client certificate, and which private key, the server sees: the
    digests of the certificate's DER and of the key's public half.  A
    session carries the client identity it was made with, so creators with
    different client certificates never share sessions.
    """
    if client_certificate is None:
        return ""
    der = _certificate_der(client_certificate)
    public = _public_key_der(getattr(client_certificate, "privateKey", None))
    if der is None or public is None:
        return "client:" + _identity(client_certificate)
    return f"client:{_digest(der)}.{_digest(public)}"


def _stable(value: Any) -> str:
    """
    A profile-key part for an extra certificate option that is the same in
    every process (no object addresses) and never holds key material:
    certificates and keys by digest, ciphers and TLS versions by name, and
    anything else by an identity of its own (never shared).
    """
    from constantly import NamedConstant

    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    if isinstance(value, bytes):
        return "bytes:" + _digest(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_stable(v) for v in value) + "]"
    if isinstance(value, NamedConstant):  # TLSVersion
        return f"{type(value).__name__}.{value.name}"
    der = _certificate_der(value)
    if der is not None:
        return "cert:" + _digest(der)
    public = _public_key_der(value)
    if public is not None:
        return "key:" + _digest(public)
    ciphers = getattr(value, "_ciphers", None)  # OpenSSLAcceptableCiphers
    if type(value).__name__ == "OpenSSLAcceptableCiphers" and ciphers is not None:
        return "ciphers:" + ":".join(c.fullName for c in ciphers)
    return _identity(value)


def session_expiry(details: Any, now: float) -> float | None:
    """
    When a session stops being worth offering: its handshake time (the
    session's own time, or C{now}) plus the shortest of the session timeout,
    the ticket lifetime hint and 7 days (RFC 8446, 4.6.1).  A TLS 1.2 hint
    of 0 means "not said" (RFC 5077, 3.3) and is ignored; a TLS 1.3 ticket
    with lifetime 0 must not be kept (RFC 8446, 4.6.1): L{None}.

    @param details: an L{_openssl.SessionDetails}.
    """
    hint = details.ticket_lifetime_hint
    if (
        details.protocol_version == SSL.TLS1_3_VERSION
        and details.has_ticket
        and hint == 0
    ):
        return None
    lifetime = details.timeout or DEFAULT_LIFETIME
    if hint:
        lifetime = min(lifetime, hint)
    lifetime = min(lifetime, MAX_LIFETIME)
    start = now
    if details.time and details.time <= now:
        start = details.time
    return start + lifetime


@implementer(IOpenSSLClientConnectionCreator)
class ResumingClientCreator:
    """
    Like C{optionsForClientTLS(hostname, …)}, but resumes sessions.

    Sessions are kept under a profile key (L{key}) made of everything that
    must match for a session to be offered again: host name, port, SNI, the
    trust roots (digests of the CA certificates), the client certificate and
    private key (digests of the certificate and of the public key), ALPN and
    the extra certificate options.  The key holds digests, never key
    material, and is the same in every process, except for trust roots and
    options that cannot be inspected: those get an identity of their own, so
    they never share sessions with anything else.

    @param port: the server's port: part of the profile sessions are kept
        under (a session is never offered to another host or port).
    @param store: an L{IClientSessionStore}; default: L{default_store}, one
        in memory shared by the process (as for L{ResumingPolicyForHTTPS}).
    """

    def __init__(
        self,
        hostname: str,
        trustRoot: Any = None,
        clientCertificate: Any = None,
        acceptableProtocols: Any = None,
        *,
        port: int | None = None,
        store: Any = None,
        extraCertificateOptions: dict[str, Any] | None = None,
        sendServerName: bool | None = None,
    ) -> None:
        extra = dict(extraCertificateOptions or {})
        extra.setdefault("enableSessionTickets", True)
        self.hostname = hostname
        self._inner = optionsForClientTLS(
            hostname,
            trustRoot,
            clientCertificate,
            acceptableProtocols,
            # a copy: optionsForClientTLS adds the client certificate to it
            extraCertificateOptions=dict(extra),
            sendServerName=sendServerName,
        )
        self.store = store if store is not None else default_store
        self.key = "|".join(
            [
                hostname.lower(),
                str(port if port is not None else ""),
                "sni" if sendServerName is not False else "nosni",
                _trust_id(trustRoot),
                _client_id(clientCertificate),
                json.dumps([p.decode("latin-1") for p in acceptableProtocols or ()]),
                ",".join(f"{k}={_stable(v)}" for k, v in sorted(extra.items())),
            ]
        )
        self.offered = 0
        self.resumed = 0
        self.saved = 0
        self._pin_session_id_context()

    def _pin_session_id_context(self) -> None:
        """
        Twisted gives every context a random session ID context, and OpenSSL
        refuses to resume a session made under another one ("attempt to
        reuse session in different context"): a session saved by an earlier
        process would never resume.  Derive it from the server profile.
        """
        options = getattr(self._inner._createConnection, "__self__", None)
        if options is None or not hasattr(options, "getContext"):
            return
        context = options.getContext()
        if not getattr(context, "_used", False):
            context.set_session_id(hashlib.sha256(self.key.encode()).digest())

    def __repr__(self) -> str:
        return (
            f"<ResumingClientCreator {self.hostname} offered={self.offered} "
            f"resumed={self.resumed}>"
        )

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        conn = self._inner.clientConnectionForTLS(tlsProtocol)
        try:
            der = self.store.take(self.key, time.time())
        except Exception:  # noqa: BLE001 - a broken store costs a full handshake
            _log.failure(
                "the TLS session store failed for {host}; full handshake",
                host=self.hostname,
                event="resumetls.client.store_failed",
            )
            der = None
        if der is not None:
            try:
                conn.set_session(_openssl.session_from_der(der, conn.get_context()))
                self.offered += 1
            except (ValueError, SSL.Error):
                _log.warn(
                    "a stored TLS session for {host} could not be used",
                    host=self.hostname,
                    event="resumetls.client.bad_session",
                )
        conn.set_info_callback(self._info)
        return conn

    def _info(self, conn: SSL.Connection, where: int, ret: int) -> None:
        try:
            if where & _SSL_CB_HANDSHAKE_DONE:
                if _openssl.connection_reused(conn) and not getattr(
                    conn, "_resumetls_counted", False
                ):
                    conn._resumetls_counted = True
                    self.resumed += 1
                if conn.get_protocol_version_name() != "TLSv1.3":
                    self._save(conn, single_use=False)
            elif where & _SSL_CB_LOOP and _TICKET_STATE in conn.get_state_string():
                if conn.get_protocol_version_name() == "TLSv1.3":
                    self._save(conn, single_use=True)
        except Exception:  # noqa: BLE001 - never raise into OpenSSL
            _log.failure(
                "saving a TLS session for {host} failed",
                host=self.hostname,
                event="resumetls.client.save_failed",
            )

    def _verified(self, conn: SSL.Connection) -> bool:
        """
        Check the server's identity again before keeping a session: Twisted
        lets some certificate errors pass with only a log message (a
        certificate without subjectAltName, for one).
        """
        from service_identity import VerificationError
        from service_identity.exceptions import CertificateError
        from service_identity.pyopenssl import verify_hostname, verify_ip_address
        from twisted.internet.abstract import isIPAddress, isIPv6Address

        try:
            if isIPAddress(self.hostname) or isIPv6Address(self.hostname):
                verify_ip_address(conn, self.hostname)
            else:
                verify_hostname(conn, self.hostname)
        except (VerificationError, CertificateError, ValueError):
            return False
        return True

    def _save(self, conn: SSL.Connection, single_use: bool) -> None:
        session = conn.get_session()
        if session is None or not self._verified(conn):
            return
        details = _openssl.session_details(session)
        if details.resumable is False:
            return
        expires = session_expiry(details, time.time())
        if expires is None:
            return
        self.store.put(self.key, _openssl.session_to_der(session), expires, single_use)
        self.saved += 1


@implementer(IPolicyForHTTPS)
class ResumingPolicyForHTTPS:
    """
    An C{IPolicyForHTTPS} for C{twisted.web.client.Agent} (and treq) whose
    connections resume, like C{BrowserLikePolicyForHTTPS} otherwise.  It keeps
    one creator per (host, port): sessions belong to the context that made
    them.

    @param store: an L{IClientSessionStore}; default: L{default_store}, the
        one L{ResumingClientCreator} uses too.
    """

    def __init__(
        self, trustRoot: Any = None, store: Any = None, max_servers: int = 1000
    ):
        self._trustRoot = trustRoot
        self.store = store if store is not None else default_store
        self._creators: collections.OrderedDict = collections.OrderedDict()
        self._max = max_servers

    def creatorForNetloc(self, hostname: bytes, port: int) -> ResumingClientCreator:  # noqa: N802
        key = (hostname, port)
        creator = self._creators.get(key)
        if creator is None:
            creator = ResumingClientCreator(
                hostname.decode("ascii"),
                self._trustRoot,
                port=port,
                store=self.store,
            )
            self._creators[key] = creator
            while len(self._creators) > self._max:
                self._creators.popitem(last=False)
        else:
            self._creators.move_to_end(key)
        return creator
