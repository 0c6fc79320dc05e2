"""
resumetls: TLS session resumption (session IDs and session tickets) for any
Twisted server, and Twisted clients that resume.

The public names below are grouped by concept, the way the package is laid
out (C{resumetls.server}, C{resumetls.keys}, C{resumetls.cache},
C{resumetls.client}, C{resumetls.openssl}; docs/architecture.md is the map).
They are imported on first use (PEP 562), so that C{import resumetls} and
Twisted's plugin discovery, which imports our plugin file, stay cheap: nothing
touches OpenSSL until a name is used.  Type checkers see them through the
C{TYPE_CHECKING} block.  Test doubles and contract tests for backend authors
are in L{resumetls.testing}.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from resumetls.cache.lmdb import (
        LMDBCacheError as LMDBCacheError,
    )
    from resumetls.cache.lmdb import (
        LMDBSessionCache as LMDBSessionCache,
    )
    from resumetls.cache.memory import (
        MemorySessionCache as MemorySessionCache,
    )
    from resumetls.cache.redis import (
        RedisSessionCache as RedisSessionCache,
    )
    from resumetls.cache.seal import (
        SessionSealer as SessionSealer,
    )
    from resumetls.cache.seal import (
        derive_key as derive_key,
    )
    from resumetls.cache.stats import (
        CacheStats as CacheStats,
    )
    from resumetls.cache.urls import (
        CacheURLError as CacheURLError,
    )
    from resumetls.cache.urls import (
        cache_from_url as cache_from_url,
    )
    from resumetls.cache.urls import (
        register_backend as register_backend,
    )
    from resumetls.cache.urls import (
        safe_url as safe_url,
    )
    from resumetls.client.creator import (
        ResumingClientCreator as ResumingClientCreator,
    )
    from resumetls.client.filestore import (
        ClientStoreError as ClientStoreError,
    )
    from resumetls.client.filestore import (
        FileClientSessionStore as FileClientSessionStore,
    )
    from resumetls.client.memorystore import (
        MemoryClientSessionStore as MemoryClientSessionStore,
    )
    from resumetls.client.policy import (
        ResumingPolicyForHTTPS as ResumingPolicyForHTTPS,
    )
    from resumetls.interfaces import (
        IClientSessionStore as IClientSessionStore,
    )
    from resumetls.interfaces import (
        IHandshakeHooks as IHandshakeHooks,
    )
    from resumetls.interfaces import (
        IImmediateSessionCache as IImmediateSessionCache,
    )
    from resumetls.interfaces import (
        IKeySource as IKeySource,
    )
    from resumetls.interfaces import (
        ISessionCache as ISessionCache,
    )
    from resumetls.interfaces import (
        ITicketKeys as ITicketKeys,
    )
    from resumetls.keys.files import (
        KeyFileError as KeyFileError,
    )
    from resumetls.keys.files import (
        load_key_file as load_key_file,
    )
    from resumetls.keys.redis import (
        RedisKeySource as RedisKeySource,
    )
    from resumetls.keys.ring import (
        KeyRing as KeyRing,
    )
    from resumetls.keys.ring import (
        KeyRingSummary as KeyRingSummary,
    )
    from resumetls.keys.ring import (
        KeySet as KeySet,
    )
    from resumetls.keys.ring import (
        RotationPolicy as RotationPolicy,
    )
    from resumetls.keys.ring import (
        TicketKey as TicketKey,
    )
    from resumetls.keys.sources import (
        GeneratedKeySource as GeneratedKeySource,
    )
    from resumetls.keys.sources import (
        KeyFileSource as KeyFileSource,
    )
    from resumetls.keys.sources import (
        KeySourceError as KeySourceError,
    )
    from resumetls.keys.sources import (
        key_source_from_spec as key_source_from_spec,
    )
    from resumetls.keys.sources import (
        load_key_files as load_key_files,
    )
    from resumetls.keys.sources import (
        register_key_source as register_key_source,
    )
    from resumetls.openssl.errors import (
        OpenSSLRouteUnavailable as OpenSSLRouteUnavailable,
    )
    from resumetls.options import (
        ConfigError as ConfigError,
    )
    from resumetls.server.certreload import (
        CertificateReloader as CertificateReloader,
    )
    from resumetls.server.endpoint import (
        ResumingServerEndpoint as ResumingServerEndpoint,
    )
    from resumetls.server.factory import (
        ContextAlreadyUsedError as ContextAlreadyUsedError,
    )
    from resumetls.server.factory import (
        ResumingContextFactory as ResumingContextFactory,
    )
    from resumetls.server.protocol import (
        ResumingTLSFactory as ResumingTLSFactory,
    )
    from resumetls.server.settings import (
        Capabilities as Capabilities,
    )
    from resumetls.server.settings import (
        ResumptionSettings as ResumptionSettings,
    )
    from resumetls.server.stats import (
        ResumptionInfo as ResumptionInfo,
    )
    from resumetls.server.stats import (
        ResumptionStats as ResumptionStats,
    )
    from resumetls.server.stats import (
        describe_mechanism as describe_mechanism,
    )
    from resumetls.server.stats import (
        resumption_info as resumption_info,
    )
    from resumetls.server.stats import (
        serving_factory as serving_factory,
    )

_EXPORTS = {
    # server: the context factory and what it reports
    "ResumingContextFactory": "resumetls.server.factory",
    "ContextAlreadyUsedError": "resumetls.server.factory",
    "ResumptionSettings": "resumetls.server.settings",
    "Capabilities": "resumetls.server.settings",
    "ResumptionStats": "resumetls.server.stats",
    "ResumptionInfo": "resumetls.server.stats",
    "resumption_info": "resumetls.server.stats",
    "serving_factory": "resumetls.server.stats",
    "describe_mechanism": "resumetls.server.stats",
    "ResumingServerEndpoint": "resumetls.server.endpoint",
    "ResumingTLSFactory": "resumetls.server.protocol",
    "CertificateReloader": "resumetls.server.certreload",
    # configuration: the option table's errors
    "ConfigError": "resumetls.options",
    # ticket keys: values, the key ring, key files, key sources
    "TicketKey": "resumetls.keys.ring",
    "KeySet": "resumetls.keys.ring",
    "KeyRing": "resumetls.keys.ring",
    "RotationPolicy": "resumetls.keys.ring",
    "KeyRingSummary": "resumetls.keys.ring",
    "KeyFileError": "resumetls.keys.files",
    "load_key_file": "resumetls.keys.files",
    "GeneratedKeySource": "resumetls.keys.sources",
    "KeyFileSource": "resumetls.keys.sources",
    "KeySourceError": "resumetls.keys.sources",
    "key_source_from_spec": "resumetls.keys.sources",
    "load_key_files": "resumetls.keys.sources",
    "register_key_source": "resumetls.keys.sources",
    # session caches: the memory cache and the URL registry backends plug into
    "CacheStats": "resumetls.cache.stats",
    "MemorySessionCache": "resumetls.cache.memory",
    "LMDBSessionCache": "resumetls.cache.lmdb",
    "LMDBCacheError": "resumetls.cache.lmdb",
    "RedisSessionCache": "resumetls.cache.redis",
    "SessionSealer": "resumetls.cache.seal",
    "derive_key": "resumetls.cache.seal",
    "RedisKeySource": "resumetls.keys.redis",
    "cache_from_url": "resumetls.cache.urls",
    "register_backend": "resumetls.cache.urls",
    "CacheURLError": "resumetls.cache.urls",
    "safe_url": "resumetls.cache.urls",
    # clients that resume
    "ResumingClientCreator": "resumetls.client.creator",
    "ResumingPolicyForHTTPS": "resumetls.client.policy",
    "MemoryClientSessionStore": "resumetls.client.memorystore",
    "FileClientSessionStore": "resumetls.client.filestore",
    "ClientStoreError": "resumetls.client.filestore",
    # OpenSSL access
    "OpenSSLRouteUnavailable": "resumetls.openssl.errors",
    # interfaces: what plugs in
    "ISessionCache": "resumetls.interfaces",
    "IImmediateSessionCache": "resumetls.interfaces",
    "ITicketKeys": "resumetls.interfaces",
    "IKeySource": "resumetls.interfaces",
    "IHandshakeHooks": "resumetls.interfaces",
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
