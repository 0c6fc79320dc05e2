"""
Ticket key files in the formats operators already have, read and written with
each server's own meaning of which key encrypts.

nginx (C{src/event/ngx_event_openssl.c}, C{ngx_ssl_session_ticket_keys} and
C{ngx_ssl_session_ticket_key_callback}): one key per file, 48 or 80 bytes;
C{ssl_session_ticket_key} may be repeated and the key of the I{first} file
encrypts, the others only decrypt (tickets they open are renewed, the callback
returns 2).  48 bytes are name(16) + AES-128 key(16) + HMAC key(16); 80 bytes
are name(16) + HMAC key(32) + AES-256 key(32).

HAProxy (C{src/ssl_sock.c}, C{ssl_bind_parse_tls_ticket_keys};
C{include/haproxy/ssl_sock-t.h}, C{struct tls_sess_key_128/256}): a text file,
one base64 key per line, 48 or 80 bytes decoded and all the same size; the
fields are name(16) + AES key + HMAC key (AES I{before} HMAC, so an 80-byte
HAProxy key is not byte-for-byte an nginx key).  At least 3 keys
(C{TLS_TICKETS_NO}); only the last 3 lines are used; the I{second-to-last}
encrypts, the last is the next key (our "pending"), the one before decrypts.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
import tempfile
from collections.abc import Iterable, Sequence

from resumetls._keys import KeySet, TicketKey

HAPROXY_KEYS = 3  # TLS_TICKETS_NO


class KeyFileError(ValueError):
    """
    A key file cannot be used; the message names the file (and line) and
    says what to do.  It never contains key material.
    """


def check_permissions(path: str) -> None:
    """
    Refuse a key file that group or others may read or write.

    @raise KeyFileError: with the C{chmod} that fixes it.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such ticket key file") from None
    except OSError as e:
        raise KeyFileError(
            f"{path}: cannot read ticket key file: {e.strerror}"
        ) from None
    if mode & 0o077:
        raise KeyFileError(
            f"{path} is readable by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"ticket keys are secrets: run `chmod 600 {path}`"
        )


def _read(path: str, check_mode: bool) -> bytes:
    if check_mode:
        check_permissions(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such ticket key file") from None
    except IsADirectoryError:
        raise KeyFileError(f"{path}: is a directory, not a ticket key file") from None
    except OSError as e:
        raise KeyFileError(
            f"{path}: cannot read ticket key file: {e.strerror}"
        ) from None
    if not data:
        raise KeyFileError(f"{path}: the ticket key file is empty")
    return data


def nginx_key(data: bytes, path: str = "<key>") -> TicketKey:
    """Decode one nginx key (48 or 80 bytes)."""
    if len(data) == 48:
        return TicketKey(name=data[:16], aes_key=data[16:32], hmac_key=data[32:48])
    if len(data) == 80:
        return TicketKey(name=data[:16], hmac_key=data[16:48], aes_key=data[48:80])
    raise KeyFileError(
        f"{path}: is {len(data)} bytes; nginx ticket keys are 48 or 80 bytes"
    )


def encode_nginx_key(key: TicketKey) -> bytes:
    if len(key.aes_key) == 16 and len(key.hmac_key) == 16:
        return key.name + key.aes_key + key.hmac_key
    if len(key.aes_key) == 32 and len(key.hmac_key) == 32:
        return key.name + key.hmac_key + key.aes_key
    raise ValueError(
        "nginx keys are AES-128 with a 16-byte HMAC key, or AES-256 with 32"
    )


def load_nginx_keys(paths: Sequence[str], check_mode: bool = True) -> KeySet:
    """
    Keys from nginx key files, in C{ssl_session_ticket_key} order: the first
    file's key encrypts, the others decrypt only.
    """
    if not paths:
        raise KeyFileError("no ticket key files given")
    keys = [nginx_key(_read(p, check_mode), p) for p in paths]
    return KeySet(keys[0], tuple(keys[1:]))


def haproxy_key(data: bytes) -> TicketKey:
    half = (len(data) - 16) // 2
    return TicketKey(
        name=data[:16], aes_key=data[16 : 16 + half], hmac_key=data[16 + half :]
    )


def encode_haproxy_key(key: TicketKey) -> bytes:
    if len(key.aes_key) != len(key.hmac_key):
        raise ValueError("HAProxy keys have AES and HMAC keys of the same size")
    return base64.b64encode(key.name + key.aes_key + key.hmac_key)


def parse_haproxy_keys(data: bytes, path: str = "<keys>") -> KeySet:
    """Keys from the text of an HAProxy C{tls-ticket-keys} file."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(
            f"{path}: not a text file of base64 keys (an nginx key file is "
            f"exactly 48 or 80 bytes, this one is {len(data)})"
        ) from None
    keys: list[TicketKey] = []
    size = None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            raise KeyFileError(
                f"{path}, line {number}: empty line (HAProxy reads one base64 key "
                "per line and refuses empty lines)"
            )
        try:
            raw = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError(f"{path}, line {number}: not valid base64") from None
        if len(raw) not in (48, 80):
            raise KeyFileError(
                f"{path}, line {number}: the key is {len(raw)} bytes; HAProxy keys "
                "are 48 or 80 bytes"
            )
        if size is not None and len(raw) != size:
            raise KeyFileError(
                f"{path}, line {number}: a {len(raw)}-byte key among {size}-byte "
                "keys; HAProxy does not mix key sizes in one file"
            )
        size = len(raw)
        keys.append(haproxy_key(raw))
    if len(keys) < HAPROXY_KEYS:
        raise KeyFileError(
            f"{path}: has {len(keys)} key(s); HAProxy ticket key files need at "
            f"least {HAPROXY_KEYS} (generate one with `resumetls keys generate "
            f"--format haproxy -o {path}`)"
        )
    last = keys[-HAPROXY_KEYS:]
    # HAProxy: the second-to-last encrypts, the last is the next key.
    return KeySet(encrypting=last[1], decrypt_only=(last[0],), pending=(last[2],))


def load_haproxy_keys(path: str, check_mode: bool = True) -> KeySet:
    return parse_haproxy_keys(_read(path, check_mode), path)


def load_key_file(path: str, check_mode: bool = True) -> KeySet:
    """
    Read a ticket key file, recognising its format: a binary file of exactly
    48 or 80 bytes is an nginx key, anything else is read as HAProxy's base64
    lines.

    @raise KeyFileError: naming the file (and line) and what is wrong.
    """
    data = _read(path, check_mode)
    if len(data) in (48, 80):
        return KeySet(nginx_key(data, path))
    return parse_haproxy_keys(data, path)


def _write_private(path: str, data: bytes) -> None:
    """Write atomically (temporary file, then rename) with mode 0600."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".resumetls-keys-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_nginx_key(path: str, key: TicketKey) -> None:
    """Write one key as an nginx key file (mode 0600)."""
    _write_private(path, encode_nginx_key(key))


def write_haproxy_keys(path: str, keys: Iterable[TicketKey]) -> None:
    """
    Write keys as an HAProxy key file (mode 0600), oldest first: with three
    keys the middle one encrypts and the last is the next.
    """
    lines = [encode_haproxy_key(k) for k in keys]
    _write_private(path, b"\n".join(lines) + b"\n")


def haproxy_file_keys(keys: KeySet) -> list[TicketKey]:
    """The three keys of a L{KeySet}, in HAProxy file order."""
    old = keys.decrypt_only[0] if keys.decrypt_only else TicketKey.generate()
    nxt = keys.pending[0] if keys.pending else TicketKey.generate()
    return [old, keys.encrypting, nxt]
