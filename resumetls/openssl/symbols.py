"""
Finding the OpenSSL functions pyOpenSSL does not expose in cryptography's
own binary, and the process-wide L{route}.

cryptography links OpenSSL statically into C{_rust.abi3.so} and exports only
the bindings it uses.  The rest are present in the file as local symbols of
its ELF C{.symtab}.  We read that table once (with pyelftools; the offsets
are cached on disk keyed by the file's path, size and mtime, so a warm start
does not parse ELF), derive the load base from the runtime addresses of
three bindings cryptography I{does} expose (their cffi stubs C{_cffi_d_NAME}
are in the same table), and refuse to call anything unless all three agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading

from resumetls.openssl.errors import OpenSSLRouteUnavailable
from resumetls.openssl.ffi import rust_ffi, rust_lib
from resumetls.openssl.functions import SIGNATURES, STILL_WORKS
from resumetls.openssl.route import OpenSSLRoute

__all__ = [
    "ANCHORS",
    "anchor_address",
    "binary_path",
    "load_offsets",
    "read_symbols",
    "route",
    "self_check",
]

# Bump when the list of symbols or the cache file layout changes.
_CACHE_VERSION = 5

# The bindings cryptography exposes whose cffi stubs we use to find the base.
ANCHORS = ("SSL_CTX_get_timeout", "SSL_CTX_set_timeout", "i2d_SSL_SESSION")


def binary_path() -> str:
    """The file cryptography's OpenSSL was loaded from."""
    from cryptography.hazmat.bindings import _rust

    return os.path.realpath(_rust.__file__)


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return os.path.join(base, "resumetls")


def _wanted() -> list[str]:
    return sorted(set(SIGNATURES) | {"_cffi_d_" + a for a in ANCHORS})


def read_symbols(path: str) -> dict[str, int]:
    """
    Read the values of the symbols we want from the file's C{.symtab}.

    @raise OpenSSLRouteUnavailable: the file is not ELF or is stripped.
    """
    try:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
    except ImportError as e:  # pragma: no cover - declared dependency
        raise OpenSSLRouteUnavailable(f"pyelftools is not installed ({e})") from e
    wanted = set(_wanted())
    found: dict[str, int] = {}
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            symtab = elf.get_section_by_name(".symtab")
            if symtab is None:
                raise OpenSSLRouteUnavailable(
                    f"{path} has no symbol table (.symtab): the binary is stripped"
                )
            for sym in symtab.iter_symbols():
                name = sym.name
                if (
                    name in wanted
                    and sym["st_info"]["type"] == "STT_FUNC"
                    and sym["st_value"]
                ):
                    if name in found and found[name] != sym["st_value"]:
                        # Two local functions of that name: ambiguous, refuse.
                        found[name] = -1
                    else:
                        found[name] = sym["st_value"]
    except (OSError, ELFError) as e:
        raise OpenSSLRouteUnavailable(f"cannot read {path} as ELF: {e}") from e
    return {k: v for k, v in found.items() if v > 0}


def _file_identity(path: str) -> str:
    st = os.stat(path)
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def load_offsets(path: str) -> tuple[dict[str, int], bool]:
    """
    Symbol offsets of C{path}, from the on-disk cache when it matches the
    file's identity; returns (offsets, came_from_cache).
    """
    identity = _file_identity(path)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
    cache_file = os.path.join(_cache_dir(), f"offsets-{digest}.json")
    try:
        with open(cache_file) as f:
            data = json.load(f)
        if (
            data.get("version") == _CACHE_VERSION
            and data.get("identity") == identity
            and isinstance(data.get("symbols"), dict)
        ):
            return {str(k): int(v) for k, v in data["symbols"].items()}, True
    except (OSError, ValueError, TypeError):
        pass
    symbols = read_symbols(path)
    try:
        os.makedirs(_cache_dir(), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=_cache_dir(), suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(
                {"version": _CACHE_VERSION, "identity": identity, "symbols": symbols},
                f,
            )
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a read-only home only costs the next start another ELF read
    return symbols, False


def anchor_address(name: str) -> int:
    """The runtime address of a binding cryptography exposes."""
    return int(rust_ffi.cast("uintptr_t", rust_ffi.addressof(rust_lib, name)))


def self_check(symbols: dict[str, int]) -> int:
    """
    Derive the load base from three exposed bindings and require agreement.

    @return: the load base.
    @raise OpenSSLRouteUnavailable: not Linux, an anchor missing, the anchors
        disagree or the base is not page aligned.
    """
    if not sys.platform.startswith("linux"):
        raise OpenSSLRouteUnavailable(
            f"the symbol-table route is only implemented for Linux (ELF), "
            f"not {sys.platform}"
        )
    bases = {}
    for name in ANCHORS:
        stub = "_cffi_d_" + name
        if stub not in symbols:
            raise OpenSSLRouteUnavailable(
                f"the self-check symbol {stub} is not in the symbol table"
            )
        bases[name] = anchor_address(name) - symbols[stub]
    values = set(bases.values())
    if len(values) != 1:
        raise OpenSSLRouteUnavailable(
            "self-check failed: the three anchor bindings disagree on the load "
            "base of cryptography's binary ("
            + ", ".join(f"{k}: {v:#x}" for k, v in bases.items())
            + "); the file on disk is not the one loaded"
        )
    base = values.pop()
    if base <= 0 or base % 4096:
        raise OpenSSLRouteUnavailable(
            f"self-check failed: derived load base {base:#x} is not page aligned"
        )
    return base


_lock = threading.Lock()
_route: OpenSSLRoute | None = None
_failure: OpenSSLRouteUnavailable | None = None


def _build_route() -> OpenSSLRoute:
    path = binary_path()
    symbols, cached = load_offsets(path)
    try:
        base = self_check(symbols)
    except OpenSSLRouteUnavailable:
        if not cached:
            raise
        # A stale cache entry must not disable the route: re-read the file.
        symbols, cached = read_symbols(path), False
        base = self_check(symbols)
    return OpenSSLRoute(path, base, symbols, cached)


def route() -> OpenSSLRoute:
    """
    The process-wide L{OpenSSLRoute}, built (and self-checked) on first use.

    @raise OpenSSLRouteUnavailable: with a message saying what is missing and
        what still works.
    """
    global _route, _failure
    if _route is not None:
        return _route
    if _failure is not None:
        raise _failure
    with _lock:
        if _route is None and _failure is None:
            try:
                _route = _build_route()
            except OpenSSLRouteUnavailable as e:
                _failure = OpenSSLRouteUnavailable(f"{e}. {STILL_WORKS}")
    if _failure is not None:
        raise _failure
    assert _route is not None
    return _route
