"""
Test helper: a fresh process-wide OpenSSL route for one test, and ways to
break it (anchors that disagree, functions missing from the symbol table).
"""

from __future__ import annotations

import os

from resumetls.openssl import symbols
from resumetls.openssl.route import OpenSSLRoute

_READ_SYMBOLS = symbols.read_symbols


class RouteState:
    """Reset the process-wide route for one test and restore it after."""

    def isolate_route(self, testcase):
        saved = (symbols._route, symbols._failure)
        symbols._route = symbols._failure = None

        def restore():
            symbols._route, symbols._failure = saved

        testcase.addCleanup(restore)
        cache_home = os.path.abspath(testcase.mktemp())
        os.makedirs(cache_home)
        testcase.patch(os, "environ", {**os.environ, "XDG_CACHE_HOME": cache_home})
        return cache_home

    def break_self_check(self, testcase):
        """Make the anchors disagree, and record any route construction."""
        self.isolate_route(testcase)
        real = symbols.anchor_address
        shift = {
            "SSL_CTX_get_timeout": 0,
            "SSL_CTX_set_timeout": 0x1000,
            "i2d_SSL_SESSION": 0,
        }
        testcase.patch(symbols, "anchor_address", lambda name: real(name) + shift[name])
        built = []
        real_init = OpenSSLRoute.__init__

        def spy(route, *a, **kw):
            built.append(a)
            real_init(route, *a, **kw)

        testcase.patch(OpenSSLRoute, "__init__", spy)
        return built

    def drop_functions(self, testcase, *names):
        """Build the route from a symbol table without C{names}."""
        self.isolate_route(testcase)
        testcase.patch(
            symbols,
            "read_symbols",
            lambda path: {
                k: v for k, v in _READ_SYMBOLS(path).items() if k not in names
            },
        )
