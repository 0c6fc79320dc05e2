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


@implementer(IStreamServerEndpoint)
class ResumingServerEndpoint:
    """
    A TLS server endpoint with a resuming context factory and the key source
    that feeds it.  Listening registers the factory (for status pages and
    metrics) and starts the key source (a key file's watcher and SIGHUP
    handler); when the last of its ports stops listening, the key source
    stops too.

    @ivar context_factory: the L{resumetls.ResumingContextFactory}.
    @ivar key_source: its L{resumetls.IKeySource}.
    """

    def __init__(
        self,
        reactor: Any,
        port: int,
        context_factory: Any,
        key_source: Any,
        backlog: int = 50,
        interface: str = "",
    ) -> None:
        self.reactor = reactor
        self.port = port
        self.context_factory = context_factory
        self.key_source = key_source
        self.backlog = backlog
        self.interface = interface
        self._listening = 0

    @classmethod
    def from_config(cls, reactor: Any, config: Any) -> ResumingServerEndpoint:
        """
        The endpoint a L{resumetls.server.config.ServerConfig} describes, its
        context factory and key source built now.

        @raise ConfigError: for files that cannot be used.
        """
        from resumetls.server.config import build

        factory, source = build(config, reactor)
        return cls(
            reactor, config.port, factory, source, config.backlog, config.interface
        )

    def __repr__(self) -> str:
        where = self.interface or "*"
        return f"<ResumingServerEndpoint {where}:{self.port} {self.key_source!r}>"

    def listen(self, protocolFactory: Any) -> Any:  # noqa: N803 - Twisted's name
        from twisted.internet.endpoints import SSL4ServerEndpoint

        from resumetls.server import registry as _registry

        endpoint = SSL4ServerEndpoint(
            self.reactor,
            self.port,
            self.context_factory,
            backlog=self.backlog,
            interface=self.interface,
        )

        def listening(port: Any) -> Any:
            _registry.register(self.context_factory)
            self._listening += 1
            self.key_source.start()
            return _KeySourcePort(port, self)

        return endpoint.listen(protocolFactory).addCallback(listening)

    def _port_stopped(self) -> Any:
        self._listening -= 1
        if self._listening == 0:
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
