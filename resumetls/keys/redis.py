"""
The fleet's ticket keys in Redis (C{--ticket-keys redis://…},
C{ticketKeys=redis\\://…}, also C{rediss:}, C{redis+unix:},
C{redis+sentinel:}): a key ring kept in step with the fleet's schedule,
stored sealed by L{resumetls.keys.fleetstore.FleetStore} (AES-256-GCM under
a key derived from the service's TLS private key with purpose
C{ticket-keys}, or C{seal_key_file=}).

Every server subscribes to the schedule's channel and reads it again when a
server writes it (at once), and also every C{poll} seconds (the fallback,
at most 5 s or a quarter of the rotation interval) and on SIGHUP.  Whoever
finds no pending key publishes the next one with a compare-and-set script
on the version: of servers racing, exactly one write succeeds, the others
read the winner's key.  A new key is published one rotation interval before
it encrypts, so every server knows it long before any encrypts with it.  A
key decrypts for C{decrypt_window} (keep x interval) after it stops
encrypting; a longer session timeout (a ticket's lifetime hint) is refused
at start-up.  Redis away: the keys known stay, and roles change on each
server's own clock.  A server that starts while Redis is away encrypts with
a key of its own, says so, and when it joins keeps that key for decryption
only.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from resumetls.interfaces import IKeySource
from resumetls.keys.fleet import FleetKeyRing, FleetSchedule, ScheduledKey
from resumetls.keys.fleetstore import FleetStore

__all__ = ["RedisKeySource", "register"]

_log = Logger(namespace="resumetls")

DEFAULT_POLL = 5.0
_JOIN_POLL = 0.1
# What the line saying Redis went away adds, before and after joining.
_AWAY_LOCAL = (
    "ticket keys are this server's own (they stay valid for decryption "
    "after it joins the fleet's)"
)
_AWAY_JOINED = "the fleet's keys known stay, and change roles on their own times"


@implementer(IKeySource)
class RedisKeySource:
    """
    A key ring kept in step with the fleet's schedule in Redis.

    @param target: a L{resumetls.cache.redisurl.RedisTarget}.
    @param policy: the L{RotationPolicy}: rotation interval and how many
        intervals an old key still decrypts (C{keep}, at least 1).
    """

    def __init__(self, target: Any, clock: Any, policy: Any, client: Any = None):
        from resumetls.cache.redisclient import RedisClient

        self.target = target
        self.policy = policy
        # Pub/sub tells of changes at once; polling is the fallback, often
        # enough that a key is learned well within its lead time (an interval).
        self.poll = min(DEFAULT_POLL, policy.interval / 4)
        self.store = FleetStore(client or RedisClient(target), target.prefix)
        self.store.client.consequence = _AWAY_LOCAL
        self._clock = clock
        #: Seconds a key still decrypts after it stops encrypting: no
        #: ticket's lifetime hint (the session timeout) may be longer.
        self.decrypt_window = max(1, policy.keep) * policy.interval
        now = clock.seconds()
        local = FleetSchedule().extended(now, policy.interval, max(1, policy.keep))
        self.key_ring = FleetKeyRing(local, clock, source="local")
        self._local: tuple[ScheduledKey, ...] = local.keys
        self.joined = False
        self.last_sync: float | None = None
        self.syncs = self.failures = 0
        self.notices = 0
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock

    def __repr__(self) -> str:
        return f"<RedisKeySource {self.target.safe} joined={self.joined}>"

    def use_service_key(self, private_key_file: str) -> None:
        """Seal with C{seal_key_file=} or a key derived from the TLS key."""
        from resumetls.cache.seal import SealKeyError, sealing_key
        from resumetls.keys.sources import KeySourceError

        try:
            key = sealing_key(
                private_key_file, self.target.seal_key_file, b"ticket-keys"
            )
        except SealKeyError as e:
            raise KeySourceError(
                f"ticket keys {self.target.safe}: cannot get the sealing key: {e}"
            ) from None
        self.store.seal_with(key)

    # -- IKeySource ---------------------------------------------------------------

    def start(self) -> None:
        if self.store.sealer is None:
            raise RuntimeError("RedisKeySource needs use_service_key() first")
        client = self.store.client
        client.connect()
        subscribe = getattr(client, "subscribe", None)
        if subscribe is not None:
            subscribe(self.store.channel, self._notified, self.sync)
        if not self._loop.running:
            # Quickly until joined (the connection comes up within
            # milliseconds), then every poll interval.
            self._loop.start(_JOIN_POLL if not self.joined else self.poll, now=True)

    def stop(self) -> Any:
        if self._loop.running:
            self._loop.stop()
        return self.store.client.disconnect()

    def reload(self, why: str = "SIGHUP") -> bool:
        self.sync()
        return False

    def describe(self) -> str:
        state = "joined" if self.joined else "not joined yet: local keys"
        return (
            f"fleet ticket keys in {self.target.describe()} ({state}), rotated "
            f"every {self.policy.interval:g}s, old keys decrypt for "
            f"{self.decrypt_window:g}s"
        )

    @property
    def version(self) -> int:
        """The version of the fleet's keys last read."""
        return self.store.version

    def fleet_status(self) -> dict[str, Any]:
        """
        Roles, each key's fingerprint, role and times, version, time since
        the last read, notices received by pub/sub (no key material).
        """
        now = self._clock.seconds()
        return {
            "joined": self.joined,
            "version": self.version,
            "roles": self.key_ring.roles(),
            "keys": [
                {
                    "fingerprint": k.key.fingerprint,
                    "role": k.role(now),
                    "active_from": k.active_from,
                    "encrypt_until": k.encrypt_until,
                    "decrypt_until": k.decrypt_until,
                }
                for k in self.key_ring.schedule.keys
            ],
            "notices": self.notices,
            "since_sync": None if self.last_sync is None else now - self.last_sync,
            "syncs": self.syncs,
            "failures": self.failures,
        }

    # -- keeping in step ------------------------------------------------------------

    def _tick(self) -> None:
        self.sync()

    def _notified(self, channel: Any, message: Any) -> None:
        """A server changed the fleet's keys (the script's PUBLISH): read them."""
        self.notices += 1
        try:
            if int(message) <= self.store.version:
                return  # our own write, or already read
        except (TypeError, ValueError):
            pass
        self.sync()

    def sync(self) -> Deferred:
        """Read (and if due, extend) the schedule now; never fails."""
        from twisted.internet.defer import succeed

        if not self.store.client.available:
            return succeed(None)  # the client says once that Redis is away
        p = self.policy
        keep = max(1, p.keep)
        proposed: list[tuple[FleetSchedule | None, FleetSchedule]] = []

        def edit(schedule: FleetSchedule | None) -> FleetSchedule | None:
            now = self._clock.seconds()
            if schedule is None:
                changed = FleetSchedule().extended(now, p.interval, keep)
            elif schedule.needs_next(now):
                changed = schedule.extended(now, p.interval, keep)
            else:
                return None
            proposed.append((schedule, changed))
            return changed

        d = self.store.change(self._clock.seconds(), edit)
        return d.addCallbacks(self._install, self._failed, callbackArgs=(proposed,))

    def _install(self, schedule: FleetSchedule, proposed: list = ()) -> None:
        if proposed and proposed[-1][1] is schedule:
            _published(proposed[-1][0], schedule)
        now = self._clock.seconds()
        self.syncs += 1
        self.last_sync = now
        if not self.joined:
            self.joined = True
            # Our own keys that issued tickets: decrypt-only from now.
            used = self.key_ring.used
            self._local = tuple(
                ScheduledKey(
                    k.key, k.active_from, min(k.encrypt_until, now), now + self.decrypt_window
                )
                for k in self._local
                if k.key.name in used and k.role(now) is not None
            )
            self.store.client.consequence = _AWAY_JOINED
            if self._loop.running and self._loop.interval != self.poll:
                self._loop.stop()
                self._loop.start(self.poll, now=False)
            _log.info(
                "joined the fleet's ticket keys in {where}",
                where=self.target.describe(),
                event="resumetls.fleet.joined",
            )
        fleet_names = {k.key.name for k in schedule.keys}
        local = tuple(
            k
            for k in self._local
            if k.role(now) is not None and k.key.name not in fleet_names
        )
        self._local = local
        merged = FleetSchedule((*local, *schedule.live(now).keys))
        if merged != self.key_ring.schedule:
            self.key_ring.replace(merged)
            self.key_ring.source = "fleet"

    def _failed(self, failure: Any) -> None:
        self.failures += 1
        _log.warn(
            "reading the fleet's ticket keys failed: {error}; the keys known stay",
            error=failure.getErrorMessage(),
            event="resumetls.fleet.sync_failed",
        )


