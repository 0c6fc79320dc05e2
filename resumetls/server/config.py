"""
Server configuration: one parser turns options, from a C{resumetls:} endpoint
string or from C{twist resumetls}, into a L{ServerConfig}, and L{build}
turns that into a running context factory.
"""

from __future__ import annotations

import os
from typing import Any

import attrs

DEFAULT_PORT = 8443
DEFAULT_ROTATE_EVERY = 12 * 3600.0


class ConfigError(ValueError):
    """An option that cannot be used; the message is one line for the user."""


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "true", "on", "1"):
        return True
    if text in ("no", "false", "off", "0"):
        return False
    raise ConfigError(f"{name} must be yes or no, not {value!r}")


def _number(name: str, value: Any, kind: type, low: float, high: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, not {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, not {value!r}")
    return number


def _file(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    path = os.path.expanduser(str(value))
    if not os.path.exists(path):
        raise ConfigError(f"{name}: {path}: no such file")
    if not os.path.isfile(path):
        raise ConfigError(f"{name}: {path}: not a file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{name}: {path}: not readable")
    return path


@attrs.frozen
class ServerConfig:
    """Everything a resuming TLS listener needs, validated."""

    port: int = DEFAULT_PORT
    interface: str = ""
    backlog: int = 50
    certificate: str | None = None
    key: str | None = None
    extra_chain: str | None = None
    ticket_keys: str | None = None
    rotate_every: float = DEFAULT_ROTATE_EVERY
    keep_keys: int = 2
    tickets: bool = True
    session_ids: bool = True
    session_timeout: float = 3600.0
    tls13_tickets: int = 2
    session_cache: str = "memory://"
    service: str = ""


# Our option names in endpoint strings (camelCase, like ssl:'s) and on the
# twist command line (dashes), mapped to ServerConfig fields.
ENDPOINT_NAMES = {
    "port": "port",
    "interface": "interface",
    "backlog": "backlog",
    "certKey": "certificate",
    "privateKey": "key",
    "extraCertChain": "extra_chain",
    "ticketKeys": "ticket_keys",
    "rotateEvery": "rotate_every",
    "keepKeys": "keep_keys",
    "tickets": "tickets",
    "sessionIds": "session_ids",
    "sessionTimeout": "session_timeout",
    "tls13Tickets": "tls13_tickets",
    "sessionCache": "session_cache",
    "service": "service",
}
COMMAND_NAMES = {
    "port": "port",
    "interface": "interface",
    "certificate": "certificate",
    "key": "key",
    "extra-chain": "extra_chain",
    "ticket-keys": "ticket_keys",
    "rotate-every": "rotate_every",
    "keep-keys": "keep_keys",
    "session-timeout": "session_timeout",
    "tls13-tickets": "tls13_tickets",
    "session-cache": "session_cache",
    "service": "service",
}


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
    for text, equals in fields[1:]:
        if equals >= 0:
            kwargs[text[:equals]] = text[equals + 1 :]
        else:
            args.append(text)
    return prefix, args, kwargs


def parse_endpoint(args: Any, kwargs: dict[str, Any]) -> ServerConfig:
    """
    The L{ServerConfig} of a C{resumetls:} endpoint string's fields (what
    C{serverFromString} hands to our parser, or L{split_description}'s).

    @raise ConfigError: one line naming the option and what is wrong.
    """
    options = dict(kwargs)
    for name in REFUSED_ENDPOINT_NAMES:
        if name in options:
            raise ConfigError(REFUSED_ENDPOINT_NAMES[name])
    if len(args) > 1:
        raise ConfigError(
            "resumetls: takes one positional argument, the port; got "
            + ", ".join(repr(a) for a in args)
            + " (options are name=value; write a colon inside a value as \\:)"
        )
    if args:
        if "port" in options:
            raise ConfigError("resumetls: the port was given twice")
        options["port"] = args[0]
    if "port" not in options:
        raise ConfigError("resumetls: needs a port, e.g. resumetls:8443")
    return parse(options, ENDPOINT_NAMES, "")


def parse(options: dict[str, Any], names: dict[str, str], source: str) -> ServerConfig:
    """
    Validate raw options (strings from an endpoint string or a command line)
    into a L{ServerConfig}.

    @param names: how option names map to L{ServerConfig} fields.
    @param source: how to refer to options in messages ("--" or "" prefix).
    @raise ConfigError: one line naming the option and what is wrong.
    """
    fields = {}
    reverse = {v: k for k, v in names.items()}
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown option {source}{unknown[0]}; known: "
            + ", ".join(source + n for n in sorted(names))
        )
    for raw_name, value in options.items():
        if value is None:
            continue
        field = names[raw_name]
        label = source + raw_name
        if field == "port":
            value = _number(label, value, int, 0, 65535)
        elif field == "backlog":
            value = _number(label, value, int, 1, 65535)
        elif field in ("tickets", "session_ids"):
            value = _bool(label, value)
        elif field == "session_timeout":
            value = _number(label, value, float, 1, 7 * 24 * 3600)
        elif field == "rotate_every":
            value = _number(label, value, float, 60, 30 * 24 * 3600)
        elif field == "keep_keys":
            value = _number(label, value, int, 0, 100)
        elif field == "tls13_tickets":
            value = _number(label, value, int, 0, 16)
        elif field in ("certificate", "key", "extra_chain", "ticket_keys"):
            value = _file(label, value)
        elif field == "session_cache":
            from twisted.internet.task import Clock

            from resumetls.cache.urls import CacheURLError, cache_from_url

            try:
                cache_from_url(str(value), Clock())  # validate now, build later
            except CacheURLError as e:
                raise ConfigError(str(e)) from None
        fields[field] = value
    if fields.get("key") and not fields.get("certificate"):
        # ssl: endpoints read both from privateKey when certKey is absent.
        fields["certificate"] = fields["key"]
    if fields.get("certificate") and not fields.get("key"):
        raise ConfigError(
            f"{source}{reverse['certificate']} was given without "
            f"{source}{reverse['key']}: give both, or neither for a development "
            "certificate"
        )
    return ServerConfig(**fields)


def build(config: ServerConfig, reactor: Any) -> Any:
    """
    The L{ResumingContextFactory} a configuration describes, with its key ring
    (a key file, watched for changes, or keys generated and rotated in
    memory) and its session cache.

    @return: a 2-tuple of the factory and the key file watcher (or L{None}).
    @raise ConfigError: for files that cannot be used.
    """
    from resumetls.cache.urls import cache_from_url
    from resumetls.keys.files import KeyFileError, load_key_file
    from resumetls.keys.ring import KeyRing, RotationPolicy
    from resumetls.server.factory import ResumingContextFactory, ResumptionSettings

    certificate, key = config.certificate, config.key
    if certificate is None:
        from resumetls.cli.devcert import development_certificate

        try:
            certificate, key = development_certificate()
        except OSError as e:
            raise ConfigError(
                "cannot make a development certificate in "
                f"{e.filename or 'the data directory'} ({e.strerror}); give a "
                "certificate and key, or set XDG_DATA_HOME to a writable directory"
            ) from None
    settings = ResumptionSettings(
        tickets=config.tickets,
        session_ids=config.session_ids,
        tls13_tickets=config.tls13_tickets,
        session_timeout=config.session_timeout,
        service=config.service,
    )
    watcher = None
    if config.ticket_keys:
        try:
            ring = KeyRing.from_keyset(load_key_file(config.ticket_keys), clock=reactor)
        except KeyFileError as e:
            raise ConfigError(str(e)) from None
        from resumetls.keys.reload import KeyFileWatcher

        watcher = KeyFileWatcher(config.ticket_keys, ring, reactor)
    else:
        ring = KeyRing.generate(
            reactor, RotationPolicy(interval=config.rotate_every, keep=config.keep_keys)
        )
    cache = cache_from_url(config.session_cache, reactor)
    try:
        factory = ResumingContextFactory.from_files(
            certificate,
            key,
            settings,
            chain=config.extra_chain,
            key_ring=ring,
            cache=cache,
            clock=reactor,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return factory, watcher
