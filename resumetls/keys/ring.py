"""
Session ticket keys and the key ring that rotates them.

A ticket key is a 16-byte name (sent in the clear in every ticket, so the
server can find the key again), an HMAC-SHA256 key and an AES-CBC key.  The
ring holds exactly one I{encrypting} key, I{decrypt-only} keys (older keys:
their tickets are accepted and renewed under the current key) and I{pending}
keys (known before any server encrypts with them, so every member of a fleet
can open tickets from the first member that switches).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from typing import Any

import attrs
from twisted.logger import Logger
from zope.interface import implementer

from resumetls.interfaces import ITicketKeys
from resumetls.options import SERVER_OPTIONS

_log = Logger(namespace="resumetls")

# The defaults of rotateEvery / --rotate-every and keepKeys / --keep-keys
# (12 hours and two old keys, like Caddy; see resumetls.options).
DEFAULT_ROTATE_INTERVAL = SERVER_OPTIONS.default("rotate_every")
DEFAULT_KEEP = SERVER_OPTIONS.default("keep_keys")


class TicketKeyError(ValueError):
    """
    Ticket keys that cannot be used: a part of the wrong size or type, or two
    keys with the same name.  The message never contains key material.
    """


def _check_size(sizes: tuple[int, ...]) -> Any:
    def check(instance: Any, attribute: Any, value: bytes) -> None:
        if not isinstance(value, bytes) or len(value) not in sizes:
            got = len(value) if isinstance(value, bytes) else type(value).__name__
            raise TicketKeyError(
                f"a ticket key's {attribute.name} must be "
                + " or ".join(str(s) for s in sizes)
                + f" bytes, not {got}"
            )

    return check


@attrs.frozen(repr=False)
class TicketKey:
    """
    One session ticket key: a 16-byte name, an HMAC-SHA256 key of 16 or 32
    bytes and an AES-CBC key of 16 (AES-128, nginx's and HAProxy's 48-byte
    keys) or 32 bytes (AES-256).  Its repr shows a fingerprint, never the key.
    """

    name: bytes = attrs.field(validator=_check_size((16,)))
    hmac_key: bytes = attrs.field(validator=_check_size((16, 32)))
    aes_key: bytes = attrs.field(validator=_check_size((16, 32)))

    @classmethod
    def generate(cls) -> TicketKey:
        """A fresh random key: AES-256 and a 32-byte HMAC-SHA256 key."""
        return cls(os.urandom(16), os.urandom(32), os.urandom(32))

    @property
    def fingerprint(self) -> str:
        """A short identifier that is safe to log: a digest of the name."""
        return hashlib.sha256(self.name).hexdigest()[:12]

    @property
    def bits(self) -> int:
        return len(self.aes_key) * 8

    def __repr__(self) -> str:
        return (
            f"<TicketKey {self.fingerprint} AES-{self.bits} hmac={len(self.hmac_key)}B>"
        )

    __str__ = __repr__


@attrs.frozen
class RotationPolicy:
    """
    When the ring rotates: every C{interval} seconds the first pending key (or
    a new random key) starts encrypting, the old encrypting key becomes
    decrypt-only, and only the C{keep} newest decrypt-only keys are kept.
    Defaults: 12 hours, like Caddy (Go rotates every 24 hours and accepts a
    key for 7 days), keeping 2 old keys, so a ticket opens for 24 to 36 hours
    and is renewed when it is opened with an old key.
    """

    interval: float = DEFAULT_ROTATE_INTERVAL
    keep: int = DEFAULT_KEEP

    def __attrs_post_init__(self) -> None:
        if (
            isinstance(self.interval, bool)
            or not isinstance(self.interval, (int, float))
            or not self.interval > 0
        ):
            raise ValueError(
                f"the rotation interval must be a positive number of seconds, "
                f"not {self.interval!r}"
            )
        if (
            isinstance(self.keep, bool)
            or not isinstance(self.keep, int)
            or self.keep < 0
        ):
            raise ValueError(
                f"the number of old keys kept must be 0 or more, not {self.keep!r}"
            )


@attrs.frozen
class KeySet:
    """Keys by role, as a key file gives them."""

    encrypting: TicketKey
    decrypt_only: tuple[TicketKey, ...] = ()
    pending: tuple[TicketKey, ...] = ()

    @property
    def all(self) -> tuple[TicketKey, ...]:
        return (self.encrypting, *self.decrypt_only, *self.pending)


@attrs.frozen
class KeyRingSummary:
    """What is safe to show about a key ring: fingerprints and counts."""

    encrypting: str
    encrypting_age: float | None
    decrypt_only: int
    pending: int
    generation: int
    next_rotation: float | None
    source: str

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@implementer(ITicketKeys)
class KeyRing:
    """
    The keys a server encrypts and decrypts tickets with.

    Lookups by name are one dict access (they run inside every handshake that
    presents a ticket).  Rotation is lazy: L{encrypting_key} and
    L{decrypting_key} compare the clock with the next rotation time, so a ring
    needs no timer.  Rotations follow a fixed schedule (every C{interval}
    seconds from the moment the keys were installed): after an idle spell the
    missed rotations are applied at once, so no key stays usable longer than
    the policy says just because no ticket was issued meanwhile.

    Without a policy the ring changes only by L{replace} (a key file was
    reloaded) or an explicit L{rotate}, which then drops no old key.
    """

    def __init__(
        self,
        keys: KeySet,
        clock: Any = None,
        policy: RotationPolicy | None = None,
        source: str = "memory",
    ) -> None:
        if policy is not None and clock is None:
            raise ValueError("a rotating key ring needs a clock")
        self._clock = clock
        self.policy = policy
        self.source = source
        self.generation = 0
        self._install(keys, self._now())

    @classmethod
    def generate(cls, clock: Any, policy: RotationPolicy | None = None) -> KeyRing:
        """A ring of random keys held in memory, rotated by C{policy}."""
        key = _generated()
        return cls(
            KeySet(key), clock, policy if policy is not None else RotationPolicy()
        )

    @classmethod
    def from_keys(
        cls,
        encrypting: TicketKey,
        decrypt_only: Iterable[TicketKey] = (),
        pending: Iterable[TicketKey] = (),
        clock: Any = None,
        policy: RotationPolicy | None = None,
    ) -> KeyRing:
        """A ring of given keys; without a policy it changes only by L{replace}."""
        return cls(
            KeySet(encrypting, tuple(decrypt_only), tuple(pending)), clock, policy
        )

    @classmethod
    def from_keyset(
        cls, keys: KeySet, source: str = "file", clock: Any = None
    ) -> KeyRing:
        """
        A ring of keys read from a key file (see L{load_key_file}).  It does
        not rotate by itself: the file is rotated and reloaded instead.  With
        a C{clock}, the encrypting key's age is measured from when this ring
        began to use it.
        """
        return cls(keys, clock=clock, source=source)

    def __repr__(self) -> str:
        return (
            f"<KeyRing encrypting={self._encrypting.fingerprint} "
            f"decrypt_only={len(self._decrypt_only)} pending={len(self._pending)} "
            f"generation={self.generation}>"
        )

    def _now(self) -> float | None:
        return self._clock.seconds() if self._clock is not None else None

    def _install(self, keys: KeySet, since: float | None) -> None:
        names = [k.name for k in keys.all]
        if len(set(names)) != len(names):
            raise TicketKeyError(
                "two ticket keys have the same name; every key needs its own "
                "16-byte name"
            )
        lookup: dict[bytes, tuple[TicketKey, bool]] = {}
        for k in keys.pending:
            lookup[k.name] = (k, False)
        for k in keys.decrypt_only:
            lookup[k.name] = (k, True)
        lookup[keys.encrypting.name] = (keys.encrypting, False)
        # Swap everything in at once: the lookup table is one attribute.
        self._encrypting = keys.encrypting
        self._decrypt_only = list(keys.decrypt_only)
        self._pending = list(keys.pending)
        self._since = since
        self._lookup = lookup
        self._next_rotation = (
            since + self.policy.interval
            if self.policy is not None and since is not None
            else None
        )
        self.generation += 1

    # -- ITicketKeys ---------------------------------------------------------------

    def encrypting_key(self) -> TicketKey:
        due = self._next_rotation
        if due is not None and self._clock.seconds() >= due:
            self._rotate_on_schedule()
        return self._encrypting

    def decrypting_key(self, name: bytes) -> tuple[TicketKey, bool] | None:
        due = self._next_rotation
        if due is not None and self._clock.seconds() >= due:
            self._rotate_on_schedule()
        return self._lookup.get(name)

    def describe(self) -> KeyRingSummary:
        now = self._now()
        return KeyRingSummary(
            encrypting=self._encrypting.fingerprint,
            encrypting_age=(now - self._since)
            if now is not None and self._since is not None
            else None,
            decrypt_only=len(self._decrypt_only),
            pending=len(self._pending),
            generation=self.generation,
            next_rotation=self._next_rotation,
            source=self.source,
        )

    # -- changes -------------------------------------------------------------------

    def keys(self) -> KeySet:
        """The current keys by role (secrets: do not log them)."""
        return KeySet(self._encrypting, tuple(self._decrypt_only), tuple(self._pending))

    def _shifted(self, steps: int) -> tuple[KeySet, TicketKey]:
        """
        The keys after C{steps} rotations: each time the first pending key
        (or a new one) encrypts and the encrypting key becomes decrypt-only.
        Keys generated for rotations that were missed (the ring was idle)
        never encrypted anything, so they are not kept for decryption.
        """
        keep = (
            self.policy.keep if self.policy is not None else len(self._decrypt_only) + 1
        )
        old = self._encrypting
        encrypting = old
        decrypt_only = list(self._decrypt_only)
        pending = list(self._pending)
        unused: list[TicketKey] = []
        for _ in range(steps):
            decrypt_only = ([encrypting] + decrypt_only)[:keep]
            if pending:
                encrypting = pending.pop(0)
            else:
                encrypting = TicketKey.generate()
                unused.append(encrypting)
        if unused and unused[-1] is encrypting:
            _log.info(
                "generated ticket key {fingerprint}",
                fingerprint=encrypting.fingerprint,
                event="resumetls.key.generated",
            )
        decrypt_only = [k for k in decrypt_only if all(k is not u for u in unused)]
        return KeySet(encrypting, tuple(decrypt_only), tuple(pending)), old

    def _rotate_on_schedule(self) -> None:
        policy = self.policy
        now = self._clock.seconds()
        missed = int((now - self._next_rotation) // policy.interval) + 1
        # More steps than this change nothing: every old key is gone by then.
        steps = min(missed, policy.keep + 1 + len(self._pending))
        keys, old = self._shifted(steps)
        self._install(keys, self._next_rotation + (missed - 1) * policy.interval)
        self._log_rotation(keys, old, missed)

    def rotate(self) -> TicketKey:
        """
        Rotate now: the first pending key (or a new one) encrypts, the old
        encrypting key becomes decrypt-only, the oldest beyond C{keep} go.
        The next scheduled rotation is one interval from now.
        """
        keys, old = self._shifted(1)
        self._install(keys, self._now())
        self._log_rotation(keys, old, 1)
        return keys.encrypting

    def _log_rotation(self, keys: KeySet, old: TicketKey, steps: int) -> None:
        _log.info(
            "rotated ticket keys: {new} encrypts, {old} decrypts only "
            "({kept} old keys kept, {steps} rotation(s) due)",
            new=keys.encrypting.fingerprint,
            old=old.fingerprint,
            kept=len(keys.decrypt_only),
            steps=steps,
            generation=self.generation,
            event="resumetls.key.rotated",
        )

    def replace(
        self,
        encrypting: TicketKey | KeySet,
        decrypt_only: Iterable[TicketKey] = (),
        pending: Iterable[TicketKey] = (),
    ) -> None:
        """
        Swap in a new set of keys at once (a key file was reloaded).  The
        rotation schedule, if any, starts again from now.

        @raise TicketKeyError: two keys share a name; the keys in use stay.
        """
        if isinstance(encrypting, KeySet):
            keys = encrypting
        else:
            keys = KeySet(encrypting, tuple(decrypt_only), tuple(pending))
        since = self._now()
        if self.policy is None and keys.encrypting.name == self._encrypting.name:
            # A reloaded file whose encrypting key did not change: the key's
            # age (a metric) goes on from when it began to encrypt here.
            since = self._since if self._since is not None else since
        self._install(keys, since)


def _generated() -> TicketKey:
    """A new random key, announced (by fingerprint) in the log."""
    key = TicketKey.generate()
    _log.info(
        "generated ticket key {fingerprint}",
        fingerprint=key.fingerprint,
        event="resumetls.key.generated",
    )
    return key
