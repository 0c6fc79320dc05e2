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

import sys
from typing import Any

from twisted.application import service
from twisted.python import usage

from resumetls.cli.apps import choose, protocol_factory, refuse_secrets_under
from resumetls.options import SERVER_OPTIONS, ConfigError, split_description
from resumetls.server.config import COMMAND_NAMES, parse, parse_endpoint


class _GlobalReactor:
    """
    The global reactor, looked up at each use: options are parsed (and
    listeners built) before C{twist} installs the reactor it was asked for.
    """

    def __getattr__(self, name: str) -> Any:
        from twisted.internet import reactor

        return getattr(reactor, name)


_LONGDESC = """\
Serve a protocol factory (--factory), a WSGI application (--wsgi), a
directory (--path) or, by default, a demo page over TLS that resumes
sessions by ticket and by session ID. Without --certificate and --key, a
self-signed development certificate for localhost is made once in
$XDG_DATA_HOME/resumetls. --listen takes endpoint strings instead of --port
and the TLS options, e.g. resumetls:8443:certKey=cert.pem:privateKey=key.pem.
"""

# Options that describe the --port listener (every flag of the option
# table); with --listen they would be ignored, so giving them is refused.
_PORT_LISTENER_OPTIONS = tuple(COMMAND_NAMES)


class _ValueRefused(usage.UsageError):
    """An option value that cannot be used; the message says why, in a line."""


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = _LONGDESC

    optParameters = SERVER_OPTIONS.usage_parameters() + [
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
        [
            "workers",
            None,
            "1",
            "Worker processes serving the listeners (auto: one per CPU); they "
            "share one session cache and one set of ticket keys.",
        ],
    ]
    optFlags = SERVER_OPTIONS.usage_flags()

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["ticket-keys"] = []

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

    def opt_ticket_keys(self, spec: str) -> None:
        self["ticket-keys"].append(spec)

    opt_ticket_keys.__doc__ = SERVER_OPTIONS["ticket_keys"].help

    def opt_version(self) -> None:
        """Print resumetls's version (and Twisted's) and exit."""
        print(_version())
        raise SystemExit(0)

    def postOptions(self) -> None:  # noqa: N802
        raw = {name: self[name] for name in COMMAND_NAMES}
        try:
            self.config = parse(raw, COMMAND_NAMES, "--")
            self.what, self.target = choose(self)
        except ConfigError as e:
            raise _ValueRefused(str(e)) from None
        # Each listener: (the --listen description or None for --port, and
        # its ResumingServerEndpoint, or None for another parser's string,
        # parsed when the service is made).
        self.listeners = []
        if not self["listen"]:
            self.listeners.append((None, _endpoint(None, self.config)))
        else:
            given = [
                "--" + n
                for n in _PORT_LISTENER_OPTIONS
                if self[n] != self.defaults.get(n, [] if n == "ticket-keys" else 0)
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
                    self.listeners.append((description, None))
                    continue
                try:
                    listen_config = parse_endpoint(args, kwargs)
                except ConfigError as e:
                    raise _ValueRefused(f"--listen {description}: {e}") from None
                self.listeners.append(
                    (description, _endpoint(description, listen_config))
                )
        if self.what == "path":
            try:
                refuse_secrets_under(self.target, self._secret_files())
            except ConfigError as e:
                raise _ValueRefused(str(e)) from None
        if self["metrics"]:
            from resumetls.cli.metrics import loopback_endpoint

            self.metrics_endpoint = loopback_endpoint(self["metrics"])
        else:
            self.metrics_endpoint = None
        from resumetls.workers.plan import listener_configs, worker_count

        try:
            self.workers = worker_count(self["workers"])
            if self.workers > 1:
                listener_configs(self)
        except ConfigError as e:
            raise _ValueRefused(str(e)) from None

    def _secret_files(self) -> list[str]:
        """The private keys and ticket key files of our listeners."""
        return [f for _, e in self.listeners if e is not None for f in e.secret_files()]

    @property
    def context_factories(self) -> list[Any]:
        """The resuming context factories of the listeners, in order."""
        return [e.context_factory for _, e in self.listeners if e is not None]


def _version() -> str:
    import twisted
    from resumetls import __version__

    return f"resumetls {__version__} (Twisted {twisted.__version__})"


def _endpoint(description: str | None, config: Any) -> Any:
    """A listener's endpoint, its context factory and key source built now."""
    from resumetls.server.endpoint import ResumingServerEndpoint

    try:
        return ResumingServerEndpoint.from_config(_GlobalReactor(), config)
    except ConfigError as e:
        where = f"--listen {description}: " if description else ""
        raise _ValueRefused(where + str(e)) from None


class _AnnounceService(service.Service):
    """
    Warns at start-up when resumption is degraded.  (What each listener
    runs with is logged by the listener, C{resumetls.started}, see
    L{resumetls.server.endpoint.ResumingServerEndpoint.announce}.)
    """

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

    from resumetls.server import registry as _registry

    if options.workers > 1:
        from resumetls.workers.service import workers_service

        return workers_service(options)
    top = service.MultiService()
    app = protocol_factory(options.what, options.target, reactor)
    for description, endpoint in options.listeners:
        if endpoint is None:
            endpoint = _endpoint_or_exit(reactor, "--listen", description)
        option = f"--listen {description}" if description else f"--port {endpoint.port}"
        _listener(endpoint, app, option).setServiceParent(top)
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
