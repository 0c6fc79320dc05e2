"""
Watching the files a server reads once and may read again (ticket key
files, the certificate and its private key): a cheap poll of each file's
identity, and SIGHUP, both calling one C{reload(why)}.  What a reload does,
and what it refuses, belongs to the owner; a watcher only says when.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from resumetls.keys import sighup as _sighup

__all__ = ["FileWatch", "WatchedFiles", "file_identity"]

_log = Logger(namespace="resumetls")


def file_identity(path: str) -> tuple | None:
    """
    What changes when a file is replaced, rewritten or re-permissioned
    (inode, size, modification and change times, mode: a C{chmod 600} that
    fixes a refused file counts as a change), or L{None} when it is gone.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


class FileWatch:
    """
    Call C{reload(why)} when any of C{paths} changes (checked every
    C{interval} seconds while started) and on SIGHUP (through the process's
    one handler, L{resumetls.keys.sighup}).

    @param reload: called with C{"the file changed"} or C{"SIGHUP"}; what it
        raises is logged under C{failed_event} and the watch goes on.
    """

    def __init__(
        self,
        paths: Sequence[str],
        reload: Callable[[str], Any],
        clock: Any,
        interval: float = 2.0,
        failed_event: str = "resumetls.reload_failed",
    ) -> None:
        self.paths = tuple(paths)
        self.interval = interval
        self._reload = reload
        self._failed_event = failed_event
        self._identity = self.identity()
        self._loop = LoopingCall(self._poll)
        self._loop.clock = clock

    def identity(self) -> tuple:
        """The identities of the watched files now."""
        return tuple(file_identity(p) for p in self.paths)

    def start(self) -> None:
        """Poll the files, and answer SIGHUP."""
        if not self._loop.running:
            self._loop.start(self.interval, now=False)
        _sighup.reloads.add(self)

    def stop(self) -> None:
        """Stop polling and answering SIGHUP."""
        if self._loop.running:
            self._loop.stop()
        _sighup.reloads.discard(self)

    @property
    def running(self) -> bool:
        return self._loop.running

    def reload(self, why: str = "SIGHUP") -> Any:
        """Reload now (SIGHUP calls this); the files' identities are noted."""
        self._identity = self.identity()
        return self._reload(why)

    def check(self) -> bool:
        """Reload if a file changed since the last look; the reload's answer."""
        identity = self.identity()
        if identity == self._identity:
            return False
        self._identity = identity
        return bool(self._reload("the file changed"))

    def _poll(self) -> None:
        # A LoopingCall stops for good when its function raises: never let it.
        try:
            self.check()
        except Exception:
            _log.failure(
                "checking {paths} failed; what is in use stays",
                paths=", ".join(self.paths),
                event=self._failed_event,
            )


class WatchedFiles:
    """
    What an owner of a L{FileWatch} (in C{self._watch}) offers: start and
    stop watching, whether it runs, a check now.
    """

    _watch: FileWatch

    @property
    def interval(self) -> float:
        return self._watch.interval

    def start(self) -> None:
        """Watch the files, and reload them on SIGHUP."""
        self._watch.start()

    def stop(self) -> None:
        """Stop watching the files and answering SIGHUP."""
        self._watch.stop()

    @property
    def running(self) -> bool:
        return self._watch.running

    def check(self) -> bool:
        """Reload if a file changed since the last look."""
        return self._watch.check()
