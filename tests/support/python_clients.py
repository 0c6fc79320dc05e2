"""
TLS clients made with Python's C{ssl} module (OpenSSL under another API):
one connection a call, run in a thread, reporting whether it resumed.
"""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any

from twisted.internet.threads import deferToThread

from tests.support.ports import CLIENT_TIMEOUT


def python_context(version, no_ticket, cafile):
    """A client C{SSLContext}; sessions only resume within one context."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    ctx.minimum_version = version
    ctx.maximum_version = version
    if no_ticket:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def read_line(s, line: bytearray) -> None:
    """
    Read the server's one-line reply from C{s} into C{line}, to its newline
    or the end of the stream; what arrived before an error stays in C{line}.
    """
    while not line.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        line += chunk


def _python_client(port, ctx, session, clean):
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as raw:
        s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        line = bytearray()
        try:
            read_line(s, line)
        except ConnectionResetError:
            pass  # the server aborted: its own record says what happened
        if clean:
            # Read to the server's close_notify, so TLS 1.3 tickets are in.
            try:
                while s.recv(4096):
                    pass
            except (ssl.SSLError, OSError):
                pass
        reused = s.session_reused
        new_session = s.session
        # Without clean=True: close the socket with no close_notify at all.
        s.close() if clean else raw.close()
    info = json.loads(line) if line.strip() else None
    return {"reused": reused, "session": new_session, "server": info}


def python_client(port, ctx, session=None, clean=True):
    """One connection with Python's C{ssl} module, in a thread."""
    return deferToThread(_python_client, port, ctx, session, clean)


_INSECURE = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE


def https_get(port: int, path: str = "/", session: Any = None, ctx: Any = None):
    """One HTTPS GET with Python's ssl (certificate not checked); returns
    (status line, body, ssl session, reused)."""
    if ctx is None:
        ctx = _INSECURE
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            s.sendall(
                f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            return head.split(b"\r\n")[0].decode(), body, s.session, s.session_reused
