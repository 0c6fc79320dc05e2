"""
What a resuming server reports: its counters (L{ResumptionStats}), how one
connection was set up (L{ResumptionInfo}, L{resumption_info}), which context
factory served it (L{serving_factory}), and the one vocabulary for the
mechanism that resumed a connection, used by the API, the demo page and its
JSON, the metrics and the examples.

The handshake hooks (L{resumetls.server.hooks}) write what this module
reads: they count into a L{Counters} and keep a L{ConnectionState} on each
pyOpenSSL C{Connection}.  OpenSSL is imported on use only, so the vocabulary
and the values cost nothing to import (the metrics option parser uses them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from OpenSSL import SSL

    from resumetls.server.factory import ResumingContextFactory

__all__ = [
    "HANDSHAKE_KINDS",
    "MECHANISMS",
    "SESSION_ID",
    "TICKET_TLS12",
    "TICKET_TLS13",
    "UNKNOWN",
    "ConnectionState",
    "Counters",
    "ResumptionInfo",
    "ResumptionStats",
    "connection_state",
    "describe_mechanism",
    "mark_served",
    "resumption_info",
    "serving_factory",
]

# -- the mechanism of a resumed connection: one vocabulary ----------------------
# These are also the `kind` label values of resumetls_handshakes_total.

#: A server cache hit: a TLS 1.2 session ID or a TLS 1.3 stateful ticket.
SESSION_ID = "session_id"
#: A TLS 1.2 (RFC 5077) session ticket opened with one of our keys.
TICKET_TLS12 = "ticket_tls12"
#: A TLS 1.3 stateless ticket (PSK) opened with one of our keys.
TICKET_TLS13 = "ticket_tls13"
#: Resumed, but not through our callbacks (OpenSSL's built-in cache or
#: tickets in the fallback, or an application's own info callback).
UNKNOWN = "unknown"

#: Each mechanism in words, for people (demo page, status JSON, examples).
MECHANISMS = {
    SESSION_ID: "session ID (server cache)",
    TICKET_TLS12: "TLS 1.2 session ticket",
    TICKET_TLS13: "TLS 1.3 session ticket",
    UNKNOWN: "unknown mechanism",
}

#: Handshakes by kind: (C{kind} label of C{resumetls_handshakes_total}, the
#: L{ResumptionStats} field counting them).  A resumed kind's label is its
#: mechanism, except L{UNKNOWN}, whose label stays C{"other"} (published
#: before this vocabulary; dashboards use it).
HANDSHAKE_KINDS = (
    ("full", "full_handshakes"),
    (SESSION_ID, "resumed_session_id"),
    (TICKET_TLS12, "resumed_ticket_tls12"),
    (TICKET_TLS13, "resumed_ticket_tls13"),
    ("other", "resumed_unknown"),
)


def describe_mechanism(mechanism: str | None) -> str:
    """
    A mechanism (L{ResumptionInfo.mechanism}) in words; L{None}, a full
    handshake, is C{"full handshake"}.
    """
    if mechanism is None:
        return "full handshake"
    return MECHANISMS.get(mechanism, mechanism)


@attrs.frozen
class ResumptionInfo:
    """
    How one connection was set up.

    @ivar mechanism: L{None} for a full handshake, else one of
        C{"session_id"} (a server cache hit: TLS 1.2 session ID or TLS 1.3
        stateful ticket), C{"ticket_tls12"}, C{"ticket_tls13"} or
        C{"unknown"} (resumed, but not through our callbacks); see
        L{describe_mechanism} for words.
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
    # Connections the TLS layer (resumetls.server.protocol) ended: no
    # handshake within the timeout, over the bound of connections in the
    # handshake, plain HTTP sent to the TLS port.
    handshake_timeouts: int = 0
    handshakes_refused: int = 0
    plain_http: int = 0
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


class Counters:
    """The running counts behind L{ResumptionStats}: one slot per field."""

    __slots__ = [
        a.name for a in attrs.fields(ResumptionStats) if a.name not in ("cache", "keys")
    ]

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def snapshot(self, cache: Any = None, keys: Any = None) -> ResumptionStats:
        """The counts now, with the cache's and key ring's figures."""
        return ResumptionStats(
            **{name: getattr(self, name) for name in self.__slots__},
            cache=cache,
            keys=keys,
        )


class ConnectionState:
    """What the handshake hooks learned about one connection's handshake."""

    __slots__ = (
        "ticket_opened",
        "ticket_renew",
        "ticket_rejected",
        "cache_hit",
        "counted",
        "mechanism",
    )

    def __init__(self) -> None:
        self.ticket_opened = False
        # Counted in tickets_rejected already: once a connection, however
        # many ClientHellos (HelloRetryRequest) or PSK identities it sends.
        self.ticket_rejected = False
        self.ticket_renew = False
        self.cache_hit = False
        self.counted = False
        self.mechanism: str | None = None


# Our own attributes on pyOpenSSL Connection objects.
_STATE = "_resumetls_state"
_FACTORY = "_resumetls_factory"


def connection_state(conn: Any) -> ConnectionState | None:
    """The L{ConnectionState} of C{conn}, made on first use; L{None} for L{None}."""
    if conn is None:
        return None
    state = getattr(conn, _STATE, None)
    if state is None:
        state = ConnectionState()
        setattr(conn, _STATE, state)
    return state


def mark_served(conn: SSL.Connection, factory: Any) -> None:
    """Remember that C{factory} made C{conn}, for L{serving_factory}."""
    setattr(conn, _FACTORY, factory)


def _connection(transport: Any) -> SSL.Connection:
    from OpenSSL import SSL

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
    @raise TypeError: when there is no TLS connection under C{transport}.
    """
    from resumetls.openssl.sessions import connection_reused

    conn = _connection(transport)
    resumed = connection_reused(conn)
    state = getattr(conn, _STATE, None)
    if resumed:
        mechanism = (state.mechanism if state is not None else None) or UNKNOWN
    else:
        mechanism = None
    return ResumptionInfo(
        resumed=resumed,
        mechanism=mechanism,
        version=conn.get_protocol_version_name(),
        cipher=conn.get_cipher_name(),
    )
