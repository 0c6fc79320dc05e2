"""
The one listener path: L{ResumingServerEndpoint}, used by C{resumetls:}
endpoint strings and by C{twist resumetls} (C{--port} and each
C{--listen}), and the C{resumetls:} server endpoint string parser.

Plugin discovery imports the plugin file, which builds a parser; so this
module imports nothing heavy at import time (no reactor, no OpenSSL), and the
real work happens when C{parseStreamServer} is called.  Options are those of
Twisted's C{ssl:} endpoint (C{privateKey}, C{certKey}, C{extraCertChain},
C{interface}, C{backlog}), so changing the prefix is the whole migration,
plus ours (see L{resumetls.options}).  C{sslmethod} and C{dhParameters} are
refused with a message saying why.  Errors are L{resumetls.ConfigError} (a
C{ValueError}) with a one-line message.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import (
    IListeningPort,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

_log = Logger(namespace="resumetls")


def _default(field: str, value: Any) -> Any:
    """C{value}, or the option table's default when it is L{None}."""
    if value is not None:
        return value
    # Imported on use: plugin discovery imports this module.
    from resumetls.options import SERVER_OPTIONS

    return SERVER_OPTIONS.default(field)


@implementer(IStreamServerEndpoint)
class ResumingServerEndpoint:
    """
    A TLS server endpoint with a resuming context factory and the key source
    that feeds it.  C{backlog}, C{handshake_timeout} and C{max_handshakes}
    default to the option table's (L{resumetls.options}).

    Listening registers the factory (for status pages and metrics) and
    starts the key source (a key file's watcher and SIGHUP handler) and the
    certificate's watch; when the last of its ports stops listening, they
    stop too.

    Connections go through L{resumetls.server.protocol.ResumingTLSFactory}
    over a TCP port (as C{wrapServerTLS} does): a handshake timeout, a bound
    on connections in the handshake, and an HTTP 400 for plain HTTP.

    @ivar context_factory: the L{resumetls.ResumingContextFactory}.
    @ivar key_source: its L{resumetls.IKeySource}.
    @ivar certificate_watch: what reloads its certificate when the files
        change (a L{resumetls.server.certreload.CertificateReloader}), or
        L{None}.
    """

    def __init__(
        self,
        reactor: Any,
        port: int,
        context_factory: Any,
        key_source: Any,
        backlog: int | None = None,
        interface: str = "",
        handshake_timeout: float | None = None,
        max_handshakes: int | None = None,
        certificate_watch: Any = None,
    ) -> None:
        self.reactor = reactor
        self.port = port
        self.context_factory = context_factory
        self.key_source = key_source
        self.backlog = _default("backlog", backlog)
        self.interface = interface
        self.handshake_timeout = _default("handshake_timeout", handshake_timeout)
        self.max_handshakes = _default("max_handshakes", max_handshakes)
        self.certificate_watch = certificate_watch
        self._listening = 0

    @classmethod
    def from_config(cls, reactor: Any, config: Any) -> ResumingServerEndpoint:
        """
        The endpoint a L{resumetls.server.config.ServerConfig} describes, its
        context factory and key source built now.

        @raise ConfigError: for files that cannot be used.
        """
        from resumetls.server.config import build

        factory, source, watch = build(config, reactor)
        return cls(
            reactor,
            config.port,
            factory,
            source,
            config.backlog,
            config.interface,
            handshake_timeout=config.handshake_timeout,
            max_handshakes=config.max_handshakes,
            certificate_watch=watch,
        )

    def __repr__(self) -> str:
        where = self.interface or "*"
        return f"<ResumingServerEndpoint {where}:{self.port} {self.key_source!r}>"

    def tls_factory(self, protocolFactory: Any) -> Any:  # noqa: N803
        """The TLS layer over C{protocolFactory}, as this endpoint listens with it."""
        from resumetls.server.protocol import ResumingTLSFactory

        return ResumingTLSFactory(
            self.context_factory,
            protocolFactory,
            self.reactor,
            self.handshake_timeout,
            self.max_handshakes,
        )

    def listen(self, protocolFactory: Any) -> Any:  # noqa: N803 - Twisted's name
        from twisted.internet.endpoints import TCP4ServerEndpoint

        # A TCP4 endpoint listens on IPv6 too when the interface is an IPv6
        # address (the port picks the family), as SSL4ServerEndpoint does.
        endpoint = TCP4ServerEndpoint(
            self.reactor, self.port, backlog=self.backlog, interface=self.interface
        )

        return endpoint.listen(self.tls_factory(protocolFactory)).addCallback(
            self._listening_on
        )

    def adopt(self, fd: int, family: Any, protocolFactory: Any) -> Any:  # noqa: N803
        """
        Serve on a listening socket this process inherited (file descriptor
        C{fd}, of address family C{family}), as L{listen} serves on one it
        binds: the same TLS layer, key source, certificate watch and
        C{resumetls.started}; stopping the port stops them.  The workers of
        C{twist resumetls --workers} serve their parent's sockets this way.
        C{fd} stays open: the port listens on a duplicate.

        @return: the listening port (its C{factory} is the TLS layer).
        """
        tls = self.tls_factory(protocolFactory)
        return self._listening_on(self.reactor.adoptStreamPort(fd, family, tls))

    def _listening_on(self, port: Any) -> Any:
        """A port listens: register, start the key source and watch, announce."""
        from resumetls.server import registry as _registry

        _registry.register(self.context_factory)
        self._listening += 1
        self.key_source.start()
        if self.certificate_watch is not None:
            self.certificate_watch.start()
        self.announce(port)
        return _KeySourcePort(port, self)

    def secret_files(self) -> list[str]:
        """
        The files this listener reads that hold secrets: the TLS private key
        and the ticket key files (never to be served, see C{--path}).
        """
        files = list(getattr(self.key_source, "paths", ()))
        if self.certificate_watch is not None:
            files.insert(0, self.certificate_watch.key)
        return files

    def describe(self, port: Any = None) -> dict[str, Any]:
        """
        What this listener runs with, as the fields of C{resumetls.started}:
        where it listens, its settings, key source (which key encrypts, by
        fingerprint), session cache backend and size, handshake timeout and
        bound, backlog and certificate.  No secrets.
        """
        factory = self.context_factory
        s = factory.settings
        host = port.getHost() if port is not None else None
        cache = factory.cache.stats() if factory.cache is not None else None
        return {
            "address": f"{host.host}:{host.port}" if host is not None else None,
            "backlog": self.backlog,
            "handshake_timeout": self.handshake_timeout,
            "max_handshakes": self.max_handshakes,
            "tickets": "on" if s.tickets else "off",
            "session_ids": "on" if s.session_ids else "off",
            "session_timeout": s.session_timeout,
            "tls13_tickets": s.tls13_tickets,
            "service": s.service,
            "keys": self.key_source.describe(),
            "cache": "off" if cache is None else cache.backend,
            "cache_size": None if cache is None else cache.max_entries,
            "certificate": None
            if self.certificate_watch is None
            else self.certificate_watch.describe(),
        }

    def announce(self, port: Any = None) -> None:
        """Log C{resumetls.started}: what this listener runs with (L{describe})."""
        _log.info(
            "resumetls listening on {address} (backlog {backlog}): tickets "
            "{tickets}, session IDs {session_ids}, session timeout "
            "{session_timeout:g}s, TLS 1.3 tickets {tls13_tickets}; {keys}; "
            "session cache {cache} (size {cache_size}); handshake timeout "
            "{handshake_timeout:g}s, at most {max_handshakes} in the handshake; "
            "certificate {certificate}",
            event="resumetls.started",
            **self.describe(port),
        )

    def _port_stopped(self) -> Any:
        self._listening -= 1
        if self._listening == 0:
            if self.certificate_watch is not None:
                self.certificate_watch.stop()
            return self.key_source.stop()
        return None


