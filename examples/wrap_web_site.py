"""
Wrap an existing twisted.web site with resumetls through the Python API, then
connect to it twice and show that the second connection resumed.

    python examples/wrap_web_site.py

The only resumetls line is the one that wraps the CertificateOptions the app
already had; everything else is plain Twisted.  The two clients are Python's
own ssl module, so nothing here vouches for itself.
"""

import datetime
import socket
import ssl
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor, task, threads
from twisted.internet.defer import ensureDeferred
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.ssl import CertificateOptions
from twisted.web.resource import Resource
from twisted.web.server import Site

import resumetls


class Hello(Resource):
    """The existing app: it also shows how its own connection was set up."""

    isLeaf = True

    def render_GET(self, request):
        info = resumetls.resumption_info(request.transport)
        request.setHeader(b"content-type", b"text/plain")
        return (
            f"hello over {info.version}: resumed={info.resumed} "
            f"mechanism={info.mechanism}\n"
        ).encode()


def self_signed():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def fetch_twice(port, cafile):
    """Two HTTPS requests with Python's ssl, offering the first session again."""
    ctx = ssl.create_default_context(cafile=cafile)
    session = None
    for attempt in ("first", "second"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(
                raw, server_hostname="localhost", session=session
            ) as s:
                s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
                body = b""
                while chunk := s.recv(4096):
                    body += chunk
                session = s.session
                said = body.split(b"\r\n\r\n", 1)[1].decode().strip()
                print(
                    f"{attempt} connection: client says session_reused="
                    f"{s.session_reused}; server says: {said}"
                )


async def main():
    cert, key = self_signed()
    cafile = tempfile.NamedTemporaryFile(suffix=".pem", delete=False)
    cafile.write(cert.public_bytes(serialization.Encoding.PEM))
    cafile.close()

    # What the app had before:
    options = CertificateOptions(privateKey=key, certificate=cert)
    # The one resumetls line: tickets with rotating keys, an in-memory
    # session cache, a per-service session ID context.
    factory = resumetls.ResumingContextFactory(options)

    endpoint = SSL4ServerEndpoint(reactor, 0, factory, interface="127.0.0.1")
    port = await endpoint.listen(Site(Hello()))
    await threads.deferToThread(fetch_twice, port.getHost().port, cafile.name)
    stats = factory.stats()
    print(
        f"server counters: full={stats.full_handshakes} "
        f"resumed_ticket_tls13={stats.resumed_ticket_tls13} "
        f"tickets_issued={stats.tickets_issued}"
    )
    await port.stopListening()
    if stats.resumed < 1:
        raise SystemExit("the second connection did not resume")


if __name__ == "__main__":
    task.react(lambda _reactor: ensureDeferred(main()))
