"""
The two cffi worlds the route works between, and the crossing.

cryptography's ffi (L{rust_ffi}, L{rust_lib}) owns the handles pyOpenSSL
gives us (C{SSL_CTX *}, C{SSL *}, C{SSL_SESSION *}) and the bindings it
exposes; our own L{ffi} types the functions found in the symbol table (ABI
mode: pointers are C{void *}) and the C{OSSL_PARAM} struct.  A pointer
crosses by its address (L{as_void}).
"""

from __future__ import annotations

from typing import Any

import cffi
from cryptography.hazmat.bindings._rust import _openssl as _rust_openssl

__all__ = ["address", "as_void", "ffi", "i2d_bytes", "rust_ffi", "rust_lib"]

rust_lib: Any = _rust_openssl.lib
rust_ffi: Any = _rust_openssl.ffi

ffi = cffi.FFI()
ffi.cdef(
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

# The C callback types OpenSSL calls (see callbacks.py).
TICKET_CB = "int(void *, unsigned char *, unsigned char *, void *, void *, int)"
NEW_SESSION_CB = "int(void *, void *)"
GET_SESSION_CB = "void *(void *, const unsigned char *, int, int *)"
INFO_CB = "void(const void *, int, int)"


def address(cdata: Any) -> int:
    """The address held by a pointer of cryptography's ffi."""
    return int(rust_ffi.cast("uintptr_t", cdata))


def as_void(cdata: Any) -> Any:
    """A pointer of cryptography's ffi as a C{void *} of ours."""
    return ffi.cast("void *", address(cdata))


def i2d_bytes(i2d: Any, obj: Any) -> bytes:
    """
    The DER an C{i2d_*} function of ours writes for C{obj} (sized first,
    then written).

    @raise ValueError: when OpenSSL cannot serialize C{obj}.
    """
    size = i2d(obj, ffi.NULL)
    if size <= 0:
        raise ValueError("serialization failed")
    buf = ffi.new("unsigned char[]", size)
    p = ffi.new("unsigned char **", buf)
    if i2d(obj, p) != size:
        raise ValueError("serialization failed")
    return ffi.buffer(buf, size)[:]
