"""
Prometheus series of a fleet: lookups that paused handshakes (by result),
their latency, the circuit breaker, a networked cache's link and dropped
stores, and a fleet key source's ring (keys by role, age, last sync).  Read
at scrape time from what L{resumetls.server.sources.sources_status} reads;
series exist only for services that have the part they describe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

__all__ = ["fleet_families"]

_RESULTS = ("hits", "misses", "late", "errors", "skipped_down", "skipped_busy")
_CIRCUIT = {"closed": 0, "half_open": 1, "open": 2}


# key: (family class, name, help, labels after "service")
_FAMILIES = {
    "lookups": (
        CounterMetricFamily,
        "resumetls_cache_lookups",
        "Session lookups started from the client hello, by result",
        ("result",),
    ),
    "paused": (
        CounterMetricFamily,
        "resumetls_handshakes_paused",
        "Handshakes paused while the session cache answered",
        (),
    ),
    "latency": (
        HistogramMetricFamily,
        "resumetls_cache_lookup_seconds",
        "Time the session cache took to answer a lookup",
        (),
    ),
    "circuit": (
        GaugeMetricFamily,
        "resumetls_cache_circuit",
        "Circuit breaker of session lookups: 0 closed, 1 half open, 2 open "
        "(handshakes do not wait)",
        (),
    ),
    "connected": (
        GaugeMetricFamily,
        "resumetls_cache_connected",
        "1 when the networked session cache is connected",
        (),
    ),
    "dropped": (
        CounterMetricFamily,
        "resumetls_cache_stores_dropped",
        "Session stores dropped because too many were in flight",
        (),
    ),
    "fleet_keys": (
        GaugeMetricFamily,
        "resumetls_fleet_keys",
        "Ticket keys in the fleet's ring, by role",
        ("role",),
    ),
    "fleet_sync": (
        GaugeMetricFamily,
        "resumetls_fleet_last_sync_seconds",
        "Seconds since the fleet's key ring was last read from its store",
        (),
    ),
}


def fleet_families(factories: Iterable[Any]) -> Iterable[Any]:
    """The metric families for these context factories."""
    from resumetls.server.sources import sources_status

    f = {
        key: kind(name, text, labels=["service", *labels])
        for key, (kind, name, text, labels) in _FAMILIES.items()
    }
    for factory in factories:
        svc = factory.settings.service or "default"
        data = sources_status(factory)
        figures = data.get("lookups")
        if figures is not None:
            for result in _RESULTS:
                f["lookups"].add_metric([svc, result], figures[result])
            f["paused"].add_metric([svc], figures["paused"])
            f["circuit"].add_metric([svc], _CIRCUIT.get(figures["circuit"], 2))
            running, buckets = 0, []
            for bound, count in figures["latency_buckets"].items():
                running += count
                buckets.append((bound, running))
            buckets.append(("+Inf", figures["latency_count"]))
            f["latency"].add_metric([svc], buckets, sum_value=figures["latency_sum"])
        cache = data.get("cache_figures")
        if cache is not None:
            f["connected"].add_metric([svc], int(bool(cache.get("connected"))))
            f["dropped"].add_metric([svc], cache.get("stores_dropped", 0))
        fleet = data.get("fleet")
        if fleet is not None:
            for role, count in fleet.get("roles", {}).items():
                f["fleet_keys"].add_metric([svc, role], count)
            if fleet.get("since_sync") is not None:
                f["fleet_sync"].add_metric([svc], fleet["since_sync"])
    yield from f.values()