def _published(before: FleetSchedule | None, after: FleetSchedule) -> None:
    """Say which keys this server published (fingerprints and times only)."""
    known = {k.key.name for k in before.keys} if before is not None else set()
    for k in after.keys:
        if k.key.name not in known:
            _log.info(
                "published ticket key {fingerprint} to the fleet: it encrypts "
                "from {active_from:.3f} to {encrypt_until:.3f} (epoch seconds)",
                fingerprint=k.key.fingerprint,
                active_from=k.active_from,
                encrypt_until=k.encrypt_until,
                event="resumetls.fleet.published",
            )


def _check(location: str) -> str:
    """Parse (no I/O) a key source location; raise a one-line error."""
    _target(location)
    return location


def _target(location: str, scheme: str = "redis") -> Any:
    from urllib.parse import parse_qsl, urlsplit

    from resumetls.cache.redisurl import KEYS_PARAMS, parse_redis_url
    from resumetls.cache.urls import CacheURLError
    from resumetls.keys.sources import KeySourceError

    url = location if "://" in location else f"{scheme}:{location}"
    try:
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        return parse_redis_url(url, parts, params, "ticket keys", KEYS_PARAMS)
    except (CacheURLError, ValueError) as e:
        raise KeySourceError(str(e)) from None


def register() -> None:
    """
    Make C{redis:}, C{rediss:}, C{redis+unix:} and C{redis+sentinel:} name
    fleet key sources.
    """
    from resumetls.cache.redisurl import SCHEMES
    from resumetls.keys.sources import register_key_source

    for scheme in SCHEMES:

        def factory(
            location: str, clock: Any, policy: Any, scheme: str = scheme
        ) -> Any:
            return RedisKeySource(_target(f"{scheme}:{location}"), clock, policy)

        def check(location: str, scheme: str = scheme) -> str:
            _target(f"{scheme}:{location}")
            return location

        register_key_source(scheme, factory, check)
