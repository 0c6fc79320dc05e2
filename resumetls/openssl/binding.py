"""
The OpenSSL functions pyOpenSSL does not expose, reached in cryptography's own
binary.  This is the only module of resumetls that touches raw pointers.

cryptography links OpenSSL statically into ``_rust.abi3.so`` and exports only
the bindings it uses.  The rest (ticket-key callbacks, session cache callbacks,
C{SSL_CTX_ctrl}, C{SSL_SESSION_get_id}, the EVP calls a ticket callback makes)
are present in the file as local symbols of its ELF C{.symtab}.  We read that
table once (with pyelftools; the offsets are cached on disk keyed by the file's
path, size and mtime, so a warm start does not parse ELF), derive the load base
from the runtime addresses of three bindings cryptography I{does} expose (their
cffi stubs C{_cffi_d_NAME} are in the same table), and refuse to call anything
unless all three agree.

Everything above this module speaks bytes, keys and sessions: L{route} returns
an L{OpenSSLRoute} (or raises L{OpenSSLRouteUnavailable}) whose methods take
pyOpenSSL C{Context}, C{Connection} and C{Session} objects.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
from typing import Any

import attrs
import cffi
from cryptography.hazmat.bindings._rust import _openssl as _rust_openssl
from OpenSSL import SSL

__all__ = [
    "OpenSSLRoute",
    "OpenSSLRouteUnavailable",
    "SessionDetails",
    "route",
    "route_report",
    "session_details",
    "session_from_der",
    "session_to_der",
]

_rlib: Any = _rust_openssl.lib
_rffi: Any = _rust_openssl.ffi

# Bump when the list of symbols or the cache file layout changes.
_CACHE_VERSION = 3

# The bindings cryptography exposes whose cffi stubs we use to find the base.
_ANCHORS = ("SSL_CTX_get_timeout", "SSL_CTX_set_timeout", "i2d_SSL_SESSION")

# Functions we call, with their C signatures (ABI mode: pointers are void*).
_SIGNATURES = {
    "SSL_CTX_set_tlsext_ticket_key_evp_cb": "int(*)(void *, void *)",
    "SSL_CTX_sess_set_new_cb": "void(*)(void *, void *)",
    "SSL_CTX_sess_set_get_cb": "void(*)(void *, void *)",
    "SSL_CTX_sess_set_remove_cb": "void(*)(void *, void *)",
    "SSL_CTX_set_info_callback": "void(*)(void *, void *)",
    "SSL_CTX_ctrl": "long(*)(void *, int, long, void *)",
    "SSL_CTX_set_num_tickets": "int(*)(void *, size_t)",
    "SSL_CTX_clear_options": "uint64_t(*)(void *, uint64_t)",
    "SSL_CTX_get0_certificate": "void *(*)(void *)",
    "SSL_session_reused": "int(*)(void *)",
    "SSL_version": "int(*)(void *)",
    "SSL_SESSION_get_id": "const unsigned char *(*)(void *, unsigned int *)",
    "SSL_SESSION_get_timeout": "long(*)(void *)",
    "SSL_SESSION_get_time": "long(*)(void *)",
    "SSL_SESSION_get_protocol_version": "int(*)(void *)",
    "SSL_SESSION_has_ticket": "int(*)(void *)",
    "SSL_SESSION_get_ticket_lifetime_hint": "unsigned long(*)(void *)",
    "SSL_SESSION_get0_ticket": "void(*)(void *, const unsigned char **, size_t *)",
    "SSL_SESSION_is_resumable": "int(*)(void *)",
    "SSL_SESSION_free": "void(*)(void *)",
    "i2d_SSL_SESSION": "int(*)(void *, unsigned char **)",
    "d2i_SSL_SESSION": "void *(*)(void **, const unsigned char **, long)",
    "i2d_X509": "int(*)(void *, unsigned char **)",
    "EVP_EncryptInit_ex": "int(*)(void *, void *, void *, const unsigned char *,"
    " const unsigned char *)",
    "EVP_DecryptInit_ex": "int(*)(void *, void *, void *, const unsigned char *,"
    " const unsigned char *)",
    "EVP_MAC_CTX_set_params": "int(*)(void *, OSSL_PARAM *)",
    "EVP_aes_128_cbc": "void *(*)(void)",
    "EVP_aes_256_cbc": "void *(*)(void)",
    # only for measuring the ticket callback (bench/)
    "EVP_CIPHER_CTX_new": "void *(*)(void)",
    "EVP_CIPHER_CTX_free": "void(*)(void *)",
    "EVP_MAC_fetch": "void *(*)(void *, const char *, const char *)",
    "EVP_MAC_free": "void(*)(void *)",
    "EVP_MAC_CTX_new": "void *(*)(void *)",
    "EVP_MAC_CTX_free": "void(*)(void *)",
}

# What each part of a server configuration calls.  L{server_functions} puts
# them together and L{OpenSSLRoute.require} checks them before a context is
# changed, so a missing function means a clean fallback, never a half-set
# context or a KeyError.
TICKET_CALLBACK = (
    "SSL_CTX_set_tlsext_ticket_key_evp_cb",
    "SSL_CTX_clear_options",
    "SSL_version",
    "EVP_EncryptInit_ex",
    "EVP_DecryptInit_ex",
    "EVP_MAC_CTX_set_params",
    "EVP_aes_128_cbc",
    "EVP_aes_256_cbc",
)
CACHE_CALLBACKS = (
    "SSL_CTX_sess_set_new_cb",
    "SSL_CTX_sess_set_get_cb",
    "SSL_SESSION_get_id",
    "SSL_SESSION_get_timeout",
    "SSL_version",
    "i2d_SSL_SESSION",
    "d2i_SSL_SESSION",
)
HANDSHAKE_OBSERVER = (
    "SSL_CTX_set_info_callback",
    "SSL_session_reused",
    "SSL_version",
)
# Every server configuration: the observer that counts handshakes, and the
# TLS 1.3 ticket count.
SERVER_COMMON = (*HANDSHAKE_OBSERVER, "SSL_CTX_set_num_tickets")
# The session ID context of a context factory without a C{certificate}
# attribute includes the certificate read from its context.
CONTEXT_CERTIFICATE = ("SSL_CTX_get0_certificate", "i2d_X509")


def _unique(*groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for g in groups for n in g))


# What each capability needs; reported by `resumetls doctor`.
CUSTOM_TICKET_KEYS = _unique(SERVER_COMMON, TICKET_CALLBACK)
EXTERNAL_CACHE = _unique(SERVER_COMMON, CACHE_CALLBACKS)

STILL_WORKS = (
    "Still works: TLS itself, and resumption through OpenSSL's built-in "
    "in-process session cache and its own per-process ticket keys; not "
    "available: custom ticket keys, key rotation, shared or external session "
    "caches."
)


def server_functions(
    *, tickets: bool, session_cache: bool, context_certificate: bool = False
) -> tuple[str, ...]:
    """
    Every function a server context with these settings calls through the
    route (for L{OpenSSLRoute.require}).
    """
    return _unique(
        SERVER_COMMON,
        TICKET_CALLBACK if tickets else (),
        CACHE_CALLBACKS if session_cache else (),
        CONTEXT_CERTIFICATE if context_certificate else (),
    )


# OpenSSL constants (stable ABI values, from ssl.h / core.h).
SSL_CTRL_SESS_NUMBER = 20
SSL_CTRL_SET_SESS_CACHE_SIZE = 42
SSL_CTRL_GET_SESS_CACHE_SIZE = 43
SSL_CB_HANDSHAKE_DONE = 0x20
SSL_OP_NO_TICKET = 0x00004000
TLS1_3_VERSION = 0x0304
_OSSL_PARAM_UTF8_STRING = 4
_OSSL_PARAM_OCTET_STRING = 5
_OSSL_PARAM_UNMODIFIED = 2**64 - 1

_ffi = cffi.FFI()
_ffi.cdef(
    """
    typedef struct {
        const char *key;
        unsigned int data_type;
        void *data;
        size_t data_size;
        size_t return_size;
    } OSSL_PARAM;
    """
)

_TICKET_CB = "int(void *, unsigned char *, unsigned char *, void *, void *, int)"
_NEW_CB = "int(void *, void *)"
_GET_CB = "void *(void *, const unsigned char *, int, int *)"
_INFO_CB = "void(const void *, int, int)"


class OpenSSLRouteUnavailable(RuntimeError):
    """
    The OpenSSL functions resumetls needs cannot be reached safely.

    The message says what is missing and what still works: without the route,
    servers keep OpenSSL's built-in in-process session cache and OpenSSL's own
    ticket keys (random per process, no rotation control, nothing shared).
    """


@attrs.frozen
class SessionDetails:
    """
    What a session says about itself (no secrets).  Fields are L{None} when
    the OpenSSL route is unavailable.
    """

    protocol_version: int | None
    has_ticket: bool | None
    ticket_lifetime_hint: int | None
    time: int | None
    timeout: int | None
    resumable: bool | None
    ticket: bytes | None = attrs.field(repr=False, default=None)


def _binary_path() -> str:
    from cryptography.hazmat.bindings import _rust

    return os.path.realpath(_rust.__file__)


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return os.path.join(base, "resumetls")


def _wanted() -> list[str]:
    return sorted(set(_SIGNATURES) | {"_cffi_d_" + a for a in _ANCHORS})


def _read_symbols(path: str) -> dict[str, int]:
    """
    Read the values of the symbols we want from the file's C{.symtab}.
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


