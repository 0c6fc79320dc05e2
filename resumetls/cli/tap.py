"""
C{twist resumetls}: serve any Twisted protocol, WSGI app or directory over TLS
with session resumption, or by default the demo page that shows it.

In the spirit of C{twist web}: C{--listen} takes endpoint strings (a
C{resumetls:} string carries its own TLS options); without it, C{--port} and
the TLS options make one listener.  Every option error is one line and a
non-zero exit: the options, including C{resumetls:} strings given to
C{--listen}, are checked and their context factories built while the command
line is parsed, before anything listens.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.application import service
from twisted.python import usage
from twisted.python.reflect import namedAny

from resumetls.server.config import (
    COMMAND_NAMES,
    DEFAULT_PORT,
    ConfigError,
    build,
    parse,
    parse_endpoint,
    split_description,
)


class _ReactorClock:
    """
    The global reactor's clock, looked up when used: options are parsed
    before C{twist} installs the reactor it was asked for.
    """

    def seconds(self) -> float:
        from twisted.internet import reactor

        return reactor.seconds()

    def callLater(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        from twisted.internet import reactor

        return reactor.callLater(*args, **kwargs)


_LONGDESC = """\
Serve a protocol factory (--factory), a WSGI application (--wsgi), a
directory (--path) or, by default, a demo page over TLS that resumes
sessions by ticket and by session ID. Without --certificate and --key, a
self-signed development certificate for localhost is made once in
$XDG_DATA_HOME/resumetls. --listen takes endpoint strings instead of --port
and the TLS options, e.g. resumetls:8443:certKey=cert.pem:privateKey=key.pem.
"""

# Options that describe the --port listener; with --listen they would be
# ignored, so giving them is refused.
_PORT_LISTENER_OPTIONS = (
    "port",
    "interface",
    "certificate",
    "key",
    "extra-chain",
    "ticket-keys",
    "rotate-every",
    "keep-keys",
    "session-timeout",
    "tls13-tickets",
    "session-cache",
    "service",
    "no-tickets",
    "no-session-ids",
)


class _ValueRefused(usage.UsageError):
    """An option value that cannot be used; the message says why, in a line."""


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = _LONGDESC

    optParameters = [
        ["port", "p", str(DEFAULT_PORT), "TLS port to listen on (without --listen)."],
        ["interface", None, "", "Interface to listen on (default: all)."],
        ["certificate", "c", None, "PEM certificate (a chain may follow the leaf)."],
        ["key", "k", None, "PEM private key."],
        ["extra-chain", None, None, "PEM file of more chain certificates."],
        [
            "ticket-keys",
            None,
            None,
            "Ticket key file (nginx 48/80-byte or HAProxy base64 lines); reloaded "
            "on SIGHUP and when it changes.",
        ],
        [
            "rotate-every",
            None,
            "43200",
            "Without --ticket-keys: seconds between key rotations (12 h, like Caddy).",
        ],
        [
            "keep-keys",
            None,
            "2",
            "Without --ticket-keys: old keys kept for decryption.",
        ],
        ["session-timeout", None, "3600", "Seconds a session stays resumable."],
        ["tls13-tickets", None, "2", "Tickets sent after a full TLS 1.3 handshake."],
        [
            "session-cache",
            None,
            "memory://",
            "Session cache URL: memory:// or memory://?size=N.",
        ],
        ["service", None, "", "Name keeping this service's sessions apart."],
        [
            "factory",
            None,
            None,
            "Serve this protocol factory (dotted name; a "
            "factory, or a callable returning one).",
        ],
        ["wsgi", None, None, "Serve this WSGI application (dotted name)."],
        ["path", None, None, "Serve the files under this directory."],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics on this endpoint (a bare port means "
            "127.0.0.1 only).",
        ],
    ]
    optFlags = [
        ["no-tickets", None, "Do not issue or accept session tickets."],
        ["no-session-ids", None, "Do not keep sessions in the session cache."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def parseOptions(self, options: Any = None) -> None:  # noqa: N802
        """
        Under C{twist}, an option whose I{value} is refused (a missing file,
        a key that does not match, a bad number) ends the process with that
        one line on stderr and exit status 64 (EX_USAGE), instead of the line
        followed by the whole usage text; unknown options still show it.
        """
        try:
            super().parseOptions(options)
        except _ValueRefused as e:
            if getattr(self, "parent", None) is None:
                raise
            sys.stderr.write(f"Error: {e}\n")
            raise SystemExit(64) from None

    def opt_listen(self, description: str) -> None:
        """Listen on this endpoint (repeatable), e.g. resumetls:8443:certKey=…"""
        self["listen"].append(description)

    def postOptions(self) -> None:
        raw = {name: self[name] for name in COMMAND_NAMES}
        try:
            config = parse(raw, COMMAND_NAMES, "--")
        except ConfigError as e:
            raise _ValueRefused(str(e)) from None
        config = _with_flags(config, self)
        self.config = config
        chosen = [n for n in ("factory", "wsgi", "path") if self[n]]
        if len(chosen) > 1:
            raise _ValueRefused(
                "give only one of --factory, --wsgi and --path, not "
                + " and ".join("--" + n for n in chosen)
            )
        self.what = chosen[0] if chosen else "demo"
        if self["factory"]:
            self.target = _protocol_factory_from(
                self["factory"], _resolve("--factory", self["factory"])
            )
        elif self["wsgi"]:
            self.target = _resolve("--wsgi", self["wsgi"])
            if not callable(self.target):
                raise _ValueRefused(f"--wsgi {self['wsgi']} is not callable")
        elif self["path"]:
            if not os.path.isdir(self["path"]):
                raise _ValueRefused(f"--path {self['path']}: not a directory")
            self.target = os.path.abspath(self["path"])
        # Each listener: (description or None, ServerConfig or None,
        # context factory or None, key file watcher or None).
        self.listeners = []
        if not self["listen"]:
            self.listeners.append(_built(None, config))
        else:
            given = [
                "--" + n
                for n in _PORT_LISTENER_OPTIONS
                if self[n] != self.defaults.get(n, 0)
            ]
            if given:
                raise _ValueRefused(
                    f"{given[0]} does not apply with --listen: put the listener's "
                    "options in its resumetls: string (e.g. resumetls:8443:"
                    "certKey=cert.pem:privateKey=key.pem:ticketKeys=ticket.keys)"
                )
            for description in self["listen"]:
                prefix, args, kwargs = split_description(description)
                if prefix != "resumetls":
                    self.listeners.append((description, None, None, None))
                    continue
                try:
                    listen_config = parse_endpoint(args, kwargs)
                except ConfigError as e:
                    raise _ValueRefused(f"--listen {description}: {e}") from None
                self.listeners.append(_built(description, listen_config))
        if self["metrics"]:
            from resumetls.cli.metrics import loopback_endpoint

            self.metrics_endpoint = loopback_endpoint(self["metrics"])
        else:
            self.metrics_endpoint = None

    @property
    def context_factories(self) -> list[Any]:
        """The resuming context factories of the listeners, in order."""
        return [f for _, _, f, _ in self.listeners if f is not None]


def _built(description: str | None, config: Any) -> tuple:
    """A listener whose context factory (and key file watcher) are built now."""
    try:
        factory, watcher = build(config, _ReactorClock())
    except ConfigError as e:
        where = f"--listen {description}: " if description else ""
        raise _ValueRefused(where + str(e)) from None
    return (description, config, factory, watcher)


def _with_flags(config: Any, options: Options) -> Any:
    import attrs

    return attrs.evolve(
        config,
        tickets=not options["no-tickets"],
        session_ids=not options["no-session-ids"],
    )


def _resolve(option: str, name: str) -> Any:
    """
    The object a dotted name names.  The current directory is searched
    first, as C{python -m} and gunicorn do (C{twist}'s own path starts at
    its script), so C{--factory examples.echo.EchoFactory} works from the
    directory that holds C{examples/}.
    """
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    try:
        return namedAny(name)
    except (ImportError, AttributeError, ValueError) as e:
        raise _ValueRefused(f"{option} {name}: cannot import it ({e})") from None
    except Exception as e:  # noqa: BLE001 - the user's module failed to import
        raise _ValueRefused(
            f"{option} {name}: importing it raised {type(e).__name__}: {e}"
        ) from None


def _protocol_factory_from(name: str, target: Any) -> Any:
    """
    The protocol factory C{--factory} names: the object itself, or what
    calling it (with no arguments) returns.
    """
    from twisted.internet.interfaces import IProtocolFactory

    if not IProtocolFactory.providedBy(target):
        if not callable(target):
            raise _ValueRefused(
                f"--factory {name} is neither a protocol factory nor callable"
            )
        try:
            target = target()
        except Exception as e:  # noqa: BLE001 - the user's code, one line
            raise _ValueRefused(
                f"--factory {name}: calling it raised {type(e).__name__}: {e}"
            ) from None
    if not IProtocolFactory.providedBy(target):
        raise _ValueRefused(
            f"--factory {name} did not give a protocol factory "
            f"(got {type(target).__name__})"
        )
    return target


def _protocol_factory(options: Options, reactor: Any) -> Any:
    from twisted.web.server import Site

    if options.what == "factory":
        return options.target
    if options.what == "wsgi":
        from twisted.web.wsgi import WSGIResource

        return Site(WSGIResource(reactor, reactor.getThreadPool(), options.target))
    if options.what == "path":
        from twisted.web.static import File

        return Site(File(options.target))
    from resumetls.cli.demo import demo_site

    return demo_site()


class _KeyReloadService(service.Service):
    """Reload ticket key files when they change, and on SIGHUP."""

    def __init__(self, watchers: list[Any], reactor: Any) -> None:
        self.watchers = watchers
        self.reactor = reactor

    def startService(self) -> None:
        super().startService()
        for w in self.watchers:
            w.start()

    def stopService(self) -> None:
        super().stopService()
        for w in self.watchers:
            w.stop()


class _AnnounceService(service.Service):
    def __init__(self, options: Options) -> None:
        self.options = options

    def startService(self) -> None:
        super().startService()
        from twisted.logger import Logger

        from resumetls.server import registry as _registry

        log = Logger(namespace="resumetls")
        for factory in _registry.factories():
            caps = factory.capabilities
            if caps.reason:
                log.warn(
                    "resumption is DEGRADED: {reason}",
                    reason=caps.reason,
                    event="resumetls.degraded",
                )
            s = factory.settings
            log.info(
                "resumetls: tickets {tickets}, session IDs {ids}, session timeout "
                "{timeout:g}s, TLS 1.3 tickets {n}, cache {cache}",
                tickets="on" if s.tickets else "off",
                ids="on" if s.session_ids else "off",
                timeout=s.session_timeout,
                n=s.tls13_tickets,
                cache=repr(factory.cache),
                event="resumetls.started",
            )


def _endpoint_or_exit(reactor: Any, option: str, description: str) -> Any:
    """
    C{serverFromString}, with its errors as a one-line exit: C{twist} shows
    a traceback for exceptions from C{makeService}, and only these endpoint
    strings (not ours, checked earlier) are parsed this late.
    """
    from twisted.internet.endpoints import serverFromString

    try:
        return serverFromString(reactor, description)
    except Exception as e:  # noqa: BLE001 - any parser's error, one line
        raise SystemExit(f"Error: {option} {description}: {e}") from None


def _listener(endpoint: Any, factory: Any, option: str) -> service.Service:
    """
    A service listening on C{endpoint}.  C{twist} starts services before
    the reactor runs: a port in use, a bad interface or a privileged port
    ends the process with one line naming the option, rather than a
    traceback and a server that runs without listening.
    """
    from twisted.application.internet import StreamServerEndpointService

    class Listener(StreamServerEndpointService):
        _raiseSynchronously = True

        def privilegedStartService(self) -> None:
            try:
                super().privilegedStartService()
            except Exception as e:  # noqa: BLE001 - any endpoint's error, one line
                raise SystemExit(f"Error: {option}: {_listen_error(e)}") from None

    return Listener(endpoint, factory)


def _listen_error(e: Exception) -> str:
    """What went wrong when listening, in words, e.g. C{cannot listen on
    127.0.0.1 port 8443: Address already in use}."""
    from twisted.internet.error import CannotListenError

    if isinstance(e, CannotListenError):
        where = e.interface or "all interfaces"
        reason = getattr(e.socketError, "strerror", None) or str(e.socketError)
        return f"cannot listen on {where} port {e.port}: {reason}"
    return f"cannot listen: {e}"


def makeService(options: Options) -> service.MultiService:  # noqa: N802
    from twisted.internet import reactor
    from twisted.internet.endpoints import SSL4ServerEndpoint

    from resumetls.server import registry as _registry

    top = service.MultiService()
    app = _protocol_factory(options, reactor)
    watchers = []
    for description, config, factory, watcher in options.listeners:
        if factory is None:
            endpoint = _endpoint_or_exit(reactor, "--listen", description)
        else:
            _registry.register(factory)
            if watcher is not None:
                watchers.append(watcher)
            endpoint = SSL4ServerEndpoint(
                reactor,
                config.port,
                factory,
                backlog=config.backlog,
                interface=config.interface,
            )
        option = f"--listen {description}" if description else f"--port {config.port}"
        _listener(endpoint, app, option).setServiceParent(top)
    _KeyReloadService(watchers, reactor).setServiceParent(top)
    if options.metrics_endpoint is not None:
        from resumetls.cli.metrics import metrics_site

        endpoint = _endpoint_or_exit(reactor, "--metrics", options.metrics_endpoint)
        _listener(
            endpoint,
            metrics_site(_registry.factories),
            f"--metrics {options['metrics']}",
        ).setServiceParent(top)
    _AnnounceService(options).setServiceParent(top)
    return top
