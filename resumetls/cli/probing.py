"""
The probing behind C{resumetls probe}: real handshakes against a server, per
mechanism (TLS 1.2 session IDs, TLS 1.2 tickets, TLS 1.3 tickets), and what
they showed (L{Outcome}): whether a second connection resumes, the ticket
lifetime hint, whether tickets are renewed on resumption, and the median
handshake time full vs resumed.  A server that cannot be probed is one
L{ProbeError} with a one-line message.
"""

from __future__ import annotations

import os
import select
import socket
import statistics
import time
from typing import Any

import attrs
from OpenSSL import SSL

from resumetls.client.capture import server_verified, ticket_arrived
from resumetls.openssl.sessions import connection_reused, session_details

#: Tickets up to this size are cache keys, not encrypted sessions.
STATEFUL_MAX = 64


class ProbeError(Exception):
    """The server cannot be probed; the message is one line."""


@attrs.define
class Outcome:
    mechanism: str
    version: str
    offered: bool = True
    resumes: bool = False
    resumed: int = 0
    attempts: int = 0
    lifetime_hint: int | None = None
    renewed: bool | None = None
    full_ms: float | None = None
    resumed_ms: float | None = None
    note: str = ""
    #: why the first handshake failed, when it did (not reported)
    failure: Any = attrs.field(default=None, repr=False, eq=False)


@attrs.define
class _Handshake:
    reused: bool
    version: str
    seconds: float
    session: Any
    tickets: int


def _wait(sock: socket.socket, deadline: float, write: bool = False) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    r, w, _ = select.select(
        [] if write else [sock], [sock] if write else [], [], remaining
    )
    if not r and not w:
        raise TimeoutError


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as e:
        raise ProbeError(f"cannot resolve {host}: {e.strerror}") from None
    except TimeoutError:
        raise ProbeError(f"{host}:{port}: no answer within {timeout:g} s") from None
    except (ConnectionResetError, ConnectionAbortedError):
        # Accepted, then reset before connect() returned: as if during the
        # handshake (the server may refuse only some kinds of handshake).
        raise _Refused("connection reset", "reset") from None
    except OSError as e:
        raise ProbeError(f"cannot connect to {host}:{port}: {e.strerror}") from None
    sock.setblocking(False)
    return sock


def _check_name(conn: SSL.Connection, name: str, host: str, port: int) -> None:
    """Refuse a certificate that is not valid for C{name} (SNI or HOST)."""
    if not server_verified(conn, name):
        raise ProbeError(
            f"{host}:{port}: the certificate is not valid for {name}; use "
            "--servername NAME for the name it was issued to, or --insecure to "
            "probe anyway"
        )


def _handshake(
    host: str,
    port: int,
    context: SSL.Context,
    sni: str,
    session: Any,
    timeout: float,
    check_name: bool = False,
) -> _Handshake:
    sock = _connect(host, port, timeout)
    conn = SSL.Connection(context, sock)
    conn.set_connect_state()
    if sni:
        conn.set_tlsext_host_name(sni.encode("idna"))
    if session is not None:
        conn.set_session(session)
    tickets = [0]

    def info(c: Any, where: int, ret: int) -> None:
        if ticket_arrived(c, where):
            tickets[0] += 1

    conn.set_info_callback(info)
    deadline = time.monotonic() + timeout
    start = time.perf_counter()
    try:
        while True:
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                _wait(sock, deadline)
            except SSL.WantWriteError:
                _wait(sock, deadline, write=True)
        elapsed = time.perf_counter() - start
        if check_name:
            _check_name(conn, sni or host, host, port)
        if conn.get_protocol_version() == SSL.TLS1_3_VERSION:
            _await_tickets(conn, sock, tickets)
        result = _Handshake(
            reused=connection_reused(conn),
            version=conn.get_protocol_version_name(),
            seconds=elapsed,
            session=conn.get_session(),
            tickets=tickets[0],
        )
    except TimeoutError:
        raise ProbeError(
            f"{host}:{port}: TLS handshake timed out after {timeout:g} s"
        ) from None
    except SSL.SysCallError as e:
        raise _refused(e) from None
    except SSL.Error as e:
        text = _reason(e)
        if "unexpected eof" in text:
            raise _Refused("connection closed", "closed") from None
        if (
            "wrong version number" in text
            or "packet length too long" in text
            or "record layer failure" in text
        ):
            raise ProbeError(f"{host}:{port} does not speak TLS ({text})") from None
        if "certificate verify failed" in text:
            raise ProbeError(
                f"{host}:{port}: certificate verification failed (use --cafile FILE "
                "for a private CA, or --insecure for a self-signed server)"
            ) from None
        raise _Refused(text, "alert" if "alert" in text else "other") from None
    finally:
        try:
            conn.shutdown()
        except SSL.Error:
            pass
        sock.close()
    return result


