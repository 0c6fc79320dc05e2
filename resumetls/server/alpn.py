"""
ALPN on a resuming context: which application protocol a connection speaks
(C{h2} or C{http/1.1} for C{twisted.web}; none for a plain protocol).

Twisted's C{CertificateOptions} installs a select callback that asks the
application factory for its protocols (C{IProtocolNegotiationFactory}:
C{twisted.web}'s C{Site} offers C{h2} when the C{h2} package is installed,
then C{http/1.1}) on each connection, but answers an empty protocol, a fatal
alert, whenever nothing matches, even when the server has no protocol to
offer at all: every client that offers ALPN (browsers always do) then fails
against a plain protocol factory.  L{ProtocolSelector} makes the same choice
and, when there is nothing in common, goes on without ALPN.  It is set on
the context before its first connection (pyOpenSSL forbids changing a used
context) and decides per connection, so one context serves any factory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.logger import Logger

from resumetls.openssl import compat

__all__ = ["ProtocolSelector", "install"]

_log = Logger(namespace="resumetls")


class ProtocolSelector:
    """
    The ALPN select callback: the application factory's protocols, then
    C{extra} (the wrapped options' own C{acceptableProtocols}), the first
    of them the client offers; none: no protocol is negotiated.
    """

    def __init__(self, extra: Sequence[bytes] = ()) -> None:
        self.extra = tuple(extra)

    def protocols(self, conn: SSL.Connection) -> tuple[bytes, ...]:
        """What the server speaks on C{conn}, preferred first."""
        tls_protocol = conn.get_app_data()
        factory = getattr(tls_protocol, "factory", None)
        wrapped = getattr(factory, "wrappedFactory", None)
        negotiating = IProtocolNegotiationFactory(wrapped, None)
        if negotiating is None:
            return self.extra
        return tuple(negotiating.acceptableProtocols()) + self.extra

    def __call__(self, conn: SSL.Connection, offered: list[bytes]) -> Any:
        try:
            ours = self.protocols(conn)
        except Exception:  # noqa: BLE001 - the application's code: no ALPN
            _log.failure(
                "asking the application for its protocols failed; no ALPN",
                event="resumetls.alpn.failed",
            )
            return SSL.NO_OVERLAPPING_PROTOCOLS
        for protocol in ours:
            if protocol in offered:
                return protocol
        return SSL.NO_OVERLAPPING_PROTOCOLS


def install(context: SSL.Context, options: Any) -> None:
    """Set L{ProtocolSelector} on C{context} (not used yet), for C{options}."""
    context.set_alpn_select_callback(
        ProtocolSelector(compat.acceptable_protocols(options) or ())
    )
