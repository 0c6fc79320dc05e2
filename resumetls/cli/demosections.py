"""
The figures of the demo page, grouped and named in words: one L{Section} per
part of the server (handshakes, session tickets, session cache, ticket keys,
problems), each made by a function of the status data
(L{resumetls.cli.demo.status}).

L{SECTIONS} is the page's list of them, in order: a new part of the server
adds its figures by appending a function that returns a L{Section} (or
L{None} when it has nothing to show).  Counters that no section names are
still shown, under their JSON names, in "Other counters", so nothing the
server counts is ever hidden.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs

from resumetls.server.stats import HANDSHAKE_KINDS, MECHANISMS, UNKNOWN

__all__ = ["SECTIONS", "SHOWN", "Row", "Section", "duration", "sections"]


@attrs.frozen
class Row:
    """
    One figure: C{key} names it in the DOM (C{id="c-KEY"}; a counter's JSON
    name), C{label} says it in words, C{hint} what it means.
    """

    key: str
    label: str
    value: Any
    hint: str = ""


@attrs.frozen
class Section:
    """A titled group of figures (C{id="s-KEY"} in the DOM)."""

    key: str
    title: str
    rows: tuple[Row, ...]


def _counter(
    server: dict[str, Any], key: str, label: str, hint: str = "", always: bool = True
) -> Row | None:
    """A counter's row; L{None} when it is absent (or 0, unless C{always})."""
    if key not in server or not (always or server[key]):
        return None
    return Row(key, label, server[key], hint)


def _figure(
    figures: dict[str, Any], key: str, label: str, hint: str = "", always: bool = True
) -> Row | None:
    """A cache or key figure's row (C{id="c-cache-KEY"})."""
    if key not in figures or not (always or figures[key]):
        return None
    return Row("cache-" + key, label, figures[key], hint)


def _section(key: str, title: str, *rows: Row | None) -> Section | None:
    kept = tuple(r for r in rows if r is not None)
    return Section(key, title, kept) if kept else None


def handshakes(data: dict[str, Any]) -> Section | None:
    """Full handshakes, and resumed ones by each mechanism, in words."""
    server = data.get("server") or {}
    rows = []
    for kind, field in HANDSHAKE_KINDS:
        if kind == "full":
            rows.append(
                _counter(server, field, "Full handshakes", "certificate sent, key used")
            )
        elif kind == "other":
            rows.append(
                _counter(server, field, "Resumed otherwise", MECHANISMS[UNKNOWN], False)
            )
        else:
            rows.append(_counter(server, field, "Resumed by " + MECHANISMS[kind]))
    return _section("handshakes", "Handshakes", *rows)


def tickets(data: dict[str, Any]) -> Section | None:
    server = data.get("server") or {}
    return _section(
        "tickets",
        "Session tickets",
        _counter(server, "tickets_issued", "Issued"),
        _counter(
            server,
            "tickets_renewed",
            "Renewed",
            "opened with an older key, issued again with the current one",
        ),
        _counter(
            server,
            "tickets_rejected",
            "Rejected",
            "unknown key, forged, damaged or expired: full handshake",
        ),
    )


def cache(data: dict[str, Any]) -> Section | None:
    """The session cache: what it holds, hits, misses, evictions, errors."""
    server = data.get("server") or {}
    figures = server.get("cache") or {}
    words = data.get("sources") or {}  # the backend in words, when known
    held = None
    if "entries" in figures:
        bound = figures.get("max_entries")
        value = f"{figures['entries']} of {bound}" if bound else figures["entries"]
        held = Row("cache-entries", "Sessions held", value)
    return _section(
        "cache",
        "Session cache",
        _figure(
            {"backend": words["cache"]} if words.get("cache") else figures,
            "backend",
            "Backend",
        ),
        held,
        _counter(server, "sessions_stored", "Sessions stored"),
        _counter(server, "cache_hits", "Hits", "session found: resumed"),
        _counter(
            server, "cache_misses", "Misses", "unknown or expired: full handshake"
        ),
        _figure(
            figures, "evictions", "Evictions", "dropped because the cache was full"
        ),
        _figure(figures, "expirations", "Expired", "", False),
        _counter(
            server, "cache_errors", "Errors", "the backend failed: full handshake"
        ),
        _counter(
            server,
            "cache_lookups_late",
            "Answers too late",
            "the backend had not answered: full handshake",
            False,
        ),
        _counter(server, "cache_corrupt", "Corrupt entries", "ignored", False),
    )


