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
the endpoint parsers, so it imports nothing heavy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import Any

import attrs

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


class ConfigError(ValueError):
    """An option that cannot be used; the message is one line for the user."""


@attrs.frozen
class Bounds:
    """
    The range a number must be in: C{low <= n <= high}, or with C{open}
    C{low < n < high}.  Not-a-number is never in range.
    """

    low: float
    high: float
    open: bool = False

    def __contains__(self, number: float) -> bool:
        if self.open:
            return self.low < number < self.high
        return self.low <= number <= self.high


# A converter: (row, label, raw value) -> value, or ConfigError naming label.
Converter = Callable[["Option", str, Any], Any]


@attrs.frozen
class Option:
    """
    One row of the table.

    @ivar field: the attribute it sets (of L{ServerConfig}, or the client's).
    @ivar endpoint: its key in endpoint strings, or L{None}.
    @ivar flag: its C{twist resumetls} flag without dashes, or L{None}.
    @ivar negates: the flag is a switch that sets the field to L{False}
        (C{--no-tickets}); otherwise the flag takes a value.
    @ivar convert: turns the raw value (text, or what C{usage.Options}
        gives) into the field's value; L{str} by default.
    @ivar message: when set, the one message for any value that is refused
        (C{{label}} and C{{value!r}} are filled in).
    """

    field: str
    endpoint: str | None = None
    flag: str | None = None
    default: Any = None
    convert: Converter = attrs.field(default=lambda option, label, value: str(value))
    bounds: Bounds | None = None
    help: str = ""
    short: str | None = None
    negates: bool = False
    message: str | None = None

    def refuse(self, label: str, value: Any, message: str) -> ConfigError:
        text = self.message or message
        return ConfigError(text.format(label=label, value=value))


class OptionTable:
    """
    Rows by field, and what is made from them: name-to-field maps for
    endpoint strings and command lines, C{usage.Options} parameters, and
    the conversion of raw text into field values.

    @param unknown: the message for an option no row has (C{{label}},
        C{{name}} and C{{known}} are filled in).
    """

    def __init__(self, rows: Iterable[Option], unknown: str) -> None:
        self.rows = {row.field: row for row in rows}
        self.unknown = unknown

    def __getitem__(self, field: str) -> Option:
        return self.rows[field]

    def default(self, field: str) -> Any:
        return self.rows[field].default

    def bounds(self, field: str) -> Bounds:
        bounds = self.rows[field].bounds
        if bounds is None:
            raise KeyError(f"{field} has no bounds")
        return bounds

    def endpoint_names(self) -> dict[str, str]:
        """Endpoint-string keys to fields."""
        return {r.endpoint: r.field for r in self.rows.values() if r.endpoint}

    def flag_names(self) -> dict[str, str]:
        """Command-line flags (without dashes) to fields, in table order."""
        return {r.flag: r.field for r in self.rows.values() if r.flag}

    def usage_parameters(self) -> list[list[Any]]:
        """C{usage.Options.optParameters} rows for the flags that take values."""
        return [
            [r.flag, r.short, _as_text(r.default), r.help]
            for r in self.rows.values()
            if r.flag and not r.negates
        ]

    def usage_flags(self) -> list[list[Any]]:
        """C{usage.Options.optFlags} rows for the switches."""
        return [
            [r.flag, r.short, r.help]
            for r in self.rows.values()
            if r.flag and r.negates
        ]

    def convert(
        self, options: dict[str, Any], names: dict[str, str], source: str
    ) -> dict[str, Any]:
        """
        The field values of raw options (text from an endpoint string or a
        command line); options whose value is L{None} are left out.

        @param names: how option names map to fields (L{endpoint_names} or
            L{flag_names}).
        @param source: how options are named in messages (C{"--"}, C{""}).
        @raise ConfigError: one line naming the option and what is wrong.
        """
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ConfigError(
                self.unknown.format(
                    label=source + unknown[0],
                    name=unknown[0],
                    known=", ".join(source + n for n in sorted(names)),
                )
            )
        fields = {}
        for name, value in options.items():
            if value is None:
                continue
            row = self.rows[names[name]]
            if row.negates and name == row.flag:
                fields[row.field] = not value
            else:
                fields[row.field] = row.convert(row, source + name, value)
        return fields


