"""
C{resumetls probe HOST:PORT}: does this server resume TLS sessions, and how?

Connects several times per mechanism and reports, for TLS 1.2 session IDs,
TLS 1.2 tickets and TLS 1.3 tickets: whether a second connection resumes,
the ticket lifetime hint, whether tickets are renewed on resumption, and the
median handshake time full vs resumed.  Exit status: 0 when some mechanism
resumes, 1 when none does, 2 when the server cannot be probed.

This module is the command (arguments, table, JSON, exit status); the
handshakes and what they show are in L{resumetls.cli.probing}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import attrs

from resumetls.cli.probing import Outcome, ProbeError, run_probe


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}{unit}"
    return f"{value}{unit}"


def table(host: str, port: int, results: list[Outcome]) -> str:
    rows = [
        (
            "mechanism",
            "TLS",
            "resumes",
            "lifetime hint",
            "renewed",
            "full ms",
            "resumed ms",
            "note",
        )
    ]
    for r in results:
        rows.append(
            (
                r.mechanism,
                r.version,
                _fmt(r.resumes)
                + (f" ({r.resumed}/{r.attempts})" if r.attempts else ""),
                _fmt(r.lifetime_hint, " s"),
                _fmt(r.renewed),
                _fmt(r.full_ms),
                _fmt(r.resumed_ms),
                r.note,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"resumetls probe {host}:{port}"]
    for row in rows:
        lines.append(
            "  ".join(
                cell.ljust(w) for cell, w in zip(row, widths, strict=True)
            ).rstrip()
        )
    return "\n".join(lines) + "\n"


def _split(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not host:
        raise ProbeError(f"give HOST:PORT, not {target!r}")
    host = host.strip("[]")
    try:
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError
    except ValueError:
        raise ProbeError(f"{port!r} is not a port number") from None
    return host, number


_DESCRIPTION = (
    "Check whether the TLS server at HOST:PORT resumes sessions, and how: "
    "for TLS 1.2 session IDs, TLS 1.2 tickets and TLS 1.3 tickets, whether a "
    "second connection resumes, the ticket lifetime hint, whether tickets are "
    "renewed on resumption, and the median handshake time full vs resumed."
)
_EPILOG = (
    "Progress goes to stderr, one line per mechanism; the table (or JSON) to "
    "stdout. Exit status: 0 when some mechanism resumes, 1 when none does, 2 "
    "when the server cannot be probed."
)


class _Progress:
    """
    Progress on a stream (stderr): one line per mechanism, started before it
    is probed (so a slow server shows where it is) and completed with what
    it showed.  Nothing with C{--quiet}.
    """

    def __init__(self, stream: Any, quiet: bool) -> None:
        self.stream = stream
        self.quiet = quiet
        self.open = False

    def __call__(self, name: str, outcome: Outcome | None) -> None:
        if self.quiet:
            return
        if outcome is None:
            self.stream.write(f"probing {name}...")
            self.open = True
        else:
            self.stream.write(f" {_summary(outcome)}\n")
            self.open = False
        self.stream.flush()

    def interrupted(self) -> None:
        """End a started line (before an error message)."""
        if self.open:
            self.stream.write("\n")
            self.open = False


def _summary(r: Outcome) -> str:
    if not r.offered:
        return r.note
    verb = "resumes" if r.resumes else "does not resume"
    text = f"{verb} ({r.resumed}/{r.attempts})"
    return f"{text}; {r.note}" if r.note else text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="resumetls probe", description=_DESCRIPTION, epilog=_EPILOG
    )
    parser.add_argument("target", metavar="HOST:PORT")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the certificate (self-signed servers)",
    )
    parser.add_argument("--cafile", help="trust the CA certificates in this PEM file")
    parser.add_argument("--servername", help="SNI name (default: HOST)")
    parser.add_argument(
        "--count", type=int, default=5, help="handshakes of each kind (default 5)"
    )
    parser.add_argument(
        "--timeout", default="10", help="seconds per connection (default 10)"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress lines on stderr"
    )
    args = parser.parse_args(argv)
    progress = _Progress(sys.stderr, args.quiet)

    host, port = None, None
    try:
        timeout = _timeout(args.timeout)
        host, port = _split(args.target)
        sni = args.servername or ("" if _is_ip(host) else host)
        results = run_probe(
            host,
            port,
            sni,
            max(2, args.count),
            args.insecure,
            args.cafile,
            timeout,
            progress,
        )
    except ProbeError as e:
        progress.interrupted()
        sys.stderr.write(f"resumetls probe: {e}\n")
        if args.json:
            error = {"error": str(e), "target": args.target, "host": host, "port": port}
            _output(json.dumps(error, indent=2) + "\n")
        return 2
    if args.json:
        text = json.dumps(
            {
                "host": host,
                "port": port,
                "results": [
                    attrs.asdict(r, filter=lambda a, _: a.name != "failure")
                    for r in results
                ],
            },
            indent=2,
        )
        text += "\n"
    else:
        text = table(host, port, results)
    _output(text)
    return 0 if any(r.resumes for r in results) else 1


def _output(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # `resumetls probe ... | head`: the reader left; that is no error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _timeout(text: str) -> float:
    """C{--timeout}: seconds above 0, at most a day (select's limits)."""
    try:
        value = float(text)
        if not 0 < value <= 86400:
            raise ValueError
    except ValueError:
        raise ProbeError(
            f"--timeout must be a number of seconds above 0 and at most 86400, "
            f"not {text!r}"
        ) from None
    return value


def _is_ip(host: str) -> bool:
    """An IP address (no SNI for it), not a name."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
