"""
The protocol the worker tests serve: for any line it receives, one JSON line
saying which worker served the connection, how it was resumed, which ticket
key encrypts there and which worker made a session found in the shared
cache; then it closes.
"""

from __future__ import annotations

import json
import os

from twisted.internet.protocol import Factory, Protocol

from resumetls.server.stats import resumption_info, serving_factory
from resumetls.workers.status import connection_origin


class Who(Protocol):
    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        info = resumption_info(self.transport)
        factory = serving_factory(self.transport)
        origin = connection_origin(self.transport) or {}
        answer = {
            "resumed": info.resumed,
            "mechanism": info.mechanism,
            "pid": os.getpid(),
            "worker": origin.get("worker"),
            "session_from_worker": origin.get("session_from_worker"),
            "key": factory.key_ring.describe().encrypting if factory.key_ring else None,
        }
        self.transport.write(json.dumps(answer).encode() + b"\n")
        self.transport.loseConnection()


class WhoFactory(Factory):
    protocol = Who
