"""
Reading a server's PEM files the way Twisted's C{ssl:} endpoint reads them,
with one clear L{ValueError} per problem (a file that cannot be read, holds
no certificate or no unencrypted key, or a key of another certificate); the
message names the file, never its contents.  A private key that others
(world) may read is refused with the C{chmod} that fixes it; its group may
read it (L{private_key_mode_problem}).
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

__all__ = ["certificate_options", "private_key_mode_problem"]

_SECRET = "a TLS private key is a secret"

_KEY_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.S
)


def _read(path: str, what: str) -> tuple[bytes, int]:
    """
    The bytes of a PEM file and its mode (from the file opened, so a file
    swapped in between cannot slip through a check of the mode).
    """
    try:
        with open(path, "rb") as f:
            return f.read(), os.fstat(f.fileno()).st_mode
    except OSError as e:
        raise ValueError(f"cannot read the {what} {path}: {e.strerror}") from None


def private_key_mode_problem(path: str, mode: int) -> str | None:
    """
    Why a TLS private key's mode is refused, with the C{chmod} that fixes
    it, or L{None}.  Others (world) may neither read nor write it; its group
    may read it but not write it: Debian's C{ssl-cert} convention keeps keys
    in C{/etc/ssl/private} as C{root:ssl-cert 0640}, the server's user in
    that group.  (Ticket key files, read by resumetls alone, must be 0600.)
    """
    from resumetls.privatefiles import is_private

    if is_private(mode & ~0o040):
        return None
    who = "others" if mode & 0o007 else "its group"
    how = "readable" if mode & 0o004 else "writable"
    fix = "g-w,o-rwx" if mode & 0o020 else "o-rwx"
    return (
        f"{path} is {how} by {who} (mode {stat.S_IMODE(mode):04o}); {_SECRET}: "
        f"run `chmod {fix} {path}` (its group may read it, not others)"
    )


def _certificates(path: str, what: str) -> list[Any]:
    from cryptography import x509

    data, _ = _read(path, what)
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        found = []
    if not found:
        raise ValueError(f"{path} does not hold a PEM certificate")
    return found


def _private_key(path: str) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data, mode = _read(path, "private key")
    block = _KEY_BLOCK.search(data)
    try:
        if block is None:
            raise ValueError
        key = load_pem_private_key(block.group(0), None)
    except (ValueError, TypeError):
        raise ValueError(
            f"{path} does not hold an unencrypted PEM private key"
        ) from None
    problem = private_key_mode_problem(path, mode)
    if problem:
        raise ValueError(problem)
    return key


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
