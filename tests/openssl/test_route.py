"""
L{resumetls.openssl.route.OpenSSLRoute}: checking what a configuration
calls before touching a context, and the typed calls on contexts.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.trial.unittest import SynchronousTestCase

from resumetls import ContextAlreadyUsedError, ResumingContextFactory
from resumetls.openssl.errors import OpenSSLRouteUnavailable
from resumetls.openssl.functions import server_functions
from resumetls.openssl.symbols import route

from ..support import options
from ._routestate import RouteState


class RouteTests(SynchronousTestCase, RouteState):
    def test_missing_function(self):
        """
        A function missing from the symbol table: the route still builds,
        says so, and asking for it raises the specific error (no KeyError)
        naming it and what still works.
        """
        self.drop_functions(self, "SSL_version")
        r = route()
        self.assertEqual(r.missing, ["SSL_version"])
        self.assertFalse(r.custom_ticket_keys)
        self.assertFalse(r.external_cache)
        self.assertTrue(r.context_certificate)
        e = self.assertRaises(
            OpenSSLRouteUnavailable,
            r.require,
            server_functions(tickets=False, session_cache=False),
        )
        self.assertIn("SSL_version was not found in", str(e))
        self.assertIn("Still works", str(e))
        self.assertIn("built-in in-process session cache", str(e))
        r.require(["SSL_CTX_ctrl", "i2d_X509"])
        self.assertRaises(OpenSSLRouteUnavailable, r.function, "SSL_version")
        context = SSL.Context(SSL.TLS_METHOD)
        for kw in (
            {"tickets": True, "session_cache": False},
            {"tickets": False, "session_cache": True},
            {"tickets": False, "session_cache": False},
        ):
            e = self.assertRaises(
                OpenSSLRouteUnavailable,
                r.install_server_callbacks,
                context,
                None,
                **kw,
            )
            self.assertIn("SSL_version", str(e))
        self.assertFalse(hasattr(context, "_resumetls_callbacks"))

    def test_internal_cache_size(self):
        """The bound of OpenSSL's own cache is set and read back."""
        context = SSL.Context(SSL.TLS_METHOD)
        route().set_internal_cache_size(context, 11)
        self.assertEqual(route().internal_cache_size(context), 11)

    def test_context_already_used(self):
        opts = options()
        SSL.Connection(opts.getContext(), None)
        e = self.assertRaises(ContextAlreadyUsedError, ResumingContextFactory, opts)
        self.assertIn("already been used", str(e))
        self.assertIn("before listening", str(e))
