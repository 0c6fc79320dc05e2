"""
C{openssl s_client} as a test's TLS client: run it once (in a thread), and
read from its output whether it resumed and which tickets it got.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

from twisted.internet.threads import deferToThread

from tests.support.ports import CLIENT_TIMEOUT

OPENSSL = shutil.which("openssl")

HTTP_REQUEST = b"GET /status.json HTTP/1.0\r\nHost: localhost\r\n\r\n"


def run_s_client(port: int, args: list[str], request: bytes | None = None) -> str:
    """
    Run C{openssl s_client} against 127.0.0.1:C{port} with C{args}, sending
    C{request}; returns everything it printed (stdout, then stderr).
    """
    proc = subprocess.run(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-ign_eof", *args],
        input=request or b"",
        capture_output=True,
        timeout=CLIENT_TIMEOUT,
    )
    return proc.stdout.decode("latin-1") + proc.stderr.decode("latin-1")


def parse_s_client(output: str) -> dict[str, Any]:
    """What s_client said: new or reused, and the server's info line."""
    m = re.search(r"^(New|Reused), (\S+), Cipher is (\S+)", output, re.M)
    if m is None:
        raise AssertionError(f"no handshake in s_client output:\n{output[-2000:]}")
    info = None
    for line in output.splitlines():
        if line.startswith("{") and '"resumed"' in line:
            info = json.loads(line)
    return {
        "reused": m.group(1) == "Reused",
        "version": m.group(2),
        "cipher": m.group(3),
        "server": info,
        "tickets": tickets_in(output),
    }


def s_client(
    port: int, sess_in: str | None, sess_out: str | None, *args: str, http=False
):
    """
    Run C{openssl s_client} once in a thread; fires with L{parse_s_client}'s
    dict.  With C{http}, it sends an HTTP request for C{/status.json} (the
    server then answers and closes).
    """
    argv = list(args)
    if sess_in:
        argv += ["-sess_in", sess_in]
    if sess_out:
        argv += ["-sess_out", sess_out]
    request = HTTP_REQUEST if http else None
    return deferToThread(lambda: parse_s_client(run_s_client(port, argv, request)))


def tickets_in(text: str) -> list[bytes]:
    """Every session ticket an C{openssl} session printout shows, in order."""
    found = []
    for m in re.finditer(r"TLS session ticket:\n((?:\s*[0-9a-f]{4} - .*\n?)+)", text):
        data = bytearray()
        for line in m.group(1).splitlines():
            hexpart = line.split(" - ", 1)[1][:48]
            data += bytes.fromhex(hexpart.replace("-", " ").replace(" ", ""))
        found.append(bytes(data))
    return found


def session_ticket(pem_path: str) -> bytes | None:
    """The ticket in a session file, as C{openssl sess_id -text} shows it."""
    out = subprocess.run(
        [OPENSSL, "sess_id", "-in", pem_path, "-text", "-noout"],
        capture_output=True,
        timeout=CLIENT_TIMEOUT,
        check=True,
    ).stdout.decode()
    found = tickets_in(out)
    return found[-1] if found else None
