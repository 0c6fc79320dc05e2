"""
Server configuration: the options of the table in L{resumetls.options}, from
a C{resumetls:} endpoint string or from C{twist resumetls}, become a
L{ServerConfig}, and L{build} turns that into a context factory and the key
source that keeps its ticket keys current.
"""

from __future__ import annotations

from typing import Any

import attrs

from resumetls.options import (
    REFUSED_ENDPOINT_NAMES,
    SERVER_OPTIONS,
    ConfigError,
)

__all__ = [
    "COMMAND_NAMES",
    "ENDPOINT_NAMES",
    "ConfigError",
    "ServerConfig",
    "build",
    "parse",
    "parse_endpoint",
]

_default = SERVER_OPTIONS.default
DEFAULT_PORT = _default("port")


def _specs(value: Any) -> tuple[str, ...]:
    """Key source specifications as a tuple (one given alone, or none)."""
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


@attrs.frozen
class ServerConfig:
    """Everything a resuming TLS listener needs, validated."""

    port: int = _default("port")
    interface: str = _default("interface")
    backlog: int = _default("backlog")
    handshake_timeout: float = _default("handshake_timeout")
    max_handshakes: int = _default("max_handshakes")
    certificate: str | None = _default("certificate")
    key: str | None = _default("key")
    extra_chain: str | None = _default("extra_chain")
    # Key source specifications (a key file's path, file:PATH, ...), none for
    # keys generated in memory; several key files follow nginx's rule (the
    # first encrypts); see resumetls.keys.sources.
    ticket_keys: tuple[str, ...] = attrs.field(
        default=_default("ticket_keys"), converter=_specs
    )
    rotate_every: float = _default("rotate_every")
    keep_keys: int = _default("keep_keys")
    tickets: bool = _default("tickets")
    session_ids: bool = _default("session_ids")
    session_timeout: float = _default("session_timeout")
    tls13_tickets: int = _default("tls13_tickets")
    session_cache: str = _default("session_cache")
    lookup_budget: float = _default("lookup_budget")
    service: str = _default("service")


# Option names in endpoint strings (camelCase, like ssl:'s) and on the twist
# command line (dashes), mapped to ServerConfig fields.
ENDPOINT_NAMES = SERVER_OPTIONS.endpoint_names()
COMMAND_NAMES = SERVER_OPTIONS.flag_names()


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

    @param names: how option names map to L{ServerConfig} fields
        (L{ENDPOINT_NAMES} or L{COMMAND_NAMES}).
    @param source: how to refer to options in messages ("--" or "" prefix).
    @raise ConfigError: one line naming the option and what is wrong.
    """
    fields = SERVER_OPTIONS.convert(options, names, source)
    reverse = {v: k for k, v in names.items()}
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


def _check_lifetime_hint(config: ServerConfig, source: Any) -> None:
    """
    A ticket's lifetime hint is the session timeout: refuse a timeout longer
    than a key source's keys decrypt after they stop encrypting (its
    C{decrypt_window}), or a client would hold tickets no server opens.
    """
    window = getattr(source, "decrypt_window", None)
    if window is None or config.tickets is False or config.session_timeout <= window:
        return
    raise ConfigError(
        f"the session timeout ({config.session_timeout:g}s, --session-timeout "
        f"or sessionTimeout=) is longer than the fleet's ticket keys decrypt "
        f"after they stop encrypting ({window:g}s: keep-keys x rotate-every), so "
        "a ticket's lifetime hint would outlive its key; lower the session "
        "timeout or raise --keep-keys or --rotate-every"
    )


def build(config: ServerConfig, reactor: Any) -> tuple[Any, Any, Any]:
    """
    The L{ResumingContextFactory} a configuration describes, with its session
    cache, the key source that feeds its key ring (key files, watched for
    changes, or keys generated and rotated in memory) and the watch that
    reloads its certificate.  Neither is started: the endpoint starts them
    when it listens.

    @return: a 3-tuple of the factory, its L{IKeySource} and its
        L{CertificateReloader}.
    @raise ConfigError: for files that cannot be used.
    """
    from resumetls.cache.urls import cache_from_url
    from resumetls.keys.files import KeyFileError
    from resumetls.keys.ring import RotationPolicy
    from resumetls.keys.sources import KeySourceError, key_source_from_spec
    from resumetls.server.certreload import CertificateReloader
    from resumetls.server.factory import ResumingContextFactory
    from resumetls.server.settings import ResumptionSettings

    certificate, key = config.certificate, config.key
    if certificate is None:
        from resumetls.cli.devcert import development_certificate

        try:
            certificate, key = development_certificate(config.port)
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
        lookup_budget=config.lookup_budget,
    )
    policy = RotationPolicy(interval=config.rotate_every, keep=config.keep_keys)
    try:
        source = key_source_from_spec(config.ticket_keys, reactor, policy)
    except (KeyFileError, KeySourceError) as e:
        raise ConfigError(str(e)) from None
    _check_lifetime_hint(config, source)
    cache = cache_from_url(config.session_cache, reactor)
    # A cache outside the process that seals with a key derived from the
    # service's TLS key (lmdb://) gets it now, and opens its store.
    # So does a key source that keeps sealed keys outside (redis://).
    for sealed in (cache, source):
        use_service_key = getattr(sealed, "use_service_key", None)
        if use_service_key is not None:
            try:
                use_service_key(key)
            except ValueError as e:
                raise ConfigError(str(e)) from None
    try:
        factory = ResumingContextFactory.from_files(
            certificate,
            key,
            settings,
            chain=config.extra_chain,
            key_ring=source.key_ring,
            cache=cache,
            clock=reactor,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None
    factory.key_source = source  # for status pages: the keys' source in words
    watch = CertificateReloader(factory, certificate, key, config.extra_chain, reactor)
    return factory, source, watch
