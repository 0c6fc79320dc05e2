"""
Ticket keys shared by the workers of one server.

With generated keys the parent owns them (L{SharedKeyOwner}): it rotates
them on the schedule of C{--rotate-every}, always holding the next key as
I{pending}, and sends the whole set to every worker whenever it changes.  A
worker learns each key one interval before any worker encrypts with it, so
a ticket made by the first worker to switch opens on every other, whichever
order the messages arrive in.  A worker's ring (L{WorkerKeySource}) never
rotates by itself: it is a mirror.

With C{--ticket-keys FILE} every worker reads the file itself and reloads
it when it changes and on SIGHUP (the parent passes SIGHUP on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from resumetls.interfaces import IKeySource
from resumetls.keys.ring import KeyRing, KeySet, RotationPolicy, TicketKey

_log = Logger(namespace="resumetls")

#: The key source specification that names a worker's mirror.
SPEC = "worker:"


class SharedKeyOwner:
    """
    The parent's keys: one encrypting, up to C{policy.keep} decrypt-only,
    one pending.  L{rotate} promotes the pending key, keeps the old one for
    decryption, makes a new pending key and calls C{publish(keys)}.

    @param publish: called with the new L{KeySet} after every change.
    @param first: the first encrypting key: the one C{twist resumetls}
        generated (and logged) when it checked the listener's options; a new
        one, logged here, when L{None}.
    """

    def __init__(
        self,
        clock: Any,
        policy: RotationPolicy,
        publish: Callable[[KeySet], Any],
        first: TicketKey | None = None,
    ) -> None:
        self.policy = policy
        self._publish = publish
        if first is None:
            first = TicketKey.generate()
            _log.info(
                "generated ticket key {fingerprint}",
                fingerprint=first.fingerprint,
                event="resumetls.key.generated",
            )
        self.keys = KeySet(first, (), (TicketKey.generate(),))
        self.ring = KeyRing(self.keys, clock=clock, source="workers")
        self._loop = LoopingCall(self.rotate)
        self._loop.clock = clock

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self.policy.interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def rotate(self) -> KeySet:
        old = self.keys
        self.keys = KeySet(
            old.pending[0],
            ((old.encrypting,) + old.decrypt_only)[: self.policy.keep],
            (TicketKey.generate(),),
        )
        self.ring.replace(self.keys)
        _log.info(
            "rotated the workers' ticket keys: {new} encrypts (every worker "
            "knew it as pending), {old} decrypts only",
            new=self.keys.encrypting.fingerprint,
            old=old.encrypting.fingerprint,
            event="resumetls.workers.keys_rotated",
        )
        self._publish(self.keys)
        return self.keys


@implementer(IKeySource)
class WorkerKeySource:
    """
    A worker's keys: a ring without a rotation policy, replaced by
    L{install} whenever the parent sends keys.  Nothing to start, stop or
    reload: the parent does all that.
    """

    def __init__(self, keys: KeySet, clock: Any = None) -> None:
        self.key_ring = KeyRing(keys, clock=clock, source="workers")

    def __repr__(self) -> str:
        return f"<WorkerKeySource generation={self.key_ring.generation}>"

    def install(self, keys: KeySet) -> None:
        self.key_ring.replace(keys)

    def start(self) -> None:
        """Nothing: the parent sends keys."""

    def stop(self) -> None:
        """Nothing to undo."""

    def reload(self, why: str = "SIGHUP") -> bool:
        """The parent owns these keys: nothing to read."""
        return False

    def describe(self) -> str:
        summary = self.key_ring.describe()
        return (
            f"ticket keys shared by the workers (rotated by the parent): "
            f"{summary.encrypting} encrypts, {summary.decrypt_only} decrypt "
            f"only, {summary.pending} pending"
        )
