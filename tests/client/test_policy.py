"""
L{ResumingPolicyForHTTPS}: Agent and treq resume, and policies share the
process-wide default store with creators.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from twisted.web.client import Agent, PartialDownloadError, readBody

from resumetls import (
    MemoryClientSessionStore,
    ResumingClientCreator,
    ResumingPolicyForHTTPS,
)

from .helpers import s_server, trust, verdict


class PolicyTests(TestCase):
    timeout = 60

    def test_agent(self):
        """An Agent with the policy resumes on its second request."""

        async def run():
            port, cert = s_server(self)
            agent = Agent(reactor, ResumingPolicyForHTTPS(trustRoot=trust(cert)))
            pages = []
            for _ in range(2):
                response = await agent.request(
                    b"GET", f"https://localhost:{port}/".encode()
                )
                try:
                    body = await readBody(response)
                except PartialDownloadError as e:
                    # s_server -www closes without a length or close_notify
                    body = e.response
                pages.append(verdict(body))
            self.assertEqual(pages, ["New TLSv1.3", "Reused TLSv1.3"])

        return ensureDeferred(run())

    def test_treq(self):
        """treq with an Agent built on the policy resumes too."""
        try:
            import treq
        except ImportError:
            raise SkipTest("treq is not installed (pip install treq)") from None
        from treq.client import HTTPClient

        async def run():
            port, cert = s_server(self, "-tls1_2")
            client = HTTPClient(
                Agent(reactor, ResumingPolicyForHTTPS(trustRoot=trust(cert)))
            )
            pages = []
            for _ in range(2):
                response = await client.get(f"https://localhost:{port}/")
                try:
                    body = await treq.content(response)
                except PartialDownloadError as e:
                    body = e.response
                pages.append(verdict(body))
            self.assertEqual(pages, ["New TLSv1.2", "Reused TLSv1.2"])

        return ensureDeferred(run())


class DefaultStoreTests(SynchronousTestCase):
    def test_default_store(self):
        """
        Creators, policies and endpoint strings without a store share one
        per process; a store given is used.
        """
        from resumetls.client.creator import default_store

        self.assertIs(ResumingClientCreator("localhost", port=443).store, default_store)
        policy = ResumingPolicyForHTTPS()
        self.assertIs(policy.store, default_store)
        self.assertIs(policy.creatorForNetloc(b"localhost", 443).store, default_store)
        mine = MemoryClientSessionStore()
        self.assertIs(ResumingPolicyForHTTPS(store=mine).store, mine)
