"""
A fleet's ticket keys on one schedule that every server honours on its own
clock: each key is I{pending} until its C{active_from} time (known, opens
tickets, encrypts nothing), I{active} until C{encrypt_until} (it encrypts),
then I{decrypt-only} until C{decrypt_until}, when it is dropped.

L{FleetSchedule} is the stored form (a list of L{ScheduledKey}, encoded as
JSON for sealing), with the one operation that changes it,
L{FleetSchedule.extended}: add the next pending key after the last one, so
a new key is published one rotation interval before it encrypts.
L{FleetKeyRing} is the L{ITicketKeys} a server's ticket callback reads; its
roles are computed from the clock at each call, so a server that cannot
reach the store switches to the next known key at its time by itself.

A key decrypts for C{keep * interval} seconds after it stops encrypting
(at least the session timeout, checked by the source), so a ticket's
lifetime hint never outlives its key.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from zope.interface import implementer

from resumetls.interfaces import ITicketKeys
from resumetls.keys.ring import KeyRingSummary, TicketKey

__all__ = ["FleetKeyRing", "FleetSchedule", "ScheduledKey"]

PENDING, ACTIVE, DECRYPT_ONLY = "pending", "active", "decrypt_only"


@attrs.frozen(repr=False)
class ScheduledKey:
    """A ticket key and the times of its roles (seconds since the epoch)."""

    key: TicketKey
    active_from: float
    encrypt_until: float
    decrypt_until: float

    def __repr__(self) -> str:
        return f"<ScheduledKey {self.key.fingerprint} from {self.active_from:.0f}>"

    def role(self, now: float) -> str | None:
        """Its role at C{now}, or L{None} once it decrypts no more."""
        if now < self.active_from:
            return PENDING
        if now < self.encrypt_until:
            return ACTIVE
        if now < self.decrypt_until:
            return DECRYPT_ONLY
        return None

    def as_json(self) -> dict[str, Any]:
        k = self.key
        return {
            "name": k.name.hex(),
            "hmac": k.hmac_key.hex(),
            "aes": k.aes_key.hex(),
            "active_from": self.active_from,
            "encrypt_until": self.encrypt_until,
            "decrypt_until": self.decrypt_until,
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ScheduledKey:
        key = TicketKey(
            bytes.fromhex(item["name"]),
            bytes.fromhex(item["hmac"]),
            bytes.fromhex(item["aes"]),
        )
        return cls(
            key,
            float(item["active_from"]),
            float(item["encrypt_until"]),
            float(item["decrypt_until"]),
        )


@attrs.frozen
class FleetSchedule:
    """The fleet's keys, oldest first (a secret: seal it before storing)."""

    keys: tuple[ScheduledKey, ...] = ()

    def encode(self) -> bytes:
        return json.dumps([k.as_json() for k in self.keys]).encode()

    @classmethod
    def decode(cls, data: bytes) -> FleetSchedule:
        """
        @raise ValueError: not a schedule (corrupt, or from another format).
        """
        try:
            items = json.loads(data.decode())
            return cls(tuple(ScheduledKey.from_json(i) for i in items))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise ValueError(f"not a fleet key schedule ({type(e).__name__})") from None

    def live(self, now: float) -> FleetSchedule:
        """Without the keys that decrypt no more."""
        return FleetSchedule(tuple(k for k in self.keys if k.role(now) is not None))

    def needs_next(self, now: float) -> bool:
        """Whether no key is pending (the next one must be published now)."""
        return not any(k.role(now) == PENDING for k in self.keys)

    def extended(self, now: float, interval: float, keep: int) -> FleetSchedule:
        """
        The schedule with dead keys dropped and, until a key is pending, new
        keys: the first active from C{now} (an empty schedule), each next one
        from the end of the last one's encrypting time.
        """
        keys = list(self.live(now).keys)
        window = keep * interval
        while not keys or keys[-1].role(now) != PENDING:
            last = keys[-1] if keys else None
            # After an active key, the next starts when it stops encrypting;
            # otherwise (none, or only decrypt-only keys left) at once.
            start = last.encrypt_until if last and last.role(now) == ACTIVE else now
            keys.append(
                ScheduledKey(
                    TicketKey.generate(),
                    start,
                    start + interval,
                    start + interval + window,
                )
            )
        return FleetSchedule(tuple(keys))

    def rotated(
        self, now: float, lead: float, interval: float, keep: int
    ) -> FleetSchedule:
        """
        Rotate soon: the pending key encrypts from C{now + lead} (every server
        learns of the change within the lead time), the active key stops
        encrypting then, and a new pending key follows.
        """
        switch = now + lead
        window = keep * interval
        keys = []
        for k in self.live(now).keys:
            role = k.role(now)
            if role == ACTIVE:
                k = ScheduledKey(k.key, k.active_from, switch, switch + window)
            elif role == PENDING:
                if any(x.role(now) == PENDING for x in keys):
                    continue  # a later pending key: replaced by a fresh one
                k = ScheduledKey(
                    k.key, switch, switch + interval, switch + interval + window
                )
            keys.append(k)
        return FleetSchedule(tuple(keys)).extended(now, interval, keep)

    def imported(
        self, now: float, lead: float, interval: float, keep: int, keyset: Any
    ) -> FleetSchedule:
        """
        Add a key file's keys: its encrypting key becomes the next key (from
        C{now + lead}); its other keys decrypt only, for C{keep * interval}.
        Keys already in the schedule (by name) are left as they are.
        """
        known = {k.key.name for k in self.keys}
        window = keep * interval
        extra = [
            ScheduledKey(k, now, now, now + window)
            for k in (*keyset.decrypt_only, *keyset.pending)
            if k.name not in known
        ]
        base = FleetSchedule((*self.live(now).keys, *extra))
        if keyset.encrypting.name in known:
            return base
        switch = now + lead
        keys = [
            ScheduledKey(
                k.key, k.active_from, min(k.encrypt_until, switch), k.decrypt_until
            )
            if k.role(now) == ACTIVE
            else k
            for k in base.keys
            if k.role(now) != PENDING
        ]
        keys.append(
            ScheduledKey(
                keyset.encrypting, switch, switch + interval, switch + interval + window
            )
        )
        return FleetSchedule(tuple(keys)).extended(now, interval, keep)


