"""
One server to observe: the figures of every worker, summed by the parent.

The parent aggregates (rather than C{prometheus_client}'s multiprocess
mode): our metrics are read from counters at scrape time by a custom
collector, which multiprocess mode does not support (it only merges the
files of its own metric objects), and the demo page's C{status.json} needs
the same totals and the per-worker split anyway.  On each scrape the parent
asks every worker for its figures over the control connection (a
microsecond-scale message each), sums them and renders them; each worker
refreshes its copy of the totals from the parent every second for its demo
page.

Counts add up across workers.  The shared cache's C{entries}, C{bytes} and
C{max_entries} are the store's own (every worker sees the same), so the
totals take them from one worker instead of adding them.
"""

from __future__ import annotations

import os
from typing import Any

from resumetls.server.stats import HANDSHAKE_KINDS

#: The worker this process is (set by L{resumetls.workers.child}), or None.
CURRENT: Any = None

_SHARED = ("entries", "bytes", "max_entries", "backend")


def worker_figures(worker: Any) -> dict[str, Any]:
    """One worker's figures, as the parent gathers them."""
    from resumetls.server import registry as _registry

    services = []
    for factory in _registry.factories():
        caps = factory.capabilities
        services.append(
            {
                "service": factory.settings.service or "default",
                "stats": factory.stats().as_dict(),
                "capabilities": {
                    "custom_tickets": caps.custom_tickets,
                    "external_cache": caps.external_cache,
                    "reason": caps.reason,
                },
            }
        )
    services.sort(key=lambda s: s["service"])
    return {
        "worker": worker.index,
        "pid": os.getpid(),
        "connections": worker.connections,
        "connections_open": worker.open_connections(),
        "services": services,
    }


def _handshakes(stats: dict[str, Any]) -> dict[str, int]:
    return {kind: stats.get(field, 0) for kind, field in HANDSHAKE_KINDS}


def _add(total: dict[str, Any], stats: dict[str, Any]) -> None:
    for name, value in stats.items():
        if name == "cache" and isinstance(value, dict):
            cache = total.setdefault("cache", {})
            for key, figure in value.items():
                if key in _SHARED or key not in cache:
                    cache[key] = figure
                else:
                    cache[key] += figure
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            total[name] = total.get(name, 0) + value
        elif name not in total:
            total[name] = value


def aggregate(workers: list[dict[str, Any]], supervisor: Any = None) -> dict[str, Any]:
    """
    The whole server's figures: C{totals} (connections, and each service's
    counters summed), and C{workers} (per worker: number, pid, connections,
    handshakes by kind).
    """
    services: dict[str, dict[str, Any]] = {}
    capabilities: dict[str, Any] = {}
    per_worker = []
    for figures in sorted(workers, key=lambda f: f["worker"]):
        handshakes = {kind: 0 for kind, _ in HANDSHAKE_KINDS}
        for service in figures["services"]:
            total = services.setdefault(service["service"], {})
            if total.get("cache") is None:
                total.pop("cache", None)
            _add(total, service["stats"])
            capabilities.setdefault(service["service"], service["capabilities"])
            for kind, n in _handshakes(service["stats"]).items():
                handshakes[kind] += n
        per_worker.append(
            {
                "worker": figures["worker"],
                "pid": figures["pid"],
                "connections": figures["connections"],
                "connections_open": figures["connections_open"],
                "handshakes": handshakes,
            }
        )
    data = {
        "totals": {
            "connections": sum(w["connections"] for w in per_worker),
            "connections_open": sum(w["connections_open"] for w in per_worker),
            "services": services,
        },
        "capabilities": capabilities,
        "workers": per_worker,
    }
    if supervisor is not None:
        data["totals"]["workers"] = supervisor.count
        data["totals"]["restarts"] = sum(s.restarts for s in supervisor.slots)
    return data


def connection_origin(transport: Any) -> dict[str, Any] | None:
    """
    For the demo page: which worker serves this connection, and (for a
    session resumed from the shared cache) which worker's handshake made
    the session.  L{None} outside a worker.
    """
    worker = CURRENT
    if worker is None:
        return None
    found: dict[str, Any] = {"worker": worker.index, "pid": os.getpid()}
    origin = _session_origin(transport)
    if origin is not None:
        found["session_from_worker"] = origin
        found["session_from_another_worker"] = origin != worker.index
    return found


def worker_words(worker: dict[str, Any]) -> str:
    """
    C{connection_origin}'s answer in words, for the demo page: C{served by
    worker 2 (pid 4242); its session came from worker 1's handshake}.
    """
    words = f"served by worker {worker['worker']} (pid {worker['pid']})"
    origin = worker.get("session_from_worker")
    if origin is not None:
        if worker.get("session_from_another_worker"):
            words += f"; its session came from worker {origin}'s handshake"
        else:
            words += "; its session came from this worker's own handshake"
    return words


