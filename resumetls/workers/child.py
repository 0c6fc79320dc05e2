"""
A worker process: C{python -m resumetls.workers.child INDEX PARENT_PID},
started by L{resumetls.workers.supervisor} with the control socket as file
descriptor 3 and its listening sockets from 4 on.

It waits for L{Boot} (what to serve, the cache's sealing key, the ticket
keys), builds each listener the way C{twist resumetls} does (the same
option table, context factory, TLS layer and app) with two differences --
the session cache is the shared LMDB store and generated ticket keys are
the parent's -- and adopts its sockets instead of binding.

It ends, after letting open connections finish (at most C{grace} seconds),
on SIGTERM, and when the parent goes away: the control socket closes (the
parent died, even by SIGKILL) or, as a second line, the kernel sends
SIGTERM (C{PR_SET_PDEATHSIG}).  It never outlives its parent.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.protocols import amp

from resumetls.workers.control import (
    CONTROL_FD,
    Boot,
    ServerStatus,
    SetKeys,
    Stats,
    adopt_control,
    unpack_keys,
)

_log = Logger(namespace="resumetls")
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """
    Ask the kernel for SIGTERM when the parent dies (Linux), and leave at
    once if it has already gone.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the control socket still ends the worker
    if os.getppid() != parent:
        os._exit(0)


