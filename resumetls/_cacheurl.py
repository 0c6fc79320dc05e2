"""
Session caches named by URL, so command lines and endpoint strings can choose
one: C{memory://} now, with room for networked backends later (a backend
registers a factory for its scheme; callers do not change).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from resumetls.interfaces import ISessionCache


class CacheURLError(ValueError):
    """A session cache URL that cannot be used; the message says why."""


def _safe(url: str) -> str:
    """The URL with any password masked, for error messages."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def _positive_int(url: str, name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise CacheURLError(
            f"session cache {_safe(url)!r}: {name} must be a positive integer, "
            f"not {value!r}"
        )
    return number


def _memory(url: str, parts: Any, params: dict[str, str], clock: Any) -> Any:
    from resumetls._memorycache import DEFAULT_MAX_ENTRIES, MemorySessionCache

    if parts.netloc or parts.path not in ("", "/"):
        raise CacheURLError(
            f"session cache {_safe(url)!r}: memory:// takes no host or path; "
            "write memory:// or memory://?size=N"
        )
    unknown = sorted(set(params) - {"size"})
    if unknown:
        raise CacheURLError(
            f"session cache {_safe(url)!r}: unknown parameter "
            f"{', '.join(unknown)}; memory:// knows: size"
        )
    size = DEFAULT_MAX_ENTRIES
    if "size" in params:
        size = _positive_int(url, "size", params["size"])
    return MemorySessionCache(max_entries=size, clock=clock)


# scheme -> factory(url, split url, query parameters, clock) -> ISessionCache
BACKENDS: dict[str, Callable[..., Any]] = {"memory": _memory}


def cache_from_url(url: str, clock: Any = None) -> Any:
    """
    The session cache a URL names.

    @raise CacheURLError: for unknown schemes (the message lists the known
        ones) and bad parameters.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if "://" not in url or scheme not in BACKENDS:
        known = ", ".join(f"{s}://" for s in sorted(BACKENDS))
        raise CacheURLError(f"unknown session cache {_safe(url)!r}; known: {known}")
    try:
        params = dict(
            parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
        )
    except ValueError:
        raise CacheURLError(
            f"session cache {_safe(url)!r}: cannot read the parameters after '?'"
        ) from None
    cache = BACKENDS[scheme](url, parts, params, clock)
    assert ISessionCache.providedBy(cache)
    return cache