def _session_origin(transport: Any) -> int | None:
    """The worker whose handshake made this connection's session, if known."""
    from resumetls.server.stats import _connection

    try:
        conn = _connection(transport)
    except TypeError:
        return None
    return getattr(conn, ORIGIN, None)


#: The attribute a worker sets on a pyOpenSSL Connection resumed from the
#: shared cache: the number of the worker that stored the session.
ORIGIN = "_resumetls_origin"


def note_origins(factory: Any) -> None:
    """
    Make C{factory}'s session lookups note, on the connection, which worker
    stored the session they found (the LMDB entry says), through the hooks'
    C{session_found}.  Tickets carry no such mark: their origin stays
    unknown.
    """
    cache = factory.cache
    if cache is None or not hasattr(cache, "origin_of"):
        return

    def session_found(conn: Any, key: bytes) -> None:
        origin = cache.origin_of(key)
        if origin and conn is not None:
            setattr(conn, ORIGIN, origin)

    factory.hooks.session_found = session_found


def server_status() -> dict[str, Any] | None:
    """The whole server's figures as this worker last heard them, or None."""
    worker = CURRENT
    return None if worker is None else worker.server_status


class _Totals:
    """One service's summed figures, shaped like a context factory for the collector."""

    def __init__(self, service: str, stats: dict[str, Any], caps: dict[str, Any]):
        import attrs

        from resumetls.cache.stats import CacheStats
        from resumetls.keys.ring import KeyRingSummary
        from resumetls.server.settings import Capabilities
        from resumetls.server.stats import ResumptionStats

        def build(cls: Any, data: Any) -> Any:
            if data is None:
                return None
            # A figure a worker did not send (an older one) counts as 0.
            return cls(**{k: data.get(k, 0) for k in attrs.fields_dict(cls)})

        fields = dict(stats)
        fields["cache"] = build(CacheStats, stats.get("cache"))
        fields["keys"] = build(KeyRingSummary, stats.get("keys"))
        self._stats = build(ResumptionStats, fields)
        self.settings = type("Settings", (), {"service": service})()
        self.capabilities = build(Capabilities, caps)

    def stats(self) -> Any:
        return self._stats


class WorkersCollector:
    """Per-worker figures: connections and handshakes by kind."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Any:
        from resumetls.cli.metrics import metric_families

        handshakes, connections, open_, workers, restarts = metric_families(
            ("counter", "resumetls_worker_handshakes",
             "TLS handshakes completed by each worker, by kind", ["worker", "kind"]),
            ("counter", "resumetls_worker_connections",
             "Connections accepted by each worker", ["worker"]),
            ("gauge", "resumetls_worker_connections_open",
             "Connections open in each worker", ["worker"]),
            ("gauge", "resumetls_workers", "Worker processes answering", []),
            ("counter", "resumetls_worker_restarts",
             "Workers restarted after exiting", []),
        )  # fmt: skip
        for w in self.snapshot["workers"]:
            label = str(w["worker"])
            for kind, n in w["handshakes"].items():
                handshakes.add_metric([label, kind], n)
            connections.add_metric([label], w["connections"])
            open_.add_metric([label], w["connections_open"])
        workers.add_metric([], len(self.snapshot["workers"]))
        restarts.add_metric([], self.snapshot["totals"].get("restarts", 0))
        yield from (handshakes, connections, open_, workers, restarts)


def render_metrics(snapshot: dict[str, Any]) -> bytes:
    """The Prometheus text of the whole server, from L{aggregate}'s figures."""
    from prometheus_client import CollectorRegistry, generate_latest

    from resumetls.cli.metrics import ResumptionCollector

    services = snapshot["totals"]["services"]
    factories = [
        _Totals(name, stats, snapshot["capabilities"].get(name, {}))
        for name, stats in sorted(services.items())
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ResumptionCollector(lambda: factories))
    registry.register(WorkersCollector(snapshot))
    return generate_latest(registry)


def metrics_site(supervisor: Any) -> Any:
    """
    The parent's C{--metrics} site: on each scrape, every worker's figures,
    gathered and summed (see the module for why not multiprocess mode).
    """
    from prometheus_client import CONTENT_TYPE_LATEST
    from twisted.web.resource import Resource
    from twisted.web.server import NOT_DONE_YET, Site

    class Metrics(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> Any:  # noqa: N802
            def write(snapshot: dict[str, Any]) -> None:
                request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
                request.write(render_metrics(snapshot))
                request.finish()

            supervisor.status().addCallback(write)
            return NOT_DONE_YET

    return Site(Metrics())
