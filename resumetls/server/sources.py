"""
Where a server's sessions and ticket keys come from, in words and figures,
for the demo page, C{status.json} and the metrics: the session cache's
backend, the key source, and (for a networked cache) how lookups that paused
handshakes went.  Nothing here shows a secret.
"""

from __future__ import annotations

from typing import Any

__all__ = ["describe_cache", "describe_key_source", "sources_status"]


def describe_cache(cache: Any) -> str:
    """The session cache in words (never a password or a session)."""
    if cache is None:
        return "no session cache (session IDs off)"
    from resumetls.cache.memory import MemorySessionCache

    if isinstance(cache, MemorySessionCache):
        return f"in-memory cache in this process, up to {cache.max_entries} sessions"
    description = getattr(cache, "description", None)
    if isinstance(description, str) and description:
        sealed = " (sealed with AES-256-GCM)" if getattr(cache, "sealed", False) else ""
        return f"{description}{sealed}"
    return type(cache).__name__


def describe_key_source(factory: Any) -> str:
    """The ticket keys' source in words."""
    source = getattr(factory, "key_source", None)
    if source is not None:
        try:
            return str(source.describe())
        except Exception:  # noqa: BLE001 - a status page must not fail
            return repr(source)
    ring = getattr(factory, "key_ring", None)
    if ring is None:
        return "no ticket keys (tickets off)"
    return f"ticket keys from {ring.describe().source}"


def sources_status(factory: Any) -> dict[str, Any]:
    """
    C{status.json}'s C{sources} object: C{cache} and C{key_source} in
    words, C{cache_figures} (a networked cache's own: stores dropped,
    connected), C{lookups} (handshakes paused for lookups, their outcome,
    the circuit's state, latency), C{fleet} (a fleet key source's ring).
    """
    cache = getattr(factory, "cache", None)
    data: dict[str, Any] = {
        "cache": describe_cache(cache),
        "key_source": describe_key_source(factory),
    }
    figures = getattr(cache, "figures", None)
    if callable(figures):
        data["cache_figures"] = figures()
    hooks = getattr(factory, "hooks", None)
    pauser = getattr(hooks, "pauser", None)
    if pauser is not None:
        data["lookups"] = pauser.figures()
    fleet = getattr(getattr(factory, "key_source", None), "fleet_status", None)
    if callable(fleet):
        data["fleet"] = fleet()
    return data