def duration(seconds: float | None) -> str:
    """C{seconds} for a person: C{"42 s"}, C{"3 min"}, C{"2 h 5 min"}, C{"3 d"}."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 3 * 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d"


def keys(data: dict[str, Any]) -> Section | None:
    """The ticket keys: where they come from, which encrypts, since when."""
    ring = (data.get("server") or {}).get("keys")
    if not ring:
        return None
    now = data.get("now", time.time())
    next_rotation = ring.get("next_rotation")
    return _section(
        "keys",
        "Ticket keys",
        Row(
            "keys-source",
            "Source",
            (data.get("sources") or {}).get("key_source") or ring.get("source") or "-",
        ),
        Row(
            "keys-encrypting",
            "Encrypting key",
            ring.get("encrypting") or "-",
            "its fingerprint, never the key",
        ),
        Row("keys-age", "In use for", duration(ring.get("encrypting_age"))),
        Row(
            "keys-decrypt-only",
            "Older keys kept",
            ring.get("decrypt_only", 0),
            "their tickets still resume",
        ),
        Row("keys-pending", "Next keys known", ring["pending"])
        if ring.get("pending")
        else None,
        Row(
            "keys-next-rotation", "Next rotation", "in " + duration(next_rotation - now)
        )
        if next_rotation is not None
        else None,
    )


def problems(data: dict[str, Any]) -> Section | None:
    """Connections turned away, and errors inside resumetls."""
    server = data.get("server") or {}
    return _section(
        "problems",
        "Problems",
        _counter(
            server, "handshake_timeouts", "Handshakes timed out", "the client stalled"
        ),
        _counter(
            server,
            "handshakes_refused",
            "Connections refused",
            "too many in the handshake at once",
        ),
        _counter(
            server,
            "plain_http",
            "Plain HTTP on the TLS port",
            "answered with a 400 that says so",
        ),
        _counter(
            server,
            "callback_errors",
            "Errors in resumetls's callbacks",
            "logged; the client got a full handshake",
        ),
    )


#: What the sections above show, and counters shown elsewhere on the page
#: (C{resumed}: the line on what resumption saved).
SHOWN = {
    *(field for _, field in HANDSHAKE_KINDS),
    "resumed",
    "tickets_issued",
    "tickets_renewed",
    "tickets_rejected",
    "sessions_stored",
    "cache_hits",
    "cache_misses",
    "cache_errors",
    "cache_lookups_late",
    "cache_corrupt",
    "handshake_timeouts",
    "handshakes_refused",
    "plain_http",
    "callback_errors",
}


def other(data: dict[str, Any]) -> Section | None:
    """Every other counter of the server, so none is hidden."""
    server = data.get("server") or {}
    rows = []
    for key, value in server.items():
        if key in SHOWN or isinstance(value, (dict, list)) or value is None:
            continue
        rows.append(Row(key, key, value))
    return _section("other", "Other counters", *rows)


#: The page's sections, in order: each a function of the status data that
#: returns a L{Section}, or L{None} when it has nothing to show.
SECTIONS: list[Callable[[dict[str, Any]], Section | None]] = [
    handshakes,
    tickets,
    cache,
    keys,
    problems,
    other,
]


def sections(data: dict[str, Any]) -> list[Section]:
    """The sections L{SECTIONS} make of C{data}, those with something to show."""
    return [s for s in (make(data) for make in SECTIONS) if s is not None]
