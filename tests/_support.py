"""
Shared helpers of the test suite: throwaway certificates, a resuming server on
a free loopback port, and real TLS clients (C{openssl s_client} and Python's
C{ssl} module) that report whether they resumed.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID
from twisted.internet import protocol, reactor
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.ssl import CertificateOptions
from twisted.internet.threads import deferToThread
from zope.interface import implementer

from resumetls import ResumingContextFactory, resumption_info

OPENSSL = shutil.which("openssl")
CLIENT_TIMEOUT = 10


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
    if key is None and kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif key is None:
        key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name, signing_key = (
        (issuer[0].subject, issuer[1]) if issuer is not None else (name, key)
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), True
        )
    if san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), False
        )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(signing_key, hashes.SHA256()), key


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
    os.makedirs(directory, exist_ok=True)
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


@implementer(IHandshakeListener)
class InfoProtocol(protocol.Protocol):
    """
    Once the handshake is done, write how this connection was set up as one
    JSON line, then close cleanly (or, with C{mode}, in other ways).
    """

    def handshakeCompleted(self) -> None:
        info = resumption_info(self.transport)
        self.factory.infos.append(info)
        line = json.dumps(
            {
                "resumed": info.resumed,
                "mechanism": info.mechanism,
                "version": info.version,
                "cipher": info.cipher,
            }
        )
        mode = self.factory.mode
        if mode == "wait":
            # Leave the closing to the client (it may close uncleanly).
            self.transport.write(line.encode() + b"\n")
        elif mode == "abort":
            self.transport.write(line.encode() + b"\n")
            # Let the handshake's last flight and the line go out first.
            reactor.callLater(0.2, self.transport.abortConnection)
        else:
            self.transport.write(line.encode() + b"\n")
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        pass


class InfoFactory(protocol.Factory):
    protocol = InfoProtocol

    def __init__(self, mode: str = "close") -> None:
        self.infos: list = []
        self.mode = mode


def options(kind: str = "ec", **kw: Any) -> CertificateOptions:
    cert, key = certificate(kind)
    return CertificateOptions(privateKey=key, certificate=cert, **kw)


async def listen(
    testcase: Any, factory: ResumingContextFactory, mode: str = "close"
) -> tuple[int, InfoFactory]:
    """Serve C{InfoProtocol} with C{factory} on a free loopback port."""
    app = InfoFactory(mode)
    endpoint = SSL4ServerEndpoint(reactor, 0, factory, interface="127.0.0.1")
    port = await endpoint.listen(app)
    testcase.addCleanup(port.stopListening)
    return port.getHost().port, app


# -- openssl s_client ------------------------------------------------------------


HTTP_REQUEST = b"GET /status.json HTTP/1.0\r\nHost: localhost\r\n\r\n"


def _s_client(port: int, args: list[str], request: bytes | None = None) -> str:
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
    return deferToThread(lambda: parse_s_client(_s_client(port, argv, request)))


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


# -- DER surgery on session files (forged tickets and session IDs) -------------


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


# -- Python's ssl module -----------------------------------------------------------


def python_context(version, no_ticket, cafile):
    """A client C{SSLContext}; sessions only resume within one context."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    ctx.minimum_version = version
    ctx.maximum_version = version
    if no_ticket:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def _python_client(port, ctx, session, clean):
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as raw:
        s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        line = b""
        try:
            while not line.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                line += chunk
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


# -- servers in subprocesses -----------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: Any = None, timeout: float = 20.0) -> None:
    """Wait until something accepts on 127.0.0.1:port (bounded)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"server exited with {proc.returncode}:\n{read_output(proc)}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {timeout}s")


def read_output(proc: Any) -> str:
    path = getattr(proc, "output_path", None)
    if path is None:
        return ""
    with open(path, errors="replace") as f:
        return f.read()


def environment(tmp: str) -> dict[str, str]:
    """An environment that finds this checkout and keeps files in C{tmp}."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["XDG_DATA_HOME"] = os.path.join(tmp, "data")
    env["XDG_CACHE_HOME"] = os.path.join(tmp, "cache")
    return env


def _drop_file_capabilities() -> None:
    """
    In a child about to exec: take away root's power to read and search any
    file (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so file modes apply to it.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_unprivileged(code: str) -> str:
    """
    Run Python C{code} with file modes applying to it (as root, without the
    capabilities that let root read every file) and this checkout first on
    the path, and return what it printed.  For tests of files a user cannot
    read.
    """
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": ROOT},
        preexec_fn=_drop_file_capabilities if os.geteuid() == 0 else None,
    )
    if proc.returncode != 0:
        raise AssertionError(f"exited with {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def start_process(testcase: Any, argv: list[str], port: int | None = None) -> Any:
    """Start a server process; stop it (TERM, then KILL) in cleanup."""
    import sys

    tmp = os.path.abspath(testcase.mktemp())
    os.makedirs(tmp)
    output_path = os.path.join(tmp, "output.log")
    out = open(output_path, "wb")  # noqa: SIM115 - closed in cleanup
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=tmp,
        env=environment(tmp),
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    proc.output_path = output_path
    proc.tmp = tmp

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        out.close()

    testcase.addCleanup(stop)
    if port is not None:
        wait_for_port(port, proc)
    return proc


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
