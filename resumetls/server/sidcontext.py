"""
The session ID context of a service: which sessions it may resume.

OpenSSL resumes a session only on a context with the same session ID
context.  Ours is a digest of the service name, the certificate chain and
the client verification settings, so a session never resumes on a service
with other certificates or other client authentication (nginx does the same,
CVE-2014-3616), and so processes of one service agree (Twisted's own is
random per process, which is why plain Twisted cannot share sessions).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import attrs
from OpenSSL import SSL
from twisted.logger import Logger

from resumetls import certificates
from resumetls.openssl import symbols
from resumetls.openssl.errors import OpenSSLRouteUnavailable

__all__ = ["SessionIDContext", "compute", "session_id_context"]

_log = Logger(namespace="resumetls")


def session_id_context(
    service: str,
    certificates: list[bytes],
    verify_mode: int,
    client_cas: list[bytes],
) -> bytes:
    """
    The session ID context from its parts: a digest of the service name,
    the DER certificates, the verify mode and what identifies the accepted
    client CAs.  32 bytes, OpenSSL's C{SSL_MAX_SID_CTX_LENGTH}.
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
    return h.digest()


def _der(cert: Any) -> bytes:
    # An object that is no certificate we know is hashed by its repr, as
    # before certificates.py: the context then differs from every real one.
    der = certificates.certificate_der(cert)
    return der if der is not None else repr(cert).encode()


def _client_verification(
    options: Any, verify_mode: int
) -> tuple[list[bytes], str | None]:
    """
    What the client verification of C{options} accepts, as parts of the
    session ID context, and why it cannot be known (L{None} when it can).

    A certificate accepted by one service must never resume on a service
    that would refuse it in a full handshake (resumption skips verification),
    so the accepted CAs go into the context, as
    L{resumetls.certificates.trust_root_identity} gives them: the sorted DER
    digests of Twisted's C{OpenSSLCertificateAuthorities} (what
    C{trustRootFromCertificates} and C{caCerts=} give), a fixed label for
    OpenSSL's default verify paths (C{platformTrust()}).  When peers are
    verified against CAs we cannot see (another trust root type, a plain
    context factory), a random value makes the context unique to this
    factory: safety over sharing.
    """
    trust = getattr(options, "trustRoot", None)
    identity = certificates.trust_root_identity(trust)
    if identity is not None:
        return identity.parts(), None
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


@attrs.frozen
class SessionIDContext:
    """
    The session ID context of a service, and where its certificate came from.

    @ivar value: the 32-byte context.
    @ivar certificate_from_context: L{True} when the wrapped options did not
        say which certificate they serve, so it was read from the built
        C{Context} (through the OpenSSL route, which then needs
        L{resumetls.openssl.functions.CONTEXT_CERTIFICATE}).
    """

    value: bytes = attrs.field(repr=False)
    certificate_from_context: bool


def compute(options: Any, context: SSL.Context, service: str) -> SessionIDContext:
    """
    The session ID context of C{service}, served with C{options} (an
    C{IOpenSSLContextFactory}, typically a C{CertificateOptions}) whose built
    C{context} is given.  Logs C{resumetls.sid_context.random} when the
    accepted client CAs cannot be known and the context is made random.
    """
    certificates: list[bytes] = []
    from_context = False
    cert = getattr(options, "certificate", None)
    if cert is not None:
        certificates.append(_der(cert))
        for extra in getattr(options, "extraCertChain", None) or []:
            certificates.append(_der(extra))
    else:
        from_context = True
        try:
            der = symbols.route().certificate_der(context)
        except OpenSSLRouteUnavailable:
            # The factory falls back to OpenSSL's cache and ticket keys,
            # which belong to this context alone: nothing can cross.
            der = None
        if der:
            certificates.append(der)
    verify_mode = context.get_verify_mode()
    accepted, unknown = _client_verification(options, verify_mode)
    if unknown is not None:
        _log.warn(
            "the session ID context of service {service!r} is random, so "
            "sessions of this service will not be shared across processes: "
            "{why}, and a session made with a client certificate must never "
            "resume on a service that would refuse that certificate",
            service=service,
            why=unknown,
            event="resumetls.sid_context.random",
        )
    accepted.append(b"verify-depth=%d" % context.get_verify_depth())
    return SessionIDContext(
        value=session_id_context(service, certificates, verify_mode, accepted),
        certificate_from_context=from_context,
    )
