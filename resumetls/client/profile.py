"""
The server profile a client's sessions are kept under: everything that must
match for a session to be offered again.

A resumed session skips certificate verification and carries the client
identity it was made with, so a session may only be offered where a full
handshake would have been judged the same way: same host and port, same SNI,
same trusted authorities, same client certificate and key, same ALPN and
certificate options.  The key holds digests and names, never key material,
and is the same in every process (the file store relies on that), except
for what cannot be inspected: that gets an identity of its own, never
shared with anything else.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from resumetls.certificates import (
    certificate_der,
    client_identity,
    public_key_der,
    trust_root_identity,
)
from resumetls.openssl import compat


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _hex(digest: bytes) -> str:
    """A SHA-256 digest as L{_digest} writes it (the first 128 bits, hex)."""
    return digest.hex()[:32]


# id(object) -> (reference, token): identities of objects we cannot describe
_identities: dict[int, tuple[Any, str]] = {}


def _identity(value: Any) -> str:
    """
    A random token for this very object, never shared with another object
    (not even an equal one, nor one that later gets the same address), and
    never the same in another process: what we cannot describe is never
    assumed to be the same as anything else.
    """
    entry = _identities.get(id(value))
    if entry is not None and entry[0]() is value:
        return entry[1]
    token = "object:" + secrets.token_hex(16)
    try:
        ref: Any = weakref.ref(value)
        weakref.finalize(value, _identities.pop, id(value), None)
    except TypeError:
        # Not weakly referenceable: keep it alive, so its address is never
        # reused by another object while the token is known.
        ref = (lambda kept: lambda: kept)(value)
    _identities[id(value)] = (ref, token)
    return token


def trust_part(trust_root: Any) -> str:
    """
    The trust part of a profile key: which certificate authorities verify
    the server.  A session resumed skips verification, so two creators may
    share sessions only when they trust exactly the same authorities.

    The platform's default trust (also what L{None} means to
    C{optionsForClientTLS}) and explicit certificates (a C{Certificate} or
    C{trustRootFromCertificates([...])}) give the same part in every
    process; any other C{IOpenSSLTrustRoot} cannot be inspected and gets an
    identity of its own (L{_identity}).
    """
    if trust_root is None:
        return "platform"
    identity = trust_root_identity(trust_root)
    if identity is None:
        return _identity(trust_root)
    if identity.platform:
        return "platform"
    return "cas:" + _digest("".join(_hex(d) for d in identity.digests).encode())


def client_part(client_certificate: Any) -> str:
    """
    Which client certificate, and which private key, the server sees: the
    digests of the certificate's DER and of the key's public half.  A
    session carries the client identity it was made with, so creators with
    different client certificates never share sessions.
    """
    if client_certificate is None:
        return ""
    identity = client_identity(client_certificate)
    if identity is None:
        return "client:" + _identity(client_certificate)
    return f"client:{_hex(identity.certificate)}.{_hex(identity.public_key)}"


def option_part(value: Any) -> str:
    """
    A profile-key part for an extra certificate option that is the same in
    every process (no object addresses) and never holds key material:
    certificates and keys by digest, ciphers and TLS versions by name, and
    anything else by an identity of its own (never shared).
    """
    from constantly import NamedConstant

    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    if isinstance(value, bytes):
        return "bytes:" + _digest(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(option_part(v) for v in value) + "]"
    if isinstance(value, NamedConstant):  # TLSVersion
        return f"{type(value).__name__}.{value.name}"
    der = certificate_der(value)
    if der is not None:
        return "cert:" + _digest(der)
    public = public_key_der(value)
    if public is not None:
        return "key:" + _digest(public)
    ciphers = compat.acceptable_ciphers(value)
    if ciphers is not None:
        return "ciphers:" + ":".join(c.fullName for c in ciphers)
    return _identity(value)


def profile_key(
    hostname: str,
    port: int | None,
    send_server_name: bool | None,
    trust_root: Any,
    client_certificate: Any,
    acceptable_protocols: Iterable[bytes] | None,
    extra_options: Mapping[str, Any],
) -> str:
    """
    The key a client's sessions for one server profile are stored under
    (the arguments are those of C{optionsForClientTLS}, with the port and
    the extra certificate options as the creator will use them).
    """
    return "|".join(
        [
            hostname.lower(),
            str(port if port is not None else ""),
            "sni" if send_server_name is not False else "nosni",
            trust_part(trust_root),
            client_part(client_certificate),
            json.dumps([p.decode("latin-1") for p in acceptable_protocols or ()]),
            ",".join(f"{k}={option_part(v)}" for k, v in sorted(extra_options.items())),
        ]
    )
