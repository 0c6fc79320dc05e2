"""
The client session store in memory, the default: sessions per server
profile, in this process only, each TLS 1.2 session replacing the older
ones and up to L{KEEP_PER_SERVER} single-use TLS 1.3 tickets kept.
"""

from __future__ import annotations

import time
from typing import Any

from zope.interface import implementer

from resumetls.interfaces import IClientSessionStore

#: TLS 1.3 tickets kept per server profile (each is used once).
KEEP_PER_SERVER = 4
#: Seconds between sweeps of other profiles' expired sessions in memory.
SWEEP_INTERVAL = 60.0


def drop_expired(
    sessions: dict[str, list[list[Any]]], now: float, keep: str | None
) -> None:
    """
    Drop the expired sessions of every profile but C{keep} (whose own
    expiry is judged by C{take} at the time its caller gives).
    """
    for key in list(sessions):
        if key == keep:
            continue
        live = [e for e in sessions[key] if e[1] > now]
        if live:
            sessions[key] = live
        else:
            del sessions[key]


@implementer(IClientSessionStore)
class MemoryClientSessionStore:
    """Sessions per server profile, in this process only."""

    def __init__(self, keep: int = KEEP_PER_SERVER) -> None:
        self.keep = keep
        # key -> list of [der, expires, single_use], oldest first
        self._sessions: dict[str, list[list[Any]]] = {}
        self._next_sweep = 0.0

    def __repr__(self) -> str:
        count = sum(len(v) for v in self._sessions.values())
        return f"<{type(self).__name__} servers={len(self._sessions)} sessions={count}>"

    def put(self, key: str, der: bytes, expires: float, single_use: bool) -> None:
        self._put(key, der, expires, single_use)
        now = time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL
            drop_expired(self._sessions, now, keep=key)

    def take(self, key: str, now: float) -> bytes | None:
        return self._take(key, now)

    def forget(self, key: str) -> None:
        self._sessions.pop(key, None)

    def count(self, key: str) -> int:
        return len(self._sessions.get(key, ()))

    def _put(self, key: str, der: bytes, expires: float, single_use: bool) -> None:
        entries = self._sessions.setdefault(key, [])
        if not single_use:
            # A TLS 1.2 session replaces the older ones: it is reusable.
            entries[:] = [e for e in entries if e[2]]
        entries.append([der, expires, single_use])
        del entries[: max(0, len(entries) - self.keep)]

    def _peek(self, key: str, now: float) -> tuple[bytes | None, bool]:
        """
        What L{take} would return, and whether taking it changes anything
        (a single-use session to remove, expired ones to drop).
        """
        entries = self._sessions.get(key)
        if not entries:
            return None, False
        live = [e for e in entries if e[1] > now]
        if not live:
            return None, True
        return live[-1][0], len(live) != len(entries) or live[-1][2]

    def _take(self, key: str, now: float) -> bytes | None:
        entries = self._sessions.get(key)
        if not entries:
            return None
        live = [e for e in entries if e[1] > now]
        result = None
        if live:
            newest = live[-1]
            result = newest[0]
            if newest[2]:
                live.pop()
        if live:
            self._sessions[key] = live
        else:
            self._sessions.pop(key, None)
        return result
