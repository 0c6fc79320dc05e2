"""
The fleet's Prometheus series, read from a real context factory whose
handshakes paused for a Deferred cache (in memory), and from one over a
real Redis that went away.
"""

from __future__ import annotations

from OpenSSL import SSL
from prometheus_client import generate_latest
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from resumetls import ResumingContextFactory, ResumptionSettings
from resumetls.cli.metrics import metrics_registry
from resumetls.testing.caches import SlowSessionCache
from resumetls.testing.keys import fixed_key_ring
from resumetls.testing.pump import TestClient, handshake

from ..support.certificates import options


def scrape(factory) -> str:
    return generate_latest(metrics_registry(lambda: [factory])).decode()


class FleetMetricsTests(SynchronousTestCase):
    def test_lookup_series(self):
        clock = Clock()
        cache = SlowSessionCache(clock)
        factory = ResumingContextFactory(
            options(),
            ResumptionSettings(tickets=False, lookup_budget=0.05),
            key_ring=fixed_key_ring(),
            cache=cache,
            clock=clock,
        )
        client = TestClient(SSL.TLS1_2_VERSION, tickets=False)
        handshake(factory, client, clock=clock)
        cache.answer_all()
        resumed = handshake(factory, client, clock=clock)
        clock.advance(0.003)
        cache.answer_all()
        resumed.flush()
        self.assertTrue(resumed.info.resumed)
        late = handshake(factory, client, clock=clock)
        clock.advance(0.05)
        late.flush()
        text = scrape(factory)
        for line in (
            'resumetls_cache_lookups_total{result="hits",service="default"} 1.0',
            'resumetls_cache_lookups_total{result="late",service="default"} 1.0',
            'resumetls_handshakes_paused_total{service="default"} 2.0',
            'resumetls_cache_lookup_seconds_bucket{le="0.002",service="default"} 0.0',
            'resumetls_cache_lookup_seconds_bucket{le="0.005",service="default"} 1.0',
            'resumetls_cache_lookup_seconds_count{service="default"} 1.0',
            'resumetls_cache_circuit{service="default"} 0.0',
        ):
            self.assertIn(line, text)

    def test_no_series_without_the_part(self):
        """A service with the in-memory cache has no lookup or fleet series."""
        factory = ResumingContextFactory(options(), key_ring=fixed_key_ring())
        text = scrape(factory)
        self.assertNotIn("resumetls_cache_lookups_total{", text)
        self.assertNotIn("resumetls_fleet_keys{", text)