class Worker(amp.AMP):
    """The worker's side of the control connection, and what it serves."""

    def __init__(self, index: int, reactor: Any) -> None:
        super().__init__()
        self.index = index
        self.reactor = reactor
        self.plan: dict[str, Any] = {}
        self.ports: list[Any] = []
        self.tls_factories: list[Any] = []
        self.endpoints: list[Any] = []
        self.key_source: Any = None
        self.connections = 0
        self.server_status: dict[str, Any] | None = None
        self._draining: defer.Deferred | None = None

    # -- from the parent -------------------------------------------------------------

    @Boot.responder
    def boot(self, plan: dict, seal_key: bytes, keys: bytes) -> dict:
        from resumetls.workers import status as _status

        self.plan = plan
        self._register_backends(seal_key, keys)
        app = self._app()
        for listener in plan["listeners"]:
            self._serve(listener, app)
        _status.CURRENT = self
        self.reactor.addSystemEventTrigger("before", "shutdown", self.drain)
        from twisted.internet.task import LoopingCall

        self._refresh = LoopingCall(self.refresh_status)
        self._refresh.clock = self.reactor
        self._refresh.start(plan.get("status_every", 1.0), now=False)
        _log.info(
            "worker {index} (pid {pid}) serving {n} listener(s)",
            index=self.index,
            pid=os.getpid(),
            n=len(self.ports),
            event="resumetls.workers.serving",
        )
        return {"pid": os.getpid()}

    @SetKeys.responder
    def set_keys(self, keys: bytes) -> dict:
        self.key_source.install(unpack_keys(keys))
        return {"generation": self.key_source.key_ring.generation}

    @Stats.responder
    def stats(self) -> dict:
        from resumetls.workers.status import worker_figures

        return {"stats": worker_figures(self)}

    def connectionLost(self, reason: Any) -> None:  # noqa: N802 - Twisted's name
        super().connectionLost(reason)
        if self._draining is None:
            _log.warn(
                "worker {index}: the parent is gone; finishing open connections "
                "and exiting",
                index=self.index,
                event="resumetls.workers.orphaned",
            )
            self.reactor.stop()

    # -- building ------------------------------------------------------------------

    def _register_backends(self, seal_key: bytes, keys: bytes) -> None:
        """The shared cache and (when the parent owns them) the keys, by name."""
        from resumetls.cache.lmdb import NAMESPACE, LMDBSessionCache
        from resumetls.cache.seal import SessionSealer
        from resumetls.cache.urls import positive_int, register_backend
        from resumetls.keys.sources import register_key_source
        from resumetls.workers.keys import WorkerKeySource

        sealer = SessionSealer(seal_key, NAMESPACE)
        directory = self.plan["cache_dir"]

        def shared(url: str, parts: Any, params: dict, clock: Any) -> Any:
            size = positive_int(url, "size", params.get("size", "20480"))
            return LMDBSessionCache(directory, size, clock, sealer, self.index)

        register_backend("worker", shared)
        if keys:
            self.key_source = WorkerKeySource(unpack_keys(keys), self.reactor)
            register_key_source("worker", lambda *args: self.key_source)

    def _app(self) -> Any:
        from resumetls.cli.apps import choose, protocol_factory

        what, target = choose(self.plan["app"])
        return protocol_factory(what, target, self.reactor)

    def _serve(self, listener: dict, app: Any) -> None:
        from resumetls.server.config import ServerConfig
        from resumetls.server.endpoint import ResumingServerEndpoint
        from resumetls.workers.plan import worker_config
        from resumetls.workers.status import note_origins

        config = worker_config(
            ServerConfig(**listener["config"]), bool(self.key_source)
        )
        endpoint = ResumingServerEndpoint.from_config(self.reactor, config)
        fd = listener["fd"]
        family = socket.AF_INET6 if listener["family"] == "inet6" else socket.AF_INET
        # The endpoint's own path: TLS layer, key source and certificate
        # watch started, resumetls.started logged; stopping the port (see
        # drain) stops them.
        port = endpoint.adopt(fd, family, app)
        os.close(fd)  # the port holds its own duplicate
        tls = port.factory
        build = tls.buildProtocol

        def counting(addr: Any) -> Any:
            self.connections += 1
            return build(addr)

        tls.buildProtocol = counting
        note_origins(endpoint.context_factory)
        self.ports.append(port)
        self.tls_factories.append(tls)
        self.endpoints.append(endpoint)

    # -- status ------------------------------------------------------------------------

    def open_connections(self) -> int:
        return sum(len(getattr(f, "protocols", ())) for f in self.tls_factories)

    def refresh_status(self) -> Any:
        """Ask the parent for the whole server's figures (shown by the demo page)."""
        d = self.callRemote(ServerStatus)

        def keep(answer: dict) -> None:
            self.server_status = answer["status"]

        return d.addCallbacks(keep, lambda failure: None)

    # -- ending ----------------------------------------------------------------------

    def drain(self) -> defer.Deferred:
        """
        Stop accepting, let open connections finish for at most the grace
        period, then close what is left.
        """
        if self._draining is not None:
            return self._draining
        grace = float(self.plan.get("grace", 10.0))
        refresh = getattr(self, "_refresh", None)
        if refresh is not None and refresh.running:
            refresh.stop()
        # Each port's stopListening also stops its key source and
        # certificate watch (ResumingServerEndpoint.adopt).
        stopping = [defer.maybeDeferred(p.stopListening) for p in self.ports]
        self._draining = defer.Deferred()
        start = self.reactor.seconds()
        open_at_start = self.open_connections()

        def check() -> None:
            left = self.open_connections()
            if left and self.reactor.seconds() - start < grace:
                self.reactor.callLater(0.05, check)
                return
            for factory in self.tls_factories:
                for protocol in list(getattr(factory, "protocols", ())):
                    protocol.transport.abortConnection()
            _log.info(
                "worker {index} (pid {pid}) stopped: {finished} connection(s) "
                "finished, {aborted} closed at the end of the {grace:g} s grace",
                index=self.index,
                pid=os.getpid(),
                finished=open_at_start - left,
                aborted=left,
                grace=grace,
                event="resumetls.workers.drained",
            )
            self._draining.callback(None)

        defer.DeferredList(stopping).addCallback(lambda _: check())
        return self._draining


def _observer(index: int) -> Any:
    """Log lines on stdout, each naming this worker."""
    from twisted.logger import formatEventAsClassicLogText

    pid = os.getpid()

    def observe(event: dict) -> None:
        text = formatEventAsClassicLogText(event)
        if text:
            sys.stdout.write(f"[worker {index} pid {pid}] {text}")
            sys.stdout.flush()

    return observe


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    index, parent = int(argv[0]), int(argv[1])
    die_with_parent(parent)
    # Out of the terminal's process group: Ctrl-C reaches the parent, which
    # stops the workers in order.
    os.setpgid(0, 0)
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner

    globalLogBeginner.beginLoggingTo([_observer(index)], redirectStandardIO=False)
    worker = Worker(index, reactor)

    adopt_control(reactor, CONTROL_FD, worker)
    os.close(CONTROL_FD)
    reactor.run()


if __name__ == "__main__":
    main()
