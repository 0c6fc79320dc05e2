"""
Finding the functions in cryptography's binary: the symbol table, the
offsets cache, the three-anchor self-check and the process-wide route
(L{resumetls.openssl.symbols}).
"""

from __future__ import annotations

import json
import os
import shutil

from twisted.trial.unittest import SynchronousTestCase

from resumetls.openssl import symbols
from resumetls.openssl.errors import OpenSSLRouteUnavailable
from resumetls.openssl.report import route_report
from resumetls.openssl.symbols import route

from ._routestate import RouteState


class SymbolTableTests(SynchronousTestCase, RouteState):
    def test_available_here(self):
        """
        On this machine (Linux, cryptography wheel with .symtab) every
        function resolves and both capabilities are on.
        """
        r = route()
        self.assertEqual(r.missing, [])
        self.assertTrue(r.custom_ticket_keys)
        self.assertTrue(r.external_cache)
        self.assertEqual(r.base % 4096, 0)
        report = route_report()
        self.assertTrue(report["available"])
        self.assertTrue(all(report["functions"].values()))
        self.assertIn("OpenSSL", report["openssl_version"])

    def test_self_check_disagreement(self):
        """
        When the three anchors disagree on the load base, route() raises the
        specific error, says what still works, and builds nothing.
        """
        built = self.break_self_check(self)
        e = self.assertRaises(OpenSSLRouteUnavailable, route)
        self.assertIn("self-check failed", str(e))
        self.assertIn("disagree", str(e))
        self.assertIn("Still works", str(e))
        self.assertIn("built-in in-process session cache", str(e))
        self.assertEqual(built, [])
        # The failure is remembered: no second ELF read, same error.
        e2 = self.assertRaises(OpenSSLRouteUnavailable, route)
        self.assertIs(e, e2)
        report = route_report()
        self.assertFalse(report["available"])
        self.assertFalse(report["custom_ticket_keys"])
        self.assertFalse(any(report["functions"].values()))

    def test_stripped_binary(self):
        self.isolate_route(self)
        stripped = shutil.which("true")
        self.patch(symbols, "binary_path", lambda: stripped)
        e = self.assertRaises(OpenSSLRouteUnavailable, route)
        self.assertIn("stripped", str(e))
        self.assertIn(stripped, str(e))

    def test_not_elf(self):
        self.isolate_route(self)
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"MZ this is not an ELF file")
        self.patch(symbols, "binary_path", lambda: path)
        e = self.assertRaises(OpenSSLRouteUnavailable, route)
        self.assertIn("cannot read", str(e))

    def test_missing_anchor(self):
        self.isolate_route(self)
        real = symbols.read_symbols
        self.patch(
            symbols,
            "read_symbols",
            lambda path: {
                k: v for k, v in real(path).items() if k != "_cffi_d_i2d_SSL_SESSION"
            },
        )
        e = self.assertRaises(OpenSSLRouteUnavailable, route)
        self.assertIn("_cffi_d_i2d_SSL_SESSION", str(e))

    def test_offsets_cache(self):
        """
        The first start reads the symbol table and writes the cache; the next
        start uses it; a corrupt cache file is ignored and rewritten; a stale
        one (wrong offsets) fails the self-check and is re-read.
        """
        cache_home = self.isolate_route(self)
        path = symbols.binary_path()
        first, cached = symbols.load_offsets(path)
        self.assertFalse(cached)
        second, cached = symbols.load_offsets(path)
        self.assertTrue(cached)
        self.assertEqual(first, second)
        (cache_file,) = [
            os.path.join(cache_home, "resumetls", n)
            for n in os.listdir(os.path.join(cache_home, "resumetls"))
        ]
        with open(cache_file, "w") as f:
            f.write("{not json")
        third, cached = symbols.load_offsets(path)
        self.assertFalse(cached)
        self.assertEqual(third, first)
        with open(cache_file) as f:
            data = json.load(f)
        data["symbols"] = {k: v + 16 for k, v in data["symbols"].items()}
        with open(cache_file, "w") as f:
            json.dump(data, f)
        r = route()
        self.assertFalse(r.from_cache)
        self.assertEqual(r.missing, [])
