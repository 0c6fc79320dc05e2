"""
L{resumetls.certificates}: one DER whatever the certificate's form, trust
root and client identities by digest, and the certificate builder.
"""

from __future__ import annotations

import hashlib
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL.crypto import X509, PKey
from twisted.internet.ssl import (
    Certificate,
    KeyPair,
    PrivateCertificate,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.trial.unittest import SynchronousTestCase

from resumetls.certificates import (
    CERTIFICATE_AUTHORITIES,
    PLATFORM_TRUST,
    certificate_der,
    client_identity,
    issue_certificate,
    public_key_der,
    trust_root_identity,
)


def twisted_certificate(cert):
    return Certificate(X509.from_cryptography(cert))


class DerTests(SynchronousTestCase):
    def test_every_form(self):
        """cryptography, pyOpenSSL and Twisted certificates give one DER."""
        cert, key = issue_certificate("one")
        der = cert.public_bytes(Encoding.DER)
        private = PrivateCertificate.fromCertificateAndKeyPair(
            twisted_certificate(cert), KeyPair(PKey.from_cryptography_key(key))
        )
        for form in (
            cert,
            X509.from_cryptography(cert),
            twisted_certificate(cert),
            private,
        ):
            self.assertEqual(certificate_der(form), der)
        for other in (None, b"der", "cert", key):
            self.assertIsNone(certificate_der(other))

    def test_public_key(self):
        """Only the public half, from any form of the key."""
        _, key = issue_certificate("one")
        public = public_key_der(key.public_key())
        self.assertIsNotNone(public)
        for form in (key, PKey.from_cryptography_key(key)):
            self.assertEqual(public_key_der(form), public)
        self.assertIsNone(public_key_der(object()))


class IdentityTests(SynchronousTestCase):
    def test_trust_roots(self):
        """
        A CA set by its sorted digests (order does not matter, one
        certificate is a set of one), the platform by a label, anything
        else (and no trust root) unknown.
        """
        a, b = (twisted_certificate(issue_certificate(n)[0]) for n in "ab")
        digests = sorted(hashlib.sha256(certificate_der(c)).digest() for c in (a, b))
        both = trust_root_identity(trustRootFromCertificates([b, a]))
        self.assertEqual(both.parts(), [CERTIFICATE_AUTHORITIES, *digests])
        self.assertEqual(both, trust_root_identity(trustRootFromCertificates([a, b])))
        self.assertFalse(both.platform)
        self.assertEqual(
            trust_root_identity(a), trust_root_identity(trustRootFromCertificates([a]))
        )
        platform = trust_root_identity(platformTrust())
        self.assertEqual(platform.parts(), [PLATFORM_TRUST])
        self.assertTrue(platform.platform)
        self.assertIsNone(trust_root_identity(None))
        self.assertIsNone(trust_root_identity(object()))

    def test_client(self):
        """A client certificate by the digests of its DER and public key."""
        cert, key = issue_certificate("client")
        private = PrivateCertificate.fromCertificateAndKeyPair(
            twisted_certificate(cert), KeyPair(PKey.from_cryptography_key(key))
        )
        identity = client_identity(private)
        self.assertEqual(
            identity.certificate,
            hashlib.sha256(cert.public_bytes(Encoding.DER)).digest(),
        )
        self.assertEqual(
            identity.public_key,
            hashlib.sha256(public_key_der(key)).digest(),
        )
        self.assertIsNone(client_identity(twisted_certificate(cert)))  # no key


class IssueTests(SynchronousTestCase):
    def test_self_signed(self):
        cert, key = issue_certificate(
            "localhost",
            dns_names=["localhost"],
            ip_addresses=["127.0.0.1", "::1"],
            organization="org",
        )
        self.assertIsInstance(key, ec.EllipticCurvePrivateKey)
        self.assertEqual(cert.issuer, cert.subject)
        names = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
        self.assertEqual(names.get_values_for_type(x509.DNSName), ["localhost"])
        self.assertEqual(
            names.get_values_for_type(x509.IPAddress),
            [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")],
        )
        cert.verify_directly_issued_by(cert)

    def test_issued_by_a_ca(self):
        ca = issue_certificate("ca", ca=True, kind="rsa")
        self.assertIsInstance(ca[1], rsa.RSAPrivateKey)
        constraints = ca[0].extensions.get_extension_for_class(x509.BasicConstraints)
        self.assertTrue(constraints.critical and constraints.value.ca)
        cert, _ = issue_certificate("leaf", issuer=ca)
        self.assertEqual(cert.issuer, ca[0].subject)
        cert.verify_directly_issued_by(ca[0])
        self.assertRaises(
            x509.ExtensionNotFound,
            cert.extensions.get_extension_for_class,
            x509.SubjectAlternativeName,
        )

    def test_unknown_kind(self):
        e = self.assertRaises(ValueError, issue_certificate, kind="dsa")
        self.assertIn("'ec' or 'rsa'", str(e))
