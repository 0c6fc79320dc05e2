"""
Throwaway certificates for tests, made by the project's one certificate
builder (L{resumetls.certificates.issue_certificate}).
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.ssl import CertificateOptions

from resumetls.certificates import issue_certificate, write_pem_files


def issue(
    common_name: str,
    *,
    issuer: tuple | None = None,
    ca: bool = False,
    san: list[str] | None = None,
    extensions: list[tuple] = (),  # type: ignore[assignment]
    kind: str = "ec",
    key: Any = None,
) -> tuple:
    """
    A certificate for C{common_name} and its new private key: self-signed,
    or signed by C{issuer} (a (certificate, key) pair); a CA when C{ca};
    with these DNS names (none when L{None}) and any more C{extensions}
    ((extension, critical) pairs), for C{key} (a new one when L{None}).
    Valid from yesterday for 30 days.
    """
    return issue_certificate(
        common_name,
        dns_names=san,
        issuer=issuer,
        ca=ca,
        extensions=extensions,
        kind=kind,
        key=key,
    )


def make_certificate(common_name: str = "localhost", kind: str = "ec") -> tuple:
    """A self-signed certificate for C{common_name} and its private key."""
    return issue(common_name, san=[common_name, "localhost"], kind=kind)


_CERT_CACHE: dict[str, tuple] = {}


def certificate(kind: str = "ec") -> tuple:
    """One certificate per kind for the whole test run (key generation is slow)."""
    if kind not in _CERT_CACHE:
        _CERT_CACHE[kind] = make_certificate(kind=kind)
    return _CERT_CACHE[kind]


def write_pem(directory: str, cert: Any, key: Any) -> tuple[str, str]:
    """
    Write C{cert.pem} and C{key.pem} (mode 0600) into C{directory}, made if
    needed; returns their paths.
    """
    os.makedirs(directory, exist_ok=True)
    return write_pem_files(
        cert,
        key,
        os.path.join(directory, "cert.pem"),
        os.path.join(directory, "key.pem"),
    )


def pem_files(testcase: Any, kind: str = "ec") -> tuple[str, str]:
    """The shared certificate of C{kind} written in a new test directory."""
    return write_pem(os.path.abspath(testcase.mktemp()), *certificate(kind))


def options(kind: str = "ec", **kw: Any) -> CertificateOptions:
    """C{CertificateOptions} for the shared certificate of C{kind}."""
    cert, key = certificate(kind)
    return CertificateOptions(privateKey=key, certificate=cert, **kw)
