"""
Session tickets and session files taken apart: open a TLS 1.2 ticket with a
known key, and forge a session file's ticket or session ID (DER surgery),
as an attacker would present them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def open_ticket(ticket: bytes, key: Any) -> bytes:
    """
    Open a TLS 1.2 ticket as OpenSSL's ticket-key callback protects it:
    key name(16) | IV(16) | AES-CBC(state) | HMAC-SHA256(everything before),
    with a L{resumetls.TicketKey}'s HMAC and AES keys.  Returns the DER
    session state; raises L{AssertionError} when the HMAC does not match.
    """
    body, mac = ticket[:-32], ticket[-32:]
    expected = hmac.new(key.hmac_key, body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise AssertionError("the ticket's HMAC does not match this HMAC key")
    iv, encrypted = ticket[16:32], ticket[32:-32]
    decryptor = Cipher(algorithms.AES(key.aes_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(encrypted) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def _read_tlv(data: bytes, i: int) -> tuple[int, int, int]:
    tag = data[i]
    length = data[i + 1]
    j = i + 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[j : j + n], "big")
        j += n
    return tag, j, j + length


def _encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _encode_length(len(content)) + content


def rewrite_session(pem_in: str, pem_out: str, *, ticket=None, session_id=None):
    """
    Copy a session file, replacing its ticket and/or session ID (OpenSSL's
    C{SSL_SESSION_ASN1}: the 4th element is the session ID, C{[10]} holds the
    ticket) — a forged credential, as an attacker would present it.
    """
    with open(pem_in) as f:
        text = f.read()
    body = "".join(
        line for line in text.splitlines() if line and not line.startswith("-----")
    )
    der = base64.b64decode(body)
    tag, start, end = _read_tlv(der, 0)
    elements = []
    i = start
    while i < end:
        t, s, e = _read_tlv(der, i)
        elements.append((t, der[s:e]))
        i = e
    out = []
    for index, (t, content) in enumerate(elements):
        if index == 3 and session_id is not None:
            content = session_id
        if t == 0xAA and ticket is not None:  # [10] EXPLICIT OCTET STRING
            content = _tlv(0x04, ticket)
        out.append(_tlv(t, content))
    new = _tlv(tag, b"".join(out))
    with open(pem_out, "w") as f:
        f.write("-----BEGIN SSL SESSION PARAMETERS-----\n")
        b64 = base64.b64encode(new).decode()
        for k in range(0, len(b64), 64):
            f.write(b64[k : k + 64] + "\n")
        f.write("-----END SSL SESSION PARAMETERS-----\n")
