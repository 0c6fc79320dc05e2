"""
The C callbacks OpenSSL calls during a server handshake, one small class
each, in the shape of pyOpenSSL's own (C{_CallbackExceptionHelper},
C{_VerifyHelper}, C{_ALPNSelectHelper} in C{OpenSSL/SSL.py}).

Each class keeps its cffi callback alive in L{_CallbackHelper.callback}
(OpenSSL only holds the C function pointer), turns the pyOpenSSL
C{Connection} out of the C{SSL *} it is given, calls the server's
L{resumetls.interfaces.IHandshakeHooks} with bytes, and never lets an
exception reach OpenSSL: cffi returns the class's safe value (a full
handshake follows) and the exception is reported to
C{hooks.callback_failed}.

These run inside OpenSSL on every handshake: what they use is bound to
attributes in C{__init__}, and the C types are checked once, by
C{OpenSSLRoute.require}, before any of them is built.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from resumetls.openssl import compat
from resumetls.openssl.ffi import (
    GET_SESSION_CB,
    INFO_CB,
    NEW_SESSION_CB,
    TICKET_CB,
    ffi,
    i2d_bytes,
    rust_lib,
)
from resumetls.openssl.functions import (
    OSSL_PARAM_OCTET_STRING,
    OSSL_PARAM_UNMODIFIED,
    OSSL_PARAM_UTF8_STRING,
    SSL_CB_HANDSHAKE_DONE,
    TLS1_3_VERSION,
)

if TYPE_CHECKING:
    from resumetls.interfaces import IHandshakeHooks
    from resumetls.openssl.route import OpenSSLRoute

__all__ = [
    "GetSessionCallback",
    "HandshakeObserver",
    "NewSessionCallback",
    "TicketKeyCallback",
]

_NULL = ffi.NULL
_buffer = ffi.buffer
_new = ffi.new
_from_buffer = ffi.from_buffer
_urandom = os.urandom
# Parameter arrays kept for this many HMAC keys at most (see TicketKeyCallback).
_MAX_MAC_PARAMS = 16


class _CallbackHelper:
    """
    One C callback: L{callback} is the cffi object to hand to OpenSSL (keep
    this helper alive as long as OpenSSL may call it).

    Subclasses set L{what} (the name C{callback_failed} receives), L{ctype}
    (the C function type), L{error} (what OpenSSL gets when the Python code
    raised: the answer that means "full handshake") and implement C{_call}.
    """

    what = ""
    ctype = ""
    error: Any = None

    def __init__(self, hooks: IHandshakeHooks) -> None:
        self._hooks = hooks
        # cffi pointers hash and compare by address whatever their ffi, so
        # the C{void *} OpenSSL gives us finds pyOpenSSL's C{SSL *} key.
        self._connection = compat.connection_by_handle().get
        self.callback = ffi.callback(
            self.ctype, self._call, error=self.error, onerror=self._onerror
        )

    def _call(self, *args: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _onerror(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """Report an exception raised in L{_call}; never raise into OpenSSL."""
        try:
            self._hooks.callback_failed(self.what, exc, tb)
        except Exception:  # noqa: BLE001 - never raise into OpenSSL
            pass


class TicketKeyCallback(_CallbackHelper):
    """
    C{SSL_CTX_set_tlsext_ticket_key_evp_cb}: set up the AES-CBC cipher and
    HMAC-SHA256 contexts OpenSSL seals or opens a ticket with, with the key
    the hooks choose (C{ticket_encrypt}) or the key a ticket names
    (C{ticket_decrypt}).

    Returns 1 (use), 2 (use and renew: a non-current key, or any TLS 1.3
    resumption), 0 (no ticket / unknown key: full handshake) or -1 (fatal,
    only when encryption set-up fails).
    """

    what = "ticket"
    ctype = TICKET_CB
    error = 0

    def __init__(self, route: OpenSSLRoute, hooks: IHandshakeHooks) -> None:
        self._encrypt_init = route.function("EVP_EncryptInit_ex")
        self._decrypt_init = route.function("EVP_DecryptInit_ex")
        self._ssl_version = route.function("SSL_version")
        self._set_params = route.function("EVP_MAC_CTX_set_params")
        # Static cipher objects (never freed), by AES key size.
        self._aes = {
            16: route.function("EVP_aes_128_cbc")(),
            32: route.function("EVP_aes_256_cbc")(),
        }
        self._digest = _new("char[]", b"SHA256")
        self._param_key = _new("char[]", b"key")
        self._param_digest = _new("char[]", b"digest")
        # HMAC key bytes -> its OSSL_PARAM array (which points into them):
        # built once a key, not once a handshake.  A ring holds a few keys.
        self._mac_params: dict[bytes, Any] = {}
        super().__init__(hooks)

    def _set_mac(self, hctx: Any, hmac_key: bytes) -> int:
        params = self._mac_params.get(hmac_key)
        if params is None:
            if len(self._mac_params) >= _MAX_MAC_PARAMS:
                self._mac_params.clear()  # keys rotated out: start again
            params = self._mac_params[hmac_key] = self._mac_param_array(hmac_key)
        return self._set_params(hctx, params[0])

    def _mac_param_array(self, hmac_key: bytes) -> tuple[Any, Any]:
        """The OSSL_PARAM array for one HMAC key, and the buffer it points to."""
        params = _new("OSSL_PARAM[3]")
        param = params[0]
        param.key = self._param_key
        param.data_type = OSSL_PARAM_OCTET_STRING
        keybuf = _from_buffer(hmac_key)
        param.data = keybuf
        param.data_size = len(hmac_key)
        param.return_size = OSSL_PARAM_UNMODIFIED
        param = params[1]
        param.key = self._param_digest
        param.data_type = OSSL_PARAM_UTF8_STRING
        param.data = self._digest
        param.data_size = 6
        param.return_size = OSSL_PARAM_UNMODIFIED
        return params, keybuf

    def _call(
        self, ssl: Any, key_name: Any, iv: Any, cctx: Any, hctx: Any, enc: int
    ) -> int:
        conn = self._connection(ssl)
        if enc == 1:
            key = self._hooks.ticket_encrypt(conn)
            if key is None:
                return 0
            fresh_iv = _urandom(16)
            _buffer(key_name, 16)[:] = key.name
            _buffer(iv, 16)[:] = fresh_iv
            aes_key = key.aes_key
            if (
                self._encrypt_init(
                    cctx, self._aes[len(aes_key)], _NULL, aes_key, fresh_iv
                )
                != 1
            ):
                return -1
            if self._set_mac(hctx, key.hmac_key) != 1:
                return -1
            return 1
        found = self._hooks.ticket_decrypt(conn, _buffer(key_name, 16)[:])
        if found is None:
            return 0
        key, renew = found
        if self._set_mac(hctx, key.hmac_key) != 1:
            return 0
        aes_key = key.aes_key
        if self._decrypt_init(cctx, self._aes[len(aes_key)], _NULL, aes_key, iv) != 1:
            return 0
        # TLS 1.3 clients use each ticket once (RFC 8446, C.4) and OpenSSL
        # only sends a new ticket after resumption when asked to renew:
        # without it a client runs out of tickets after two resumptions.
        if renew or (ssl != _NULL and self._ssl_version(ssl) == TLS1_3_VERSION):
            return 2
        return 1


class NewSessionCallback(_CallbackHelper):
    """
    C{SSL_CTX_sess_set_new_cb}: hand a new session (ID, DER, lifetime,
    version) to C{hooks.session_new}.  Returns 0: we keep no reference to
    the C{SSL_SESSION}.

    With C{tickets} on, TLS 1.3 sessions are skipped: stateless tickets carry
    the session themselves, and OpenSSL still reports each one here.
    """

    what = "session-new"
    ctype = NEW_SESSION_CB
    error = 0

    def __init__(
        self, route: OpenSSLRoute, hooks: IHandshakeHooks, *, tickets: bool
    ) -> None:
        self._tickets = tickets
        self._get_id = route.function("SSL_SESSION_get_id")
        self._get_timeout = route.function("SSL_SESSION_get_timeout")
        self._ssl_version = route.function("SSL_version")
        self._i2d = route.function("i2d_SSL_SESSION")
        self._id_len = _new("unsigned int *")
        super().__init__(hooks)

    def _call(self, ssl: Any, sess: Any) -> int:
        ssl_version = self._ssl_version
        if self._tickets and ssl_version(ssl) == TLS1_3_VERSION:
            return 0
        id_len = self._id_len
        ident = self._get_id(sess, id_len)
        if ident == _NULL or id_len[0] == 0:
            return 0
        self._hooks.session_new(
            self._connection(ssl),
            _buffer(ident, id_len[0])[:],
            i2d_bytes(self._i2d, sess),
            int(self._get_timeout(sess)),
            int(ssl_version(ssl)),
        )
        return 0


class GetSessionCallback(_CallbackHelper):
    """
    C{SSL_CTX_sess_set_get_cb}: the session a client offers by ID (or TLS 1.3
    stateful ticket), from C{hooks.session_get} as DER.  Returns a new
    C{SSL_SESSION *} that OpenSSL keeps, or NULL for a full handshake; bytes
    that are not a session are reported to C{hooks.session_corrupt}.
    """

    what = "session-get"
    ctype = GET_SESSION_CB
    error = _NULL

    def __init__(self, route: OpenSSLRoute, hooks: IHandshakeHooks) -> None:
        self._d2i = route.function("d2i_SSL_SESSION")
        super().__init__(hooks)

    def _call(self, ssl: Any, data: Any, length: int, copy: Any) -> Any:
        copy[0] = 0  # the reference we return is OpenSSL's to keep
        if length <= 0 or length > 32:
            return _NULL
        der = self._hooks.session_get(self._connection(ssl), _buffer(data, length)[:])
        if not der:
            return _NULL
        buf = _from_buffer("unsigned char[]", der)
        p = _new("const unsigned char **", buf)
        sess = self._d2i(_NULL, p, len(der))
        if sess == _NULL:
            rust_lib.ERR_clear_error()  # keep pyOpenSSL's error queue clean
            self._hooks.session_corrupt(self._connection(ssl))
        return sess


class HandshakeObserver(_CallbackHelper):
    """
    C{SSL_CTX_set_info_callback}: tell C{hooks.handshake_done} when a
    handshake completes, whether it was resumed and its version.

    OpenSSL calls an info callback at every state change (about 14 times a
    handshake, each a crossing from C into Python) to say "done" once.  A
    TLS protocol that sees its handshake complete can call L{report}
    instead, and the callback is set on the context (L{install}) only once
    connections are made that nothing else reports.
    """

    what = "info"
    ctype = INFO_CB

    def __init__(
        self, route: OpenSSLRoute, hooks: IHandshakeHooks, ctx: Any = None
    ) -> None:
        self._reused = route.function("SSL_session_reused")
        self._ssl_version = route.function("SSL_version")
        self._ctx = ctx
        self._set_info = route.function("SSL_CTX_set_info_callback")
        self.installed = False
        super().__init__(hooks)

    def install(self) -> None:
        """Set this observer as its context's info callback (once)."""
        if not self.installed:
            self.installed = True
            self._set_info(self._ctx, self.callback)

    def report(self, conn: Any) -> None:
        """
        C{conn}'s handshake completed (seen by its TLS protocol): what the
        info callback does at "done".  Never raises (see C{_onerror}).
        """
        try:
            ssl = compat.connection_handle(conn)
            self._hooks.handshake_done(
                conn, bool(self._reused(ssl)), int(self._ssl_version(ssl))
            )
        except Exception as e:  # noqa: BLE001 - reported, as from C
            self._onerror(type(e), e, e.__traceback__)

    def _call(self, ssl: Any, where: int, ret: int) -> None:
        if where & SSL_CB_HANDSHAKE_DONE:
            self._hooks.handshake_done(
                self._connection(ssl),
                bool(self._reused(ssl)),
                int(self._ssl_version(ssl)),
            )
