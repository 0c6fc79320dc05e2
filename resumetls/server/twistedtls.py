"""
What resumetls knows of the code of Twisted's TLS protocol, which
L{resumetls.server.protocol} copies in two places, C{makeConnection}
(declaring the transport's interfaces once per class) and
C{_flushReceiveBIO} (asking OpenSSL whether there is anything to read), and
replaces in a third, C{BufferingTLSTransport.__init__} (whose write
aggregator L{resumetls.server.writes} stands in for).  Each runs only when
Twisted's method uses exactly the names listed here (checked against
Twisted 26.10); after a Twisted upgrade that changes one, Twisted's own
method runs, and C{tests/server/test_protocol.py} says which flag went
false.
"""

from __future__ import annotations

from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOProtocol

__all__ = ["SAME_BUFFERING_INIT", "SAME_MAKE_CONNECTION", "SAME_RECEIVE_LOOP"]

# Twisted's makeConnection (TLSMemoryBIOProtocol's, and ProtocolWrapper's,
# which it calls), as known: the names they use.  Our copy, which declares the
# interfaces from a per-class cache, runs only when they match.
_MAKE_CONNECTION_NAMES = {
    TLSMemoryBIOProtocol.makeConnection: {
        "Protocol",
        "ProtocolWrapper",
        "_appSendBuffer",
        "_checkHandshakeStatus",
        "_connectWrapped",
        "_creatorCallable",
        "_tlsConnection",
        "directlyProvides",
        "factory",
        "makeConnection",
        "providedBy",
        "registerProtocol",
    },
    ProtocolWrapper.makeConnection: {
        "Protocol",
        "directlyProvides",
        "factory",
        "makeConnection",
        "providedBy",
        "registerProtocol",
        "wrappedProtocol",
    },
}
SAME_MAKE_CONNECTION = all(
    set(method.__code__.co_names) == names
    for method, names in _MAKE_CONNECTION_NAMES.items()
)
# Twisted's receive loop, as known: ours (which asks OpenSSL whether there is
# anything to read) runs only when it matches.
SAME_RECEIVE_LOOP = set(TLSMemoryBIOProtocol._flushReceiveBIO.__code__.co_names) == {
    "Error",
    "Failure",
    "ProtocolWrapper",
    "WantReadError",
    "ZeroReturnError",
    "_aborted",
    "_flushSendBIO",
    "_lostTLSConnection",
    "_shutdownTLS",
    "_tlsConnection",
    "_tlsShutdownFinished",
    "dataReceived",
    "recv",
}
# BufferingTLSTransport's set-up, as known: TLSMemoryBIOProtocol's, then its
# aggregator and C{write}.  Ours makes the same with L{GatheredWrites} only
# when it matches.
SAME_BUFFERING_INIT = set(BufferingTLSTransport.__init__.__code__.co_names) == {
    "__init__",
    "_AggregateSmallWrites",
    "_aggregator",
    "_clock",
    "super",
    "write",
}
