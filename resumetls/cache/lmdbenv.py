"""
Opening the LMDB environment of a host-shared session cache: a private
directory (0700, files 0600) on tmpfs where the system has one, checked to be
a resumetls cache sealed with the key in hand, or refused with a message that
says what to do.

Layout (four named databases in one environment):

  - C{sessions}: cache key -> header (expiry, plain size, origin) + sealed DER;
  - C{expiry}: expiry in milliseconds (big-endian, so ordered) + cache key ->
    empty: the eviction and expiry order, read from its first entry in
    O(log n);
  - C{meta}: C{magic} (the layout), C{check} (a value sealed with the cache's
    key, so a cache sealed with another key is recognised at once), C{bytes}
    (the figure: keys and plain DER held).
"""

from __future__ import annotations

import os
import stat
import struct
import tempfile
from typing import Any

from twisted.logger import Logger

_log = Logger(namespace="resumetls")

MAGIC = b"resumetls-lmdb-sessions/1"
CHECK_ID = b"resumetls-lmdb-check"
CHECK_VALUE = b"this cache's sealing key"

# Map size per session entry bound: a session's DER is ~150 bytes without a
# client certificate and a few KiB with one; the map is sparse (only pages in
# use take memory), so a generous bound costs nothing until it is used.
BYTES_PER_ENTRY = 4096
MIN_MAP_SIZE = 16 << 20

_U64 = struct.Struct("!Q")


class LMDBCacheError(ValueError):
    """A host-shared cache that cannot be used; the message says why and what to do."""


def runtime_directory() -> str:
    """
    Where a private cache directory goes: C{/dev/shm} (tmpfs: the cache is
    memory, as nginx's shared zone is), else C{$XDG_RUNTIME_DIR} (tmpfs on
    systemd machines), else the temporary directory.
    """
    for candidate in ("/dev/shm", os.environ.get("XDG_RUNTIME_DIR") or ""):
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK):
            return candidate
    return tempfile.gettempdir()