def _load_offsets(path: str) -> tuple[dict[str, int], bool]:
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
    symbols = _read_symbols(path)
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


def _anchor_address(name: str) -> int:
    return int(_rffi.cast("uintptr_t", _rffi.addressof(_rlib, name)))


def _self_check(symbols: dict[str, int]) -> int:
    """
    Derive the load base from three exposed bindings and require agreement.
    """
    if not sys.platform.startswith("linux"):
        raise OpenSSLRouteUnavailable(
            f"the symbol-table route is only implemented for Linux (ELF), "
            f"not {sys.platform}"
        )
    bases = {}
    for name in _ANCHORS:
        stub = "_cffi_d_" + name
        if stub not in symbols:
            raise OpenSSLRouteUnavailable(
                f"the self-check symbol {stub} is not in the symbol table"
            )
        bases[name] = _anchor_address(name) - symbols[stub]
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


def _addr(cdata: Any) -> int:
    """The address held by a pointer of cryptography's ffi."""
    return int(_rffi.cast("uintptr_t", cdata))


class OpenSSLRoute:
    """
    Typed access to the OpenSSL functions pyOpenSSL does not expose.

    Build it through L{route}; it only exists after the self-check passed.
    """

    def __init__(self, path: str, base: int, symbols: dict[str, int], cached: bool):
        self.path = path
        self.base = base
        self.from_cache = cached
        self.missing = sorted(n for n in _SIGNATURES if n not in symbols)
        self._fn: dict[str, Any] = {}
        for name, sig in _SIGNATURES.items():
            if name in symbols:
                self._fn[name] = _ffi.cast(sig, base + symbols[name])
        f = self._fn
        self.custom_ticket_keys = all(n in f for n in CUSTOM_TICKET_KEYS)
        self.external_cache = all(n in f for n in EXTERNAL_CACHE)
        self.context_certificate = all(n in f for n in CONTEXT_CERTIFICATE)
        # Pre-fetched cipher objects (static, never freed).
        self._aes = {}
        if "EVP_aes_128_cbc" in f and "EVP_aes_256_cbc" in f:
            self._aes = {16: f["EVP_aes_128_cbc"](), 32: f["EVP_aes_256_cbc"]()}
        self._digest = _ffi.new("char[]", b"SHA256")
        self._param_key = _ffi.new("char[]", b"key")
        self._param_digest = _ffi.new("char[]", b"digest")

    def __repr__(self) -> str:
        return (
            f"<OpenSSLRoute {self.path} base={self.base:#x} "
            f"tickets={self.custom_ticket_keys} cache={self.external_cache}>"
        )

    def require(self, names: Any) -> None:
        """
        Check that every function in C{names} was resolved, before anything
        is changed.

        @raise OpenSSLRouteUnavailable: naming the missing functions and
            saying what still works.
        """
        missing = [n for n in dict.fromkeys(names) if n not in self._fn]
        if missing:
            verb = "was" if len(missing) == 1 else "were"
            raise OpenSSLRouteUnavailable(
                f"{', '.join(missing)} {verb} not found in {self.path}. " + STILL_WORKS
            )

    def function(self, name: str) -> Any:
        """A resolved function pointer; L{OpenSSLRouteUnavailable} if missing."""
        self.require([name])
        return self._fn[name]

    # -- contexts -------------------------------------------------------------

    @staticmethod
    def _ctx(context: SSL.Context) -> Any:
        return _ffi.cast("void *", _addr(context._context))

    def clear_options(self, context: SSL.Context, options: int) -> int:
        """C{SSL_CTX_clear_options}; pyOpenSSL only has C{set_options}."""
        return int(self.function("SSL_CTX_clear_options")(self._ctx(context), options))

    def set_num_tickets(self, context: SSL.Context, count: int) -> None:
        """How many TLS 1.3 tickets a full handshake issues."""
        if self.function("SSL_CTX_set_num_tickets")(self._ctx(context), count) != 1:
            raise ValueError(f"SSL_CTX_set_num_tickets({count}) failed")

    def set_internal_cache_size(self, context: SSL.Context, size: int) -> None:
        """C{SSL_CTX_sess_set_cache_size} (a macro over C{SSL_CTX_ctrl})."""
        self.function("SSL_CTX_ctrl")(
            self._ctx(context), SSL_CTRL_SET_SESS_CACHE_SIZE, size, _ffi.NULL
        )

    def internal_cache_entries(self, context: SSL.Context) -> int:
        """C{SSL_CTX_sess_number}: sessions in OpenSSL's own cache."""
        return int(
            self.function("SSL_CTX_ctrl")(
                self._ctx(context), SSL_CTRL_SESS_NUMBER, 0, _ffi.NULL
            )
        )

    def certificate_der(self, context: SSL.Context) -> bytes | None:
        """The DER of the context's current certificate, if any."""
        x509 = self.function("SSL_CTX_get0_certificate")(self._ctx(context))
        if x509 == _ffi.NULL:
            return None
        return self._i2d(self.function("i2d_X509"), x509)

    # -- sessions -------------------------------------------------------------

    @staticmethod
    def _i2d(i2d: Any, obj: Any) -> bytes:
        size = i2d(obj, _ffi.NULL)
        if size <= 0:
            raise ValueError("serialization failed")
        buf = _ffi.new("unsigned char[]", size)
        p = _ffi.new("unsigned char **", buf)
        if i2d(obj, p) != size:
            raise ValueError("serialization failed")
        return _ffi.buffer(buf, size)[:]

    def details(self, session_ptr: Any) -> SessionDetails:
        f = self._fn
        ticket = None
        if "SSL_SESSION_get0_ticket" in f:
            tick = _ffi.new("const unsigned char **")
            length = _ffi.new("size_t *")
            f["SSL_SESSION_get0_ticket"](session_ptr, tick, length)
            if tick[0] != _ffi.NULL and length[0]:
                ticket = _ffi.buffer(tick[0], length[0])[:]

        def call(name: str, cast: Any) -> Any:
            return cast(f[name](session_ptr)) if name in f else None

        return SessionDetails(
            protocol_version=call("SSL_SESSION_get_protocol_version", int),
            has_ticket=call("SSL_SESSION_has_ticket", bool),
            ticket_lifetime_hint=call("SSL_SESSION_get_ticket_lifetime_hint", int),
            time=call("SSL_SESSION_get_time", int),
            timeout=call("SSL_SESSION_get_timeout", int),
            resumable=call("SSL_SESSION_is_resumable", bool),
            ticket=ticket,
        )

    # -- server callbacks -----------------------------------------------------

    def _ticket_callback(self, hooks: Any, connection: Any, onerror: Any) -> Any:
        """The C{SSL_CTX_set_tlsext_ticket_key_evp_cb} callback, as cffi makes it."""
        encrypt_init = self._fn["EVP_EncryptInit_ex"]
        decrypt_init = self._fn["EVP_DecryptInit_ex"]
        ssl_version = self._fn["SSL_version"]
        set_params = self._fn["EVP_MAC_CTX_set_params"]
        aes = self._aes
        digest = self._digest
        pkey = self._param_key
        pdigest = self._param_digest
        null = _ffi.NULL
        buffer = _ffi.buffer
        urandom = os.urandom

        def set_mac(hctx: Any, hmac_key: bytes) -> int:
            params = _ffi.new("OSSL_PARAM[3]")
            params[0].key = pkey
            params[0].data_type = _OSSL_PARAM_OCTET_STRING
            keybuf = _ffi.from_buffer(hmac_key)
            params[0].data = keybuf
            params[0].data_size = len(hmac_key)
            params[0].return_size = _OSSL_PARAM_UNMODIFIED
            params[1].key = pdigest
            params[1].data_type = _OSSL_PARAM_UTF8_STRING
            params[1].data = digest
            params[1].data_size = 6
            params[1].return_size = _OSSL_PARAM_UNMODIFIED
            return set_params(hctx, params)

        def ticket_cb(ssl, key_name, iv, cctx, hctx, enc):  # noqa: ANN001
            conn = connection(ssl)
            if enc == 1:
                key = hooks.ticket_encrypt(conn)
                if key is None:
                    return 0
                fresh_iv = urandom(16)
                buffer(key_name, 16)[:] = key.name
                buffer(iv, 16)[:] = fresh_iv
                if (
                    encrypt_init(
                        cctx, aes[len(key.aes_key)], null, key.aes_key, fresh_iv
                    )
                    != 1
                ):
                    return -1
                if set_mac(hctx, key.hmac_key) != 1:
                    return -1
                return 1
            found = hooks.ticket_decrypt(conn, buffer(key_name, 16)[:])
            if found is None:
                return 0
            key, renew = found
            if set_mac(hctx, key.hmac_key) != 1:
                return 0
            if decrypt_init(cctx, aes[len(key.aes_key)], null, key.aes_key, iv) != 1:
                return 0
            # TLS 1.3 clients use each ticket once (RFC 8446, C.4) and OpenSSL
            # only sends a new ticket after resumption when asked to renew:
            # without it a client runs out of tickets after two resumptions.
            if renew or (ssl != null and ssl_version(ssl) == TLS1_3_VERSION):
                return 2
            return 1

        return _ffi.callback(_TICKET_CB, ticket_cb, error=0, onerror=onerror)

    def measure_ticket_callback(self, hooks: Any, iterations: int) -> dict[str, float]:
        """
        Microseconds per call of our ticket callback, entered from C the way
        OpenSSL enters it (real EVP cipher and MAC contexts), for encryption
        and for decryption.  For benchmarks; C{hooks} as in
        L{install_server_callbacks}.
        """
        import time

        self.require(
            _unique(
                TICKET_CALLBACK,
                (
                    "EVP_CIPHER_CTX_new",
                    "EVP_CIPHER_CTX_free",
                    "EVP_MAC_fetch",
                    "EVP_MAC_free",
                    "EVP_MAC_CTX_new",
                    "EVP_MAC_CTX_free",
                ),
            )
        )
        f = self._fn
        cb = self._ticket_callback(hooks, lambda ssl: None, None)
        call = _ffi.cast(f"{_TICKET_CB.replace('(', '(*)(', 1)}", cb)
        cctx = f["EVP_CIPHER_CTX_new"]()
        mac = f["EVP_MAC_fetch"](_ffi.NULL, b"HMAC", _ffi.NULL)
        hctx = f["EVP_MAC_CTX_new"](mac)
        name = _ffi.new("unsigned char[16]")
        iv = _ffi.new("unsigned char[16]")
        result = {}
        try:
            for label, enc in (("encrypt", 1), ("decrypt", 0)):
                start = time.perf_counter()
                for _ in range(iterations):
                    if call(_ffi.NULL, name, iv, cctx, hctx, enc) < 1:
                        raise RuntimeError(f"ticket callback failed ({label})")
                result[label] = (time.perf_counter() - start) / iterations * 1e6
        finally:
            f["EVP_MAC_CTX_free"](hctx)
            f["EVP_MAC_free"](mac)
            f["EVP_CIPHER_CTX_free"](cctx)
        return result

    def install_server_callbacks(
        self,
        context: SSL.Context,
        hooks: Any,
        *,
        tickets: bool,
        session_cache: bool,
        observe: bool = True,
    ) -> None:
        """
        Install the ticket-key callback, the external session cache callbacks
        and the handshake-done observer on a not yet used C{context}.

        C{hooks} provides, each receiving the pyOpenSSL C{Connection} (or
        L{None} when pyOpenSSL does not know it):

          - C{ticket_encrypt(conn) -> TicketKey | None}
          - C{ticket_decrypt(conn, name) -> (TicketKey, renew) | None}
          - C{session_new(conn, session_id, der, lifetime, version)}
          - C{session_get(conn, session_id) -> bytes | None}
          - C{handshake_done(conn, reused, version)}
          - C{session_corrupt(conn)}: the cache returned bytes that are
            not a session (a full handshake follows).
          - C{callback_failed(what, exception, traceback)}: an exception was raised inside a
            callback (already turned into a full handshake).

        Key material, session IDs and DER cross as L{bytes}; nothing else
        about pointers leaves this module.  The callbacks are kept alive on
        the context object.
        """
        self.require(
            _unique(
                TICKET_CALLBACK if tickets else (),
                CACHE_CALLBACKS if session_cache else (),
                HANDSHAKE_OBSERVER if observe else (),
            )
        )
        ctx = self._ctx(context)
        keep: list[Any] = []
        reverse = SSL.Connection._reverse_mapping

        def connection(ssl: Any) -> Any:
            return reverse.get(_rffi.cast("SSL *", int(_ffi.cast("uintptr_t", ssl))))

        def failed(what: str) -> Any:
            def onerror(exc_type: Any, exc: Any, tb: Any) -> None:
                try:
                    hooks.callback_failed(what, exc, tb)
                except Exception:  # noqa: BLE001 - never raise into OpenSSL
                    pass

            return onerror

        if tickets:
            cb = self._ticket_callback(hooks, connection, failed("ticket"))
            keep.append(cb)
            self.clear_options(context, SSL_OP_NO_TICKET)
            if self._fn["SSL_CTX_set_tlsext_ticket_key_evp_cb"](ctx, cb) != 1:
                raise OpenSSLRouteUnavailable(
                    "SSL_CTX_set_tlsext_ticket_key_evp_cb refused the callback"
                )

        if session_cache:
            get_id = self._fn["SSL_SESSION_get_id"]
            get_timeout = self._fn["SSL_SESSION_get_timeout"]
            ssl_version = self._fn["SSL_version"]
            i2d = self._fn["i2d_SSL_SESSION"]
            d2i = self._fn["d2i_SSL_SESSION"]
            i2d_bytes = self._i2d
            id_len = _ffi.new("unsigned int *")

            def new_cb(ssl, sess):  # noqa: ANN001
                if tickets and ssl_version(ssl) == TLS1_3_VERSION:
                    # Stateless TLS 1.3 tickets carry the session themselves;
                    # OpenSSL still reports each one here: skip the copy.
                    return 0
                ident = get_id(sess, id_len)
                if ident == _ffi.NULL or id_len[0] == 0:
                    return 0
                session_id = _ffi.buffer(ident, id_len[0])[:]
                hooks.session_new(
                    connection(ssl),
                    session_id,
                    i2d_bytes(i2d, sess),
                    int(get_timeout(sess)),
                    int(ssl_version(ssl)),
                )
                return 0  # we keep no reference to the SSL_SESSION

            def get_cb(ssl, data, length, copy):  # noqa: ANN001
                copy[0] = 0  # the reference we return is OpenSSL's to keep
                if length <= 0 or length > 32:
                    return _ffi.NULL
                der = hooks.session_get(connection(ssl), _ffi.buffer(data, length)[:])
                if not der:
                    return _ffi.NULL
                buf = _ffi.from_buffer("unsigned char[]", der)
                p = _ffi.new("const unsigned char **", buf)
                sess = d2i(_ffi.NULL, p, len(der))
                if sess == _ffi.NULL:
                    _rlib.ERR_clear_error()  # keep pyOpenSSL's error queue clean
                    hooks.session_corrupt(connection(ssl))
                return sess

            new = _ffi.callback(_NEW_CB, new_cb, error=0, onerror=failed("session-new"))
            get = _ffi.callback(
                _GET_CB, get_cb, error=_ffi.NULL, onerror=failed("session-get")
            )
            keep += [new, get]
            self._fn["SSL_CTX_sess_set_new_cb"](ctx, new)
            self._fn["SSL_CTX_sess_set_get_cb"](ctx, get)

        if observe:
            reused = self._fn["SSL_session_reused"]
            ssl_version = self._fn["SSL_version"]

            def info_cb(ssl, where, ret):  # noqa: ANN001
                if where & SSL_CB_HANDSHAKE_DONE:
                    hooks.handshake_done(
                        connection(ssl), bool(reused(ssl)), int(ssl_version(ssl))
                    )

            info = _ffi.callback(_INFO_CB, info_cb, onerror=failed("info"))
            keep.append(info)
            self._fn["SSL_CTX_set_info_callback"](ctx, info)

        # Keep the callbacks alive as long as the context.
        context._resumetls_callbacks = keep  # type: ignore[attr-defined]


