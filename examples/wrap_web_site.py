"""
Wrap an existing twisted.web site with resumetls through the Python API, then
connect to it twice and show that the second connection resumed.

    python examples/wrap_web_site.py

The only resumetls line in the app is the one that wraps the
CertificateOptions it already had; everything else is plain Twisted (the
self-signed certificate comes from resumetls.certificates, the builder the
tests use).  The two clients are Python's
own ssl module, so nothing here vouches for itself.
"""

import datetime
import socket
import ssl
import tempfile

from twisted.internet import reactor, task, threads
from twisted.internet.defer import ensureDeferred
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.ssl import CertificateOptions
from twisted.web.resource import Resource
from twisted.web.server import Site

import resumetls
from resumetls.certificates import certificate_pem, issue_certificate


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
    """A certificate for localhost, valid for a day, and its key."""
    return issue_certificate(
        "localhost",
        dns_names=["localhost"],
        backdate=datetime.timedelta(minutes=5),
        valid_for=datetime.timedelta(days=1),
    )


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
    cafile.write(certificate_pem(cert))
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
