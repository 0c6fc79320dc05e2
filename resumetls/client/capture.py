"""
Catching a client's sessions when they become resumable, and judging how
long they are worth keeping.

A TLS 1.2 session is resumable when the handshake is done.  A TLS 1.3
session captured then is not: its tickets arrive after the handshake, each
in its own NewSessionTicket message, which OpenSSL reports to the info
callback as the "read server session ticket" state (L{ticket_arrived}); each
ticket is used once (RFC 8446, appendix C.4).  Only a session whose server
passed verification is ever worth keeping (L{server_verified}).
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL

from resumetls.openssl.functions import SSL_CB_LOOP, TICKET_STATE
from resumetls.openssl.sessions import session_details, session_to_der

#: RFC 8446, 4.6.1: a client must not keep a ticket longer than 7 days; we
#: apply the same bound to every session.
MAX_LIFETIME = 7 * 24 * 3600
#: OpenSSL's default session timeout, for sessions that do not say theirs.
DEFAULT_LIFETIME = 7200


def ticket_arrived(conn: SSL.Connection, where: int) -> bool:
    """
    Whether an info callback call (C{where}) reports a session ticket just
    read from the server (TLS 1.2 during the handshake, TLS 1.3 after it).
    """
    return bool(where & SSL_CB_LOOP) and TICKET_STATE in conn.get_state_string()


def server_verified(conn: SSL.Connection, hostname: str) -> bool:
    """
    Whether the server's certificate is valid for C{hostname} (a DNS name
    or an IP address), checked with service-identity.  Twisted lets some
    certificate errors pass with only a log message (a certificate without
    subjectAltName, for one), so a session is judged again before it is
    kept.
    """
    from service_identity import VerificationError
    from service_identity.exceptions import CertificateError
    from service_identity.pyopenssl import verify_hostname, verify_ip_address
    from twisted.internet.abstract import isIPAddress, isIPv6Address

    try:
        if isIPAddress(hostname) or isIPv6Address(hostname):
            verify_ip_address(conn, hostname)
        else:
            verify_hostname(conn, hostname)
    except (VerificationError, CertificateError, ValueError):
        return False
    return True


def session_expiry(details: Any, now: float) -> float | None:
    """
    When a session stops being worth offering: its handshake time (the
    session's own time, or C{now}) plus the shortest of the session timeout,
    the ticket lifetime hint and 7 days (RFC 8446, 4.6.1).  A TLS 1.2 hint
    of 0 means "not said" (RFC 5077, 3.3) and is ignored; a TLS 1.3 ticket
    with lifetime 0 must not be kept (RFC 8446, 4.6.1): L{None}.

    @param details: a L{resumetls.openssl.sessions.SessionDetails}.
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


def keepable_session(
    conn: SSL.Connection, hostname: str, now: float
) -> tuple[bytes, float] | None:
    """
    The connection's current session as DER and the time it expires, or
    L{None} when it is not worth keeping: no session, a server not verified
    for C{hostname}, a session OpenSSL says is not resumable, or one that
    must not be kept at all (L{session_expiry}).
    """
    session = conn.get_session()
    if session is None or not server_verified(conn, hostname):
        return None
    details = session_details(session)
    if details.resumable is False:
        return None
    expires = session_expiry(details, now)
    if expires is None:
        return None
    return session_to_der(session), expires
