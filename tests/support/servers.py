"""
A resuming server in the test's own process, on a free loopback port, that
tells each client how its connection was set up (one JSON line).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import protocol, reactor
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.interfaces import IHandshakeListener
from zope.interface import implementer

from resumetls import ResumingContextFactory, resumption_info


@implementer(IHandshakeListener)
class InfoProtocol(protocol.Protocol):
    """
    Once the handshake is done, write how this connection was set up as one
    JSON line, then close cleanly (or, with C{mode}, in other ways).
    """

    def handshakeCompleted(self) -> None:
        info = resumption_info(self.transport)
        self.factory.infos.append(info)
        line = json.dumps(
            {
                "resumed": info.resumed,
                "mechanism": info.mechanism,
                "version": info.version,
                "cipher": info.cipher,
            }
        )
        mode = self.factory.mode
        if mode == "wait":
            # Leave the closing to the client (it may close uncleanly).
            self.transport.write(line.encode() + b"\n")
        elif mode == "abort":
            self.transport.write(line.encode() + b"\n")
            # Let the handshake's last flight and the line go out first.
            reactor.callLater(0.2, self.transport.abortConnection)
        else:
            self.transport.write(line.encode() + b"\n")
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        pass


class InfoFactory(protocol.Factory):
    """Makes L{InfoProtocol}s; C{infos} collects every connection's info."""

    protocol = InfoProtocol

    def __init__(self, mode: str = "close") -> None:
        self.infos: list = []
        self.mode = mode


async def listen(
    testcase: Any, factory: ResumingContextFactory, mode: str = "close"
) -> tuple[int, InfoFactory]:
    """Serve C{InfoProtocol} with C{factory} on a free loopback port."""
    app = InfoFactory(mode)
    endpoint = SSL4ServerEndpoint(reactor, 0, factory, interface="127.0.0.1")
    port = await endpoint.listen(app)
    testcase.addCleanup(port.stopListening)
    return port.getHost().port, app
