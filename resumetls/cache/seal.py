"""
Sealing sessions (and other secrets) before they leave the process.

A serialized TLS session holds its master secret, so no store outside the
process (Redis, a host-shared file) may hold it in clear.  A L{SessionSealer}
encrypts and authenticates each value with AES-256-GCM under a key that is
never written to the store, binding it to the session ID and to a namespace
(the service's session ID context): a value copied to another key or to
another service's namespace does not open.

The sealed layout is C{version (1 byte) | nonce (12 bytes) | ciphertext+tag};
the associated data is C{b"resumetls-seal" | version | len(namespace) (2 bytes)
| namespace | session ID}.

Where the key comes from: L{derive_key} derives it with HKDF-SHA256 from the
service's TLS private key, which every server of the service already holds,
so a fleet agrees on it without distributing anything new.  The HKDF C{info}
is C{b"resumetls/seal/v1/" + purpose} (purpose C{b"sessions"} for session
caches, C{b"ticket-keys"} for a fleet's ticket keys), with no salt; the key is
first put in one canonical form (unencrypted PKCS#8 DER), so the same key read
from a PKCS#1 or PKCS#8 file gives the same sealing key.
"""

from __future__ import annotations

import os
import re
import struct
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: The first byte of every sealed value; a value with another first byte is
#: foreign (or from a future layout) and does not open.
VERSION = 1
_VERSION_BYTE = bytes([VERSION])
_NONCE = 12
_TAG = 16
_LABEL = b"resumetls-seal"
_LENGTH = struct.Struct("!H")

#: The prefix of the HKDF C{info} string used by L{derive_key}.
INFO_PREFIX = b"resumetls/seal/v1/"

#: Sizes of a sealed value beyond its plaintext: version, nonce, GCM tag.
OVERHEAD = 1 + _NONCE + _TAG


class SealKeyError(ValueError):
    """
    A sealing key that cannot be used (wrong type or size), or a private key
    that cannot be read.  The message never contains key material.
    """


class SessionSealer:
    """
    Encrypts and authenticates values for one namespace under one 32-byte key.

    @param key: 32 bytes (AES-256-GCM); see L{derive_key}.
    @param namespace: the service's namespace, for example its session ID
        context; at most 65535 bytes.
    """

    __slots__ = ("_aead", "_aad_prefix", "namespace")

    def __init__(self, key: bytes, namespace: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != 32:
            got = len(key) if isinstance(key, bytes) else type(key).__name__
            raise SealKeyError(f"a sealing key must be 32 bytes, not {got}")
        if not isinstance(namespace, bytes) or len(namespace) > 0xFFFF:
            raise ValueError("a sealing namespace must be bytes of at most 65535")
        self._aead = AESGCM(key)
        self.namespace = namespace
        self._aad_prefix = (
            _LABEL + _VERSION_BYTE + _LENGTH.pack(len(namespace)) + namespace
        )

    def __repr__(self) -> str:
        return f"<SessionSealer AES-256-GCM namespace={len(self.namespace)} bytes>"

    def seal(self, session_id: bytes, der: bytes) -> bytes:
        """
        Encrypt C{der} for C{session_id} in this namespace, with a fresh random
        nonce (so sealing the same value twice gives two different blobs).
        """
        nonce = os.urandom(_NONCE)
        return (
            _VERSION_BYTE
            + nonce
            + self._aead.encrypt(nonce, der, self._aad_prefix + session_id)
        )

    def open(self, session_id: bytes, blob: Any) -> bytes | None:
        """
        The plaintext sealed by L{seal} for C{session_id} in this namespace,
        or L{None} for anything else: corrupt, truncated, foreign, sealed
        under another key, for another session ID or another namespace, or
        not bytes at all.  Never raises on bad input.
        """
        if isinstance(blob, (bytearray, memoryview)):
            blob = bytes(blob)
        if (
            not isinstance(blob, bytes)
            or not isinstance(session_id, bytes)
            or len(blob) < OVERHEAD
            or blob[0] != VERSION
        ):
            return None
        try:
            return self._aead.decrypt(
                blob[1 : 1 + _NONCE], blob[1 + _NONCE :], self._aad_prefix + session_id
            )
        except (InvalidTag, ValueError, TypeError, OverflowError):
            return None


def _canonical_der(private_key: Any) -> bytes:
    """The unencrypted PKCS#8 DER of a private key given as DER, PEM or object."""
    if isinstance(private_key, (bytes, bytearray)):
        data = bytes(private_key)
        # A combined PEM file (certificate and key): the key's block only.
        block = re.search(
            rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----",
            data,
            re.DOTALL,
        )
        if block is not None:
            data = block.group(0)
        try:
            if data.lstrip().startswith(b"-----"):
                private_key = serialization.load_pem_private_key(data, None)
            else:
                private_key = serialization.load_der_private_key(data, None)
        except (ValueError, TypeError) as e:
            raise SealKeyError(
                "cannot derive a sealing key: the private key is not an "
                f"unencrypted DER or PEM private key ({type(e).__name__})"
            ) from None
    try:
        return private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    except AttributeError:
        raise SealKeyError(
            "cannot derive a sealing key from a "
            f"{type(private_key).__name__}: give a private key (DER, PEM or "
            "a cryptography private key object)"
        ) from None


def derive_key(private_key: Any, purpose: bytes = b"sessions") -> bytes:
    """
    Derive a 32-byte sealing key from the service's TLS private key.

    HKDF-SHA256, no salt, input the key's unencrypted PKCS#8 DER, C{info}
    C{b"resumetls/seal/v1/" + purpose}.  Every server holding the same private
    key derives the same sealing key; a different purpose gives an unrelated
    key, so a sealed session never opens as a ticket key or the reverse.

    @param private_key: DER or PEM bytes (unencrypted) or a C{cryptography}
        private key object.
    @param purpose: C{b"sessions"} for session caches, C{b"ticket-keys"} for
        a fleet's ticket keys.
    @raise SealKeyError: if the key cannot be read.
    """
    if not isinstance(purpose, bytes) or not purpose:
        raise ValueError("a sealing key's purpose must be non-empty bytes")
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=INFO_PREFIX + purpose,
    ).derive(_canonical_der(private_key))


