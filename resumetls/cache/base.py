"""
What the caches that answer at once (L{IImmediateSessionCache}: in memory,
host-shared LMDB) share: L{ISessionCache}'s Deferred API written once over
their C{store_now}, C{lookup_now} and C{remove_now}, their figures, and
the checks of a size bound and of a lifetime.
"""

from __future__ import annotations

import math
from typing import Any

from twisted.internet.defer import Deferred, succeed

from resumetls.cache.stats import CacheStats

__all__ = ["DEFAULT_MAX_ENTRIES", "ImmediateCache", "check_max_entries", "live"]

# OpenSSL's own bound, SSL_SESSION_CACHE_MAX_SIZE_DEFAULT (1024*20) in
# include/openssl/ssl.h.in; also nginx's "builtin" size when none is given.
DEFAULT_MAX_ENTRIES = 20480


def check_max_entries(max_entries: Any) -> int:
    """
    C{max_entries}, if it is a positive integer.

    @raise ValueError: anything else (a bool is not a size).
    """
    if (
        not isinstance(max_entries, int)
        or isinstance(max_entries, bool)
        or max_entries < 1
    ):
        raise ValueError(
            f"the session cache size must be a positive integer, not {max_entries!r}"
        )
    return max_entries


def live(lifetime: float) -> bool:
    """
    Whether a session stored with C{lifetime} seconds is alive: L{False}
    for a lifetime that is not positive (the store forgets the key instead).

    @raise ValueError: if C{lifetime} is infinite or not a number.
    """
    if 0 < lifetime < math.inf:
        return True
    if not math.isfinite(lifetime):
        raise ValueError(
            f"a session lifetime must be a finite number of seconds, not {lifetime!r}"
        )
    return False


class ImmediateCache:
    """
    L{ISessionCache}'s methods (Deferreds, already fired) for a cache that
    implements L{IImmediateSessionCache}'s C{store_now}, C{lookup_now} and
    C{remove_now}: the server calls those inside the handshake; anything
    that wants the common contract calls these.
    """

    def store(self, session_id: bytes, der: bytes, lifetime: float) -> Deferred:
        self.store_now(session_id, der, lifetime)
        return succeed(None)

    def lookup(self, session_id: bytes) -> Deferred:
        return succeed(self.lookup_now(session_id))

    def remove(self, session_id: bytes) -> Deferred:
        self.remove_now(session_id)
        return succeed(None)

    def _cache_stats(self, entries: int, errors: int, backend: str) -> CacheStats:
        """
        L{CacheStats} from the counters both caches keep (C{_bytes},
        C{_hits}, C{_misses}, C{_stores}, C{_evictions}, C{_expirations}).
        """
        return CacheStats(
            entries=entries,
            bytes=self._bytes,
            max_entries=self.max_entries,
            hits=self._hits,
            misses=self._misses,
            stores=self._stores,
            evictions=self._evictions,
            expirations=self._expirations,
            errors=errors,
            backend=backend,
        )
