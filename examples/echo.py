"""
An echo protocol, served by `twist resumetls --factory`:

    twist resumetls --port 8443 --factory examples.echo.EchoFactory

(run from the repository root, or anywhere `examples` is importable).  Each
line sent comes back, prefixed with how this TLS connection was set up.
"""

from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver

import resumetls
from resumetls.server.stats import describe_mechanism


class Echo(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line):
        info = resumetls.resumption_info(self.transport)
        how = describe_mechanism(info.mechanism)
        if info.resumed:
            how = f"resumed by {how}"
        self.sendLine(f"[{info.version}, {how}] ".encode() + line)


class EchoFactory(Factory):
    protocol = Echo
