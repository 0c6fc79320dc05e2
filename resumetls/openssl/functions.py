"""
What resumetls calls in OpenSSL: the C signatures of the functions reached
through the symbol table, the groups of them each capability needs, and the
OpenSSL constants (stable ABI values from C{ssl.h} / C{core.h}).

Pure data, no cffi, no pointers: cheap to import from anywhere (the client
and the probe take their info-callback constants from here).
"""

from __future__ import annotations

__all__ = [
    "BIO_CTRL_PENDING",
    "BUFFER_CHECKS",
    "CACHE_CALLBACKS",
    "CLIENT_HELLO_PAUSE",
    "CONTEXT_CERTIFICATE",
    "CUSTOM_TICKET_KEYS",
    "EXTERNAL_CACHE",
    "HANDSHAKE_OBSERVER",
    "SERVER_COMMON",
    "SIGNATURES",
    "SSL_CB_HANDSHAKE_DONE",
    "SSL_CB_LOOP",
    "STILL_WORKS",
    "TICKET_CALLBACK",
    "TICKET_STATE",
    "TLS1_3_VERSION",
    "server_functions",
]

# Functions we call, with their C signatures (ABI mode: pointers are void*).
SIGNATURES = {
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
    # Allocation of the EVP contexts OpenSSL hands a ticket callback; only
    # bench/hot_path.py calls these (to enter the callback the way OpenSSL
    # does).  Kept in the table so the cached offsets include them.
    "EVP_CIPHER_CTX_new": "void *(*)(void)",
    "EVP_CIPHER_CTX_free": "void(*)(void *)",
    "EVP_MAC_fetch": "void *(*)(void *, const char *, const char *)",
    "EVP_MAC_free": "void(*)(void *)",
    "EVP_MAC_CTX_new": "void *(*)(void *)",
    "EVP_MAC_CTX_free": "void(*)(void *)",
    # The client-hello callback: pausing a handshake while a networked
    # session cache answers (resumetls.openssl.clienthello).
    "SSL_CTX_set_client_hello_cb": "void(*)(void *, void *, void *)",
    "SSL_client_hello_get0_session_id": "size_t(*)(void *, const unsigned char **)",
    "SSL_client_hello_get0_ext": "int(*)(void *, unsigned int,"
    " const unsigned char **, size_t *)",
    # Whether a connection's memory BIOs hold bytes (resumetls.openssl.buffers).
    "BIO_ctrl": "long(*)(void *, int, long, void *)",
    "SSL_has_pending": "int(*)(void *)",
}

# What each part of a server configuration calls.  L{server_functions} puts
# them together and C{OpenSSLRoute.require} checks them before a context is
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
CLIENT_HELLO_PAUSE = (
    "SSL_CTX_set_client_hello_cb",
    "SSL_client_hello_get0_session_id",
    "SSL_client_hello_get0_ext",
)
# Optional: asking a connection's memory BIOs whether they hold bytes, so the
# TLS protocol skips reads that would only raise WantReadError.
BUFFER_CHECKS = ("BIO_ctrl", "SSL_has_pending")
# Every server configuration: the observer that counts handshakes, and the
# TLS 1.3 ticket count.
SERVER_COMMON = (*HANDSHAKE_OBSERVER, "SSL_CTX_set_num_tickets")
# The session ID context of a context factory without a C{certificate}
# attribute includes the certificate read from its context.
CONTEXT_CERTIFICATE = ("SSL_CTX_get0_certificate", "i2d_X509")


def unique(*groups: tuple[str, ...]) -> tuple[str, ...]:
    """The names of all C{groups}, each once, in first-seen order."""
    return tuple(dict.fromkeys(n for g in groups for n in g))


# What each capability needs; reported by `resumetls doctor`.
CUSTOM_TICKET_KEYS = unique(SERVER_COMMON, TICKET_CALLBACK)
EXTERNAL_CACHE = unique(SERVER_COMMON, CACHE_CALLBACKS)

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
    route (for C{OpenSSLRoute.require}).
    """
    return unique(
        SERVER_COMMON,
        TICKET_CALLBACK if tickets else (),
        CACHE_CALLBACKS if session_cache else (),
        CONTEXT_CERTIFICATE if context_certificate else (),
    )


# OpenSSL constants (stable ABI values, from ssl.h / core.h).
SSL_CTRL_SESS_NUMBER = 20
SSL_CTRL_SET_SESS_CACHE_SIZE = 42
SSL_CTRL_GET_SESS_CACHE_SIZE = 43
SSL_CTRL_GET_MAX_PROTO_VERSION = 131
BIO_CTRL_PENDING = 10
# Info-callback C{where} bits: a state-machine step, a finished handshake.
SSL_CB_LOOP = 0x01
SSL_CB_HANDSHAKE_DONE = 0x20
SSL_OP_NO_TICKET = 0x00004000
TLS1_3_VERSION = 0x0304
OSSL_PARAM_UTF8_STRING = 4
OSSL_PARAM_OCTET_STRING = 5
OSSL_PARAM_UNMODIFIED = 2**64 - 1

# The client-hello callback's answers (SSL_CLIENT_HELLO_*), and the TLS
# extensions it reads (RFC 5077, RFC 8446 4.2).
SSL_CLIENT_HELLO_SUCCESS = 1
SSL_CLIENT_HELLO_RETRY = -1
TLSEXT_SESSION_TICKET = 35
TLSEXT_PRE_SHARED_KEY = 41
TLSEXT_SUPPORTED_VERSIONS = 43

# Part of OpenSSL's state string (C{Connection.get_state_string()}) in the
# info callback when a client has just read a session ticket: on TLS 1.3 the
# moment its session becomes resumable ("SSLv3/TLS read server session
# ticket").
TICKET_STATE = b"read server session ticket"
