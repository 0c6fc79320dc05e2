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

            from resumetls._cacheurl import CacheURLError, cache_from_url

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
    from resumetls._cacheurl import cache_from_url
    from resumetls._context import ResumingContextFactory, ResumptionSettings
    from resumetls._keyfiles import KeyFileError, load_key_file
    from resumetls._keys import KeyRing, RotationPolicy

    certificate, key = config.certificate, config.key
    if certificate is None:
        from resumetls._devcert import development_certificate

        certificate, key = development_certificate()
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
            ring = KeyRing.from_keyset(load_key_file(config.ticket_keys))
        except KeyFileError as e:
            raise ConfigError(str(e)) from None
        from resumetls._reload import KeyFileWatcher

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