@implementer(ITicketKeys)
class FleetKeyRing:
    """
    The keys of a L{FleetSchedule}, roles read from C{clock} at each call.
    L{replace} swaps in a newer schedule at once.  With no active key (all
    known keys expired or not yet due: the store has been away for longer
    than the schedule reached) the newest known key goes on encrypting.
    """

    def __init__(self, schedule: FleetSchedule, clock: Any, source: str = "fleet"):
        self._clock = clock
        self.source = source
        self.generation = 0
        # Names of the keys that encrypted a ticket here (at most one a
        # rotation): a server's own keys are kept after it joins a fleet
        # only if they did.
        self.used: set[bytes] = set()
        self.replace(schedule)

    def __repr__(self) -> str:
        return f"<FleetKeyRing keys={len(self.schedule.keys)} generation={self.generation}>"

    def replace(self, schedule: FleetSchedule) -> None:
        if not schedule.keys:
            raise ValueError("a fleet key ring needs at least one key")
        self.schedule = schedule
        self._by_name = {k.key.name: k for k in schedule.keys}
        self.generation += 1

    def _active(self, now: float) -> ScheduledKey:
        best = None
        for k in self.schedule.keys:
            if k.role(now) == ACTIVE and (
                best is None or k.active_from > best.active_from
            ):
                best = k
        if best is None:
            started = [k for k in self.schedule.keys if k.active_from <= now]
            best = max(started or self.schedule.keys, key=lambda k: k.active_from)
        return best

    def encrypting_key(self) -> TicketKey:
        key = self._active(self._clock.seconds()).key
        self.used.add(key.name)
        return key

    def decrypting_key(self, name: bytes) -> tuple[TicketKey, bool] | None:
        found = self._by_name.get(name)
        if found is None:
            return None
        now = self._clock.seconds()
        active = self._active(now)
        if found is not active and found.role(now) is None:
            return None
        return found.key, found is not active

    def roles(self) -> dict[str, int]:
        """How many keys hold each role now."""
        now = self._clock.seconds()
        counts = {PENDING: 0, ACTIVE: 0, DECRYPT_ONLY: 0}
        for k in self.schedule.keys:
            role = k.role(now)
            if role is not None:
                counts[role] += 1
        return counts

    def describe(self) -> KeyRingSummary:
        now = self._clock.seconds()
        active = self._active(now)
        roles = self.roles()
        upcoming = [k.active_from for k in self.schedule.keys if k.active_from > now]
        return KeyRingSummary(
            encrypting=active.key.fingerprint,
            encrypting_age=max(0.0, now - active.active_from),
            decrypt_only=roles[DECRYPT_ONLY],
            pending=roles[PENDING],
            generation=self.generation,
            next_rotation=min(upcoming) if upcoming else None,
            source=self.source,
        )