@implementer(IListeningPort)
class _KeySourcePort:
    """
    A listening port whose C{stopListening} also stops its endpoint's key
    source (once no other port of that endpoint listens).  Everything else
    is the wrapped port's.
    """

    def __init__(self, port: Any, endpoint: ResumingServerEndpoint) -> None:
        self._port = port
        self._endpoint = endpoint
        self._stopped = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)

    def __repr__(self) -> str:
        return repr(self._port)

    def startListening(self) -> Any:  # noqa: N802 - Twisted's name
        return self._port.startListening()

    def getHost(self) -> Any:  # noqa: N802 - Twisted's name
        return self._port.getHost()

    def stopListening(self) -> Any:  # noqa: N802 - Twisted's name
        from twisted.internet.defer import maybeDeferred

        stopping = maybeDeferred(self._port.stopListening)
        if self._stopped:
            return stopping
        self._stopped = True
        source = maybeDeferred(self._endpoint._port_stopped)
        source.addErrback(
            lambda failure: _log.failure(
                "stopping the ticket key source failed",
                failure,
                event="resumetls.keys.stop_failed",
            )
        )
        # Fire with the port's own result once both have stopped.
        return stopping.addBoth(lambda result: source.addCallback(lambda _: result))


@implementer(IPlugin, IStreamServerEndpointStringParser)
class ResumeTLSServerParser:
    """C{resumetls:PORT:privateKey=…:certKey=…:ticketKeys=…:…}"""

    prefix = "resumetls"

    def parseStreamServer(self, reactor: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        from resumetls.server.config import parse_endpoint

        return ResumingServerEndpoint.from_config(reactor, parse_endpoint(args, kwargs))
