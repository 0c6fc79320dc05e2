"""
The fleet's ticket keys as Redis holds them: one L{FleetSchedule}, sealed
(L{resumetls.cache.seal.SessionSealer}, the key never in Redis), at
C{PREFIX:k:ring}, with a version counter at C{PREFIX:k:version}; every
write goes through a compare-and-set script on the version, which also
publishes the new version on C{PREFIX:k:changed} (servers subscribe to it).
No timers here: the key source (L{resumetls.keys.redis}) and C{resumetls
keys fleet} drive it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks

from resumetls.keys.fleet import FleetSchedule

__all__ = ["FleetStore"]

# KEYS: ring, version, channel; ARGV: expected version, new sealed ring.
_CAS = b"""
local v = tonumber(redis.call('GET', KEYS[2]) or '0')
if v ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], v + 1)
redis.call('PUBLISH', KEYS[3], v + 1)
return 1
"""
_AAD = b"ring"


class FleetStore:
    """
    Reading and writing the sealed schedule (no timers: the key source and
    C{resumetls keys} drive it).

    @param client: a L{resumetls.cache.redisclient.RedisClient}.
    """

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        base = prefix.encode() + b":k:"
        self.ring_key, self.version_key = base + b"ring", base + b"version"
        self.channel = base + b"changed"
        self.namespace = base
        self.sealer: Any = None
        #: The version last read (each write adds one).
        self.version = 0

    def seal_with(self, key: bytes) -> None:
        from resumetls.cache.seal import SessionSealer

        self.sealer = SessionSealer(key, self.namespace)

    @inlineCallbacks
    def read(self) -> Any:
        """Fires with (version, schedule or None); a foreign value raises."""
        blob, version = yield self.client.command(
            "MGET", self.ring_key, self.version_key
        )
        version = int(version or 0)
        self.version = max(self.version, version)
        if blob is None:
            return version, None
        plain = self.sealer.open(_AAD, blob)
        if plain is None:
            raise ValueError(
                "the fleet's ticket keys in Redis do not open with this server's "
                "sealing key (another TLS key, or corrupt)"
            )
        return version, FleetSchedule.decode(plain)

    def write(self, expected: int, schedule: FleetSchedule) -> Deferred:
        """Fires with L{True} when C{expected} was still the version."""
        blob = self.sealer.seal(_AAD, schedule.encode())
        d = self.client.command(
            "EVAL",
            _CAS,
            3,
            self.ring_key,
            self.version_key,
            self.channel,
            expected,
            blob,
        )
        return d.addCallback(lambda won: int(won) == 1)

    @inlineCallbacks
    def change(self, now: float, edit: Any, attempts: int = 5) -> Any:
        """
        Apply C{edit(schedule or None) -> schedule or None} with
        compare-and-set, retrying on a lost race; fires with the schedule
        now stored.
        """
        for _ in range(attempts):
            version, schedule = yield self.read()
            changed = edit(schedule)
            if changed is None:
                return schedule
            won = yield self.write(version, changed)
            if won:
                return changed
        raise RuntimeError("the fleet's ticket keys kept changing; try again")
