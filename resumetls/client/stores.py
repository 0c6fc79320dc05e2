"""
Client session stores: in memory (the default) and in a private file, so a
command-line client can resume across runs the way C{openssl s_client
-sess_out/-sess_in} does.

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
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from zope.interface import implementer

from resumetls.interfaces import IClientSessionStore

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: one process per file
    fcntl = None  # type: ignore[assignment]

#: TLS 1.3 tickets kept per server profile (each is used once).
KEEP_PER_SERVER = 4
#: Seconds between sweeps of other profiles' expired sessions in memory.
SWEEP_INTERVAL = 60.0


class ClientStoreError(ValueError):
    """A session file that cannot be used; the message says what to do."""


class _Damaged(Exception):
    """Why a session file cannot be read (no content from the file)."""


def _drop_expired(
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
            _drop_expired(self._sessions, now, keep=key)

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
            mode = stat.S_IMODE(st.st_mode)
            if mode & 0o077:
                raise ClientStoreError(
                    f"{self.path} is readable by group or others (mode "
                    f"{mode:04o}); it holds TLS session secrets: "
                    f"run `chmod 600 {self.path}`"
                )
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
            _drop_expired(self._sessions, time.time(), keep=key)
            self._write(directory)
        finally:
            os.close(lock)

    def _write(self, directory: str) -> None:
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
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".resumetls-sessions-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
                f.flush()
                st = os.fstat(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self._seen = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
