"""
The C{resumetls:} server endpoint string parser.

Plugin discovery imports the plugin file, which builds one of these; so this
module imports nothing heavy at import time (no reactor, no OpenSSL), and the
real work happens when C{parseStreamServer} is called.  Options are those of
Twisted's C{ssl:} endpoint (C{privateKey}, C{certKey}, C{extraCertChain},
C{interface}, C{backlog}), so changing the prefix is the whole migration,
plus ours: C{ticketKeys}, C{rotateEvery}, C{keepKeys}, C{tickets},
C{sessionIds}, C{sessionTimeout}, C{tls13Tickets}, C{sessionCache},
C{service}.  C{sslmethod} and C{dhParameters} are refused with a message
saying why.  Errors are L{resumetls.server.config.ConfigError} (a C{ValueError})
with a one-line message.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import (
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IStreamServerEndpoint)
class _ResumingEndpoint:
    """
    An SSL server endpoint whose listening also starts the key file
    watcher; it keeps the context factory at hand for status and metrics.
    """

    def __init__(self, endpoint: Any, factory: Any, watcher: Any) -> None:
        self._endpoint = endpoint
        self.context_factory = factory
        self.watcher = watcher

    def listen(self, protocolFactory: Any) -> Any:
        from resumetls.server import registry as _registry

        d = self._endpoint.listen(protocolFactory)

        def listening(port: Any) -> Any:
            _registry.register(self.context_factory)
            if self.watcher is not None:
                self.watcher.start()
            return port

        return d.addCallback(listening)


@implementer(IPlugin, IStreamServerEndpointStringParser)
class ResumeTLSServerParser:
    """C{resumetls:PORT:privateKey=…:certKey=…:ticketKeys=…:…}"""

    prefix = "resumetls"

    def parseStreamServer(self, reactor: Any, *args: Any, **kwargs: Any) -> Any:
        from twisted.internet.endpoints import SSL4ServerEndpoint

        from resumetls.server.config import build, parse_endpoint

        config = parse_endpoint(args, kwargs)
        factory, watcher = build(config, reactor)
        endpoint = SSL4ServerEndpoint(
            reactor,
            config.port,
            factory,
            backlog=config.backlog,
            interface=config.interface,
        )
        return _ResumingEndpoint(endpoint, factory, watcher)