def make_private_directory(path: str) -> None:
    """
    Create C{path} as a directory only its owner may enter (0700), or check
    that an existing one is.

    @raise LMDBCacheError: it is not a directory, belongs to someone else or
        is open to group or others.
    """
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError as e:
        raise LMDBCacheError(
            f"cannot make the session cache directory {path}: {e.strerror}"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise LMDBCacheError(f"the session cache path {path} is not a directory")
    if st.st_uid != os.getuid():
        raise LMDBCacheError(
            f"the session cache directory {path} belongs to another user; "
            "use a directory of your own"
        )
    if st.st_mode & 0o077:
        raise LMDBCacheError(
            f"the session cache directory {path} is open to group or others "
            f"(mode {stat.S_IMODE(st.st_mode):o}); sessions are secrets: "
            f"chmod 700 {path}"
        )


def map_size(max_entries: int) -> int:
    """The LMDB map size for a bound of C{max_entries} sessions."""
    return max(MIN_MAP_SIZE, max_entries * BYTES_PER_ENTRY)


# LMDB refuses to open one environment twice in a process: caches on the same
# directory (two listeners of one server) share it.  realpath -> [env, dbs...,
# references].
_OPEN: dict[str, list[Any]] = {}


def open_environment(path: str, max_entries: int, sealer: Any) -> tuple[Any, ...]:
    """
    The cache in the directory C{path}, opened (or created) once per
    process; L{release} it when done.

    @raise LMDBCacheError: see L{_open}; also when this process already has
        it open with another sealing key (one directory per service key).
    """
    real = os.path.realpath(path)
    held = _OPEN.get(real)
    if held is None:
        held = _OPEN[real] = [*_open(path, max_entries, sealer), 0]
    else:
        with held[0].begin() as txn:
            check = txn.get(b"check", db=held[3])
        if sealer.open(CHECK_ID, check) != CHECK_VALUE:
            raise LMDBCacheError(
                f"the session cache {path} is already used by this process "
                "with another sealing key; give each service its own directory"
            )
    held[4] += 1
    return tuple(held[:4])


def release(path: str) -> None:
    """One user of C{path} is done; the last one closes the environment."""
    real = os.path.realpath(path)
    held = _OPEN.get(real)
    if held is None:
        return
    held[4] -= 1
    if held[4] <= 0:
        del _OPEN[real]
        held[0].close()


def _open(path: str, max_entries: int, sealer: Any) -> tuple[Any, ...]:
    """
    Open (or create) the cache in the directory C{path}.

    @return: the environment and its C{sessions}, C{expiry} and C{meta}
        databases.
    @raise LMDBCacheError: the directory is not private, holds something that
        is not an LMDB file, or an LMDB file that is not a resumetls session
        cache.  A cache sealed with another key (the TLS key changed, or
        another server's cache) is emptied, with a warning: its sessions
        could not be opened anyway.
    """
    import lmdb

    make_private_directory(path)
    for name in ("data.mdb", "lock.mdb"):
        _check_file(os.path.join(path, name))
    try:
        env = lmdb.open(
            path,
            map_size=map_size(max_entries),
            max_dbs=4,
            mode=0o600,
            # A cache in memory shared by the processes of one host: a
            # process that dies loses nothing committed (the pages are in
            # the shared mapping); only a crash of the machine would, and a
            # tmpfs does not survive that anyway.
            sync=False,
            metasync=False,
            readahead=False,
            max_readers=512,
        )
    except lmdb.InvalidError:
        raise LMDBCacheError(
            f"{path} holds a file that is not an LMDB database, so it is not a "
            "resumetls session cache; remove it or choose another directory"
        ) from None
    except lmdb.Error as e:
        raise LMDBCacheError(f"cannot open the session cache {path}: {e}") from None
    try:
        with env.begin(write=True) as txn:
            names = {key for key, _ in txn.cursor()}
            foreign = names - {b"sessions", b"expiry", b"meta"}
            meta = env.open_db(b"meta", txn=txn)
            magic = txn.get(b"magic", db=meta)
            if foreign or (names and magic not in (None, MAGIC)):
                raise LMDBCacheError(
                    f"{path} is an LMDB database but not a resumetls session "
                    "cache (or one of another layout); remove it or choose "
                    "another directory"
                )
            sessions = env.open_db(b"sessions", txn=txn)
            expiry = env.open_db(b"expiry", txn=txn)
            check = txn.get(b"check", db=meta)
            if check is not None and sealer.open(CHECK_ID, check) != CHECK_VALUE:
                _log.warn(
                    "the session cache {path} was sealed with another key (the "
                    "TLS key changed, or it is another server's); its sessions "
                    "cannot be opened, so it is emptied",
                    path=path,
                    event="resumetls.cache.lmdb.rekeyed",
                )
                txn.drop(sessions, delete=False)
                txn.drop(expiry, delete=False)
                check = None
            if check is None:
                txn.put(b"magic", MAGIC, db=meta)
                txn.put(b"check", sealer.seal(CHECK_ID, CHECK_VALUE), db=meta)
                txn.put(b"bytes", _U64.pack(0), db=meta)
    except LMDBCacheError:
        env.close()
        raise
    except lmdb.Error as e:
        env.close()
        raise LMDBCacheError(
            f"the session cache {path} is damaged ({e}); remove the directory "
            "to start afresh"
        ) from None
    return env, sessions, expiry, meta


def _check_file(path: str) -> None:
    """A cache file that exists must be a regular file of ours, mode 0600."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        raise LMDBCacheError(
            f"{path} is not a regular file of this user; remove it or choose "
            "another directory"
        )
    if st.st_mode & 0o077:
        raise LMDBCacheError(
            f"{path} is open to group or others (mode "
            f"{stat.S_IMODE(st.st_mode):o}); sessions are secrets: chmod 600 {path}"
        )
