"""
The one error of the OpenSSL route (its own module so that every part of
L{resumetls.openssl} and its callers can import it without the rest).
"""

from __future__ import annotations

__all__ = ["OpenSSLRouteUnavailable"]


class OpenSSLRouteUnavailable(RuntimeError):
    """
    The OpenSSL functions resumetls needs cannot be reached safely.

    The message says what is missing and what still works: without the route,
    servers keep OpenSSL's built-in in-process session cache and OpenSSL's own
    ticket keys (random per process, no rotation control, nothing shared).
    """
