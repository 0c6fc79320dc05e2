"""
How a service resumes sessions (L{ResumptionSettings}) and what this process
can do for it (L{Capabilities}): plain values, validated when made.
"""

from __future__ import annotations

from typing import Any

import attrs

from resumetls.options import SERVER_OPTIONS

__all__ = ["MAX_SESSION_TIMEOUT", "Capabilities", "ResumptionSettings"]

# Defaults and bounds come from the option table (resumetls.options).
_TIMEOUT = SERVER_OPTIONS.bounds("session_timeout")
_TICKETS = SERVER_OPTIONS.bounds("tls13_tickets")

# TLS 1.3 (RFC 8446, 4.6.1) forbids ticket lifetimes above 7 days.
MAX_SESSION_TIMEOUT = int(_TIMEOUT.high)


def _check_timeout(instance: Any, attribute: Any, value: float) -> None:
    if value not in _TIMEOUT:
        raise ValueError(
            f"session timeout must be between {_TIMEOUT.low:g} and "
            f"{MAX_SESSION_TIMEOUT} seconds (7 days, the TLS 1.3 limit), not {value!r}"
        )


def _check_tickets(instance: Any, attribute: Any, value: int) -> None:
    if value not in _TICKETS:
        raise ValueError(
            f"TLS 1.3 ticket count must be between {_TICKETS.low:g} and "
            f"{_TICKETS.high:g}, not {value!r}"
        )


def _default(field: str) -> Any:
    return SERVER_OPTIONS.default(field)


@attrs.frozen
class ResumptionSettings:
    """
    How a service resumes sessions.

    @ivar tickets: issue and accept session tickets (TLS 1.2 RFC 5077 tickets
        and TLS 1.3 stateless PSK tickets).
    @ivar session_ids: keep sessions in the session cache, found by session ID
        (TLS 1.2) or by stateful ticket (TLS 1.3 when C{tickets} is off).
    @ivar tls13_tickets: tickets sent after a full TLS 1.3 handshake (OpenSSL's
        default is 2, so a client can open two connections in parallel).
    @ivar session_timeout: seconds a session stays resumable.  3600 by
        default (see L{resumetls.options}): between nginx's 300 s and
        OpenSSL's 7200 s, like Go's ticket lifetime it keeps a returning
        visitor within the hour.
    @ivar service: a name that keeps this service's sessions apart from
        other services' (it goes into the session ID context with the
        certificate and the client verification settings).
    @ivar lookup_budget: seconds a handshake may wait for a session cache
        that answers later (Redis); then it goes on as a full handshake.
    """

    tickets: bool = _default("tickets")
    session_ids: bool = _default("session_ids")
    tls13_tickets: int = attrs.field(
        default=_default("tls13_tickets"), validator=_check_tickets
    )
    session_timeout: float = attrs.field(
        default=_default("session_timeout"), validator=_check_timeout
    )
    service: str = _default("service")
    lookup_budget: float = _default("lookup_budget")


@attrs.frozen
class Capabilities:
    """
    What resumption this process can do: custom ticket keys and an external
    session cache need the OpenSSL route; C{reason} says why not, if not.
    """

    custom_tickets: bool
    external_cache: bool
    reason: str | None
