"""
The C callback classes (L{resumetls.openssl.callbacks}), entered from C the
way OpenSSL enters them: each finds the pyOpenSSL C{Connection}, answers
from the hooks, and turns an exception into its safe value and a report.
The whole handshakes are in C{tests.server.test_inmemory} and
C{tests.server.test_resumption}.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.trial.unittest import SynchronousTestCase

from resumetls import TicketKey
from resumetls.openssl import compat
from resumetls.openssl.callbacks import (
    GetSessionCallback,
    HandshakeObserver,
    NewSessionCallback,
    TicketKeyCallback,
)
from resumetls.openssl.ffi import (
    GET_SESSION_CB,
    INFO_CB,
    NEW_SESSION_CB,
    TICKET_CB,
    as_void,
    ffi,
)
from resumetls.openssl.functions import SSL_CB_HANDSHAKE_DONE, SSL_CB_LOOP
from resumetls.openssl.symbols import route


def _pointer(ctype):
    """The C function-pointer type of a callback type."""
    return ctype.replace("(", "(*)(", 1)


class _Hooks:
    """Records every call; C{fail} names a method that raises."""

    def __init__(self, fail=None, key=None, der=None):
        self.calls = []
        self.fail = fail
        self.key = key
        self.der = der

    def _record(self, name, *args):
        self.calls.append((name, *args))
        if name == self.fail:
            raise RuntimeError(f"{name} broke")

    def ticket_encrypt(self, conn):
        self._record("ticket_encrypt", conn)
        return self.key

    def ticket_decrypt(self, conn, name):
        self._record("ticket_decrypt", conn, name)
        return None if self.key is None else (self.key, False)

    def session_new(self, conn, session_id, der, lifetime, version):
        self._record("session_new", conn, session_id)

    def session_get(self, conn, session_id):
        self._record("session_get", conn, session_id)
        return self.der

    def session_corrupt(self, conn):
        self._record("session_corrupt", conn)

    def handshake_done(self, conn, reused, version):
        self._record("handshake_done", conn, reused, version)

    def callback_failed(self, what, exc, tb):
        self.calls.append(("callback_failed", what, type(exc)))


class _EVP:
    """The cipher and MAC contexts OpenSSL hands a ticket callback."""

    def __init__(self, testcase):
        fn = route().function
        self.cctx = fn("EVP_CIPHER_CTX_new")()
        mac = fn("EVP_MAC_fetch")(ffi.NULL, b"HMAC", ffi.NULL)
        self.hctx = fn("EVP_MAC_CTX_new")(mac)
        testcase.addCleanup(fn("EVP_CIPHER_CTX_free"), self.cctx)
        testcase.addCleanup(fn("EVP_MAC_free"), mac)
        testcase.addCleanup(fn("EVP_MAC_CTX_free"), self.hctx)


class TicketKeyCallbackTests(SynchronousTestCase):
    def call(self, hooks, enc, name=b"\x00" * 16):
        helper = TicketKeyCallback(route(), hooks)
        evp = _EVP(self)
        key_name = ffi.new("unsigned char[16]", name)
        iv = ffi.new("unsigned char[16]")
        call = ffi.cast(_pointer(TICKET_CB), helper.callback)
        result = call(ffi.NULL, key_name, iv, evp.cctx, evp.hctx, enc)
        return result, bytes(ffi.buffer(key_name, 16)), bytes(ffi.buffer(iv, 16))

    def test_encrypt(self):
        """The key's name goes into the ticket, with a fresh IV."""
        key = TicketKey.generate()
        hooks = _Hooks(key=key)
        result, name, iv = self.call(hooks, 1)
        self.assertEqual(result, 1)
        self.assertEqual(name, key.name)
        self.assertNotEqual(iv, b"\x00" * 16)
        self.assertEqual(hooks.calls, [("ticket_encrypt", None)])

    def test_no_key(self):
        """No key to encrypt with, or an unknown key name: 0 (no ticket)."""
        hooks = _Hooks()
        self.assertEqual(self.call(hooks, 1)[0], 0)
        self.assertEqual(self.call(hooks, 0, b"n" * 16)[0], 0)
        self.assertEqual(hooks.calls[-1], ("ticket_decrypt", None, b"n" * 16))

    def test_decrypt(self):
        """A known key opens the ticket (no connection: not TLS 1.3)."""
        key = TicketKey.generate()
        self.assertEqual(self.call(_Hooks(key=key), 0, key.name)[0], 1)

    def test_exception(self):
        """An exception is reported and means no ticket (0)."""
        hooks = _Hooks(fail="ticket_encrypt", key=TicketKey.generate())
        self.assertEqual(self.call(hooks, 1)[0], 0)
        self.assertEqual(hooks.calls[-1], ("callback_failed", "ticket", RuntimeError))


