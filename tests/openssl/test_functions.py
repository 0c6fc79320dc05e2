"""
What each configuration calls (L{resumetls.openssl.functions}).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from resumetls.openssl.functions import (
    CUSTOM_TICKET_KEYS,
    EXTERNAL_CACHE,
    server_functions,
)


class FunctionGroupTests(SynchronousTestCase):
    def test_server_functions(self):
        """What each configuration needs: the common functions always."""
        common = {
            "SSL_version",
            "SSL_session_reused",
            "SSL_CTX_set_info_callback",
            "SSL_CTX_set_num_tickets",
        }
        none = set(server_functions(tickets=False, session_cache=False))
        self.assertEqual(none, common)
        tickets = set(server_functions(tickets=True, session_cache=False))
        self.assertIn("EVP_MAC_CTX_set_params", tickets)
        self.assertNotIn("SSL_CTX_sess_set_new_cb", tickets)
        cache = set(server_functions(tickets=False, session_cache=True))
        self.assertIn("SSL_CTX_sess_set_new_cb", cache)
        self.assertNotIn("EVP_MAC_CTX_set_params", cache)
        self.assertLessEqual(common, tickets & cache)
        plain = server_functions(
            tickets=False, session_cache=False, context_certificate=True
        )
        self.assertIn("SSL_CTX_get0_certificate", plain)
        self.assertEqual(
            set(CUSTOM_TICKET_KEYS),
            set(server_functions(tickets=True, session_cache=False)),
        )
        self.assertEqual(
            set(EXTERNAL_CACHE),
            set(server_functions(tickets=False, session_cache=True)),
        )
