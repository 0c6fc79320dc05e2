"""
The messages between the parent and its workers: an AMP connection over a
socket pair the worker inherits as file descriptor L{CONTROL_FD}.  Secrets
(the cache's sealing key, ticket keys) travel only here, never in argv or
the environment, where C{ps} and C{/proc} would show them.

Parent to worker: L{Boot} (what to serve and how), L{SetKeys} (the ticket
keys, whenever they change), L{Stats} (this worker's figures).  Worker to
parent: L{ServerStatus} (the whole server's figures, for the demo page).
"""

from __future__ import annotations

import json
import struct
from typing import Any

from twisted.protocols import amp

from resumetls.keys.ring import KeySet, TicketKey

#: The worker's end of the control socket pair.
CONTROL_FD = 3
#: The first inherited listening socket (then 5, 6, ...).
FIRST_LISTENER_FD = 4

_ROLES = {b"E": "encrypting", b"D": "decrypt_only", b"P": "pending"}
_LENGTHS = struct.Struct("!BB")


class JSON(amp.Argument):
    """A JSON value (no secrets: those are L{amp.String} arguments)."""

    def toString(self, value: Any) -> bytes:  # noqa: N802 - AMP's name
        return json.dumps(value, sort_keys=True).encode()

    def fromString(self, data: bytes) -> Any:  # noqa: N802 - AMP's name
        return json.loads(data)


class Boot(amp.Command):
    """
    Parent to worker, once: C{plan} says what to serve (listener configs,
    the app, the cache directory and size, the worker's number);
    C{seal_key} seals the shared cache; C{keys} are the ticket keys when the
    parent owns them (empty otherwise).
    """

    arguments = [
        (b"plan", JSON()),
        (b"seal_key", amp.String()),
        (b"keys", amp.String()),
    ]
    response = [(b"pid", amp.Integer())]


class SetKeys(amp.Command):
    """Parent to worker: the ticket keys now (see L{pack_keys})."""

    arguments = [(b"keys", amp.String())]
    response = [(b"generation", amp.Integer())]


class Stats(amp.Command):
    """Parent to worker: this worker's figures (see L{resumetls.workers.status})."""

    response = [(b"stats", JSON())]


class ServerStatus(amp.Command):
    """Worker to parent: the whole server's figures, totals and per worker."""

    response = [(b"status", JSON())]


def pack_keys(keys: KeySet) -> bytes:
    """A key set as bytes for L{SetKeys}: role, sizes, name, HMAC and AES keys."""
    out = []
    for role, group in (
        (b"E", (keys.encrypting,)),
        (b"D", keys.decrypt_only),
        (b"P", keys.pending),
    ):
        for key in group:
            out.append(
                role
                + _LENGTHS.pack(len(key.hmac_key), len(key.aes_key))
                + key.name
                + key.hmac_key
                + key.aes_key
            )
    return b"".join(out)


def unpack_keys(data: bytes) -> KeySet:
    """
    The key set L{pack_keys} made.

    @raise ValueError: the bytes are not a key set (no key material in the
        message).
    """
    found: dict[str, list[TicketKey]] = {role: [] for role in _ROLES.values()}
    i = 0
    while i < len(data):
        role = _ROLES.get(data[i : i + 1])
        if role is None or i + 3 > len(data):
            raise ValueError("the ticket keys from the parent are malformed")
        hmac_size, aes_size = _LENGTHS.unpack_from(data, i + 1)
        start = i + 3
        end = start + 16 + hmac_size + aes_size
        if end > len(data):
            raise ValueError("the ticket keys from the parent are truncated")
        found[role].append(
            TicketKey(
                data[start : start + 16],
                data[start + 16 : start + 16 + hmac_size],
                data[start + 16 + hmac_size : end],
            )
        )
        i = end
    if len(found["encrypting"]) != 1:
        raise ValueError("the ticket keys from the parent have no encrypting key")
    return KeySet(
        found["encrypting"][0],
        tuple(found["decrypt_only"]),
        tuple(found["pending"]),
    )


def adopt_control(reactor: Any, fd: int, protocol: amp.AMP) -> None:
    """Run C{protocol} over the inherited control socket C{fd} (duplicated)."""
    import socket

    from twisted.internet.protocol import Factory

    reactor.adoptStreamConnection(
        fd, socket.AF_UNIX, Factory.forProtocol(lambda: protocol)
    )
