"""
One SIGHUP handler for the process, reloading every started key source
(nginx's and HAProxy's convention), whichever Twisted program runs it:
C{twist resumetls}, or C{twist web --listen resumetls:…}, whose default
SIGHUP action would end the process.
"""

from __future__ import annotations

import signal
from typing import Any

from twisted.logger import Logger

_log = Logger(namespace="resumetls")


class SighupReloads:
    """
    Calls C{reload("SIGHUP")} on every source added, from the reactor loop.
    The handler is installed with the first source and the one that was
    there before comes back when the last source is discarded; a Python
    handler that was there before is called too.

    @param reactor: where reloads run (C{callFromThread}); the global
        reactor when L{None}.
    """

    def __init__(self, reactor: Any = None) -> None:
        self.reactor = reactor
        self._sources: list[Any] = []
        self._previous: Any = None
        self._installed = False

    def add(self, source: Any) -> None:
        if source in self._sources:
            return
        self._sources.append(source)
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

    def discard(self, source: Any) -> None:
        if source in self._sources:
            self._sources.remove(source)
        if not self._sources and self._installed:
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
        for source in list(self._sources):
            reactor.callFromThread(source.reload, "SIGHUP")
        if callable(self._previous):
            self._previous(signum, frame)


# The process's handler; key sources find it here when they start.
reloads = SighupReloads()
