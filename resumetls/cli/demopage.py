"""
The demo page's HTML, built from the same data as C{/status.json}
(L{resumetls.cli.demo.status}): a verdict for the connection that carried
the request, in words; a line on what resumption saved; and the server's
figures grouped and named in words (handshakes, tickets, session cache,
ticket keys).

The figures are a list of sections made from the data
(L{resumetls.cli.demosections.SECTIONS}): a new part of the server adds its
figures there.
"""

from __future__ import annotations

import html
import time
from typing import Any

from resumetls.cli.demosections import Section, sections
from resumetls.server.stats import (
    SESSION_ID,
    TICKET_TLS12,
    TICKET_TLS13,
    UNKNOWN,
    describe_mechanism,
)

__all__ = ["render", "saved_line", "verdict"]

# -- the verdict ------------------------------------------------------------------

#: What each way of setting up a connection means, for a person.
EXPLAINED = {
    TICKET_TLS13: "Your browser presented a TLS 1.3 session ticket the server "
    "gave it on an earlier connection; the server opened it with its ticket "
    "key and skipped the certificate and its signature.",
    TICKET_TLS12: "Your browser presented a TLS 1.2 session ticket the server "
    "gave it on an earlier connection; the server opened it with its ticket "
    "key and skipped the certificate and the key exchange.",
    SESSION_ID: "Your browser presented the ID of an earlier session, and the "
    "server found that session in its session cache; it skipped the "
    "certificate and its private-key operation.",
    UNKNOWN: "OpenSSL resumed it without resumetls's callbacks (its built-in "
    "cache or tickets).",
    None: "The server sent its certificate and proved it holds the private "
    "key. Reload the page: the next connection should be resumed.",
}


def verdict(connection: dict[str, Any]) -> tuple[str, str, str]:
    """
    The connection's verdict: (CSS class, headline, explanation).
    """
    if not connection["tls"]:
        return (
            "plain",
            "This connection is not TLS",
            "It is plain TCP (--listen tcp:…): there is no TLS session to resume.",
        )
    mechanism = connection["mechanism"]
    if connection["resumed"]:
        return (
            "resumed",
            "This connection was resumed (" + describe_mechanism(mechanism) + ")",
            EXPLAINED.get(mechanism, EXPLAINED[UNKNOWN]),
        )
    return "full", "This connection made a full handshake", EXPLAINED[None]


def saved_line(server: dict[str, Any]) -> str:
    """What resumption saved, in one line: the share of handshakes resumed."""
    resumed = server.get("resumed", 0)
    total = server.get("full_handshakes", 0) + resumed
    if not total:
        return "No handshake yet."
    if not resumed:
        return (
            f"Resumed: none of {total} handshakes yet. A resumed one skips the "
            "certificate and the server's private-key operation."
        )
    return (
        f"Resumed: {resumed} of {total} handshakes ({100.0 * resumed / total:.0f}%). "
        "Each skipped the certificate and the server's private-key operation, "
        "the costly part of a handshake."
    )


# -- HTML -------------------------------------------------------------------------

_STYLE = """
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2327;
background:#f4f5f7;margin:0}
main{max-width:60em;margin:0 auto;padding:1.5em}
h1{font-size:1.3em;margin:0 0 .8em;color:#50575e;font-weight:600}
#verdict{border-radius:10px;padding:1.1em 1.4em;margin-bottom:1em;
border-left:8px solid}
#verdict.resumed{background:#e6f4ea;border-color:#1e8e3e}
#verdict.full{background:#fef7e0;border-color:#e37400}
#verdict.plain{background:#eceff1;border-color:#78909c}
#headline{font-size:1.6em;font-weight:700;margin:0 0 .3em}
#explanation{margin:0 0 .5em}
#connection{color:#50575e;margin:0;font-size:.95em}
#saved{font-size:1.05em;margin:0 0 1.2em}
#degraded{background:#fce8e6;border-left:8px solid #d93025;padding:.8em 1.2em;
border-radius:10px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(24em,1fr));gap:.8em}
section.figures{background:#fff;border-radius:10px;padding:.8em 1.2em;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
section.figures h2{font-size:1.05em;margin:.2em 0 .5em}
table{border-collapse:collapse;width:100%}
th{text-align:left;font-weight:normal;padding:.2em 0}
th small{color:#6b7280;font-size:.82em;margin-left:.5em}
td{text-align:right;font-variant-numeric:tabular-nums;font-weight:600;
padding:.2em 0 .2em 1em;white-space:nowrap}
tr+tr th,tr+tr td{border-top:1px solid #eef0f2}
footer{margin-top:1.2em;color:#6b7280;font-size:.9em}
"""


