"""
Ticket keys for tests: the same keys in every run, and a key source that
holds them.

Never use these keys to serve anything: they are printed in this file.
"""

from __future__ import annotations

import hashlib
from typing import Any

from zope.interface import implementer

from resumetls.interfaces import IKeySource
from resumetls.keys.ring import KeyRing, KeySet, RotationPolicy, TicketKey


def fixed_key(index: int = 0) -> TicketKey:
    """
    Ticket key number C{index}: the same name and secrets in every run and
    on every machine (derived from the index with SHA-256), so a test can
    open a ticket, compare fingerprints, or start two servers that share
    keys.  Different indices give different keys.
    """

    def part(label: str, size: int) -> bytes:
        digest = hashlib.sha256(f"resumetls.testing {label} {index}".encode())
        return digest.digest()[:size]

    return TicketKey(part("name", 16), part("hmac", 32), part("aes", 32))


def fixed_key_set(decrypt_only: int = 0, pending: int = 0) -> KeySet:
    """
    L{fixed_key}C{(0)} encrypting, then C{decrypt_only} old keys (numbers 1,
    2, ...) and C{pending} keys (the numbers after those).
    """
    old = tuple(fixed_key(i) for i in range(1, decrypt_only + 1))
    start = decrypt_only + 1
    new = tuple(fixed_key(i) for i in range(start, start + pending))
    return KeySet(fixed_key(0), old, new)


def fixed_key_ring(
    decrypt_only: int = 0,
    pending: int = 0,
    clock: Any = None,
    policy: RotationPolicy | None = None,
) -> KeyRing:
    """
    A L{KeyRing} of L{fixed_key_set}'s keys.  Without a C{policy} it never
    rotates; with one (and a C{clock}, such as a C{Clock}), it rotates on the
    clock's schedule into the pending keys first.
    """
    return KeyRing(fixed_key_set(decrypt_only, pending), clock=clock, policy=policy)


@implementer(IKeySource)
class StaticKeySource:
    """
    An L{IKeySource} whose keys never change: for tests of code that starts,
    stops and describes key sources.  It counts its calls.

    @ivar starts: how many times L{start} was called.
    @ivar stops: how many times L{stop} was called.
    @ivar reloads: the C{why} of every L{reload}, in order.
    """

    def __init__(self, key_ring: Any = None) -> None:
        self.key_ring = key_ring if key_ring is not None else fixed_key_ring()
        self.running = False
        self.starts = 0
        self.stops = 0
        self.reloads: list[str] = []

    def __repr__(self) -> str:
        return f"<StaticKeySource running={self.running}>"

    def start(self) -> None:
        self.starts += 1
        self.running = True

    def stop(self) -> None:
        self.stops += 1
        self.running = False

    def reload(self, why: str) -> bool:
        """Nothing to read again: the keys stay, and this answers L{False}."""
        self.reloads.append(why)
        return False

    def describe(self) -> str:
        key = self.key_ring.encrypting_key()
        return f"static test keys: {key.fingerprint} encrypts"