def _as_text(default: Any) -> str | None:
    """A default as C{usage.Options} shows it: C{43200}, not C{43200.0}."""
    if default is None:
        return None
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


# -- converters ------------------------------------------------------------------


def text(option: Option, label: str, value: Any) -> str:
    return str(value)


def yes_no(option: Option, label: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("yes", "true", "on", "1"):
        return True
    if word in ("no", "false", "off", "0"):
        return False
    raise option.refuse(label, value, "{label} must be yes or no, not {value!r}")


def _number(kind: type) -> Converter:
    def convert(option: Option, label: str, value: Any) -> Any:
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise option.refuse(
                label, value, "{label} must be a number, not {value!r}"
            ) from None
        bounds = option.bounds
        if bounds is not None and number not in bounds:
            raise option.refuse(
                label,
                value,
                f"{{label}} must be between {bounds.low:g} and {bounds.high:g}, "
                "not {value!r}",
            )
        return number

    return convert


integer = _number(int)
real = _number(float)


def readable_file(path: str) -> str:
    """
    C{path} with C{~} expanded, once it is known to be a readable file.

    @raise ConfigError: C{"PATH: no such file"}, C{"not a file"} or
        C{"not readable"}.
    """
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise ConfigError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{path}: not readable")
    return path


def _optional_path(check: Callable[[str], str]) -> Converter:
    """A converter for a path-like option: empty means not given."""

    def convert(option: Option, label: str, value: Any) -> str | None:
        if value == "":
            return None
        try:
            return check(str(value))
        except ValueError as e:
            raise ConfigError(f"{label}: {e}") from None

    return convert


def _key_source_spec(spec: str) -> str:
    from resumetls.keys.sources import checked_spec

    return checked_spec(spec)


# A PEM file; a ticket key source specification (see
# resumetls.key_source_from_spec: a key file's path, file:PATH, ...).
pem_file = _optional_path(readable_file)
key_source = _optional_path(_key_source_spec)


def cache_url(option: Option, label: str, value: Any) -> str:
    """A session cache URL, checked by building it (backends do no I/O then)."""
    from twisted.internet.task import Clock

    from resumetls.cache.urls import CacheURLError, cache_from_url

    try:
        cache_from_url(str(value), Clock())
    except CacheURLError as e:
        raise ConfigError(str(e)) from None
    return str(value)


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
        Option("backlog", "backlog", None, 50, integer, Bounds(1, 65535)),
        Option("certificate", "certKey", "certificate", None, pem_file,
               help="PEM certificate (a chain may follow the leaf).", short="c"),
        Option("key", "privateKey", "key", None, pem_file,
               help="PEM private key.", short="k"),
        Option("extra_chain", "extraCertChain", "extra-chain", None, pem_file,
               help="PEM file of more chain certificates."),
        Option("ticket_keys", "ticketKeys", "ticket-keys", None, key_source,
               help="Ticket key file (nginx 48/80-byte or HAProxy base64 lines); "
               "reloaded on SIGHUP and when it changes."),
        Option("rotate_every", "rotateEvery", "rotate-every", _DAY / 2, real,
               Bounds(60, 30 * _DAY), "Without --ticket-keys: seconds between "
               "key rotations (12 h, like Caddy)."),
        Option("keep_keys", "keepKeys", "keep-keys", 2, integer, Bounds(0, 100),
               "Without --ticket-keys: old keys kept for decryption."),
        Option("session_timeout", "sessionTimeout", "session-timeout", 3600, real,
               Bounds(1, 7 * _DAY), "Seconds a session stays resumable."),
        Option("tls13_tickets", "tls13Tickets", "tls13-tickets", 2, integer,
               Bounds(0, 16), "Tickets sent after a full TLS 1.3 handshake."),
        Option("session_cache", "sessionCache", "session-cache", "memory://",
               cache_url, help="Session cache URL: memory:// or memory://?size=N."),
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
