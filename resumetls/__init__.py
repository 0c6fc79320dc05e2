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
    "ResumingContextFactory": "resumetls.server.factory",
    "ResumptionSettings": "resumetls.server.settings",
    "ResumptionStats": "resumetls.server.factory",
    "ResumptionInfo": "resumetls.server.factory",
    "Capabilities": "resumetls.server.settings",
    "ContextAlreadyUsedError": "resumetls.server.factory",
    "resumption_info": "resumetls.server.factory",
    # ticket keys
    "TicketKey": "resumetls.keys.ring",
    "KeyRing": "resumetls.keys.ring",
    "RotationPolicy": "resumetls.keys.ring",
    "KeyRingSummary": "resumetls.keys.ring",
    "KeyFileError": "resumetls.keys.files",
    "load_key_file": "resumetls.keys.files",
    # session caches
    "CacheStats": "resumetls.cache.stats",
    "MemorySessionCache": "resumetls.cache.memory",
    "cache_from_url": "resumetls.cache.urls",
    "CacheURLError": "resumetls.cache.urls",
    # clients
    "ResumingClientCreator": "resumetls.client.creator",
    "ResumingPolicyForHTTPS": "resumetls.client.creator",
    "MemoryClientSessionStore": "resumetls.client.stores",
    "FileClientSessionStore": "resumetls.client.stores",
    "ClientStoreError": "resumetls.client.stores",
    "KeySet": "resumetls.keys.ring",
    "serving_factory": "resumetls.server.factory",
    # OpenSSL access
    "OpenSSLRouteUnavailable": "resumetls.openssl.binding",
    # interfaces
    "ISessionCache": "resumetls.interfaces",
    "ITicketKeys": "resumetls.interfaces",
    "IClientSessionStore": "resumetls.interfaces",
    "IImmediateSessionCache": "resumetls.interfaces",
    "IKeySource": "resumetls.interfaces",
    "IHandshakeHooks": "resumetls.interfaces",
    # configuration, listener, key sources
    "ConfigError": "resumetls.options",
    "ResumingServerEndpoint": "resumetls.server.endpoint",
    "GeneratedKeySource": "resumetls.keys.sources",
    "KeyFileSource": "resumetls.keys.sources",
    "KeySourceError": "resumetls.keys.sources",
    "key_source_from_spec": "resumetls.keys.sources",
    "register_key_source": "resumetls.keys.sources",
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
