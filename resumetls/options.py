"""
The option table: every option a resuming listener or a C{resumetls:} client
endpoint takes, written once, with its endpoint-string key (camelCase, as
Twisted's C{ssl:} names them), its C{twist resumetls} flag, its default, its
converter, its bounds and its help.

From these rows are made the C{resumetls:} server endpoint parser, the
options of C{twist resumetls}, the C{resumetls:} client endpoint's options,
the defaults of L{resumetls.server.config.ServerConfig},
L{resumetls.ResumptionSettings} and L{resumetls.RotationPolicy}, and the
bounds their validators check.  Plugin discovery reaches this module through
the endpoint parsers, so it imports nothing heavy.  What a row is and what
is made from the rows (L{Option}, L{OptionTable}, the converters) lives in
L{resumetls.optiontable}; this module holds the rows.
"""

from __future__ import annotations

import math

from resumetls.optiontable import (
    Bounds,
    ConfigError,
    Option,
    OptionTable,
    cache_url,
    integer,
    key_source,
    pem_file,
    readable_file,
    real,
    text,
    yes_no,
)

__all__ = [
    "CLIENT_OPTIONS",
    "REFUSED_ENDPOINT_NAMES",
    "SERVER_OPTIONS",
    "Bounds",
    "ConfigError",
    "Option",
    "OptionTable",
    "readable_file",
    "split_description",
]


# -- the tables --------------------------------------------------------------------

# Caddy rotates ticket keys every 12 hours; Go's crypto/tls every 24 hours and
# accepts keys for 7 days.  12 hours and two old keys: tickets open for 24-36
# hours.  Session timeout 3600 s: between nginx's 300 s and OpenSSL's 7200 s;
# like Go's ticket lifetime, it keeps a returning visitor within the hour.
# TLS 1.3 (RFC 8446, 4.6.1) forbids lifetimes above 7 days.
_DAY = 24 * 3600.0

# fmt: off
SERVER_OPTIONS = OptionTable(
    [
        # field, endpoint key, twist flag, default, converter, bounds, help
        Option("port", "port", "port", 8443, integer, Bounds(0, 65535),
               "TLS port to listen on (without --listen).", short="p"),
        Option("interface", "interface", "interface", "", text,
               help="Interface to listen on (default: all)."),
        Option("backlog", "backlog", "backlog", 511, integer, Bounds(1, 65535),
               "Connections the kernel queues before they are accepted "
               "(511, like nginx)."),
        Option("handshake_timeout", "handshakeTimeout", "handshake-timeout", 10.0,
               real, Bounds(0.1, 3600), "Seconds a client has to finish the TLS "
               "handshake before it is disconnected."),
        Option("max_handshakes", "maxHandshakes", "max-handshakes", 1024, integer,
               Bounds(1, 1_000_000), "Connections allowed in the TLS handshake at "
               "once; more are closed at once."),
        Option("certificate", "certKey", "certificate", None, pem_file,
               help="PEM certificate (a chain may follow the leaf).", short="c"),
        Option("key", "privateKey", "key", None, pem_file,
               help="PEM private key.", short="k"),
        Option("extra_chain", "extraCertChain", "extra-chain", None, pem_file,
               help="PEM file of more chain certificates."),
        Option("ticket_keys", "ticketKeys", "ticket-keys", (), key_source,
               repeats=True,
               help="Ticket key file (nginx 48/80-byte or HAProxy base64 lines); "
               "repeatable (ticketKeys=A,B): the first encrypts, the others only "
               "decrypt, as nginx; reloaded on SIGHUP and when they change."),
        Option("rotate_every", "rotateEvery", "rotate-every", _DAY / 2, real,
               Bounds(5, 30 * _DAY), "Without --ticket-keys or with fleet keys "
               "(redis://): seconds between key rotations (12 h, like Caddy)."),
        Option("keep_keys", "keepKeys", "keep-keys", 2, integer, Bounds(0, 100),
               "Without --ticket-keys or with fleet keys: old keys kept for "
               "decryption (rotation intervals, for fleet keys)."),
        Option("session_timeout", "sessionTimeout", "session-timeout", 3600, real,
               Bounds(1, 7 * _DAY), "Seconds a session stays resumable."),
        Option("tls13_tickets", "tls13Tickets", "tls13-tickets", 2, integer,
               Bounds(0, 16), "Tickets sent after a full TLS 1.3 handshake."),
        Option("session_cache", "sessionCache", "session-cache", "memory://",
               cache_url, help="Session cache URL: memory://[?size=N], "
               "redis://HOST:PORT/DB, rediss://…?ca=FILE, redis+unix:///PATH, "
               "redis+sentinel://HOST:PORT/SERVICE/DB (see docs/fleet.md)."),
        Option("lookup_budget", "lookupBudget", "lookup-budget", 0.05, real,
               Bounds(0.001, 5), "Seconds a handshake may wait for a networked "
               "session cache (Redis) before it goes on as a full handshake."),
        Option("service", "service", "service", "", text,
               help="Name keeping this service's sessions apart."),
        Option("tickets", "tickets", "no-tickets", True, yes_no, negates=True,
               help="Do not issue or accept session tickets."),
        Option("session_ids", "sessionIds", "no-session-ids", True, yes_no,
               negates=True, help="Do not keep sessions in the session cache."),
    ],
    unknown="unknown option {label}; known: {known}",
)

# The resumetls: client endpoint (its options are labelled "resumetls: NAME").
CLIENT_OPTIONS = OptionTable(
    [
        Option("host", "host"),
        Option("port", "port", default=443, convert=integer, bounds=Bounds(1, 65535),
               message="{label} must be a number, not {value!r}"),
        Option("trust_roots", "trustRoots"),
        Option("sessions", "sessions"),
        Option("timeout", "timeout", default=30.0, convert=real,
               bounds=Bounds(0, math.inf, open=True),
               message="{label} must be a number of seconds above 0, not {value!r}"),
        Option("bind_address", "bindAddress"),
    ],
    unknown="resumetls: unknown client option {name}",
)
# fmt: on

# Options of Twisted's ssl: endpoint that resumetls: does not take, and why.
REFUSED_ENDPOINT_NAMES = {
    "sslmethod": "sslmethod is not supported: resumetls: negotiates the TLS "
    "versions Twisted allows by default; remove it",
    "dhParameters": "dhParameters is not supported: resumetls: uses ECDHE key "
    "exchange, which needs no parameter file; remove it",
}


def split_description(description: str) -> tuple[str, list[str], dict[str, str]]:
    """
    Split an endpoint string the way C{serverFromString} does: fields are
    separated by colons (C{\\:} is a literal colon), C{name=value} fields are
    keyword options, others positional.

    @return: the prefix, the positional arguments and the keyword options.
    """
    fields: list[tuple[str, int]] = []  # (text, index of the first bare "=")
    current: list[str] = []
    equals = -1
    chars = iter(description)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            fields.append(("".join(current), equals))
            current, equals = [], -1
        else:
            if char == "=" and equals < 0:
                equals = len(current)
            current.append(char)
    fields.append(("".join(current), equals))
    prefix, args, kwargs = fields[0][0], [], {}
    for field, equals in fields[1:]:
        if equals >= 0:
            kwargs[field[:equals]] = field[equals + 1 :]
        else:
            args.append(field)
    return prefix, args, kwargs
