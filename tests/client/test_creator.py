"""
L{ResumingClientCreator} resumes, proven against C{openssl s_server} (a
server nobody here wrote) and against our own server.
"""

from __future__ import annotations

import os
import time

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from resumetls import (
    ClientStoreError,
    FileClientSessionStore,
    MemoryClientSessionStore,
    ResumingClientCreator,
)

from .. import support
from .helpers import certificate_without_san, fetch, fetch_page, s_server, trust


class _TakeRecorder(MemoryClientSessionStore):
    """A memory store that remembers what it gave a creator."""

    def __init__(self) -> None:
        super().__init__()
        self.taken: list[bytes] = []

    def take(self, key: str, now: float) -> bytes | None:
        der = super().take(key, now)
        if der is not None:
            self.taken.append(der)
        return der


class ClientTests(TestCase):
    timeout = 60

    def _resumes(self, server_flags, expected_version):
        async def run():
            port, cert = s_server(self, *server_flags)
            creator = ResumingClientCreator(
                "localhost", trust(cert), port=port, store=MemoryClientSessionStore()
            )
            self.assertEqual(await fetch(creator, port), f"New {expected_version}")
            self.assertEqual(await fetch(creator, port), f"Reused {expected_version}")
            self.assertEqual(await fetch(creator, port), f"Reused {expected_version}")
            self.assertEqual(creator.resumed, 2)

        return ensureDeferred(run())

    def test_tls12_session_id(self):
        return self._resumes(["-tls1_2", "-no_ticket"], "TLSv1.2")

    def test_tls12_ticket(self):
        return self._resumes(["-tls1_2"], "TLSv1.2")

    def test_tls13(self):
        return self._resumes(["-tls1_3"], "TLSv1.3")

    def test_tls13_tickets_used_once(self):
        """
        Each TLS 1.3 ticket is offered once: the store keeps every fresh
        ticket the server sends, and the one offered is gone from it.
        """

        async def run():
            port, cert = s_server(self, "-tls1_3")
            store = _TakeRecorder()
            creator = ResumingClientCreator(
                "localhost", trust(cert), port=port, store=store
            )
            self.assertEqual(await fetch(creator, port), "New TLSv1.3")
            # s_server sends two tickets after a full handshake: both kept.
            self.assertEqual(store.count(creator.key), 2)
            self.assertEqual(await fetch(creator, port), "Reused TLSv1.3")
            self.assertEqual(creator.offered, 1)
            (offered,) = store.taken
            # One ticket left from the first handshake and one sent after
            # the resumption; the offered one is not among them.
            self.assertEqual(store.count(creator.key), 2)
            left = [store.take(creator.key, time.time()) for _ in range(4)]
            self.assertEqual(left[2:], [None, None])
            self.assertNotIn(offered, left)
            self.assertEqual(len(set(left[:2])), 2)

        return ensureDeferred(run())

    def test_other_host_not_offered(self):
        """A session stored for one host name is never offered to another."""

        async def run():
            port, cert = s_server(self, "-tls1_2")
            store = MemoryClientSessionStore()
            one = ResumingClientCreator(
                "localhost", trust(cert), port=port, store=store
            )
            await fetch(one, port)
            other_port = ResumingClientCreator(
                "localhost", trust(cert), port=port + 1, store=store
            )
            self.assertIsNone(store.take(other_port.key, 0))
            self.assertEqual(other_port.offered, 0)
            self.assertEqual(await fetch(one, port), "Reused TLSv1.2")

        return ensureDeferred(run())

    def test_other_host_name_not_offered(self):
        """
        Same server, same store, a certificate valid for both names: a client
        for the second name makes a full handshake (s_server says New), then
        resumes its own session, and the first name's session still works.
        """

        async def run():
            both = support.make_certificate("other.localhost")
            port, cert = s_server(self, "-tls1_2", certificate=both)
            store = MemoryClientSessionStore()
            one = ResumingClientCreator(
                "localhost", trust(cert), port=port, store=store
            )
            other = ResumingClientCreator(
                "other.localhost", trust(cert), port=port, store=store
            )
            self.assertEqual(await fetch(one, port), "New TLSv1.2")
            self.assertEqual(store.count(one.key), 1)
            self.assertEqual(await fetch(other, port), "New TLSv1.2")
            self.assertEqual(other.offered, 0)
            self.assertEqual(await fetch(other, port), "Reused TLSv1.2")
            self.assertEqual(await fetch(one, port), "Reused TLSv1.2")
            self.assertEqual((one.offered, other.offered), (1, 1))

        return ensureDeferred(run())

    def test_verification_failure_stores_nothing(self):
        """
        A server whose certificate does not pass verification never gets a
        session stored: when the name does not match, Twisted aborts the
        handshake; when service-identity cannot check the name at all (no
        subjectAltName), Twisted only logs it and the handshake completes,
        so the session reaches the creator's store decision
        (L{keepable_session}), which refuses it, in TLS 1.2 and 1.3.
        """
        from service_identity.exceptions import CertificateError

        from resumetls.client import creator as _creator

        judged = []

        def keepable_session(conn, hostname, now):
            kept = original(conn, hostname, now)
            judged.append((conn.get_protocol_version_name(), kept))
            return kept

        original = _creator.keepable_session
        self.patch(_creator, "keepable_session", keepable_session)

        async def run():
            port, cert = s_server(self)
            store = MemoryClientSessionStore()
            creator = ResumingClientCreator(
                "wrong.example", trust(cert), port=port, store=store
            )
            page, _ = await fetch_page(creator, port)
            self.assertEqual(page, b"")  # the handshake failed
            self.assertEqual((creator.saved, judged), (0, []))
            self.assertIsNone(store.take(creator.key, 0))
            self.flushLoggedErrors()

            for flag, version, sessions in (
                ("-tls1_2", "TLSv1.2", 1),  # at the end of the handshake
                ("-tls1_3", "TLSv1.3", 2),  # one per ticket s_server sends
            ):
                del judged[:]
                port, cert = s_server(
                    self, flag, certificate=certificate_without_san()
                )
                creator = ResumingClientCreator(
                    "localhost", trust(cert), port=port, store=store
                )
                self.assertEqual(await fetch(creator, port), f"New {version}")
                self.assertEqual(judged, [(version, None)] * sessions)
                self.assertEqual((creator.saved, store.count(creator.key)), (0, 0))
                self.assertEqual(await fetch(creator, port), f"New {version}")
                self.assertEqual(creator.offered, 0)
                self.assertTrue(self.flushLoggedErrors(CertificateError))

        return ensureDeferred(run())

    def test_broken_store_costs_a_full_handshake(self):
        """
        A session file damaged while in use is logged, and the connection
        still goes ahead with a full handshake.
        """

        async def run():
            port, cert = s_server(self, "-tls1_2")
            path = os.path.abspath(self.mktemp())
            creator = ResumingClientCreator(
                "localhost", trust(cert), port=port, store=FileClientSessionStore(path)
            )
            self.assertEqual(await fetch(creator, port), "New TLSv1.2")
            with open(path, "w") as f:
                f.write('{"sessions": []}')
            self.assertEqual(await fetch(creator, port), "New TLSv1.2")
            self.assertEqual(len(self.flushLoggedErrors(ClientStoreError)), 2)

        return ensureDeferred(run())


