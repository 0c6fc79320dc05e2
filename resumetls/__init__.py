"""
resumetls: TLS session resumption (session IDs and session tickets) for any
Twisted server, and Twisted clients that resume.

The public names below are imported on first use (PEP 562), so that
``import resumetls`` and Twisted's plugin discovery, which imports our plugin
files, stay cheap: nothing touches OpenSSL until a name is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # the context factory (server side)
    "ResumingContextFactory": "resumetls._context",
    "ResumptionSettings": "resumetls._context",
    "ResumptionStats": "resumetls._context",
    "ResumptionInfo": "resumetls._context",
    "Capabilities": "resumetls._context",
    "ContextAlreadyUsedError": "resumetls._context",
    "resumption_info": "resumetls._context",
    # ticket keys
    "TicketKey": "resumetls._keys",
    "KeyRing": "resumetls._keys",
    "RotationPolicy": "resumetls._keys",
    "KeyRingSummary": "resumetls._keys",
    "KeyFileError": "resumetls._keyfiles",
    "load_key_file": "resumetls._keyfiles",
    # session caches
    "CacheStats": "resumetls._cache",
    "MemorySessionCache": "resumetls._memorycache",
    "cache_from_url": "resumetls._cacheurl",
    "CacheURLError": "resumetls._cacheurl",
    # clients
    "ResumingClientCreator": "resumetls._client",
    "ResumingPolicyForHTTPS": "resumetls._client",
    "MemoryClientSessionStore": "resumetls._clientstore",
    "FileClientSessionStore": "resumetls._clientstore",
    "ClientStoreError": "resumetls._clientstore",
    "KeySet": "resumetls._keys",
    "serving_factory": "resumetls._context",
    # OpenSSL access
    "OpenSSLRouteUnavailable": "resumetls._openssl",
    # interfaces
    "ISessionCache": "resumetls.interfaces",
    "ITicketKeys": "resumetls.interfaces",
    "IClientSessionStore": "resumetls.interfaces",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'resumetls' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
