"""
The C{resumetls:} client endpoint string.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.endpoints import clientFromString
from twisted.trial.unittest import TestCase

from resumetls import FileClientSessionStore

from .. import support
from .helpers import fetch_through, s_server, verdict


class EndpointTests(TestCase):
    """The resumetls: client endpoint string."""

    timeout = 60

    def test_trust_roots_bundle(self):
        """
        trustRoots= trusts every certificate of a PEM bundle: here the
        server's is the second.
        """

        async def run():
            port, cert = s_server(self)
            other, _ = support.make_certificate("ca-a")
            bundle = os.path.abspath(self.mktemp())
            with open(cert, "rb") as f, open(bundle, "wb") as out:
                out.write(other.public_bytes(serialization.Encoding.PEM))
                out.write(f.read())
            description = f"resumetls:host=localhost:port={port}:trustRoots={bundle}"
            pages = []
            for _ in range(2):
                endpoint = clientFromString(reactor, description)
                page, _ = await fetch_through(endpoint, polls=100)
                pages.append(verdict(page) if page else "failed")
            self.assertEqual(pages, ["New TLSv1.3", "Reused TLSv1.3"])

        return ensureDeferred(run())

    def test_errors(self):
        """Bad options are one ValueError each, naming what to fix."""
        empty = os.path.abspath(self.mktemp())
        with open(empty, "w") as f:
            f.write("not a certificate\n")
        missing = os.path.abspath(self.mktemp())
        cases = {
            f"resumetls:host=localhost:trustRoots={empty}": (
                f"resumetls: trustRoots {empty} holds no PEM certificate"
            ),
            f"resumetls:host=localhost:trustRoots={missing}": (
                f"resumetls: cannot read trustRoots {missing}: No such file or "
                "directory"
            ),
            "resumetls:host=localhost:port=99999": (
                "resumetls: port must be a number, not '99999'"
            ),
            "resumetls:host=localhost:timeout=-1": (
                "resumetls: timeout must be a number of seconds above 0, not '-1'"
            ),
            "resumetls:host=localhost:timeout=nan": (
                "resumetls: timeout must be a number of seconds above 0, not 'nan'"
            ),
            "resumetls:port=443": "resumetls: client endpoints need host=",
            "resumetls:host=localhost:colour=blue": (
                "resumetls: unknown client option colour"
            ),
        }
        for description, message in cases.items():
            e = self.assertRaises(ValueError, clientFromString, reactor, description)
            self.assertEqual(str(e), message)

    def test_bind_address(self):
        """bindAddress= is passed on (Twisted's tcp: takes a host)."""
        endpoint = clientFromString(
            reactor, "resumetls:host=localhost:port=1:bindAddress=127.0.0.2"
        )
        self.assertEqual(endpoint._wrappedEndpoint._bindAddress, ("127.0.0.2", 0))

    def test_client_endpoint_string(self):
        async def run():
            port, cert = s_server(self)
            sessions = os.path.abspath(self.mktemp())
            description = (
                f"resumetls:host=localhost:port={port}:trustRoots={cert}"
                f":sessions={sessions}"
            )
            pages = []
            for _ in range(2):
                endpoint = clientFromString(reactor, description)
                page, _ = await fetch_through(endpoint, polls=100)
                pages.append(verdict(page))
            self.assertEqual(pages, ["New TLSv1.3", "Reused TLSv1.3"])
            self.assertEqual(os.stat(sessions).st_mode & 0o777, 0o600)
            self.assertEqual(len(FileClientSessionStore(sessions)._sessions), 1)

        return ensureDeferred(run())
