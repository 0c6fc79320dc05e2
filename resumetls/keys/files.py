"""
Ticket key files in the formats operators already have, read and written with
each server's own meaning of which key encrypts.

What the servers do, read in their own source:

nginx, C{src/event/ngx_event_openssl.c}:
  - C{ngx_ssl_session_ticket_keys()}: every C{ssl_session_ticket_key} file
    must be exactly 48 or 80 bytes (C{"must be 48 or 80 bytes"}); 48 bytes
    are name(16) + AES-128 key(16) + HMAC key(16) (C{memcpy(key->aes_key,
    buf + 16, 16)}, C{memcpy(key->hmac_key, buf + 32, 16)}); 80 bytes are
    name(16) + HMAC key(32) + AES-256 key(32) (C{memcpy(key->hmac_key, buf +
    16, 32)}, C{memcpy(key->aes_key, buf + 48, 32)}).  nginx's own generated
    keys (C{ngx_ssl_rotate_ticket_keys}) use the same 80-byte layout.
  - C{ngx_ssl_ticket_key_callback()}: C{key[0]}, the I{first} file, encrypts
    (AES-128-CBC for 48-byte keys, AES-256-CBC for 80, HMAC-SHA256 keyed with
    16 or 32 bytes); decryption looks every file's key up by name and returns
    2 (renew) for a key other than the first, and always under TLS 1.3.

HAProxy:
  - C{include/haproxy/ssl_sock-t.h}: C{struct tls_sess_key_128} is name[16],
    aes_key[16], hmac_key[16]; C{tls_sess_key_256} is name[16], aes_key[32],
    hmac_key[32]: AES I{before} HMAC, so an 80-byte HAProxy key is not
    byte-for-byte an nginx key.  C{include/haproxy/defaults.h}:
    C{TLS_TICKETS_NO} is 3.
  - C{src/cfgparse-ssl.c}, C{bind_parse_tls_ticket_keys()} (the
    C{tls-ticket-keys} bind keyword): reads lines with C{fgets}, strips one
    trailing C{\\n} and C{\\r}, base64-decodes each (no comments, no blank
    lines: either is "unable to decode base64 key on line N" or "wrong sized
    key on line N"); the first key fixes the size (48 or 80) and every other
    must match; fewer than C{TLS_TICKETS_NO} lines is an error; line C{i}
    goes to slot C{i % 3}, so only the last three lines count, and
    C{tls_ticket_enc_index = (n - 2) % 3}: the I{second-to-last} line
    encrypts.
  - C{src/ssl_sock.c}, C{ssl_tlsext_ticket_key_cb()}: encrypts with
    C{keys[head]}; decrypts with C{keys[(head + i) % 3]} for C{i} in 0..2,
    returning 2 (renew) for C{i != 0}: the last line (the next key) and the
    third-to-last both decrypt.  C{ssl_sock_update_tlskey_ref()} (C{set ssl
    tls-key} on the CLI) writes a new key over the oldest slot and advances
    C{head}: the next key starts encrypting, exactly what dropping the first
    line and appending a new one does to the file.

Our roles: the second-to-last line encrypts, the last is I{pending} (it
decrypts without renewal: a fleet member that already switched to it issued
that ticket) and the third-to-last is decrypt-only (renewed).
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Iterable, Sequence

from resumetls.keys.ring import KeySet, TicketKey
from resumetls.privatefiles import mode_problem, write_atomically

HAPROXY_KEYS = 3  # TLS_TICKETS_NO
NGINX_SIZES = (48, 80)
_MAX_SIZE = 1 << 16  # thousands of keys; anything larger is the wrong file
#: How a refused key file's mode is explained (L{mode_problem}).
_SECRET = "ticket keys are secrets"
#: The name prefix of a key file being written (beside the key file).
_TEMPORARY = ".resumetls-keys-"


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
    problem = mode_problem(path, mode, _SECRET)
    if problem:
        raise KeyFileError(problem)


def read_key_data(path: str, check_mode: bool = True) -> bytes:
    """
    The bytes of a key file, checked to be a regular file of a sensible
    size (and, when C{check_mode}, private).  The mode is checked on the
    file that was opened (C{fstat}), so a file swapped in between cannot slip
    through.

    @raise KeyFileError: naming the file and what is wrong.
    """
    try:
        # O_NONBLOCK: a FIFO in the key file's place must not hang start-up.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such ticket key file") from None
    except PermissionError:
        raise KeyFileError(
            f"{path}: permission denied; the server's user must be able to read "
            "its ticket key file"
        ) from None
    except OSError as e:
        raise KeyFileError(
            f"{path}: cannot read ticket key file: {e.strerror}"
        ) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise KeyFileError(f"{path}: is {what}, not a ticket key file")
    with os.fdopen(fd, "rb") as f:
        if check_mode:
            problem = mode_problem(path, st.st_mode, _SECRET)
            if problem:
                raise KeyFileError(problem)
        try:
            data = f.read(_MAX_SIZE + 1)
        except OSError as e:
            raise KeyFileError(
                f"{path}: cannot read ticket key file: {e.strerror}"
            ) from None
    if len(data) > _MAX_SIZE:
        raise KeyFileError(
            f"{path}: is over {_MAX_SIZE} bytes, too large to be a ticket key file"
        )
    if not data:
        raise KeyFileError(f"{path}: the ticket key file is empty")
    return data


def _keyset(
    where: str,
    encrypting: TicketKey,
    decrypt_only: Sequence[TicketKey] = (),
    pending: Sequence[TicketKey] = (),
) -> KeySet:
    """
    Keys by role, a key listed twice kept once (in its most active role), and
    two different keys with one name refused: a ticket could not say which.
    """
    seen: dict[bytes, TicketKey] = {}
    roles: list[list[TicketKey]] = [[], [], []]
    for role, keys in enumerate(([encrypting], pending, decrypt_only)):
        for key in keys:
            other = seen.get(key.name)
            if other is None:
                seen[key.name] = key
                roles[role].append(key)
            elif other != key:
                raise KeyFileError(
                    f"{where}: two different keys share the name {key.fingerprint} "
                    "(fingerprint); give every key its own random 16-byte name"
                )
    return KeySet(roles[0][0], tuple(roles[2]), tuple(roles[1]))


# -- nginx ---------------------------------------------------------------------


def nginx_key(data: bytes, path: str = "<key>") -> TicketKey:
    """Decode one nginx key (48 or 80 bytes)."""
    if len(data) == 48:
        return TicketKey(name=data[:16], aes_key=data[16:32], hmac_key=data[32:48])
    if len(data) == 80:
        return TicketKey(name=data[:16], hmac_key=data[16:48], aes_key=data[48:80])
    raise KeyFileError(
        f"{path}: is {len(data)} bytes; nginx ticket keys are 48 or 80 bytes "
        "(make one with `resumetls keys generate --format nginx -o FILE`)"
    )


def encode_nginx_key(key: TicketKey) -> bytes:
    """The 48- or 80-byte nginx form of a key."""
    if len(key.aes_key) == 16 and len(key.hmac_key) == 16:
        return key.name + key.aes_key + key.hmac_key
    if len(key.aes_key) == 32 and len(key.hmac_key) == 32:
        return key.name + key.hmac_key + key.aes_key
    raise ValueError(
        "nginx keys are AES-128 with a 16-byte HMAC key, or AES-256 with a 32-byte one"
    )


def load_nginx_keys(paths: Sequence[str] | str, check_mode: bool = True) -> KeySet:
    """
    Keys from nginx key files, in C{ssl_session_ticket_key} order: the first
    file's key encrypts, the others decrypt only (and their tickets are
    renewed).

    @param check_mode: refuse files that group or others can access (the
        default; turn it off only when something else guards the file).
    @raise KeyFileError: naming the file and what is wrong.
    """
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise KeyFileError("no ticket key files given")
    keys = [nginx_key(read_key_data(p, check_mode), p) for p in paths]
    return _keyset(", ".join(paths), keys[0], keys[1:])


def write_nginx_key(path: str, key: TicketKey) -> None:
    """Write one key as an nginx key file, atomically, with mode 0600."""
    write_atomically(path, encode_nginx_key(key), prefix=_TEMPORARY)


# -- HAProxy -------------------------------------------------------------------


def haproxy_key(data: bytes) -> TicketKey:
    """Decode one HAProxy key (48 or 80 bytes): name, AES key, HMAC key."""
    half = (len(data) - 16) // 2
    return TicketKey(
        name=data[:16], aes_key=data[16 : 16 + half], hmac_key=data[16 + half :]
    )


def encode_haproxy_key(key: TicketKey) -> bytes:
    """One line of an HAProxy key file (without the newline)."""
    if len(key.aes_key) != len(key.hmac_key):
        raise ValueError("HAProxy keys have AES and HMAC keys of the same size")
    return base64.b64encode(key.name + key.aes_key + key.hmac_key)


def parse_haproxy_keys(data: bytes, path: str = "<keys>") -> KeySet:
    """
    Keys from the text of an HAProxy C{tls-ticket-keys} file.  Like HAProxy,
    blank lines and comments are refused, not skipped (HAProxy would refuse
    the same file, and the roles depend on the line count).
    """
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
                "per line and refuses empty lines: remove it)"
            )
        if line.startswith("#"):
            raise KeyFileError(
                f"{path}, line {number}: a comment; HAProxy key files have no "
                "comments (one base64 key per line): remove it"
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
    old, current, nxt = keys[-HAPROXY_KEYS:]
    # HAProxy: the second-to-last encrypts, the last is the next key.
    return _keyset(path, current, decrypt_only=[old], pending=[nxt])


def load_haproxy_keys(path: str, check_mode: bool = True) -> KeySet:
    """
    Keys from an HAProxy C{tls-ticket-keys} file.

    @raise KeyFileError: naming the file, the line and what is wrong.
    """
    return parse_haproxy_keys(read_key_data(path, check_mode), path)


def haproxy_file_keys(keys: KeySet) -> list[TicketKey]:
    """
    The three keys of a L{KeySet}, in HAProxy file order (decrypt-only,
    encrypting, next); a missing role gets a new random key of the same size.
    """
    bits = len(keys.encrypting.aes_key)

    def new() -> TicketKey:
        return TicketKey(os.urandom(16), os.urandom(bits), os.urandom(bits))

    old = keys.decrypt_only[0] if keys.decrypt_only else new()
    nxt = keys.pending[0] if keys.pending else new()
    return [old, keys.encrypting, nxt]


def write_haproxy_keys(path: str, keys: Iterable[TicketKey]) -> None:
    """
    Write keys as an HAProxy key file, atomically, with mode 0600, oldest
    first: with three keys the middle one encrypts and the last is the next.

    @raise ValueError: fewer than three keys or keys of different sizes (a
        file HAProxy, and we, would refuse).
    """
    keys = list(keys)
    if len(keys) < HAPROXY_KEYS:
        raise ValueError(
            f"an HAProxy key file needs at least {HAPROXY_KEYS} keys, not {len(keys)}"
        )
    lines = [encode_haproxy_key(k) for k in keys]
    if len({len(line) for line in lines}) != 1:
        raise ValueError("the keys of an HAProxy key file must all be the same size")
    write_atomically(path, b"\n".join(lines) + b"\n", prefix=_TEMPORARY)


# -- either --------------------------------------------------------------------


def detect_format(data: bytes) -> str:
    """C{"nginx"} for exactly 48 or 80 bytes, else C{"haproxy"} (text)."""
    return "nginx" if len(data) in NGINX_SIZES else "haproxy"


def load_key_file(path: str, check_mode: bool = True) -> KeySet:
    """
    Read a ticket key file, recognising its format: a binary file of exactly
    48 or 80 bytes is an nginx key, anything else is read as HAProxy's base64
    lines.  (Three base64 lines are at least 194 bytes, so the two never
    overlap.)

    @param check_mode: refuse files that group or others can access (the
        default; turn it off only when something else guards the file).
    @raise KeyFileError: naming the file (and line) and what is wrong.
    """
    data = read_key_data(path, check_mode)
    if detect_format(data) == "nginx":
        return KeySet(nginx_key(data, path))
    return parse_haproxy_keys(data, path)
