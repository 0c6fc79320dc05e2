"""
Reading a server's PEM files the way Twisted's C{ssl:} endpoint reads them,
with one clear L{ValueError} per problem (a file that cannot be read, holds
no certificate or no unencrypted key, or a key of another certificate); the
message names the file, never its contents.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["certificate_options"]

_KEY_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.S
)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"cannot read the {what} {path}: {e.strerror}") from None


def _certificates(path: str, what: str) -> list[Any]:
    from cryptography import x509

    data = _read(path, what)
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        found = []
    if not found:
        raise ValueError(f"{path} does not hold a PEM certificate")
    return found


def _private_key(path: str) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    block = _KEY_BLOCK.search(_read(path, "private key"))
    try:
        if block is None:
            raise ValueError
        return load_pem_private_key(block.group(0), None)
    except (ValueError, TypeError):
        raise ValueError(
            f"{path} does not hold an unencrypted PEM private key"
        ) from None


def certificate_options(certificate: str, key: str, chain: str | None = None) -> Any:
    """
    A C{CertificateOptions} serving the PEM files given.

    @param certificate: the leaf certificate, possibly followed by chain
        certificates.
    @param key: the unencrypted private key (may be the same file).
    @param chain: optionally, more chain certificates.

    @raise ValueError: when a file cannot be read or parsed, or the key does
        not belong to the certificate; the message names the file.
    """
    from twisted.internet.ssl import CertificateOptions

    leaf_and_chain = _certificates(certificate, "certificate")
    extra = _certificates(chain, "certificate chain") if chain else []
    private_key = _private_key(key)
    if leaf_and_chain[0].public_key() != private_key.public_key():
        raise ValueError(
            f"the private key {key} does not match the certificate {certificate}"
        )
    return CertificateOptions(
        privateKey=private_key,
        certificate=leaf_and_chain[0],
        extraCertChain=leaf_and_chain[1:] + extra,
    )
