"""
The parent of C{twist resumetls --workers N}: it opens every listening
socket, makes the shared cache's private directory and sealing key, owns
generated ticket keys, and starts N workers (L{resumetls.workers.child}).

Supervision: a worker that exits is logged with its status and restarted,
after 0.1 s, doubling up to 30 s while it keeps dying young (less than 10 s
after its start).  SIGHUP is passed to every worker (each reloads its key
files and certificates).  Stopping (SIGTERM, SIGINT) passes SIGTERM to
every worker, waits for them to finish their open connections (the grace
period, then a SIGKILL for any left), closes the sockets and removes the
cache directory.  Workers also end on their own when the parent dies.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.protocols import amp

from resumetls.workers import plan as _plan
from resumetls.workers.control import (
    CONTROL_FD,
    FIRST_LISTENER_FD,
    Boot,
    ServerStatus,
    SetKeys,
    Stats,
    adopt_control,
    pack_keys,
)

_log = Logger(namespace="resumetls")

FIRST_DELAY = 0.1
MAX_DELAY = 30.0
# A worker that lived this long before dying is restarted at once again.
HEALTHY_AFTER = 10.0


class _Parent(amp.AMP):
    """The parent's side of one worker's control connection."""

    def __init__(self, supervisor: WorkerSupervisor) -> None:
        super().__init__()
        self.supervisor = supervisor

    @ServerStatus.responder
    def server_status(self) -> defer.Deferred:
        return self.supervisor.status().addCallback(lambda s: {"status": s})


class _WorkerProcess(ProcessProtocol):
    def __init__(self, supervisor: WorkerSupervisor, slot: _Slot) -> None:
        self.supervisor = supervisor
        self.slot = slot

    def processEnded(self, reason: Any) -> None:  # noqa: N802 - Twisted's name
        self.supervisor._ended(self.slot, reason.value)


@attrs.define
class _Slot:
    """One worker position: its number, and the process now in it."""

    index: int
    pid: int | None = None
    process: Any = None
    control: _Parent | None = None
    started: float = 0.0
    delay: float = FIRST_DELAY
    restarts: int = 0
    ended: defer.Deferred | None = None


class WorkerSupervisor(service.Service):
    """
    @param listeners: one per listener: its L{ServerConfig}.
    @param app: the C{--factory}, C{--wsgi} and C{--path} options (a dict).
    @param count: how many workers.
    @param grace: seconds stopping workers let open connections finish.
    @param reuseport: one C{SO_REUSEPORT} socket per worker and listener
        (see L{resumetls.workers.sockets}), else one shared socket.
    @param first_key: the first key of generated ticket keys (see
        L{SharedKeyOwner}), or L{None}.
    """

    def __init__(
        self,
        listeners: list[Any],
        app: dict[str, Any],
        count: int,
        reactor: Any = None,
        grace: float = _plan.GRACE,
        reuseport: bool = False,
        first_key: Any = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.listeners, self.app, self.count = listeners, app, count
        self.reactor, self.grace, self.reuseport = reactor, grace, reuseport
        self._first_key = first_key
        self.slots = [_Slot(i + 1) for i in range(count)]
        self.sockets: list[list[socket.socket]] = []
        self.cache_dir: str | None = None
        self.key_owner: Any = None
        self._stopping = False
        self._previous_hup: Any = None

    # -- starting ----------------------------------------------------------------

    def privilegedStartService(self) -> None:  # noqa: N802 - Twisted's name
        """Bind every listener before the reactor runs (and before privileges go)."""
        super().privilegedStartService()
        from resumetls.workers.sockets import listening_sockets

        for config in self.listeners:
            try:
                self.sockets.append(
                    listening_sockets(
                        config.interface,
                        config.port,
                        config.backlog,
                        self.count,
                        self.reuseport,
                    )
                )
            except OSError as e:
                where = config.interface or "all interfaces"
                raise SystemExit(
                    f"Error: --workers: cannot listen on {where} port "
                    f"{config.port}: {e.strerror}"
                ) from None

    def startService(self) -> None:  # noqa: N802 - Twisted's name
        super().startService()
        from resumetls.keys.ring import RotationPolicy
        from resumetls.workers.keys import SharedKeyOwner
        from resumetls.workers.sockets import cache_directory

        if not self.sockets:
            self.privilegedStartService()
        self.cache_dir = cache_directory()
        self._seal_key = os.urandom(32)
        owners = [c for c in self.listeners if _plan.owns_keys(c)]
        if owners:
            policy = RotationPolicy(owners[0].rotate_every, owners[0].keep_keys)
            self.key_owner = SharedKeyOwner(
                self.reactor, policy, self._publish, self._first_key
            )
            self.key_owner.start()
        if hasattr(signal, "SIGHUP"):
            self._previous_hup = signal.signal(signal.SIGHUP, self._on_hup)
        ports = ", ".join(
            f"{c.interface or '*'}:{s[0].getsockname()[1]}"
            for c, s in zip(self.listeners, self.sockets, strict=True)
        )
        _log.info(
            "starting {count} workers on {ports}; shared session cache in "
            "{directory}, ticket keys {keys}",
            count=self.count,
            ports=ports,
            directory=self.cache_dir,
            keys="rotated by this process" if self.key_owner else "from files",
            event="resumetls.workers.starting",
        )
        for slot in self.slots:
            self._spawn(slot)

    def _plan_for(self, slot: _Slot) -> tuple[dict[str, Any], dict[int, int]]:
        listeners = []
        child_fds = {}
        fd = FIRST_LISTENER_FD
        for config, sockets in zip(self.listeners, self.sockets, strict=True):
            sock = sockets[(slot.index - 1) % len(sockets)]
            child_fds[fd] = sock.fileno()
            family = "inet6" if sock.family == socket.AF_INET6 else "inet"
            listeners.append(
                {"config": _plan.config_as_data(config), "fd": fd, "family": family}
            )
            fd += 1
        data = {
            "index": slot.index,
            "listeners": listeners,
            "app": self.app,
            "cache_dir": self.cache_dir,
            "grace": self.grace,
        }
        return data, child_fds

    def _spawn(self, slot: _Slot) -> None:
        if self._stopping:
            return
        data, child_fds = self._plan_for(slot)
        parent_end, child_end = socket.socketpair()
        child_fds.update({0: 0, 1: 1, 2: 2, CONTROL_FD: child_end.fileno()})
        argv = [
            sys.executable,
            "-m",
            "resumetls.workers.child",
            str(slot.index),
            str(os.getpid()),
        ]
        slot.process = self.reactor.spawnProcess(
            _WorkerProcess(self, slot),
            sys.executable,
            argv,
            env=os.environ,
            childFDs=child_fds,
        )
        child_end.close()
        slot.pid = slot.process.pid
        slot.started = self.reactor.seconds()
        slot.ended = defer.Deferred()
        control = slot.control = _Parent(self)
        adopt_control(self.reactor, parent_end.fileno(), control)
        parent_end.close()
        keys = pack_keys(self.key_owner.keys) if self.key_owner else b""
        d = control.callRemote(Boot, plan=data, seal_key=self._seal_key, keys=keys)

        def started(answer: dict) -> None:
            _log.info(
                "worker {index} started (pid {pid})",
                index=slot.index,
                pid=answer["pid"],
                event="resumetls.workers.started",
            )

        def failed(failure: Any) -> None:
            _log.error(
                "worker {index} (pid {pid}) could not start: {error}",
                index=slot.index,
                pid=slot.pid,
                error=failure.getErrorMessage(),
                event="resumetls.workers.boot_failed",
            )

        d.addCallbacks(started, failed)

    def _publish(self, keys: Any) -> None:
        """Send new ticket keys to every running worker."""
        blob = pack_keys(keys)
        for slot in self.slots:
            if slot.control is not None:
                slot.control.callRemote(SetKeys, keys=blob).addErrback(
                    lambda failure: None
                )

    # -- supervision -------------------------------------------------------------

    def _ended(self, slot: _Slot, status: Any) -> None:
        pid, slot.pid, slot.process, slot.control = slot.pid, None, None, None
        ended, slot.ended = slot.ended, None
        how = _describe_status(status)
        if self._stopping:
            _log.info(
                "worker {index} (pid {pid}) {how}",
                index=slot.index,
                pid=pid,
                how=how,
                event="resumetls.workers.stopped",
            )
        else:
            lived = self.reactor.seconds() - slot.started
            slot.delay = (
                FIRST_DELAY
                if lived >= HEALTHY_AFTER
                else min(MAX_DELAY, slot.delay * 2 if slot.restarts else FIRST_DELAY)
            )
            slot.restarts += 1
            _log.warn(
                "worker {index} (pid {pid}) {how} after {lived:.1f} s; "
                "restarting it in {delay:g} s",
                index=slot.index,
                pid=pid,
                how=how,
                lived=lived,
                delay=slot.delay,
                status=getattr(status, "exitCode", None),
                signal=getattr(status, "signal", None),
                event="resumetls.workers.exited",
            )
            self.reactor.callLater(slot.delay, self._spawn, slot)
        if ended is not None:
            ended.callback(None)

    def _on_hup(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self.reload)

    def reload(self) -> int:
        """Pass SIGHUP to every worker; the number of workers told."""
        told = 0
        for slot in self.slots:
            if slot.pid is not None:
                try:
                    os.kill(slot.pid, signal.SIGHUP)
                    told += 1
                except ProcessLookupError:
                    pass
        _log.info(
            "SIGHUP passed to {told} worker(s): they reload their ticket key "
            "files and certificates",
            told=told,
            event="resumetls.workers.reload",
        )
        return told

    # -- observing -----------------------------------------------------------------

    def gather(self) -> defer.Deferred:
        """Every running worker's figures (a list; a worker that does not answer is left out)."""
        asked = []
        for slot in self.slots:
            if slot.control is not None:
                d = slot.control.callRemote(Stats)
                d.addCallbacks(lambda a: a["stats"], lambda failure: None)
                asked.append(d)
        d = defer.gatherResults(asked)
        return d.addCallback(lambda found: [f for f in found if f is not None])

    def status(self) -> defer.Deferred:
        """The whole server's figures: totals and per worker."""
        from resumetls.workers.status import aggregate

        return self.gather().addCallback(aggregate, self)

    # -- stopping ------------------------------------------------------------------

    def stopService(self) -> defer.Deferred:  # noqa: N802 - Twisted's name
        super().stopService()
        self._stopping = True
        if self.key_owner is not None:
            self.key_owner.stop()
        if self._previous_hup is not None:
            signal.signal(signal.SIGHUP, self._previous_hup)
        waiting = []
        for slot in self.slots:
            if slot.pid is not None and slot.ended is not None:
                waiting.append(slot.ended)
                try:
                    os.kill(slot.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = self.reactor.callLater(self.grace + 5, self._kill_left)
        d = defer.DeferredList(waiting)

        def done(_: Any) -> None:
            if deadline.active():
                deadline.cancel()
            from resumetls.workers.sockets import close_all

            for sockets in self.sockets:
                close_all(sockets)
            if self.cache_dir is not None:
                import shutil

                shutil.rmtree(self.cache_dir, ignore_errors=True)

        return d.addCallback(done)

    def _kill_left(self) -> None:
        for slot in self.slots:
            if slot.pid is not None:
                _log.warn(
                    "worker {index} (pid {pid}) did not stop in time; killing it",
                    index=slot.index,
                    pid=slot.pid,
                    event="resumetls.workers.killed",
                )
                try:
                    os.kill(slot.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _describe_status(status: Any) -> str:
    """C{exited with status 3}, C{was killed by signal 9 (SIGKILL)}, C{exited}."""
    sig = getattr(status, "signal", None)
    if sig:
        name = signal.Signals(sig).name if sig in signal.valid_signals() else "?"
        return f"was killed by signal {sig} ({name})"
    return f"exited with status {getattr(status, 'exitCode', None) or 0}"
