"""
L{route_report}: what this machine's OpenSSL lets resumetls do, as plain
data for C{resumetls doctor} and status pages.
"""

from __future__ import annotations

from typing import Any

from resumetls.openssl import symbols
from resumetls.openssl.errors import OpenSSLRouteUnavailable
from resumetls.openssl.ffi import rust_ffi, rust_lib
from resumetls.openssl.functions import SIGNATURES

__all__ = ["route_report"]


def route_report() -> dict[str, Any]:
    """
    What this machine's OpenSSL allows, for `resumetls doctor` and status
    pages: version, binary, each function resolved or not, capabilities.
    """
    report: dict[str, Any] = {
        "openssl_version": rust_ffi.string(rust_lib.OpenSSL_version(0)).decode(),
        "binary": symbols.binary_path(),
    }
    try:
        r = symbols.route()
    except OpenSSLRouteUnavailable as e:
        report.update(
            available=False,
            reason=str(e),
            functions={n: False for n in sorted(SIGNATURES)},
            custom_ticket_keys=False,
            external_cache=False,
            context_certificate=False,
        )
        return report
    report.update(
        available=True,
        reason=None,
        base=f"{r.base:#x}",
        offsets_from_cache=r.from_cache,
        functions={n: n not in r.missing for n in sorted(SIGNATURES)},
        custom_ticket_keys=r.custom_ticket_keys,
        external_cache=r.external_cache,
        context_certificate=r.context_certificate,
    )
    return report