_lock = threading.Lock()
_route: OpenSSLRoute | None = None
_failure: OpenSSLRouteUnavailable | None = None


def _build_route() -> OpenSSLRoute:
    path = _binary_path()
    symbols, cached = _load_offsets(path)
    try:
        base = _self_check(symbols)
    except OpenSSLRouteUnavailable:
        if not cached:
            raise
        # A stale cache entry must not disable the route: re-read the file.
        symbols, cached = _read_symbols(path), False
        base = _self_check(symbols)
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


def route_report() -> dict[str, Any]:
    """
    What this machine's OpenSSL allows, for `resumetls doctor` and status
    pages: version, binary, each function resolved or not, capabilities.
    """
    report: dict[str, Any] = {
        "openssl_version": _rffi.string(_rlib.OpenSSL_version(0)).decode(),
        "binary": _binary_path(),
    }
    try:
        r = route()
    except OpenSSLRouteUnavailable as e:
        report.update(
            available=False,
            reason=str(e),
            functions={n: False for n in sorted(_SIGNATURES)},
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
        functions={n: n not in r.missing for n in sorted(_SIGNATURES)},
        custom_ticket_keys=r.custom_ticket_keys,
        external_cache=r.external_cache,
        context_certificate=r.context_certificate,
    )
    return report


