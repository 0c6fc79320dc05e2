"""
Client session stores: in memory (the default) and in a private file, so a
command-line client can resume across runs the way C{openssl s_client
-sess_out/-sess_in} does.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import tempfile
from typing import Any

from zope.interface import implementer

from resumetls.interfaces import IClientSessionStore

#: TLS 1.3 tickets kept per server profile (each is used once).
KEEP_PER_SERVER = 4


class ClientStoreError(ValueError):
    """A session file that cannot be used; the message says what to do."""


@implementer(IClientSessionStore)
class MemoryClientSessionStore:
    """Sessions per server profile, in this process only."""

    def __init__(self, keep: int = KEEP_PER_SERVER) -> None:
        self.keep = keep
        # key -> list of [der, expires, single_use], oldest first
        self._sessions: dict[str, list[list[Any]]] = {}

    def __repr__(self) -> str:
        count = sum(len(v) for v in self._sessions.values())
        return f"<{type(self).__name__} servers={len(self._sessions)} sessions={count}>"

    def put(self, key: str, der: bytes, expires: float, single_use: bool) -> None:
        entries = self._sessions.setdefault(key, [])
        if not single_use:
            # A TLS 1.2 session replaces the older ones: it is reusable.
            entries[:] = [e for e in entries if e[2]]
        entries.append([der, expires, single_use])
        del entries[: max(0, len(entries) - self.keep)]
        self._changed()

    def take(self, key: str, now: float) -> bytes | None:
        entries = self._sessions.get(key)
        if not entries:
            return None
        live = [e for e in entries if e[1] > now]
        changed = len(live) != len(entries)
        result = None
        if live:
            newest = live[-1]
            result = newest[0]
            if newest[2]:
                live.pop()
                changed = True
        if live:
            self._sessions[key] = live
        else:
            self._sessions.pop(key, None)
        if changed:
            self._changed()
        return result

    def forget(self, key: str) -> None:
        if self._sessions.pop(key, None) is not None:
            self._changed()

    def count(self, key: str) -> int:
        return len(self._sessions.get(key, ()))

    def _changed(self) -> None:
        pass


@implementer(IClientSessionStore)
class FileClientSessionStore(MemoryClientSessionStore):
    """
    Sessions kept in a JSON file with mode 0600 (it holds session secrets); a
    file readable by group or others is refused.
    """

    def __init__(self, path: str, keep: int = KEEP_PER_SERVER) -> None:
        super().__init__(keep)
        self.path = os.path.abspath(os.path.expanduser(path))
        self._load()

    def __repr__(self) -> str:
        return f"<FileClientSessionStore {self.path}>"

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise ClientStoreError(
                f"{self.path} is readable by group or others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); it holds TLS session secrets: "
                f"run `chmod 600 {self.path}`"
            )
        try:
            with open(self.path) as f:
                data = json.load(f)
            sessions = {
                str(key): [
                    [
                        base64.b64decode(e["der"]),
                        float(e["expires"]),
                        bool(e["single_use"]),
                    ]
                    for e in entries
                ]
                for key, entries in data["sessions"].items()
            }
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ClientStoreError(
                f"{self.path} is not a resumetls session file ({type(e).__name__}); "
                "remove it to start afresh"
            ) from None
        self._sessions = sessions

    def _changed(self) -> None:
        data = {
            "version": 1,
            "sessions": {
                key: [
                    {
                        "der": base64.b64encode(e[0]).decode(),
                        "expires": e[1],
                        "single_use": e[2],
                    }
                    for e in entries
                ]
                for key, entries in self._sessions.items()
            },
        }
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".resumetls-sessions-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