class SessionCallbackTests(SynchronousTestCase):
    def get(self, hooks, session_id=b"i" * 32):
        helper = GetSessionCallback(route(), hooks)
        data = ffi.new("unsigned char[]", session_id)
        copy = ffi.new("int *", 1)
        call = ffi.cast(_pointer(GET_SESSION_CB), helper.callback)
        result = call(ffi.NULL, data, len(session_id), copy)
        self.assertEqual(copy[0], 0)
        return result

    def test_get_miss(self):
        hooks = _Hooks()
        self.assertEqual(self.get(hooks), ffi.NULL)
        self.assertEqual(hooks.calls, [("session_get", None, b"i" * 32)])

    def test_get_too_long(self):
        """An ID longer than 32 bytes never reaches the cache."""
        hooks = _Hooks()
        self.assertEqual(self.get(hooks, b"i" * 33), ffi.NULL)
        self.assertEqual(hooks.calls, [])

    def test_get_corrupt(self):
        """Bytes that are not a session: NULL, reported as corrupt."""
        hooks = _Hooks(der=b"not a session")
        self.assertEqual(self.get(hooks), ffi.NULL)
        self.assertEqual(hooks.calls[-1], ("session_corrupt", None))

    def test_get_exception(self):
        hooks = _Hooks(fail="session_get")
        self.assertEqual(self.get(hooks), ffi.NULL)
        self.assertEqual(
            hooks.calls[-1], ("callback_failed", "session-get", RuntimeError)
        )

    def test_new_exception(self):
        """
        A failing new-session hook is reported; OpenSSL gets 0 (we keep no
        reference to the session).
        """
        hooks = _Hooks()
        helper = NewSessionCallback(route(), hooks, tickets=False)
        call = ffi.cast(_pointer(NEW_SESSION_CB), helper.callback)
        # Any failure inside the callback (here: reading the session ID).
        self.patch(helper, "_get_id", lambda sess, n: 1 / 0)
        self.assertEqual(call(ffi.NULL, ffi.NULL), 0)
        self.assertEqual(
            hooks.calls, [("callback_failed", "session-new", ZeroDivisionError)]
        )


class HandshakeObserverTests(SynchronousTestCase):
    def test_connection_found(self):
        """
        The C{SSL *} OpenSSL passes (a pointer of our ffi) finds pyOpenSSL's
        C{Connection}; only a finished handshake is reported.
        """
        hooks = _Hooks()
        helper = HandshakeObserver(route(), hooks)
        conn = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
        ssl = as_void(compat.connection_handle(conn))
        call = ffi.cast(_pointer(INFO_CB), helper.callback)
        call(ssl, SSL_CB_LOOP, 1)
        self.assertEqual(hooks.calls, [])
        call(ssl, SSL_CB_HANDSHAKE_DONE, 1)
        ((name, found, reused, version),) = hooks.calls
        self.assertIs(found, conn)
        self.assertFalse(reused)

    def test_exception(self):
        hooks = _Hooks(fail="handshake_done")
        helper = HandshakeObserver(route(), hooks)
        conn = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
        call = ffi.cast(_pointer(INFO_CB), helper.callback)
        call(as_void(compat.connection_handle(conn)), SSL_CB_HANDSHAKE_DONE, 1)
        self.assertEqual(hooks.calls[-1], ("callback_failed", "info", RuntimeError))

    def test_failing_report(self):
        """Even a failing C{callback_failed} never raises into OpenSSL."""
        hooks = _Hooks(fail="handshake_done")

        def broken(what, exc, tb):
            raise ValueError("broken reporter")

        hooks.callback_failed = broken
        helper = HandshakeObserver(route(), hooks)
        conn = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
        call = ffi.cast(_pointer(INFO_CB), helper.callback)
        call(as_void(compat.connection_handle(conn)), SSL_CB_HANDSHAKE_DONE, 1)