def read_secret_file(path: str, secret: str, limit: int = 4096) -> bytes:
    """
    Read a small secret file (a sealing key, a password) that must not be
    readable or writable by group or others.

    @param secret: what the file holds, as the end of a sentence, for the
        refusal message (for example C{"a sealing key is a secret"}).
    @raise SealKeyError: with a message that says what is wrong and how to
        fix it, never the content.
    """
    import stat as _stat

    from resumetls.privatefiles import mode_problem

    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not _stat.S_ISREG(st.st_mode):
                raise SealKeyError(f"{path} is not a regular file")
            problem = mode_problem(path, st.st_mode, secret)
            if problem is not None:
                raise SealKeyError(problem)
            return f.read(limit)
    except OSError as e:
        raise SealKeyError(f"cannot read {path}: {e.strerror}") from None


def read_key_file(path: str) -> bytes:
    """
    Read a sealing key from a file: exactly 32 bytes, raw or as 64 hex
    digits or base64 (surrounding white space ignored).  The file must not
    be readable by group or others.

    @raise SealKeyError: with a message that says what is wrong and how to
        fix it, never the key.
    """
    import base64
    import binascii

    data = read_secret_file(path, "a sealing key is a secret")
    if len(data) == 32:
        return data
    text = data.strip()
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            key = decode(text.decode("ascii"))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            continue
        if len(key) == 32:
            return key
    raise SealKeyError(
        f"the sealing key file {path} must hold 32 bytes (raw, 64 hex digits or "
        "base64); make one with: head -c 32 /dev/urandom > FILE && chmod 600 FILE"
    )


def key_from_private_key_file(path: str, purpose: bytes = b"sessions") -> bytes:
    """
    L{derive_key} of the private key in the file C{path} (PEM, DER, or a
    combined certificate-and-key PEM file), for C{purpose}.

    @raise SealKeyError: the file cannot be read or holds no usable key
        (one line naming the file, never key material).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SealKeyError(f"cannot read {path}: {e.strerror}") from None
    return derive_key(data, purpose)


def sealing_key(private_key_file: str, seal_key_file: str | None, purpose: bytes) -> bytes:
    """
    The sealing key a server uses: the 32 bytes of C{seal_key_file} when
    given, else L{key_from_private_key_file}C{(private_key_file, purpose)}.

    @raise SealKeyError: either file cannot be used (one line, no secret).
    """
    if seal_key_file is not None:
        return read_key_file(seal_key_file)
    return key_from_private_key_file(private_key_file, purpose)
