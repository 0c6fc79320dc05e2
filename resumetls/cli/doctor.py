"""
C{resumetls doctor}: what this machine's OpenSSL lets resumetls do.

Prints the OpenSSL version inside cryptography, the binary it lives in, every
function of the symbol-table route (resolved or not) and whether custom ticket
keys and an external session cache are available: each says "yes" only when
every function it needs resolved, the ones every server configuration calls
included (a server missing any of them falls back).  Exit status 0 when both
are, 1 when resumetls will fall back to OpenSSL's built-in cache.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="resumetls doctor",
        description="Report what this machine's OpenSSL allows resumetls to do.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    from resumetls.openssl.functions import (
        CONTEXT_CERTIFICATE,
        CUSTOM_TICKET_KEYS,
        EXTERNAL_CACHE,
    )
    from resumetls.openssl.report import route_report

    report = route_report()
    ok = report["custom_ticket_keys"] and report["external_cache"]
    if args.json:
        json.dump(report, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0 if ok else 1

    functions = report["functions"]

    def yes(flag: bool, needs: tuple[str, ...]) -> str:
        if flag:
            return "yes"
        missing = [n for n in needs if not functions.get(n)]
        if report["available"] and missing:
            return f"NO (missing: {', '.join(missing)})"
        return "NO"

    out = sys.stdout
    out.write(f"OpenSSL:             {report['openssl_version']}\n")
    out.write(f"binary:              {report['binary']}\n")
    if report["available"]:
        source = "cache" if report["offsets_from_cache"] else "symbol table"
        out.write(f"load base:           {report['base']} (offsets from {source})\n")
    else:
        out.write(f"route:               unavailable: {report['reason']}\n")
    out.write("functions:\n")
    for name, found in report["functions"].items():
        out.write(f"  {'ok     ' if found else 'MISSING'} {name}\n")
    out.write(
        f"custom ticket keys:  {yes(report['custom_ticket_keys'], CUSTOM_TICKET_KEYS)}\n"
    )
    out.write(f"external cache:      {yes(report['external_cache'], EXTERNAL_CACHE)}\n")
    out.write(
        "context certificate: "
        f"{yes(report['context_certificate'], CONTEXT_CERTIFICATE)} (needed "
        "only to wrap a context factory that is not a CertificateOptions)\n"
    )
    if not ok:
        out.write(
            "resumetls will serve with OpenSSL's built-in in-process session "
            "cache and per-process ticket keys.\n"
        )
    return 0 if ok else 1