# -- sessions, through the bindings cryptography exposes ----------------------


def session_to_der(session: SSL.Session) -> bytes:
    """
    Serialize a pyOpenSSL C{Session} (C{i2d_SSL_SESSION}).  The result holds
    the session's master secret: treat it as a secret.
    """
    ptr = session._session
    size = _rlib.i2d_SSL_SESSION(ptr, _rffi.NULL)
    if size <= 0:
        raise ValueError("this session cannot be serialized")
    buf = _rffi.new("unsigned char[]", size)
    p = _rffi.new("unsigned char **", buf)
    if _rlib.i2d_SSL_SESSION(ptr, p) != size:
        raise ValueError("this session cannot be serialized")
    return _rffi.buffer(buf, size)[:]


def session_from_der(der: bytes, context: SSL.Context) -> SSL.Session:
    """
    Rebuild a C{Session} from DER, pinned to C{context} (pyOpenSSL only lets
    a connection use sessions of its own context).

    @raise ValueError: when C{der} is not a serialized session.
    """
    if not isinstance(der, bytes) or not der:
        raise ValueError("not a serialized TLS session")
    buf = _rffi.from_buffer("unsigned char[]", der)
    p = _rffi.new("const unsigned char **", buf)
    ptr = _rlib.d2i_SSL_SESSION(_rffi.NULL, p, len(der))
    if ptr == _rffi.NULL:
        _rlib.ERR_clear_error()
        raise ValueError("not a serialized TLS session")
    session = SSL.Session.__new__(SSL.Session)
    session._session = _rffi.gc(ptr, _rlib.SSL_SESSION_free)
    session._context = context
    return session


def session_details(session: SSL.Session) -> SessionDetails:
    """
    Protocol version, ticket presence and lifetime hint, time and timeout of
    a session; fields are L{None} when the OpenSSL route is unavailable.
    """
    try:
        r = route()
    except OpenSSLRouteUnavailable:
        return SessionDetails(None, None, None, None, None, None)
    return r.details(_ffi.cast("void *", _addr(session._session)))


def connection_reused(connection: SSL.Connection) -> bool:
    """C{SSL_session_reused} for a pyOpenSSL C{Connection}."""
    return bool(_rlib.SSL_session_reused(connection._ssl))