#: OpenSSL's names of TLS versions, as people write them.
_WORDS = {
    "TLSv1.2": "TLS 1.2",
    "TLSv1.3": "TLS 1.3",
}


def _words(name: Any) -> Any:
    return _WORDS.get(name, name)


def _e(value: Any) -> str:
    return html.escape(str(value))


def _html(section: Section) -> str:
    rows = "".join(
        f'<tr id="c-{_e(r.key)}"><th>{_e(r.label)}'
        + (f"<small>{_e(r.hint)}</small>" if r.hint else "")
        + f"</th><td>{_e(r.value)}</td></tr>"
        for r in section.rows
    )
    return (
        f'<section class="figures" id="s-{_e(section.key)}">'
        f"<h2>{_e(section.title)}</h2><table>{rows}</table></section>"
    )


def render(data: dict[str, Any], refresh: bool = False, now: float | None = None) -> str:
    """
    The page for the status data C{data}, as HTML text.

    @param refresh: reload once, to C{/} (C{/?again=1}).
    @param now: the time (for "next rotation in ..."); default: the clock's.
    """
    data = {**data, "now": time.time() if now is None else now}
    conn = data["connection"]
    cls, headline, explanation = verdict(conn)
    details = []
    if conn["tls"]:
        details = [
            f'<span id="version">{_e(_words(conn["version"]))}</span>',
            f'<span id="cipher">{_e(conn["cipher"])}</span>',
        ]
        if conn.get("http_version"):
            details.append(f'<span id="protocol">{_e(conn["http_version"])}</span>')
        if conn.get("worker"):
            from resumetls.workers.status import worker_words

            words = _e(worker_words(conn["worker"]))
            details.append(f'<span id="worker">{words}</span>')
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>resumetls: TLS session resumption</title>",
        '<meta http-equiv="refresh" content="1; url=/">' if refresh else "",
        f"<style>{_STYLE}</style></head><body><main>",
        "<h1>resumetls: TLS session resumption</h1>",
        f'<div id="verdict" class="{cls}" data-resumed="'
        f'{"yes" if conn["resumed"] else "no"}" data-mechanism="'
        f'{_e(conn["mechanism"] or "")}">',
        f'<p id="headline">{_e(headline)}</p>',
        f'<p id="explanation">{_e(explanation)}</p>',
        f'<p id="connection">{" · ".join(details)}</p>' if details else "",
        "</div>",
    ]
    caps = data.get("capabilities")
    if caps and caps.get("reason"):
        parts.append(
            '<p id="degraded"><strong>Degraded:</strong> '
            + _e(caps["reason"])
            + " (resumption works, with OpenSSL's own cache and per-process "
            "ticket keys)</p>"
        )
    if "server" in data:
        parts.append(f'<p id="saved">{_e(saved_line(data["server"]))}</p>')
    parts.append('<div class="grid">')
    parts.extend(_html(s) for s in sections(data))
    parts.append("</div>")
    parts.append(
        "<footer>Every response closes its connection, so a reload makes a new "
        "TLS connection, which should resume. Browsers do not resume after a "
        "certificate warning was clicked through: trust the certificate (for "
        "the development certificate, <code>resumetls devcert</code> prints "
        'the Chromium command). Machine-readable: <a href="/status.json">'
        "status.json</a>.</footer></main></body></html>"
    )
    return "".join(parts)
