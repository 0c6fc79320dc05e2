"""
The OpenSSL route: symbol table, offsets cache, self-check, the failure path,
the fallback to OpenSSL's built-in cache, session (de)serialization and
C{resumetls doctor}.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys

from OpenSSL import SSL
from twisted.internet.defer import ensureDeferred
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from resumetls import (
    ContextAlreadyUsedError,
    ResumingContextFactory,
    ResumptionSettings,
)
from resumetls.cli import doctor as _doctor
from resumetls.openssl import binding as _openssl

from .. import _support
from .._support import listen, options, s_client

_READ_SYMBOLS = _openssl._read_symbols


class _RouteState:
    """Reset the process-wide route for one test and restore it after."""

    def isolate_route(self, testcase):
        saved = (_openssl._route, _openssl._failure)
        _openssl._route = _openssl._failure = None

        def restore():
            _openssl._route, _openssl._failure = saved

        testcase.addCleanup(restore)
        cache_home = os.path.abspath(testcase.mktemp())
        os.makedirs(cache_home)
        testcase.patch(os, "environ", {**os.environ, "XDG_CACHE_HOME": cache_home})
        return cache_home

    def break_self_check(self, testcase):
        """Make the anchors disagree, and record any route construction."""
        self.isolate_route(testcase)
        real = _openssl._anchor_address
        shift = {
            "SSL_CTX_get_timeout": 0,
            "SSL_CTX_set_timeout": 0x1000,
            "i2d_SSL_SESSION": 0,
        }
        testcase.patch(
            _openssl, "_anchor_address", lambda name: real(name) + shift[name]
        )
        built = []
        real_init = _openssl.OpenSSLRoute.__init__

        def spy(route, *a, **kw):
            built.append(a)
            real_init(route, *a, **kw)

        testcase.patch(_openssl.OpenSSLRoute, "__init__", spy)
        return built

    def drop_functions(self, testcase, *names):
        """Build the route from a symbol table without C{names}."""
        self.isolate_route(testcase)
        testcase.patch(
            _openssl,
            "_read_symbols",
            lambda path: {
                k: v for k, v in _READ_SYMBOLS(path).items() if k not in names
            },
        )


class RouteTests(SynchronousTestCase, _RouteState):
    def test_available_here(self):
        """
        On this machine (Linux, cryptography wheel with .symtab) every
        function resolves and both capabilities are on.
        """
        r = _openssl.route()
        self.assertEqual(r.missing, [])
        self.assertTrue(r.custom_ticket_keys)
        self.assertTrue(r.external_cache)
        self.assertEqual(r.base % 4096, 0)
        report = _openssl.route_report()
        self.assertTrue(report["available"])
        self.assertTrue(all(report["functions"].values()))
        self.assertIn("OpenSSL", report["openssl_version"])

    def test_self_check_disagreement(self):
        """
        When the three anchors disagree on the load base, route() raises the
        specific error, says what still works, and builds nothing.
        """
        built = self.break_self_check(self)
        e = self.assertRaises(_openssl.OpenSSLRouteUnavailable, _openssl.route)
        self.assertIn("self-check failed", str(e))
        self.assertIn("disagree", str(e))
        self.assertIn("Still works", str(e))
        self.assertIn("built-in in-process session cache", str(e))
        self.assertEqual(built, [])
        # The failure is remembered: no second ELF read, same error.
        e2 = self.assertRaises(_openssl.OpenSSLRouteUnavailable, _openssl.route)
        self.assertIs(e, e2)
        report = _openssl.route_report()
        self.assertFalse(report["available"])
        self.assertFalse(report["custom_ticket_keys"])
        self.assertFalse(any(report["functions"].values()))

    def test_stripped_binary(self):
        self.isolate_route(self)
        stripped = shutil.which("true")
        self.patch(_openssl, "_binary_path", lambda: stripped)
        e = self.assertRaises(_openssl.OpenSSLRouteUnavailable, _openssl.route)
        self.assertIn("stripped", str(e))
        self.assertIn(stripped, str(e))

    def test_not_elf(self):
        self.isolate_route(self)
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"MZ this is not an ELF file")
        self.patch(_openssl, "_binary_path", lambda: path)
        e = self.assertRaises(_openssl.OpenSSLRouteUnavailable, _openssl.route)
        self.assertIn("cannot read", str(e))

    def test_missing_anchor(self):
        self.isolate_route(self)
        real = _openssl._read_symbols
        self.patch(
            _openssl,
            "_read_symbols",
            lambda path: {
                k: v for k, v in real(path).items() if k != "_cffi_d_i2d_SSL_SESSION"
            },
        )
        e = self.assertRaises(_openssl.OpenSSLRouteUnavailable, _openssl.route)
        self.assertIn("_cffi_d_i2d_SSL_SESSION", str(e))

    def test_offsets_cache(self):
        """
        The first start reads the symbol table and writes the cache; the next
        start uses it; a corrupt cache file is ignored and rewritten; a stale
        one (wrong offsets) fails the self-check and is re-read.
        """
        cache_home = self.isolate_route(self)
        path = _openssl._binary_path()
        first, cached = _openssl._load_offsets(path)
        self.assertFalse(cached)
        second, cached = _openssl._load_offsets(path)
        self.assertTrue(cached)
        self.assertEqual(first, second)
        (cache_file,) = [
            os.path.join(cache_home, "resumetls", n)
            for n in os.listdir(os.path.join(cache_home, "resumetls"))
        ]
        with open(cache_file, "w") as f:
            f.write("{not json")
        third, cached = _openssl._load_offsets(path)
        self.assertFalse(cached)
        self.assertEqual(third, first)
        with open(cache_file) as f:
            data = json.load(f)
        data["symbols"] = {k: v + 16 for k, v in data["symbols"].items()}
        with open(cache_file, "w") as f:
            json.dump(data, f)
        r = _openssl.route()
        self.assertFalse(r.from_cache)
        self.assertEqual(r.missing, [])

    def test_missing_function(self):
        """
        A function missing from the symbol table: the route still builds,
        says so, and asking for it raises the specific error (no KeyError)
        naming it and what still works.
        """
        self.drop_functions(self, "SSL_version")
        r = _openssl.route()
        self.assertEqual(r.missing, ["SSL_version"])
        self.assertFalse(r.custom_ticket_keys)
        self.assertFalse(r.external_cache)
        self.assertTrue(r.context_certificate)
        e = self.assertRaises(
            _openssl.OpenSSLRouteUnavailable,
            r.require,
            _openssl.server_functions(tickets=False, session_cache=False),
        )
        self.assertIn("SSL_version was not found in", str(e))
        self.assertIn("Still works", str(e))
        self.assertIn("built-in in-process session cache", str(e))
        r.require(["SSL_CTX_ctrl", "i2d_X509"])
        self.assertRaises(_openssl.OpenSSLRouteUnavailable, r.function, "SSL_version")
        context = SSL.Context(SSL.TLS_METHOD)
        for kw in (
            {"tickets": True, "session_cache": False},
            {"tickets": False, "session_cache": True},
            {"tickets": False, "session_cache": False},
        ):
            e = self.assertRaises(
                _openssl.OpenSSLRouteUnavailable,
                r.install_server_callbacks,
                context,
                None,
                **kw,
            )
            self.assertIn("SSL_version", str(e))
        self.assertFalse(hasattr(context, "_resumetls_callbacks"))

    def test_server_functions(self):
        """What each configuration needs: the common functions always."""
        common = {
            "SSL_version",
            "SSL_session_reused",
            "SSL_CTX_set_info_callback",
            "SSL_CTX_set_num_tickets",
        }
        none = set(_openssl.server_functions(tickets=False, session_cache=False))
        self.assertEqual(none, common)
        tickets = set(_openssl.server_functions(tickets=True, session_cache=False))
        self.assertIn("EVP_MAC_CTX_set_params", tickets)
        self.assertNotIn("SSL_CTX_sess_set_new_cb", tickets)
        cache = set(_openssl.server_functions(tickets=False, session_cache=True))
        self.assertIn("SSL_CTX_sess_set_new_cb", cache)
        self.assertNotIn("EVP_MAC_CTX_set_params", cache)
        self.assertLessEqual(common, tickets & cache)
        plain = _openssl.server_functions(
            tickets=False, session_cache=False, context_certificate=True
        )
        self.assertIn("SSL_CTX_get0_certificate", plain)
        self.assertEqual(
            set(_openssl.CUSTOM_TICKET_KEYS),
            set(_openssl.server_functions(tickets=True, session_cache=False)),
        )
        self.assertEqual(
            set(_openssl.EXTERNAL_CACHE),
            set(_openssl.server_functions(tickets=False, session_cache=True)),
        )

    def test_context_already_used(self):
        opts = options()
        SSL.Connection(opts.getContext(), None)
        e = self.assertRaises(ContextAlreadyUsedError, ResumingContextFactory, opts)
        self.assertIn("already been used", str(e))
        self.assertIn("before listening", str(e))


class SessionDERTests(TestCase):
    timeout = 30

    def test_garbage(self):
        ctx = SSL.Context(SSL.TLS_METHOD)
        for bad in (b"", b"\x30\x00", b"garbage" * 10):
            self.assertRaises(ValueError, _openssl.session_from_der, bad, ctx)

    def test_round_trip(self):
        """
        A session from a real handshake survives DER and back, and its
        details are read (TLS 1.2, a ticket, the lifetime hint).
        """
        from twisted.internet.endpoints import SSL4ClientEndpoint
        from twisted.internet.protocol import Factory, Protocol

        async def run():
            factory = ResumingContextFactory(
                options(), ResumptionSettings(session_ids=False, session_timeout=600)
            )
            port, _ = await listen(self, factory)
            ctx = SSL.Context(SSL.TLS_METHOD)
            ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
            captured = []

            class Client(Protocol):
                def dataReceived(self, data):
                    captured.append(self.transport.getHandle().get_session())
                    self.transport.loseConnection()

            class CF:
                def getContext(self):
                    return ctx

            endpoint = SSL4ClientEndpoint(
                __import__("twisted.internet.reactor").internet.reactor,
                "127.0.0.1",
                port,
                CF(),
            )
            await endpoint.connect(Factory.forProtocol(Client))
            from twisted.internet import reactor
            from twisted.internet.task import deferLater

            for _ in range(50):
                if captured:
                    break
                await deferLater(reactor, 0.05, lambda: None)
            (session,) = captured
            der = _openssl.session_to_der(session)
            again = _openssl.session_from_der(der, ctx)
            self.assertEqual(_openssl.session_to_der(again), der)
            details = _openssl.session_details(again)
            self.assertEqual(details.protocol_version, 0x0303)
            self.assertTrue(details.has_ticket)
            self.assertEqual(details.ticket_lifetime_hint, 600)
            self.assertGreater(details.time, 0)
            self.assertTrue(details.resumable)
            self.assertNotIn(details.ticket.hex(), repr(details))

        return ensureDeferred(run())


class FallbackTests(TestCase, _RouteState):
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


class MissingFunctionTests(TestCase, _RouteState):
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
            self.assertEqual(again["server"]["mechanism"], "session-id")

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


class DoctorTests(SynchronousTestCase, _RouteState):
    def run_doctor(self, *argv):
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        return _doctor.main(list(argv)), out.getvalue()

    def test_report(self):
        code, out = self.run_doctor()
        self.assertEqual(code, 0)
        self.assertIn("OpenSSL:", out)
        self.assertIn("_rust", out)
        self.assertIn("ok      SSL_CTX_set_tlsext_ticket_key_evp_cb", out)
        self.assertIn("custom ticket keys:  yes", out)
        self.assertIn("external cache:      yes", out)

    def test_json(self):
        code, out = self.run_doctor("--json")
        self.assertEqual(code, 0)
        self.assertTrue(json.loads(out)["external_cache"])

    def test_unavailable(self):
        self.break_self_check(self)
        code, out = self.run_doctor()
        self.assertEqual(code, 1)
        self.assertIn("unavailable: self-check failed", out)
        self.assertIn("MISSING SSL_CTX_sess_set_new_cb", out)
        self.assertIn("custom ticket keys:  NO", out)
        self.assertIn("built-in in-process session cache", out)

    def test_missing_function(self):
        """
        Any function a capability calls missing, the common ones included:
        that capability is "NO", with the function named, and the exit
        status says resumetls will fall back.
        """
        for missing, tickets, cache in [
            ("SSL_version", "NO", "NO"),
            ("SSL_session_reused", "NO", "NO"),
            ("SSL_CTX_set_info_callback", "NO", "NO"),
            ("SSL_CTX_set_num_tickets", "NO", "NO"),
            ("EVP_MAC_CTX_set_params", "NO", "yes"),
            ("SSL_CTX_sess_set_new_cb", "yes", "NO"),
            ("SSL_SESSION_get_timeout", "yes", "NO"),
        ]:
            self.drop_functions(self, missing)
            code, out = self.run_doctor()
            self.assertEqual(code, 1, missing)
            self.assertIn(f"MISSING {missing}\n", out)
            for line, verdict in (
                ("custom ticket keys:  ", tickets),
                ("external cache:      ", cache),
            ):
                if verdict == "NO":
                    self.assertIn(f"{line}NO (missing: {missing})\n", out)
                else:
                    self.assertIn(f"{line}yes\n", out)
            self.assertIn("built-in in-process session cache", out)
            code, out = self.run_doctor("--json")
            self.assertEqual(code, 1)
            self.assertFalse(json.loads(out)["functions"][missing])

    def test_missing_context_certificate(self):
        """
        Only context factories that are not CertificateOptions need
        SSL_CTX_get0_certificate: said on its own line, status unchanged.
        """
        self.drop_functions(self, "SSL_CTX_get0_certificate")
        code, out = self.run_doctor()
        self.assertEqual(code, 0)
        self.assertIn("custom ticket keys:  yes\n", out)
        self.assertIn(
            "context certificate: NO (missing: SSL_CTX_get0_certificate)", out
        )


if _support.OPENSSL is None:  # pragma: no cover
    del FallbackTests
