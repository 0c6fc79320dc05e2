"""
Certificate reload without a restart, over loopback sockets: when the PEM
files change (and on SIGHUP) new connections get the new certificate while
an open connection keeps its own; a broken pair is refused with the reason
and the certificate in use stays; sessions made under the old certificate
get a full handshake afterwards (the session ID context changes with it).
"""

from __future__ import annotations

import os
import signal
import socket

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import deferToThread
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from resumetls import ResumingServerEndpoint
from resumetls.certificates import certificate_der
from resumetls.server.config import ServerConfig

from .. import support
from .test_protocol import poll


def peer_certificate(port: int, hold: list | None = None) -> bytes:
    """The DER certificate the server shows a new connection; with C{hold},
    the connection is left open there."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=support.CLIENT_TIMEOUT)
    tls = support._INSECURE.wrap_socket(raw, server_hostname="localhost")
    der = tls.getpeercert(binary_form=True)
    tls.recv(4096)  # the server's line: the handshake is over on both sides
    if hold is None:
        tls.close()
    else:
        hold.append(tls)
    return der


class CertificateReloadTests(TestCase):
    timeout = 90

    def setUp(self):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.directory = os.path.abspath(self.mktemp())
        self.cert, self.key = support.write_pem(
            self.directory, *support.certificate("ec")
        )

    def write(self, kind: str):
        """New PEM files over the served ones; the new certificate's DER."""
        cert, key = support.issue("localhost", kind=kind)
        support.write_pem(self.directory, cert, key)
        return certificate_der(cert)

    async def serve(self, mode="wait"):
        endpoint = ResumingServerEndpoint.from_config(
            reactor,
            ServerConfig(
                port=0, interface="127.0.0.1", certificate=self.cert, key=self.key
            ),
        )
        port = await endpoint.listen(support.InfoFactory(mode))
        self.addCleanup(port.stopListening)
        return port.getHost().port, endpoint

    def named(self, name):
        return [e for e in self.events if e.get("event") == name]

    def test_file_change_and_sighup(self):
        async def run():
            port, endpoint = await self.serve()
            watch = endpoint.certificate_watch
            first = certificate_der(support.certificate("ec")[0])
            held = []
            self.addCleanup(lambda: [s.close() for s in held])
            self.assertEqual(await deferToThread(peer_certificate, port, held), first)
            before = endpoint.context_factory.session_id_context

            second = self.write("ec")
            await poll(lambda: watch.reloads == 1)  # the file poll noticed
            self.assertEqual(await deferToThread(peer_certificate, port), second)
            self.assertNotEqual(endpoint.context_factory.session_id_context, before)
            self.assertEqual(
                endpoint.context_factory.hooks.key_prefix,
                endpoint.context_factory.session_id_context[:16],
            )
            # The open connection is untouched: same certificate, still open.
            self.assertEqual(held[0].getpeercert(binary_form=True), first)
            held[0].sendall(b"still here\n")
            [reloaded] = self.named("resumetls.certificate.reloaded")
            self.assertEqual(reloaded["why"], "the file changed")

            # SIGHUP (the process's one handler) reloads it too.
            third = self.write("ec")
            os.kill(os.getpid(), signal.SIGHUP)
            await poll(lambda: watch.reloads == 2)
            self.assertEqual(await deferToThread(peer_certificate, port), third)
            self.assertEqual(
                self.named("resumetls.certificate.reloaded")[1]["why"], "SIGHUP"
            )

        return ensureDeferred(run())

    def test_broken_pair_refused(self):
        """A key of another certificate, or a key others may read: refused."""

        async def run():
            port, endpoint = await self.serve()
            watch = endpoint.certificate_watch
            served = certificate_der(support.certificate("ec")[0])
            other_cert, other_key = support.issue("localhost")
            support.write_pem(self.directory + "-other", other_cert, other_key)
            with open(os.path.join(self.directory + "-other", "key.pem"), "rb") as f:
                foreign_key = f.read()
            with open(self.key, "wb") as f:
                f.write(foreign_key)
            self.assertFalse(watch.reload("SIGHUP"))
            [refused] = self.named("resumetls.certificate.reload_refused")
            self.assertEqual(
                refused["reason"],
                f"the private key {self.key} does not match the certificate "
                f"{self.cert}",
            )
            self.assertEqual(await deferToThread(peer_certificate, port), served)

            self.write("ec")
            os.chmod(self.key, 0o644)
            self.assertFalse(watch.reload("SIGHUP"))
            self.assertIn(
                f"run `chmod o-rwx {self.key}`",
                self.named("resumetls.certificate.reload_refused")[1]["reason"],
            )
            self.assertEqual(await deferToThread(peer_certificate, port), served)
            self.assertEqual((watch.reloads, watch.refusals), (0, 2))
            os.chmod(self.key, 0o640)  # group-readable is fine
            self.assertTrue(watch.reload("SIGHUP"))

        return ensureDeferred(run())

    def test_sessions_of_the_old_certificate(self):
        """
        Tickets and session IDs made under the old certificate get a full
        handshake after a reload (the session ID context is derived from
        the certificate); new sessions resume as before.
        """

        async def run():
            port, endpoint = await self.serve(mode="close")
            sessions = {}
            for name, flags in (
                ("tls12_id", ["-tls1_2", "-no_ticket"]),
                ("tls12_ticket", ["-tls1_2"]),
                ("tls13_ticket", ["-tls1_3"]),
            ):
                path = os.path.abspath(self.mktemp())
                await support.s_client(port, None, path, *flags)
                again = await support.s_client(port, path, None, *flags)
                self.assertTrue(again["reused"], name)  # before the reload
                sessions[name] = (path, flags)
            self.write("ec")
            self.assertTrue(endpoint.certificate_watch.reload("SIGHUP"))
            for name, (path, flags) in sessions.items():
                renewed = os.path.abspath(self.mktemp())
                again = await support.s_client(port, path, renewed, *flags)
                self.assertFalse(again["reused"], name)
                self.assertTrue(
                    (await support.s_client(port, renewed, None, *flags))["reused"],
                    name,
                )

        return ensureDeferred(run())
