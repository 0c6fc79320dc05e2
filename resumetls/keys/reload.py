"""
Ticket key files that change while the server runs: reloaded when the file
changes (a cheap stat poll) and on SIGHUP, without dropping a connection.  A
file that cannot be used is refused and the keys in use stay.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from resumetls.keys.files import KeyFileError, load_key_file

_log = Logger(namespace="resumetls")


class KeyFileWatcher:
    """
    Keep a L{KeyRing} in step with a key file.

    @param interval: seconds between checks of the file's identity (inode,
        size, modification and change times, mode: a C{chmod 600} that fixes
        a refused file counts as a change).
    """

    def __init__(self, path: str, ring: Any, clock: Any, interval: float = 2.0):
        self.path = path
        self.ring = ring
        self.interval = interval
        self.reloads = 0
        self.refusals = 0
        self._identity = self._stat()
        self._loop = LoopingCall(self._poll)
        self._loop.clock = clock

    def __repr__(self) -> str:
        return f"<KeyFileWatcher {self.path} reloads={self.reloads}>"

    def _stat(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)

    def start(self) -> None:
        """Watch the file, and reload it on SIGHUP."""
        if not self._loop.running:
            self._loop.start(self.interval, now=False)
        _sighup.add(self)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        _sighup.discard(self)

    def _poll(self) -> None:
        # A LoopingCall stops for good when its function raises: never let it.
        try:
            self.check()
        except Exception:
            _log.failure(
                "checking the ticket key file {path} failed; the keys in use stay",
                path=self.path,
                event="resumetls.keys.reload_refused",
            )

    def check(self) -> bool:
        """Reload if the file changed since the last look."""
        identity = self._stat()
        if identity == self._identity:
            return False
        self._identity = identity
        return self.reload("the file changed")

    def reload(self, why: str = "SIGHUP") -> bool:
        """Read the file now; on error keep the current keys and say why."""
        try:
            keys = load_key_file(self.path)
        except KeyFileError as e:
            self.refusals += 1
            _log.error(
                "refused to reload ticket keys ({why}): {reason}; the keys in use stay",
                why=why,
                reason=str(e),
                path=self.path,
                event="resumetls.keys.reload_refused",
            )
            return False
        try:
            self.ring.replace(keys)
        except ValueError as e:
            self.refusals += 1
            _log.error(
                "refused to reload ticket keys ({why}): {reason}; the keys in use stay",
                why=why,
                reason=str(e),
                path=self.path,
                event="resumetls.keys.reload_refused",
            )
            return False
        self.reloads += 1
        _log.info(
            "reloaded ticket keys from {path} ({why}): {fingerprint} encrypts, "
            "{decrypt_only} decrypt only, {pending} pending",
            path=self.path,
            why=why,
            fingerprint=keys.encrypting.fingerprint,
            decrypt_only=len(keys.decrypt_only),
            pending=len(keys.pending),
            event="resumetls.keys.reloaded",
        )
        return True


class _SighupReloads:
    """
    One SIGHUP handler for the process, reloading every started watcher's
    key file (nginx's and HAProxy's convention), whichever Twisted program
    runs it: C{twist resumetls}, or C{twist web --listen resumetls:…}, whose
    default SIGHUP action would end the process.  A Python handler that was
    there before is called too; the previous handler comes back when the
    last watcher stops.
    """

    def __init__(self, reactor: Any = None) -> None:
        self.reactor = reactor  # the global reactor when None
        self._watchers: list[KeyFileWatcher] = []
        self._previous: Any = None
        self._installed = False

    def add(self, watcher: KeyFileWatcher) -> None:
        if watcher in self._watchers:
            return
        self._watchers.append(watcher)
        if not self._installed and hasattr(signal, "SIGHUP"):
            try:
                self._previous = signal.signal(signal.SIGHUP, self._on_hup)
            except ValueError:  # not the main thread: file changes still reload
                _log.warn(
                    "cannot handle SIGHUP outside the main thread; ticket key "
                    "files are reloaded when they change",
                    event="resumetls.keys.no_sighup",
                )
                return
            self._installed = True

    def discard(self, watcher: KeyFileWatcher) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)
        if not self._watchers and self._installed:
            try:
                signal.signal(signal.SIGHUP, self._previous or signal.SIG_DFL)
            except ValueError:
                return
            self._installed = False
            self._previous = None

    def _on_hup(self, signum: int, frame: Any) -> None:
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor
        # A signal handler runs between two bytecodes of whatever the main
        # thread was doing: reload from the reactor loop, not here.
        for w in list(self._watchers):
            reactor.callFromThread(w.reload, "SIGHUP")
        if callable(self._previous):
            self._previous(signum, frame)


_sighup = _SighupReloads()
