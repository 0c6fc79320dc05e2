"""
The demo page: for the connection that carried the request, whether it was
resumed and how, in words, with its TLS version and cipher; what resumption
saved; and the server's figures, grouped and named (the HTML is built in
L{resumetls.cli.demopage}).  C{GET /} is HTML, C{GET /status.json} the same
as JSON.  Every response closes its connection (HTTP/1.1: C{Connection:
close}; HTTP/2: a GOAWAY once the response is out), so reloading the page
makes a new TLS connection, which resumes.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from resumetls.cli import demopage
from resumetls.openssl import compat
from resumetls.server.stats import (
    describe_mechanism,
    resumption_info,
    serving_factory,
)

# An HTTP/2 connection is closed (GOAWAY) once it has been idle this long
# after a response: long enough for the response to be written out.
H2_LINGER = 0.25


def _tls_transport(request: Any) -> Any:
    """The transport under C{request}'s connection (HTTP/1.1 or HTTP/2)."""
    h2 = compat.http2_connection(request.channel)
    return h2.transport if h2 is not None else request.transport


def _protocol(transport: Any) -> str | None:
    """The protocol ALPN negotiated (C{"h2"}, C{"http/1.1"}), if any."""
    negotiated = getattr(transport, "negotiatedProtocol", None)
    return negotiated.decode("ascii", "replace") if negotiated else None


def _http_version(request: Any) -> str | None:
    """The request's HTTP version: C{"HTTP/1.1"}, C{"HTTP/2"}."""
    proto = getattr(request, "clientproto", None)
    return proto.decode("ascii", "replace") if proto else None


def status(request: Any) -> dict[str, Any]:
    """
    What the demo shows, as plain data (no secrets).  Served without TLS
    (C{--listen tcp:…}) it says so, and shows the counters of the process's
    one resuming listener if there is exactly one.
    """
    transport = _tls_transport(request)
    try:
        info = resumption_info(transport)
        factory = serving_factory(transport)
    except TypeError:
        data: dict[str, Any] = {
            "connection": {
                "tls": False,
                "version": None,
                "cipher": None,
                "resumed": False,
                "mechanism": None,
                "mechanism_description": describe_mechanism(None),
                "protocol": None,
                "http_version": _http_version(request),
            }
        }
        from resumetls.server import registry as _registry

        factories = _registry.factories()
        factory = factories[0] if len(factories) == 1 else None
    else:
        data = {
            "connection": {
                "tls": True,
                "version": info.version,
                "cipher": info.cipher,
                "resumed": info.resumed,
                "mechanism": info.mechanism,
                "mechanism_description": describe_mechanism(info.mechanism),
                "protocol": _protocol(transport),
                "http_version": _http_version(request),
            }
        }
    if factory is not None:
        data["server"] = factory.stats().as_dict()
        server = data["server"]
        total = server["full_handshakes"] + server["resumed"]
        data["summary"] = {
            "handshakes": total,
            "resumed": server["resumed"],
            "resumed_share": server["resumed"] / total if total else None,
            "saved": demopage.saved_line(server),
        }
        from resumetls.server.sources import sources_status

        # The cache backend and key source in words, lookup figures.
        data["sources"] = sources_status(factory)
        caps = factory.capabilities
        data["capabilities"] = {
            "custom_tickets": caps.custom_tickets,
            "external_cache": caps.external_cache,
            "reason": caps.reason,
        }
    from resumetls.workers import status as _workers

    worker = _workers.connection_origin(transport)
    if worker is not None:
        # twist resumetls --workers: who served this, and the whole server.
        data["connection"]["worker"] = worker
        whole = _workers.server_status()
        if whole is not None:
            data["workers"] = whole
    return data


def _close(request: Any) -> None:
    """
    Close the connection once this response is out: C{Connection: close} in
    HTTP/1.1; in HTTP/2, whose connections carry many requests, the
    connection sends a GOAWAY and closes once idle for L{H2_LINGER} seconds.
    """
    request.setHeader(b"cache-control", b"no-store")
    h2 = compat.http2_connection(request.channel)
    if h2 is not None:
        h2.setTimeout(H2_LINGER)
        return
    request.setHeader(b"connection", b"close")
    request.channel.persistent = False


class StatusJSON(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        _close(request)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(status(request), indent=2, sort_keys=True).encode() + b"\n"


class DemoPage(Resource):
    """C{/} (and C{/status.json} below it)."""

    def __init__(self) -> None:
        super().__init__()
        self.putChild(b"status.json", StatusJSON())

    def getChild(self, path: bytes, request: Any) -> Resource:
        if path == b"":
            return self
        return super().getChild(path, request)

    def render_GET(self, request: Any) -> bytes:
        _close(request)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        page = demopage.render(status(request), refresh=bool(request.args.get(b"again")))
        return page.encode("utf-8")


class _ClosingRequest(Request):
    """Every response of the demo closes its connection (404s included)."""

    def process(self) -> None:
        _close(self)
        super().process()


# Browsers open connections ahead of need (preconnects) and keep them idle;
# a reload that used one would show its (full) handshake, not a resumed one.
# The demo closes connections that have sent no request for this long, so a
# reload a few seconds later makes a new connection, which resumes.
IDLE_TIMEOUT = 2.0


def demo_site() -> Site:
    """
    The demo as a C{Site} whose every response closes its connection, and
    which closes connections idle for L{IDLE_TIMEOUT} seconds.
    """
    site = Site(DemoPage(), timeout=IDLE_TIMEOUT)
    site.requestFactory = _ClosingRequest
    return site
