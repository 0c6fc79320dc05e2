"""
Prometheus exposition of what resumption is doing: handshakes by kind,
tickets by event, cache figures and the key ring's age and size.  Served on
its own listener (C{--metrics}), loopback unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from resumetls.server.stats import HANDSHAKE_KINDS


class ResumptionCollector:
    """Reads the counters of the serving context factories at scrape time."""

    def __init__(self, factories: Callable[[], Iterable[Any]]) -> None:
        self._factories = factories

    def collect(self) -> Iterable[Any]:
        (
            handshakes,
            tickets,
            cache_ops,
            cache_entries,
            cache_bytes,
            key_age,
            keys,
            errors,
            capabilities,
            cache_max,
            closed,
        ) = families = metric_families(
            ("counter", "resumetls_handshakes", "TLS handshakes completed, by kind",
             ["service", "kind"]),
            ("counter", "resumetls_tickets", "Session tickets, by event",
             ["service", "event"]),
            ("counter", "resumetls_cache_operations",
             "Session cache operations, by result", ["service", "result"]),
            ("gauge", "resumetls_cache_entries", "Sessions in the cache", ["service"]),
            ("gauge", "resumetls_cache_bytes", "Bytes of sessions in the cache",
             ["service"]),
            ("gauge", "resumetls_ticket_key_age_seconds",
             "Age of the encrypting ticket key", ["service"]),
            ("gauge", "resumetls_ticket_keys", "Ticket keys held, by role",
             ["service", "role"]),
            ("counter", "resumetls_errors", "Callback and cache errors",
             ["service", "kind"]),
            ("gauge", "resumetls_capability",
             "1 when the OpenSSL route gives this feature, 0 when degraded to "
             "OpenSSL's built-in cache", ["service", "feature"]),
            ("gauge", "resumetls_cache_max_entries", "Size bound of the session cache",
             ["service"]),
            ("counter", "resumetls_connections_closed",
             "Connections the TLS layer closed before a handshake: no handshake "
             "within the timeout, over the bound of handshakes at once, plain HTTP",
             ["service", "reason"]),
        )  # fmt: skip
        for factory in self._factories():
            s = factory.stats()
            svc = factory.settings.service or "default"
            for kind, field in HANDSHAKE_KINDS:
                handshakes.add_metric([svc, kind], getattr(s, field))
            for event, value in (
                ("issued", s.tickets_issued),
                ("renewed", s.tickets_renewed),
                ("rejected", s.tickets_rejected),
            ):
                tickets.add_metric([svc, event], value)
            for kind, value in (
                ("callback", s.callback_errors),
                ("cache", s.cache_errors),
                ("cache_corrupt", s.cache_corrupt),
                ("cache_late", s.cache_lookups_late),
            ):
                errors.add_metric([svc, kind], value)
            for reason, value in (
                ("handshake_timeout", s.handshake_timeouts),
                ("too_many_handshakes", s.handshakes_refused),
                ("plain_http", s.plain_http),
            ):
                closed.add_metric([svc, reason], value)
            caps = factory.capabilities
            capabilities.add_metric([svc, "custom_tickets"], int(caps.custom_tickets))
            capabilities.add_metric([svc, "external_cache"], int(caps.external_cache))
            if s.cache is not None:
                if s.cache.max_entries is not None:
                    cache_max.add_metric([svc], s.cache.max_entries)
                for result, value in (
                    ("hit", s.cache.hits),
                    ("miss", s.cache.misses),
                    ("store", s.cache.stores),
                    ("eviction", s.cache.evictions),
                    ("expiration", s.cache.expirations),
                ):
                    cache_ops.add_metric([svc, result], value)
                cache_entries.add_metric([svc], s.cache.entries)
                cache_bytes.add_metric([svc], s.cache.bytes)
            if s.keys is not None:
                if s.keys.encrypting_age is not None:
                    key_age.add_metric([svc], s.keys.encrypting_age)
                keys.add_metric([svc, "encrypting"], 1)
                keys.add_metric([svc, "decrypt_only"], s.keys.decrypt_only)
                keys.add_metric([svc, "pending"], s.keys.pending)
        yield from families
        # Lookups that paused handshakes, a networked cache, fleet keys.
        from resumetls.cli.fleetmetrics import fleet_families

        yield from fleet_families(self._factories())


def metric_families(*rows: tuple[str, str, str, list[str]]) -> list[Any]:
    """
    Empty metric families from C{(type, name, help, labels)} rows, C{type}
    one of C{counter}, C{gauge}, C{histogram}: how each of our collectors
    declares its series, in the order they are exposed.
    """
    from prometheus_client.core import HistogramMetricFamily

    kinds = {
        "counter": CounterMetricFamily,
        "gauge": GaugeMetricFamily,
        "histogram": HistogramMetricFamily,
    }
    return [kinds[kind](name, doc, labels=labels) for kind, name, doc, labels in rows]


def metrics_registry(factories: Callable[[], Iterable[Any]]) -> CollectorRegistry:
    """A registry of its own (the global one stays untouched)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ResumptionCollector(factories))
    return registry


def metrics_site(factories: Callable[[], Iterable[Any]]) -> Any:
    """A twisted.web C{Site} serving C{/metrics} (and C{/})."""
    from prometheus_client.twisted import MetricsResource
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    resource = MetricsResource(registry=metrics_registry(factories))
    root = Resource()
    root.putChild(b"metrics", resource)
    root.putChild(b"", resource)
    return Site(root)


def loopback_endpoint(description: str) -> str:
    """
    Where C{--metrics} listens: a bare port, or a C{tcp:}/C{tcp6:} string
    without an C{interface}, is bound to loopback only (metrics say how busy
    a server is and which keys are how old: not for the whole network).
    Give C{interface=} explicitly to listen elsewhere.
    """
    description = description.strip()
    if description.isdigit():
        return f"tcp:{description}:interface=127.0.0.1"
    from resumetls.options import split_description

    prefix, _, kwargs = split_description(description)
    loopback = {"tcp": "127.0.0.1", "tcp6": "\\:\\:1"}.get(prefix)
    if loopback is not None and "interface" not in kwargs:
        return f"{description}:interface={loopback}"
    return description