class AgainstResumetlsTests(TestCase):
    """Our client against our server: TLS 1.3 tickets are renewed."""

    timeout = 60

    def test_single_use_tickets_keep_resuming(self):
        """
        A client that uses each TLS 1.3 ticket once keeps resuming: the server
        sends a fresh ticket on every resumption (without that, it would run
        out after the two tickets of the first handshake).
        """
        from resumetls import ResumingContextFactory

        class Info(Protocol):
            def dataReceived(self, data):
                from resumetls import resumption_info

                info = resumption_info(self.transport)
                word = b"Reused" if info.resumed else b"New"
                self.transport.write(word + b", " + info.version.encode() + b"\n")
                self.transport.loseConnection()

        async def run():
            cert, key = support.certificate()
            cert_path, key_path = support.write_pem(
                os.path.abspath(self.mktemp()), cert, key
            )
            factory = ResumingContextFactory.from_files(cert_path, key_path)
            from twisted.internet.endpoints import SSL4ServerEndpoint

            port = await SSL4ServerEndpoint(
                reactor, 0, factory, interface="127.0.0.1"
            ).listen(Factory.forProtocol(Info))
            self.addCleanup(port.stopListening)
            number = port.getHost().port
            store = MemoryClientSessionStore()
            creator = ResumingClientCreator(
                "localhost", trust(cert_path), port=number, store=store
            )
            results = []
            for _ in range(6):
                results.append(await fetch(creator, number))
                results.append(store.count(creator.key))
            self.assertEqual(results[::2], ["New TLSv1.3"] + ["Reused TLSv1.3"] * 5)
            # Each resumption used one ticket and brought a fresh one.
            self.assertEqual(results[1::2], [2] * 6)
            self.assertEqual(factory.stats().resumed_ticket_tls13, 5)
            self.assertEqual(factory.stats().tickets_renewed, 0)  # no key rotation

        return ensureDeferred(run())
