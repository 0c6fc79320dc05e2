"""
The demo page: for the connection that carried the request, its TLS version,
cipher, whether it was resumed and how; and the server's counters.  C{GET /}
is HTML, C{GET /status.json} the same as JSON.  Every response closes its
connection, so reloading the page makes a new TLS connection, which resumes.
"""

from __future__ import annotations

import html
import json
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from resumetls.server.stats import (
    describe_mechanism,
    resumption_info,
    serving_factory,
)


def status(request: Any) -> dict[str, Any]:
    """
    What the demo shows, as plain data (no secrets).  Served without TLS
    (C{--listen tcp:…}) it says so, and shows the counters of the process's
    one resuming listener if there is exactly one.
    """
    try:
        info = resumption_info(request.transport)
        factory = serving_factory(request.transport)
    except TypeError:
        data: dict[str, Any] = {
            "connection": {
                "tls": False,
                "version": None,
                "cipher": None,
                "resumed": False,
                "mechanism": None,
                "mechanism_description": describe_mechanism(None),
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
            }
        }
    if factory is not None:
        data["server"] = factory.stats().as_dict()
        caps = factory.capabilities
        data["capabilities"] = {
            "custom_tickets": caps.custom_tickets,
            "external_cache": caps.external_cache,
            "reason": caps.reason,
        }
    return data


def _close(request: Any) -> None:
    request.setHeader(b"connection", b"close")
    request.setHeader(b"cache-control", b"no-store")
    request.channel.persistent = False


class StatusJSON(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        _close(request)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(status(request), indent=2, sort_keys=True).encode() + b"\n"


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>resumetls</title>{refresh}
<style>body{{font-family:sans-serif;max-width:42em;margin:2em auto}}
td,th{{padding:.2em .8em;text-align:left}} .yes{{color:#070}} .no{{color:#a50}}
</style></head><body>
<h1>resumetls</h1>
<p id="verdict" class="{cls}">This connection was <strong>{verdict}</strong>.</p>
<table>
<tr><th>TLS version</th><td id="version">{version}</td></tr>
<tr><th>cipher</th><td id="cipher">{cipher}</td></tr>
<tr><th>resumed</th><td id="resumed">{resumed}</td></tr>
<tr><th>mechanism</th><td id="mechanism">{mechanism}</td></tr>
</table>
<p>Every response closes its connection: reload the page and the next
connection should say <em>resumed</em>. (Browsers do not resume sessions
after a certificate warning was clicked through: trust the certificate, for
the development certificate start Chromium as the server's log says.)</p>
<h2>Server counters</h2>
<table>{counters}</table>
{warning}
<p><a href="/status.json">status.json</a></p>
</body></html>
"""


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
        data = status(request)
        conn = data["connection"]
        counters = "".join(
            f"<tr><th>{html.escape(k)}</th><td id='c-{html.escape(k)}'>{v}</td></tr>"
            for k, v in data.get("server", {}).items()
            if not isinstance(v, dict)
        )
        warning = ""
        caps = data.get("capabilities")
        if caps and caps["reason"]:
            warning = (
                "<p class='no'><strong>Degraded:</strong> "
                + html.escape(caps["reason"])
                + "</p>"
            )
        refresh = ""
        if request.args.get(b"again"):
            refresh = '<meta http-equiv="refresh" content="1; url=/">'
        mechanism_text = describe_mechanism(conn["mechanism"])
        if not conn["tls"]:
            verdict = "not TLS (plain TCP: nothing to resume)"
        elif conn["resumed"]:
            verdict = "resumed (" + mechanism_text + ")"
        else:
            verdict = "a full handshake"
        page = _PAGE.format(
            refresh=refresh,
            cls="yes" if conn["resumed"] else "no",
            verdict=html.escape(verdict),
            version=html.escape(str(conn["version"])),
            cipher=html.escape(str(conn["cipher"])),
            resumed="yes" if conn["resumed"] else "no",
            mechanism=html.escape(mechanism_text),
            counters=counters,
            warning=warning,
        )
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
