"""
Session caches named by URL, so command lines and endpoint strings can choose
one: C{memory://} now, with room for networked backends later (a backend
registers a factory for its scheme; callers do not change).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

from resumetls.interfaces import ISessionCache


class CacheURLError(ValueError):
    """A session cache URL that cannot be used; the message says why."""


# A backend: factory(url, parts, params, clock) -> an ISessionCache, where url
# is the URL as given (pass it through safe_url before showing it), parts its
# urlsplit() and params its query parameters, each given once.  It raises
# CacheURLError for anything it cannot use, and must not block.
Factory = Callable[[str, SplitResult, "dict[str, str]", Any], Any]

_USERINFO = re.compile(r"^([^:/?#@]*://)(.*)@")
_SECRET_PARAM = re.compile(
    r"([?&](?:password|passwd|pass|secret|token|auth|key)=)[^&#]*", re.IGNORECASE
)


def safe_url(url: str) -> str:
    """
    The URL with its credentials masked, for messages and logs: the password
    of C{user:password@}, or the whole user part when it has no colon (it may
    be a token), and the values of query parameters such as C{password=}.
    Everything up to the I{last} C{@} counts as the user part, so a password
    with an unescaped C{@}, C{/} or C{?} is masked too (better too much than
    too little).
    """
    match = _USERINFO.match(url)
    if match is not None:
        scheme, userinfo = match.groups()
        user, colon, _ = userinfo.partition(":")
        masked = f"{user}:***" if colon else "***"
        url = f"{scheme}{masked}@{url[match.end() :]}"
    return _SECRET_PARAM.sub(r"\1***", url)


def positive_int(url: str, name: str, value: str) -> int:
    """
    A query parameter that must be a positive decimal integer.

    @raise CacheURLError: naming the parameter and the value given.
    """
    if re.fullmatch(r"[0-9]+", value) is None or int(value) < 1:
        raise CacheURLError(
            f"session cache {safe_url(url)!r}: {name} must be a positive integer, "
            f"not {value!r}"
        )
    return int(value)


def size_only(url: str, params: dict[str, str], scheme: str) -> int:
    """
    The C{size} parameter of a backend that takes no other (C{memory://},
    C{lmdb://}); L{DEFAULT_MAX_ENTRIES} when it is not given.

    @raise CacheURLError: another parameter, or a size that is not a
        positive integer.
    """
    from resumetls.cache.base import DEFAULT_MAX_ENTRIES

    unknown = sorted(set(params) - {"size"})
    if unknown:
        raise CacheURLError(
            f"session cache {safe_url(url)!r}: unknown parameter "
            f"{', '.join(unknown)}; {scheme}:// knows: size"
        )
    if "size" not in params:
        return DEFAULT_MAX_ENTRIES
    return positive_int(url, "size", params["size"])


def _memory(url: str, parts: SplitResult, params: dict[str, str], clock: Any) -> Any:
    from resumetls.cache.memory import MemorySessionCache

    if parts.netloc or parts.path not in ("", "/") or parts.fragment:
        raise CacheURLError(
            f"session cache {safe_url(url)!r}: memory:// takes no host, path or "
            "fragment; write memory:// or memory://?size=N"
        )
    return MemorySessionCache(size_only(url, params, "memory"), clock)


def _lmdb(url: str, parts: SplitResult, params: dict[str, str], clock: Any) -> Any:
    from resumetls.cache.lmdb import from_url

    return from_url(url, parts, params, clock)


# scheme -> factory; see Factory above.
BACKENDS: dict[str, Factory] = {"memory": _memory, "lmdb": _lmdb}


_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


def register_backend(scheme: str, factory: Factory) -> None:
    """
    Make C{scheme://} URLs name session caches built by C{factory}: how a
    backend package plugs into C{--session-cache} and C{cache_from_url}.
    Registering a scheme again replaces its factory.

    Keep the module that calls this cheap to import: import the backend's
    client library inside the factory.

    @param scheme: the URL scheme, case-insensitive (C{"redis"}).
    @param factory: called as C{factory(url, parts, params, clock)} with the
        URL as given (show it only through L{safe_url}), its C{urlsplit()},
        its query parameters as a dict (each given once) and the
        C{IReactorTime} the cache keeps time with.  It returns an
        L{ISessionCache} provider without blocking, and raises
        L{CacheURLError} (L{positive_int} helps) for anything it cannot use.
    @raise ValueError: C{scheme} is not a URL scheme.
    @raise TypeError: C{factory} is not callable.
    """
    if not isinstance(scheme, str) or _SCHEME.fullmatch(scheme.lower()) is None:
        raise ValueError(
            f"a session cache scheme is a letter then letters, digits, '+', '-' "
            f"or '.', not {scheme!r}"
        )
    if not callable(factory):
        raise TypeError(f"the {scheme}:// backend factory is not callable")
    BACKENDS[scheme.lower()] = factory


def known_schemes() -> str:
    """The schemes that name a cache, for messages: C{"memory://"}."""
    return ", ".join(f"{s}://" for s in sorted(BACKENDS))


def cache_from_url(url: str, clock: Any = None) -> Any:
    """
    The session cache a URL names, for example C{memory://?size=50000}.

    @param clock: the C{IReactorTime} the cache keeps time with (the global
        reactor when L{None}).
    @return: an L{ISessionCache} provider.
    @raise CacheURLError: for unknown schemes (the message lists the known
        ones) and bad parameters; the message never shows a password.
    """
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise CacheURLError(
            f"session cache {safe_url(url)!r} is not a URL ({e}); "
            f"known: {known_schemes()}"
        ) from None
    scheme = parts.scheme.lower()
    if "://" not in url or scheme not in BACKENDS:
        raise CacheURLError(
            f"unknown session cache {safe_url(url)!r}; known: {known_schemes()}"
        )
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        pairs = None
    if pairs is None or (parts.query and not pairs):
        raise CacheURLError(
            f"session cache {safe_url(url)!r}: cannot read the parameters after "
            "'?'; write name=value pairs joined by '&'"
        )
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise CacheURLError(
                f"session cache {safe_url(url)!r}: {name} is given twice; give it once"
            )
        params[name] = value
    cache = BACKENDS[scheme](url, parts, params, clock)
    if not ISessionCache.providedBy(cache):
        raise TypeError(f"the {scheme}:// backend did not make an ISessionCache")
    return cache


# Backends shipped with resumetls register themselves here; their modules
# import no client library until a cache is built.
from resumetls.cache import redisurl as _redisurl  # noqa: E402, F401
