"""
The server profile key: a session is only offered to a creator that would
have made it (end to end against C{openssl s_server}), and the key holds
everything that must match, the same in every process, without key
material.
"""

from __future__ import annotations

import os
import subprocess
import sys

from OpenSSL.crypto import X509
from twisted.internet.defer import ensureDeferred
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.trial.unittest import SynchronousTestCase, TestCase

from resumetls import MemoryClientSessionStore, ResumingClientCreator

from .. import support
from .helpers import (
    certificate_without_san,
    client_identity,
    fetch,
    fetch_page,
    s_server,
    trust,
    verdict,
)


class ProfileTests(TestCase):
    """
    A session is only offered to a creator that would have made it: same
    client certificate, same trust roots, same ALPN, and a server identity
    that was really verified.
    """

    timeout = 60

    def _client_certificates(self, flags, store):
        async def run():
            port, cert = s_server(self, "-verify", "1", *flags)
            one = ResumingClientCreator(
                "localhost",
                trust(cert),
                client_identity("client-one"),
                port=port,
                store=store,
            )
            two = ResumingClientCreator(
                "localhost",
                trust(cert),
                client_identity("client-two"),
                port=port,
                store=store,
            )
            page, _ = await fetch_page(one, port)
            self.assertTrue(verdict(page).startswith("New"))
            self.assertIn(b"Subject: CN=client-one", page)
            # The server must see client-two's own certificate: a full
            # handshake, not client-one's session.
            page, _ = await fetch_page(two, port)
            self.assertEqual((verdict(page)[:3], two.offered), ("New", 0))
            self.assertIn(b"Subject: CN=client-two", page)
            self.assertNotIn(b"client-one", page)
            # Each resumes its own session, with its own identity.
            for creator, name in ((two, b"client-two"), (one, b"client-one")):
                page, _ = await fetch_page(creator, port)
                self.assertTrue(verdict(page).startswith("Reused"))
                self.assertIn(b"Subject: CN=" + name, page)

        return ensureDeferred(run())

    def test_client_certificates_tls12(self):
        """Two client certificates, one store: neither gets the other's session."""
        return self._client_certificates(["-tls1_2"], MemoryClientSessionStore())

    def test_client_certificates_tls13_default_store(self):
        """The same with TLS 1.3 tickets and the process-wide default store."""
        return self._client_certificates(["-tls1_3"], None)

    def test_other_trust_roots_not_offered(self):
        """
        A creator whose trust roots do not trust the server fails
        verification, even when a creator that trusts it stored a session in
        the same store: resuming would skip verification.
        """
        from twisted.internet.ssl import trustRootFromCertificates

        async def run():
            for flags in (["-tls1_2"], ["-tls1_3"]):
                port, cert = s_server(self, *flags)
                store = MemoryClientSessionStore()
                other_ca = Certificate(
                    X509.from_cryptography(support.make_certificate("ca")[0])
                )
                trusting = ResumingClientCreator(
                    "localhost",
                    trustRootFromCertificates([other_ca, trust(cert)]),
                    port=port,
                    store=store,
                )
                distrusting = ResumingClientCreator(
                    "localhost",
                    trustRootFromCertificates([other_ca]),
                    port=port,
                    store=store,
                )
                self.assertEqual((await fetch(trusting, port))[:3], "New")
                # TLS 1.2: the session; TLS 1.3: both tickets s_server sends.
                self.assertEqual(
                    store.count(trusting.key), 2 if flags == ["-tls1_3"] else 1
                )
                page, _ = await fetch_page(distrusting, port)
                self.assertEqual((page, distrusting.offered), (b"", 0))
                self.assertEqual((await fetch(trusting, port))[:6], "Reused")
                self.flushLoggedErrors()

        return ensureDeferred(run())

    def test_unverified_name_not_stored(self):
        """
        A certificate without subjectAltName: Twisted's verification only
        logs service-identity's CertificateError and lets the handshake
        complete, but the session is not kept (the server identity was never
        checked), so the next connection is a full handshake again.
        """
        from service_identity.exceptions import CertificateError

        async def run():
            port, cert = s_server(
                self, "-tls1_2", certificate=certificate_without_san()
            )
            store = MemoryClientSessionStore()
            creator = ResumingClientCreator(
                "localhost", trust(cert), port=port, store=store
            )
            self.assertEqual(await fetch(creator, port), "New TLSv1.2")
            self.assertEqual(await fetch(creator, port), "New TLSv1.2")
            self.assertEqual((creator.saved, creator.offered), (0, 0))
            self.assertEqual(store.count(creator.key), 0)
            self.assertTrue(self.flushLoggedErrors(CertificateError))

        return ensureDeferred(run())

    def test_alpn(self):
        """
        A creator with ALPN offers its sessions only to the same ALPN
        profile, and the resumed connection negotiates the protocol again.
        """

        async def run():
            for flags in (["-tls1_2"], ["-tls1_3"]):
                port, cert = s_server(self, "-alpn", "h2,http/1.1", *flags)
                store = MemoryClientSessionStore()

                def creator(protocols, port=port, cert=cert, store=store):
                    return ResumingClientCreator(
                        "localhost",
                        trust(cert),
                        acceptableProtocols=protocols,
                        port=port,
                        store=store,
                    )

                http11, h2, none = (
                    creator([b"http/1.1"]),
                    creator([b"h2"]),
                    creator(None),
                )
                page, protocol = await fetch_page(http11, port)
                self.assertEqual((verdict(page)[:3], protocol), ("New", b"http/1.1"))
                for other in (h2, none):
                    page, _ = await fetch_page(other, port)
                    self.assertEqual((verdict(page)[:3], other.offered), ("New", 0))
                page, protocol = await fetch_page(http11, port)
                self.assertEqual(
                    (verdict(page)[:6], protocol, http11.offered),
                    ("Reused", b"http/1.1", 1),
                )
                page, protocol = await fetch_page(h2, port)
                self.assertEqual((verdict(page)[:6], protocol), ("Reused", b"h2"))

        return ensureDeferred(run())


