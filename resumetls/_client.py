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
import time
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from resumetls import _openssl
from resumetls._clientstore import MemoryClientSessionStore

_log = Logger(namespace="resumetls")

_SSL_CB_LOOP = 0x01
_SSL_CB_HANDSHAKE_DONE = 0x20
_TICKET_STATE = b"read server session ticket"

#: The store creators use when none is given: shared by the process.
default_store = MemoryClientSessionStore()


def _trust_id(trust_root: Any) -> str:
    if trust_root is None:
        return "platform"
    dump = getattr(trust_root, "dump", None)
    if callable(dump):
        from OpenSSL.crypto import FILETYPE_ASN1

        return "cert:" + hashlib.sha256(dump(FILETYPE_ASN1)).hexdigest()[:16]
    return type(trust_root).__name__


def _stable(value: Any) -> str:
    """
    A profile-key part for an extra certificate option that is the same in
    every process (no object addresses) and never holds key material.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_stable(v) for v in value) + "]"
    name = getattr(value, "name", None)  # TLSVersion and other constants
    if isinstance(name, str):
        return f"{type(value).__name__}.{name}"
    return type(value).__name__


@implementer(IOpenSSLClientConnectionCreator)
class ResumingClientCreator:
    """
    Like C{optionsForClientTLS(hostname, …)}, but resumes sessions.

    @param port: the server's port: part of the profile sessions are kept
        under (a session is never offered to another host or port).
    @param store: an L{IClientSessionStore}; default: one in memory, shared
        by the process.
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
            extraCertificateOptions=extra,
            sendServerName=sendServerName,
        )
        self.store = store if store is not None else default_store
        self.key = "|".join(
            [
                hostname.lower(),
                str(port if port is not None else ""),
                "sni" if sendServerName is not False else "nosni",
                _trust_id(trustRoot),
                "client-cert" if clientCertificate is not None else "",
                ",".join(
                    p.decode("ascii", "replace") for p in acceptableProtocols or ()
                ),
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
        der = self.store.take(self.key, time.time())
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
        now = time.time()
        lifetime = details.timeout or 7200
        if details.ticket_lifetime_hint:
            lifetime = min(lifetime, details.ticket_lifetime_hint)
        self.store.put(
            self.key, _openssl.session_to_der(session), now + lifetime, single_use
        )
        self.saved += 1


@implementer(IPolicyForHTTPS)
class ResumingPolicyForHTTPS:
    """
    An C{IPolicyForHTTPS} for C{twisted.web.client.Agent} (and treq) whose
    connections resume, like C{BrowserLikePolicyForHTTPS} otherwise.  It keeps
    one creator per (host, port): sessions belong to the context that made
    them.
    """

    def __init__(
        self, trustRoot: Any = None, store: Any = None, max_servers: int = 1000
    ):
        self._trustRoot = trustRoot
        self.store = store if store is not None else MemoryClientSessionStore()
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
