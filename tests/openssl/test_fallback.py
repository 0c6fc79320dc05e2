"""
Without the OpenSSL route (self-check failed, or a function missing) a
server falls back to OpenSSL's built-in cache and ticket keys, says so, and
still serves and resumes.
"""

from __future__ import annotations

import os

from OpenSSL import SSL
from twisted.internet.defer import ensureDeferred
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from resumetls import ResumingContextFactory, ResumptionSettings

from .. import support
from ..support import listen, options, s_client
from ._routestate import RouteState


class FallbackTests(TestCase, RouteState):
    """
    Without the route the server still serves, and still resumes through
    OpenSSL's built-in cache and ticket keys, and says so loudly.
    """

    timeout = 60

    def test_fallback_resumes(self):
        async def run():
            self.break_self_check(self)
            events = []
            globalLogPublisher.addObserver(events.append)
            self.addCleanup(globalLogPublisher.removeObserver, events.append)
            factory = ResumingContextFactory(options(), ResumptionSettings())
            self.assertFalse(factory.capabilities.custom_tickets)
            self.assertFalse(factory.capabilities.external_cache)
            self.assertIn("self-check failed", factory.capabilities.reason)
            warned = [
                e for e in events if e.get("event") == "resumetls.route.unavailable"
            ]
            self.assertEqual(len(warned), 1)
            port, _ = await listen(self, factory)
            for flags in (["-tls1_2", "-no_ticket"], ["-tls1_2"], ["-tls1_3"]):
                sess = os.path.abspath(self.mktemp())
                await s_client(port, None, sess, *flags)
                again = await s_client(port, sess, None, *flags)
                self.assertTrue(again["reused"], flags)
                self.assertEqual(again["server"]["mechanism"], "unknown")
            stats = factory.stats()
            self.assertEqual(stats.full_handshakes, 3)
            self.assertEqual(stats.resumed_unknown, 3)

        return ensureDeferred(run())

    def test_fallback_tickets(self):
        """
        The fallback issues tickets under OpenSSL's own keys when tickets
        are on (CertificateOptions had already turned them off in its
        constructor), and resumes with them alone.
        """

        async def run():
            self.break_self_check(self)
            factory = ResumingContextFactory(
                options(), ResumptionSettings(session_ids=False)
            )
            self.assertFalse(factory.capabilities.custom_tickets)
            port, _ = await listen(self, factory)
            for flags in (["-tls1_2"], ["-tls1_3"]):
                sess = os.path.abspath(self.mktemp())
                first = await s_client(port, None, sess, *flags)
                self.assertTrue(first["tickets"], flags)
                again = await s_client(port, sess, None, *flags)
                self.assertTrue(again["reused"], flags)
            without = ResumingContextFactory(
                options(), ResumptionSettings(tickets=False)
            )
            port, _ = await listen(self, without)
            first = await s_client(port, None, None, "-tls1_2")
            self.assertEqual(first["tickets"], [])

        return ensureDeferred(run())


class _PlainFactory:
    """An C{IOpenSSLContextFactory} without a C{certificate} attribute."""

    def __init__(self):
        self.context = options().getContext()

    def getContext(self):
        return self.context


# The common functions every configuration calls, and one of each feature.
MISSING = [
    "SSL_version",
    "SSL_session_reused",
    "SSL_CTX_set_info_callback",
    "SSL_CTX_set_num_tickets",
    "EVP_MAC_CTX_set_params",
    "SSL_CTX_sess_set_new_cb",
]


class MissingFunctionTests(TestCase, RouteState):
    """
    One function missing from the symbol table (the anchors all there):
    the factory checks what its configuration calls before it changes the
    context, falls back to OpenSSL's built-in cache and ticket keys, says
    so, and serves and resumes.
    """

    timeout = 120

    def build(self, missing, settings, opts=None):
        self.drop_functions(self, missing)
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        factory = ResumingContextFactory(
            opts if opts is not None else options(), settings
        )
        warned = [e for e in events if e.get("event") == "resumetls.route.unavailable"]
        return factory, warned

    def assert_fallback(self, factory, warned, missing):
        caps = factory.capabilities
        self.assertFalse(caps.custom_tickets, missing)
        self.assertFalse(caps.external_cache, missing)
        self.assertIn(f"{missing} was not found in", caps.reason)
        self.assertIn("Still works", caps.reason)
        self.assertEqual(len(warned), 1, missing)
        self.assertEqual(warned[0]["reason"], caps.reason)
        context = factory.getContext()
        # Nothing of the OpenSSL route was installed.
        self.assertFalse(hasattr(context, "_resumetls_callbacks"))
        self.assertEqual(context.get_session_cache_mode(), SSL.SESS_CACHE_SERVER)

    def test_fallback_serves_and_resumes(self):
        async def run():
            for missing in MISSING:
                factory, warned = self.build(missing, ResumptionSettings())
                self.assert_fallback(factory, warned, missing)
                port, _ = await listen(self, factory)
                for flags in (["-tls1_2", "-no_ticket"], ["-tls1_2"], ["-tls1_3"]):
                    sess = os.path.abspath(self.mktemp())
                    first = await s_client(port, None, sess, *flags)
                    self.assertFalse(first["reused"])
                    again = await s_client(port, sess, None, *flags)
                    self.assertTrue(again["reused"], (missing, flags))
                    self.assertEqual(again["server"]["mechanism"], "unknown")
                stats = factory.stats()
                self.assertEqual(stats.full_handshakes, 3, missing)
                self.assertEqual(stats.resumed_unknown, 3, missing)

        return ensureDeferred(run())

    def test_only_what_is_used(self):
        """
        A function only tickets need does not stop a service without
        tickets from using the route (our cache, by session ID).
        """

        async def run():
            factory, warned = self.build(
                "EVP_MAC_CTX_set_params", ResumptionSettings(tickets=False)
            )
            self.assertTrue(factory.capabilities.external_cache)
            self.assertEqual(warned, [])
            port, _ = await listen(self, factory)
            sess = os.path.abspath(self.mktemp())
            await s_client(port, None, sess, "-tls1_2", "-no_ticket")
            again = await s_client(port, sess, None, "-tls1_2", "-no_ticket")
            self.assertTrue(again["reused"])
            self.assertEqual(again["server"]["mechanism"], "session_id")

        return ensureDeferred(run())

    def test_context_certificate(self):
        """
        A context factory whose certificate is read from its context falls
        back when that cannot be read; CertificateOptions does not need it.
        """

        async def run():
            factory, warned = self.build(
                "SSL_CTX_get0_certificate", ResumptionSettings(), _PlainFactory()
            )
            self.assert_fallback(factory, warned, "SSL_CTX_get0_certificate")
            port, _ = await listen(self, factory)
            sess = os.path.abspath(self.mktemp())
            await s_client(port, None, sess, "-tls1_3")
            self.assertTrue((await s_client(port, sess, None, "-tls1_3"))["reused"])
            with_options, warned = self.build(
                "SSL_CTX_get0_certificate", ResumptionSettings()
            )
            self.assertTrue(with_options.capabilities.custom_tickets)
            self.assertEqual(warned, [])

        return ensureDeferred(run())


if support.OPENSSL is None:  # pragma: no cover
    del FallbackTests
