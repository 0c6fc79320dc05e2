"""
C{resumetls doctor} and the route report behind it
(L{resumetls.openssl.report}).
"""

from __future__ import annotations

import io
import json
import sys

from twisted.trial.unittest import SynchronousTestCase

from resumetls.cli import doctor as _doctor

from ._routestate import RouteState


class DoctorTests(SynchronousTestCase, RouteState):
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