class ProfileKeyTests(SynchronousTestCase):
    def test_profile_key(self):
        """
        Everything that must match is in the key, it is the same in another
        process (no object addresses).
        """
        from twisted.internet.ssl import AcceptableCiphers, TLSVersion

        base = ResumingClientCreator("localhost", port=443).key
        variants = [
            ResumingClientCreator("other.example", port=443).key,
            ResumingClientCreator("localhost", port=8443).key,
            ResumingClientCreator("localhost", port=443, sendServerName=False).key,
            ResumingClientCreator(
                "localhost", port=443, acceptableProtocols=[b"h2"]
            ).key,
            ResumingClientCreator(
                "localhost",
                port=443,
                extraCertificateOptions={"raiseMinimumTo": TLSVersion.TLSv1_3},
            ).key,
        ]
        self.assertEqual(len(set(variants + [base])), len(variants) + 1)
        self.assertEqual(ResumingClientCreator("LocalHost", port=443).key, base)
        keys = [
            ResumingClientCreator(
                "localhost",
                port=443,
                extraCertificateOptions={
                    "acceptableCiphers": AcceptableCiphers.fromOpenSSLCipherString(
                        "ECDHE+AESGCM"
                    )
                },
            ).key
            for _ in range(2)
        ]
        self.assertEqual(keys[0], keys[1])
        self.assertNotIn("0x", keys[0])

    def test_profile_key_identities(self):
        """
        Client certificates and trust roots are in the key by digest: a
        different certificate or CA set is another profile, the same ones
        (in any order, as a Certificate or a list) the same profile; trust
        roots that cannot be inspected never share a profile; no key
        material is in the key.
        """
        from twisted.internet._sslverify import IOpenSSLTrustRoot
        from twisted.internet.ssl import platformTrust, trustRootFromCertificates
        from zope.interface import implementer

        def key(trust=None, client=None):
            return ResumingClientCreator("localhost", trust, client, port=443).key

        one, two = client_identity("client-one"), client_identity("client-two")
        self.assertNotEqual(key(client=one), key(client=two))
        self.assertNotEqual(key(client=one), key())
        again = PrivateCertificate.loadPEM(one.dumpPEM())
        self.assertEqual(key(client=again), key(client=one))
        for secret in (one.privateKey.dump(1), one.privateKey.dump(2)):
            self.assertNotIn(secret.hex()[:40], key(client=one))

        a, b = (
            Certificate(X509.from_cryptography(support.make_certificate(n)[0]))
            for n in ("ca-a", "ca-b")
        )
        self.assertEqual(key(platformTrust()), key())
        self.assertEqual(
            key(trustRootFromCertificates([a, b])),
            key(trustRootFromCertificates([b, a])),
        )
        self.assertEqual(key(trustRootFromCertificates([a])), key(a))
        variants = [
            key(),
            key(a),
            key(b),
            key(trustRootFromCertificates([a, b])),
            key(trustRootFromCertificates([])),
        ]
        self.assertEqual(len(set(variants)), len(variants))

        @implementer(IOpenSSLTrustRoot)
        class Custom:
            def _addCACertsToContext(self, context):
                context.get_cert_store().add_cert(a.original)

        first, second = Custom(), Custom()
        self.assertEqual(key(first), key(first))
        self.assertNotEqual(key(first), key(second))
        self.assertNotIn(key(first), (key(), key(a)))
        self.assertNotIn(str(id(first)), key(first))

    def test_profile_key_in_another_process(self):
        """
        The platform trust, certificate trust roots, client certificates and
        options give the same key in another process (the file store relies
        on that).
        """
        import json

        directory = os.path.abspath(self.mktemp())
        ca, _ = support.make_certificate("ca-a")
        ca_path, _ = support.write_pem(os.path.join(directory, "ca"), ca, _)
        cert, key = support.make_certificate("client-one")
        cert_path, key_path = support.write_pem(
            os.path.join(directory, "client"), cert, key
        )
        script = f"""
import json
from twisted.internet.ssl import (
    AcceptableCiphers, Certificate, PrivateCertificate, TLSVersion,
    trustRootFromCertificates,
)
from resumetls import ResumingClientCreator

ca = Certificate.loadPEM(open({ca_path!r}, "rb").read())
client = PrivateCertificate.loadPEM(
    open({cert_path!r}, "rb").read() + open({key_path!r}, "rb").read()
)
extra = dict(
    raiseMinimumTo=TLSVersion.TLSv1_2,
    acceptableCiphers=AcceptableCiphers.fromOpenSSLCipherString("ECDHE+AESGCM"),
)
print(json.dumps([
    ResumingClientCreator("localhost", port=443).key,
    ResumingClientCreator("localhost", ca, port=443).key,
    ResumingClientCreator("localhost", trustRootFromCertificates([ca]), client,
                          [b"h2"], port=443, extraCertificateOptions=extra).key,
]))
"""
        keys = []
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", script],
                cwd=support.ROOT,
                capture_output=True,
                text=True,
                timeout=30,
            )
            self.assertEqual(out.returncode, 0, out.stderr)
            keys.append(json.loads(out.stdout))
        self.assertEqual(keys[0], keys[1])
        self.assertEqual(len(set(keys[0])), 3)
        self.assertNotIn("object:", "".join(keys[0]))
