"""
A Twisted client connection creator that resumes: it keeps what
C{optionsForClientTLS} gives (certificate and hostname verification through
service-identity, trust roots, ALPN) and adds a session store.

Sessions are saved under the server's profile key (L{profile}) and offered
again with C{Connection.set_session}; they are caught when they become
resumable (L{capture}).  Only handshakes that completed, that is passed
verification, ever store a session.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from zope.interface import implementer

from resumetls.client.capture import keepable_session, ticket_arrived
from resumetls.client.memorystore import MemoryClientSessionStore
from resumetls.client.profile import profile_key
from resumetls.openssl import compat
from resumetls.openssl.functions import SSL_CB_HANDSHAKE_DONE
from resumetls.openssl.sessions import connection_reused, session_from_der

_log = Logger(namespace="resumetls")

#: The store creators and policies use when none is given: one for the whole
#: process, so every creator for the same server profile resumes the others'
#: sessions (the profile key keeps every other profile apart).
default_store = MemoryClientSessionStore()


@implementer(IOpenSSLClientConnectionCreator)
class ResumingClientCreator:
    """
    Like C{optionsForClientTLS(hostname, …)}, but resumes sessions.

    Sessions are kept under a profile key (L{key}, see
    L{resumetls.client.profile}) made of everything that must match for a
    session to be offered again: host name, port, SNI, the trust roots
    (digests of the CA certificates), the client certificate and private key
    (digests of the certificate and of the public key), ALPN and the extra
    certificate options.  The key holds digests, never key material, and is
    the same in every process, except for trust roots and options that
    cannot be inspected: those get an identity of their own, so they never
    share sessions with anything else.

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
        self.key = profile_key(
            hostname,
            port,
            sendServerName,
            trustRoot,
            clientCertificate,
            acceptableProtocols,
            extra,
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
        options = compat.client_certificate_options(self._inner)
        if options is None or not hasattr(options, "getContext"):
            return
        context = options.getContext()
        if not compat.context_used(context):
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
                conn.set_session(session_from_der(der, conn.get_context()))
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
            if where & SSL_CB_HANDSHAKE_DONE:
                if connection_reused(conn) and not getattr(
                    conn, "_resumetls_counted", False
                ):
                    conn._resumetls_counted = True
                    self.resumed += 1
                if conn.get_protocol_version_name() != "TLSv1.3":
                    self._save(conn, single_use=False)
            elif ticket_arrived(conn, where):
                if conn.get_protocol_version_name() == "TLSv1.3":
                    self._save(conn, single_use=True)
        except Exception:  # noqa: BLE001 - never raise into OpenSSL
            _log.failure(
                "saving a TLS session for {host} failed",
                host=self.hostname,
                event="resumetls.client.save_failed",
            )

    def _save(self, conn: SSL.Connection, single_use: bool) -> None:
        kept = keepable_session(conn, self.hostname, time.time())
        if kept is None:
            return
        der, expires = kept
        self.store.put(self.key, der, expires, single_use)
        self.saved += 1
