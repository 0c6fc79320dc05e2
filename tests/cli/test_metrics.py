"""
Prometheus exposition: every figure of the engine under its metric name,
a registry of our own (the global one untouched), counters moving with real
handshakes over loopback, no key material, and C{--metrics} on loopback.
"""

from __future__ import annotations

import urllib.request

import attrs
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from resumetls import (
    CacheStats,
    Capabilities,
    KeyRingSummary,
    ResumingContextFactory,
    ResumptionSettings,
    ResumptionStats,
)
from resumetls.cli.metrics import loopback_endpoint, metrics_registry, metrics_site

from .. import support


def samples(text):
    """{(name, frozenset(labels)): value} of an exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found, name, **labels):
    return found[(name, frozenset(labels.items()))]


@attrs.define
class FakeFactory:
    """What the collector reads of a context factory, with chosen figures."""

    service: str
    figures: ResumptionStats
    capabilities: Capabilities = Capabilities(True, True, None)

    @property
    def settings(self):
        return ResumptionSettings(service=self.service)

    def stats(self):
        return self.figures


def figures(**changes):
    numbers = {
        name: 0
        for name in attrs.fields_dict(ResumptionStats)
        if name not in ("cache", "keys")
    }
    numbers.update(changes)
    return ResumptionStats(
        **numbers,
        cache=CacheStats(
            entries=7,
            bytes=7000,
            max_entries=100,
            hits=5,
            misses=2,
            stores=9,
            evictions=1,
            expirations=3,
            errors=0,
            backend="memory",
        ),
        keys=KeyRingSummary(
            encrypting="abcdef123456",
            encrypting_age=42.5,
            decrypt_only=2,
            pending=1,
            generation=4,
            next_rotation=None,
            source="memory",
        ),
    )


class CollectorTests(SynchronousTestCase):
    def test_every_figure(self):
        """Each engine figure appears under its name and labels."""
        shop = FakeFactory(
            "shop",
            figures(
                full_handshakes=10,
                resumed_session_id=3,
                resumed_ticket_tls12=4,
                resumed_ticket_tls13=5,
                resumed_unknown=6,
                tickets_issued=20,
                tickets_renewed=2,
                tickets_rejected=1,
                callback_errors=8,
                cache_errors=9,
                cache_corrupt=11,
                cache_lookups_late=12,
            ),
        )
        found = samples(generate_latest(metrics_registry(lambda: [shop])).decode())
        h = "resumetls_handshakes_total"
        for kind, number in [
            ("full", 10),
            ("session_id", 3),
            ("ticket_tls12", 4),
            ("ticket_tls13", 5),
            ("other", 6),
        ]:
            self.assertEqual(value(found, h, service="shop", kind=kind), number)
        for event, number in [("issued", 20), ("renewed", 2), ("rejected", 1)]:
            self.assertEqual(
                value(found, "resumetls_tickets_total", service="shop", event=event),
                number,
            )
        for kind, number in [
            ("callback", 8),
            ("cache", 9),
            ("cache_corrupt", 11),
            ("cache_late", 12),
        ]:
            self.assertEqual(
                value(found, "resumetls_errors_total", service="shop", kind=kind),
                number,
            )
        for result, number in [
            ("hit", 5),
            ("miss", 2),
            ("store", 9),
            ("eviction", 1),
            ("expiration", 3),
        ]:
            self.assertEqual(
                value(
                    found,
                    "resumetls_cache_operations_total",
                    service="shop",
                    result=result,
                ),
                number,
            )
        self.assertEqual(value(found, "resumetls_cache_entries", service="shop"), 7)
        self.assertEqual(value(found, "resumetls_cache_bytes", service="shop"), 7000)
        self.assertEqual(
            value(found, "resumetls_cache_max_entries", service="shop"), 100
        )
        self.assertEqual(
            value(found, "resumetls_ticket_key_age_seconds", service="shop"), 42.5
        )
        for role, number in [("encrypting", 1), ("decrypt_only", 2), ("pending", 1)]:
            self.assertEqual(
                value(found, "resumetls_ticket_keys", service="shop", role=role), number
            )
        self.assertEqual(
            value(
                found, "resumetls_capability", service="shop", feature="custom_tickets"
            ),
            1,
        )

    def test_services_and_degraded(self):
        """Two services are two label sets; a degraded one shows 0 capability."""
        default = FakeFactory(
            "",
            figures(full_handshakes=1),
            Capabilities(False, False, "stripped binary"),
        )
        api = FakeFactory("api", figures(full_handshakes=2))
        found = samples(
            generate_latest(metrics_registry(lambda: [default, api])).decode()
        )
        h = "resumetls_handshakes_total"
        self.assertEqual(value(found, h, service="default", kind="full"), 1)
        self.assertEqual(value(found, h, service="api", kind="full"), 2)
        self.assertEqual(
            value(
                found,
                "resumetls_capability",
                service="default",
                feature="external_cache",
            ),
            0,
        )

    def test_factories_read_at_scrape_time(self):
        """The collector asks for the factories on every scrape."""
        current = []
        registry = metrics_registry(lambda: current)
        self.assertNotIn(
            "resumetls_handshakes_total{", generate_latest(registry).decode()
        )
        current.append(FakeFactory("x", figures(full_handshakes=3)))
        found = samples(generate_latest(registry).decode())
        self.assertEqual(
            value(found, "resumetls_handshakes_total", service="x", kind="full"), 3
        )

    def test_global_registry_untouched(self):
        metrics_registry(lambda: [FakeFactory("x", figures())])
        metrics_site(lambda: [])
        names = [m.name for m in REGISTRY.collect()]
        self.assertFalse([n for n in names if n.startswith("resumetls")], names)

    def test_loopback_endpoint(self):
        """--metrics listens on loopback unless an interface is given."""
        self.assertEqual(loopback_endpoint("9100"), "tcp:9100:interface=127.0.0.1")
        self.assertEqual(loopback_endpoint("tcp:9100"), "tcp:9100:interface=127.0.0.1")
        self.assertEqual(loopback_endpoint("tcp6:9100"), "tcp6:9100:interface=\\:\\:1")
        self.assertEqual(
            loopback_endpoint("tcp:9100:interface=0.0.0.0"),
            "tcp:9100:interface=0.0.0.0",
        )
        self.assertEqual(loopback_endpoint("unix:/run/m.sock"), "unix:/run/m.sock")


class ScrapeTests(TestCase):
    timeout = 60

    def test_counters_move(self):
        """
        A real factory serving real handshakes: scraped over HTTP, the
        full and resumed counters move by exactly what happened, and no key
        material is in the exposition.
        """

        async def run():
            factory = ResumingContextFactory(
                support.options(), ResumptionSettings(service="web"), clock=reactor
            )
            tls_port, app = await support.listen(self, factory)
            metrics = await TCP4ServerEndpoint(
                reactor, 0, interface="127.0.0.1"
            ).listen(metrics_site(lambda: [factory]))
            self.addCleanup(metrics.stopListening)
            url = f"http://127.0.0.1:{metrics.getHost().port}/metrics"

            def scrape():
                with urllib.request.urlopen(url, timeout=10) as r:
                    return r.read().decode()

            before = samples(await deferToThread(scrape))
            ctx = support.python_context(
                support.ssl.TLSVersion.TLSv1_3, False, self.cafile()
            )
            first = await support.python_client(tls_port, ctx)
            second = await support.python_client(tls_port, ctx, first["session"])
            self.assertTrue(second["reused"])
            # The API names the mechanism as the metrics' kind label does.
            self.assertEqual(app.infos[-1].mechanism, "ticket_tls13")
            text = await deferToThread(scrape)
            after = samples(text)
            h = "resumetls_handshakes_total"
            for kind, moved in [("full", 1), ("ticket_tls13", 1), ("session_id", 0)]:
                self.assertEqual(
                    value(after, h, service="web", kind=kind)
                    - value(before, h, service="web", kind=kind),
                    moved,
                    kind,
                )
            # Two tickets after the full handshake, one after the resumption.
            tickets = "resumetls_tickets_total"
            self.assertEqual(
                value(after, tickets, service="web", event="issued")
                - value(before, tickets, service="web", event="issued"),
                3,
            )
            for key in factory.key_ring.keys().all:
                for secret in (key.name, key.hmac_key, key.aes_key):
                    self.assertNotIn(secret.hex(), text)

        return ensureDeferred(run())

    def cafile(self):
        cert, _ = support.write_pem(self.mktemp(), *support.certificate())
        return cert
