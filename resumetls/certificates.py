"""
Certificates as bytes and as identities, written once for the server and the
client.

A session resumed skips certificate verification, so whatever decides which
sessions may be offered or accepted (the server's session ID context, the
client's profile key) must be made of what verification depends on: the
certificates themselves and the certificate authorities trusted.  This module
gives them as DER and as SHA-256 digests, the same in every process, never
key material.  It also holds the one builder of self-signed and CA-issued
certificates used by the development certificate, the tests, the benchmark
and the examples.

Twisted's private C{_sslverify} types are reached through
L{resumetls.openssl.compat}, imported on use, so importing this module stays
cheap.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

#: The label of OpenSSL's default verify paths (C{platformTrust()}): what
#: they accept cannot be listed, but it is the same wherever it is used.
PLATFORM_TRUST = b"openssl-default-verify-paths"
#: The label in front of the digests of a set of certificate authorities.
CERTIFICATE_AUTHORITIES = b"certificate-authorities"


def certificate_der(value: Any) -> bytes | None:
    """
    The DER of a certificate given as a cryptography C{x509.Certificate}, a
    pyOpenSSL C{X509} or a Twisted C{Certificate} (or C{PrivateCertificate});
    L{None} for anything else.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from OpenSSL import crypto

    from resumetls.openssl import compat

    value = compat.unwrap_certificate(value)
    if isinstance(value, crypto.X509):
        value = value.to_cryptography()
    if isinstance(value, x509.Certificate):
        return value.public_bytes(Encoding.DER)
    return None


def public_key_der(value: Any) -> bytes | None:
    """
    The public half (SubjectPublicKeyInfo DER) of a key given as a Twisted
    C{KeyPair}, a pyOpenSSL C{PKey} or a cryptography key (private or
    public); L{None} for anything else.  The private half never leaves the
    key object.
    """
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
    )
    from OpenSSL import crypto
    from twisted.internet.ssl import KeyPair

    if isinstance(value, KeyPair):
        value = value.original
    if isinstance(value, crypto.PKey):
        value = value.to_cryptography_key()
    if callable(getattr(value, "private_bytes", None)):
        value = value.public_key()
    if callable(getattr(value, "public_bytes", None)):
        try:
            return value.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        except (TypeError, ValueError):
            return None
    return None


@attrs.frozen
class TrustRootIdentity:
    """
    Which certificate authorities a trust root accepts, as far as can be
    seen: OpenSSL's default verify paths (L{PLATFORM_TRUST}, no digests), or
    a set of CAs (L{CERTIFICATE_AUTHORITIES} and the sorted SHA-256 digests
    of their DER, so their order does not matter).
    """

    label: bytes
    digests: tuple[bytes, ...] = ()

    @property
    def platform(self) -> bool:
        """Whether this is the platform's default trust."""
        return self.label == PLATFORM_TRUST

    def parts(self) -> list[bytes]:
        """The label and the digests, as parts of a digest input."""
        return [self.label, *self.digests]


def trust_root_identity(trust_root: Any) -> TrustRootIdentity | None:
    """
    The identity of a trust root: Twisted's C{OpenSSLCertificateAuthorities}
    (what C{trustRootFromCertificates} and C{caCerts=} give) or a single
    C{Certificate} by the digests of its CAs, C{OpenSSLDefaultPaths}
    (C{platformTrust()}) by a fixed label; L{None} when what it accepts
    cannot be seen (another trust root type, a CA we cannot serialize, or
    no trust root at all: its meaning depends on the caller).
    """
    from twisted.internet.ssl import Certificate, PrivateCertificate

    from resumetls.openssl import compat

    if compat.is_platform_trust(trust_root):
        return TrustRootIdentity(PLATFORM_TRUST)
    if type(trust_root) in (Certificate, PrivateCertificate):
        authorities = [trust_root]
    else:
        authorities = compat.certificate_authorities(trust_root)
        if authorities is None:
            return None
    ders = [certificate_der(c) for c in authorities]
    if any(der is None for der in ders):
        return None
    digests = sorted(hashlib.sha256(der).digest() for der in ders if der is not None)
    return TrustRootIdentity(CERTIFICATE_AUTHORITIES, tuple(digests))