#: Seconds to wait for TLS 1.3 tickets when none comes and the server does
#: not answer close_notify; and of quiet after a ticket before no more are
#: expected (a server sends its tickets back to back).
TICKET_WAIT, TICKET_QUIET = 0.3, 0.02


def _await_tickets(conn: SSL.Connection, sock: socket.socket, tickets: list) -> None:
    """
    Let a TLS 1.3 server's tickets arrive (they follow the handshake; TLS
    1.2 tickets are part of it).  Our close_notify goes first, so a server
    that answers it ends the wait at once; else it ends L{TICKET_QUIET}
    after the last ticket, or after L{TICKET_WAIT} when none comes.
    """
    try:
        conn.shutdown()
    except SSL.Error:
        pass
    end = time.monotonic() + TICKET_WAIT
    while True:
        try:
            conn.recv(4096)
            continue
        except SSL.WantReadError:
            pass
        except SSL.Error:  # the server's close_notify, a reset, an alert
            return
        deadline = min(end, time.monotonic() + TICKET_QUIET) if tickets[0] else end
        try:
            _wait(sock, deadline)
        except TimeoutError:
            return


def _reason(e: SSL.Error) -> str:
    """The readable part of a pyOpenSSL error."""
    try:
        return "; ".join(str(item[-1]) for item in e.args[0]) or str(e)
    except (IndexError, TypeError):
        return str(e)


class _Refused(Exception):
    """
    This kind of handshake was refused (e.g. a TLS version not offered).

    @ivar reason: what happened, for the table's note.
    @ivar kind: C{"closed"} (the connection ended), C{"reset"}, C{"alert"}
        (the server refused with a TLS alert) or C{"other"}.
    """

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def _refused(e: SSL.SysCallError) -> _Refused:
    """A socket-level failure during the handshake: closed or reset."""
    import errno

    code = e.args[0] if e.args else None
    if code in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
        return _Refused("connection reset", "reset")
    if code in (-1, 0, None):
        return _Refused("connection closed", "closed")
    return _Refused(os.strerror(code) if isinstance(code, int) else str(e), "other")


def _nothing_works(host: str, port: int, failures: list[_Refused]) -> ProbeError:
    """
    The one line for a server where no first handshake succeeded in any
    mode: most likely not a TLS port at all.
    """
    kinds = {f.kind for f in failures}
    if kinds <= {"closed", "reset"}:
        verb = "closed" if "closed" in kinds else "reset"
        return ProbeError(
            f"{host}:{port} {verb} the connection during the TLS handshake "
            "(is it a TLS port?)"
        )
    alerts = [f for f in failures if f.kind == "alert"]
    if alerts:
        return ProbeError(
            f"{host}:{port} refused every TLS 1.2 and TLS 1.3 handshake "
            f"({alerts[0].reason})"
        )
    other = [f for f in failures if f.kind == "other"][0]
    return ProbeError(f"{host}:{port} does not speak TLS ({other.reason})")


def _context(
    version: int, tickets: bool, insecure: bool, cafile: str | None
) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(version)
    ctx.set_max_proto_version(version)
    if not tickets:
        ctx.set_options(SSL.OP_NO_TICKET)
    if insecure:
        ctx.set_verify(SSL.VERIFY_NONE, lambda *a: True)
    else:
        ctx.set_verify(SSL.VERIFY_PEER, lambda conn, cert, err, depth, ok: bool(ok))
        if cafile:
            ctx.load_verify_locations(cafile)
        else:
            ctx.set_default_verify_paths()
    return ctx


