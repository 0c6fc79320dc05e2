"""
The client session store in a private file, so a command-line client can
resume across runs the way C{openssl s_client -sess_out/-sess_in} does.

Several processes (or several store objects) may share one session file: each
change is made under an exclusive lock on a sidecar file (C{PATH.lock}) to
what the file holds at that moment, and the file is replaced atomically, so
nobody loses another's sessions and a TLS 1.3 ticket is handed out once.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import os
import stat
import time
from collections.abc import Iterator
from typing import Any

from zope.interface import implementer

from resumetls.client.memorystore import (
    KEEP_PER_SERVER,
    MemoryClientSessionStore,
    drop_expired,
)
from resumetls.interfaces import IClientSessionStore
from resumetls.privatefiles import mode_problem, write_atomically

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: one process per file
    fcntl = None  # type: ignore[assignment]


class ClientStoreError(ValueError):
    """A session file that cannot be used; the message says what to do."""


class _Damaged(Exception):
    """Why a session file cannot be read (no content from the file)."""


def _parse(raw: bytes) -> dict[str, list[list[Any]]]:
    """
    The sessions of a session file, checked strictly: anything else than
    what L{FileClientSessionStore} writes is refused.

    @raise _Damaged: saying what is wrong, without the file's content.
    """
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _Damaged("not UTF-8") from None
    except RecursionError:
        raise _Damaged("nested too deeply") from None
    except ValueError:
        raise _Damaged("not JSON") from None
    if not isinstance(data, dict):
        raise _Damaged("not a JSON object")
    if data.get("version", 1) != 1:
        raise _Damaged("unknown version")
    sessions = data.get("sessions")
    if not isinstance(sessions, dict):
        raise _Damaged('"sessions" is not an object')
    result = {}
    for key, entries in sessions.items():
        if not isinstance(entries, list):
            raise _Damaged("a server's sessions are not a list")
        parsed = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise _Damaged("a session is not an object")
            der, expires, single_use = (
                entry.get("der"),
                entry.get("expires"),
                entry.get("single_use"),
            )
            if not isinstance(der, str):
                raise _Damaged('a session\'s "der" is not a string')
            try:
                der = base64.b64decode(der.encode("ascii"), validate=True)
            except (UnicodeEncodeError, binascii.Error):
                raise _Damaged('a session\'s "der" is not base64') from None
            if not der:
                raise _Damaged('a session\'s "der" is empty')
            if (
                isinstance(expires, bool)
                or not isinstance(expires, int | float)
                or not math.isfinite(expires)
            ):
                raise _Damaged('a session\'s "expires" is not a number')
            if not isinstance(single_use, bool):
                raise _Damaged('a session\'s "single_use" is not true or false')
            parsed.append([der, float(expires), single_use])
        if parsed:
            result[key] = parsed
    return result


@implementer(IClientSessionStore)
class FileClientSessionStore(MemoryClientSessionStore):
    """
    Sessions kept in a JSON file with mode 0600 (it holds session secrets); a
    file readable by group or others is refused.

    The file is the truth: C{take} reads it again when it changed (another
    store or process wrote it), and every change is made under an exclusive
    lock (C{flock} on C{PATH.lock}) to what the file holds then, and written
    atomically (a temporary file renamed over it), so stores sharing a file
    keep each other's sessions.  Expired sessions of other servers are
    dropped whenever the file is written.
    """

    def __init__(self, path: str, keep: int = KEEP_PER_SERVER) -> None:
        super().__init__(keep)
        self.path = os.path.abspath(os.path.expanduser(path))
        self._lock_path = self.path + ".lock"
        # (device, inode, size, mtime) of the file as we last read or wrote it
        self._seen: tuple[int, int, int, int] | None = None
        self._refresh()

    def __repr__(self) -> str:
        return f"<FileClientSessionStore {self.path}>"

    def put(self, key: str, der: bytes, expires: float, single_use: bool) -> None:
        with self._changing(key):
            self._put(key, der, expires, single_use)

    def take(self, key: str, now: float) -> bytes | None:
        self._refresh()
        result, changes = self._peek(key, now)
        if not changes:
            return result
        with self._changing(key):
            return self._take(key, now)

    def forget(self, key: str) -> None:
        with self._changing(key):
            self._sessions.pop(key, None)

    def count(self, key: str) -> int:
        self._refresh()
        return super().count(key)

    def _damaged(self, reason: str) -> ClientStoreError:
        return ClientStoreError(
            f"{self.path} is not a resumetls session file ({reason}); "
            "remove it to start afresh"
        )

    def _refresh(self) -> None:
        """
        Read the file again if it is not the one we last read or wrote.

        @raise ClientStoreError: when it is readable by others, not a regular
            file, unreadable or damaged.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            self._sessions, self._seen = {}, None
            return
        except OSError as e:
            raise ClientStoreError(
                f"cannot read the session file {self.path}: {e.strerror}"
            ) from None
        with open(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise self._damaged("not a regular file")
            problem = mode_problem(
                self.path, st.st_mode, "it holds TLS session secrets"
            )
            if problem is not None:
                raise ClientStoreError(problem)
            seen = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if seen == self._seen:
                return
            try:
                raw = f.read()
            except OSError as e:
                raise ClientStoreError(
                    f"cannot read the session file {self.path}: {e.strerror}"
                ) from None
        try:
            self._sessions = _parse(raw)
        except _Damaged as e:
            raise self._damaged(str(e)) from None
        self._seen = seen

    @contextlib.contextmanager
    def _changing(self, key: str) -> Iterator[None]:
        """
        Lock the file, read what it holds now, let the caller change
        C{key}'s sessions, drop other servers' expired sessions and write
        the result; the lock is released when the lock file is closed.
        """
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        lock = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            self._refresh()
            yield
            drop_expired(self._sessions, time.time(), keep=key)
            self._write()
        finally:
            os.close(lock)

    def _write(self) -> None:
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
        written = write_atomically(
            self.path, json.dumps(data).encode(), prefix=".resumetls-sessions-"
        )
        self._seen = (
            written.st_dev,
            written.st_ino,
            written.st_size,
            written.st_mtime_ns,
        )