@attrs.frozen
class ClientIdentity:
    """
    Which client certificate, and which private key, a server sees: the
    SHA-256 digests of the certificate's DER and of the key's public half.
    """

    certificate: bytes
    public_key: bytes


def client_identity(client_certificate: Any) -> ClientIdentity | None:
    """
    The identity of a Twisted C{PrivateCertificate} (a certificate with its
    C{privateKey}); L{None} when either half cannot be seen.
    """
    der = certificate_der(client_certificate)
    public = public_key_der(getattr(client_certificate, "privateKey", None))
    if der is None or public is None:
        return None
    return ClientIdentity(hashlib.sha256(der).digest(), hashlib.sha256(public).digest())


# -- building certificates ----------------------------------------------------


def new_private_key(kind: str = "ec") -> Any:
    """A new private key: P-256 for C{"ec"}, RSA 2048 for C{"rsa"}."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key kind {kind!r}: use 'ec' or 'rsa'")


def issue_certificate(
    common_name: str = "localhost",
    *,
    dns_names: Sequence[str] | None = None,
    ip_addresses: Sequence[str] = (),
    organization: str | None = None,
    issuer: tuple[Any, Any] | None = None,
    ca: bool = False,
    extensions: Iterable[tuple[Any, bool]] = (),
    kind: str = "ec",
    key: Any = None,
    backdate: datetime.timedelta = datetime.timedelta(days=1),
    valid_for: datetime.timedelta = datetime.timedelta(days=30),
) -> tuple[Any, Any]:
    """
    A certificate and its private key, for tests, benchmarks, examples and
    the development certificate (never for production).

    @param common_name: the subject's common name.
    @param dns_names: the subjectAltName DNS names; with C{ip_addresses}
        empty, no subjectAltName at all when L{None}.
    @param ip_addresses: subjectAltName IP addresses (after the names).
    @param organization: the subject's organization name, if any.
    @param issuer: a (certificate, private key) pair that signs it;
        self-signed when L{None}.
    @param ca: add a critical C{BasicConstraints(ca=True)}.
    @param extensions: more (extension, critical) pairs, added last.
    @param kind: the kind of the new key (L{new_private_key}).
    @param key: the private key to certify; a new one when L{None}.
    @param backdate: how long before now it becomes valid (clock skew).
    @param valid_for: how long after now it stays valid.
    @return: (C{x509.Certificate}, private key), cryptography objects.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    if key is None:
        key = new_private_key(kind)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    name = x509.Name(attributes)
    issuer_name, signing_key = (
        (issuer[0].subject, issuer[1]) if issuer is not None else (name, key)
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate)
        .not_valid_after(now + valid_for)
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), True
        )
    if dns_names is not None or ip_addresses:
        alternatives: list[x509.GeneralName] = [
            x509.DNSName(n) for n in dns_names or ()
        ]
        alternatives += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alternatives), False
        )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(signing_key, hashes.SHA256()), key


def certificate_pem(certificate: Any) -> bytes:
    """The PEM of a cryptography certificate."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return certificate.public_bytes(Encoding.PEM)


def private_key_pem(key: Any) -> bytes:
    """The unencrypted PKCS#8 PEM of a cryptography private key."""
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_pem_files(
    certificate: Any, key: Any, cert_path: str, key_path: str
) -> tuple[str, str]:
    """
    Write a certificate (mode 0644) and its private key (mode 0600) as PEM,
    each atomically (L{resumetls.privatefiles.write_atomically}).

    @return: (C{cert_path}, C{key_path}).
    """
    from resumetls.privatefiles import write_atomically

    write_atomically(key_path, private_key_pem(key))
    write_atomically(cert_path, certificate_pem(certificate), mode=0o644)
    return cert_path, key_path