def _ticket(session: Any) -> bytes | None:
    return session_details(session).ticket if session is not None else None


def probe_mechanism(
    host: str,
    port: int,
    sni: str,
    mechanism: str,
    version: int,
    count: int,
    insecure: bool,
    cafile: str | None,
    timeout: float,
) -> Outcome:
    name = "TLSv1.3" if version == SSL.TLS1_3_VERSION else "TLSv1.2"
    outcome = Outcome(mechanism=mechanism, version=name)
    ctx = _context(version, mechanism != "session ID", insecure, cafile)
    full_times, resumed_times = [], []
    try:
        first = _handshake(host, port, ctx, sni, None, timeout, not insecure)
    except _Refused as e:
        outcome.offered = False
        outcome.note = f"not offered ({e.reason})"
        outcome.failure = e
        return outcome
    full_times.append(first.seconds)
    for _ in range(count - 1):
        try:
            full_times.append(_handshake(host, port, ctx, sni, None, timeout).seconds)
        except _Refused as e:
            outcome.note = f"a later full handshake failed ({e.reason})"
            break
    details = session_details(first.session)
    if mechanism != "session ID":
        if not details.has_ticket:
            outcome.note = "no ticket issued"
            outcome.full_ms = statistics.median(full_times) * 1e3
            return outcome
        outcome.lifetime_hint = details.ticket_lifetime_hint
        if details.ticket is not None and len(details.ticket) <= STATEFUL_MAX:
            # A ticket this short cannot carry a session: it is a key into
            # the server's cache (OpenSSL sends its 32-byte session ID).
            outcome.mechanism = "stateful ticket"
            outcome.note = "TLS 1.3 ticket is a server cache key (no stateless tickets)"
    session = first.session
    renewals = 0
    for _ in range(count):
        offered_ticket = _ticket(session)
        try:
            h = _handshake(host, port, ctx, sni, session, timeout)
        except _Refused as e:
            outcome.note = f"resumption failed ({e.reason})"
            break
        outcome.attempts += 1
        if h.reused:
            outcome.resumed += 1
            resumed_times.append(h.seconds)
            new_ticket = _ticket(h.session)
            if mechanism != "session ID" and (
                h.tickets > 0
                and new_ticket is not None
                and new_ticket != offered_ticket
            ):
                renewals += 1
        # TLS 1.3 tickets are single use: present the newest one next time.
        if version == SSL.TLS1_3_VERSION or h.reused is False:
            session = h.session
    outcome.resumes = outcome.resumed > 0
    if mechanism != "session ID" and outcome.resumed:
        outcome.renewed = renewals > 0
    outcome.full_ms = statistics.median(full_times) * 1e3
    if resumed_times:
        outcome.resumed_ms = statistics.median(resumed_times) * 1e3
    return outcome


PLAN = (
    ("session ID", SSL.TLS1_2_VERSION),
    ("session ticket", SSL.TLS1_2_VERSION),
    ("session ticket", SSL.TLS1_3_VERSION),
)


def label(mechanism: str, version: int) -> str:
    """A plan entry in words, e.g. C{session ticket (TLS 1.3)}."""
    return f"{mechanism} ({'TLS 1.3' if version == SSL.TLS1_3_VERSION else 'TLS 1.2'})"


def run_probe(
    host, port, sni, count, insecure, cafile, timeout, progress
) -> list[Outcome]:
    """
    Probe every mechanism of L{PLAN} in turn.

    @param progress: called with a mechanism's L{label} before it is
        probed and with its L{Outcome} after (C{progress(label, None)}, then
        C{progress(label, outcome)}).
    """
    results = []
    for mechanism, version in PLAN:
        name = label(mechanism, version)
        progress(name, None)
        outcome = probe_mechanism(
            host, port, sni, mechanism, version, count, insecure, cafile, timeout
        )
        results.append(outcome)
        progress(name, outcome)
    if not any(r.offered for r in results):
        raise _nothing_works(host, port, [r.failure for r in results])
    return results


def tickets_work(results: list[Outcome]) -> bool:
    """Whether stateless session tickets resume (in any TLS version)."""
    return any(r.resumes for r in results if r.mechanism == "session ticket")
