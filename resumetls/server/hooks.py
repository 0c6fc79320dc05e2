"""
The handshake hooks: what OpenSSL's callbacks (installed by
L{resumetls.openssl}) call during a handshake, as one L{IHandshakeHooks}
provider per context factory.  They hand out ticket keys from the key ring,
store and find sessions in the cache, count what happened, and record on
each connection how it was resumed (read back by
L{resumetls.server.stats.resumption_info}).

The kind of cache decides how a session is found: a cache that provides
L{IImmediateSessionCache} is asked inside the handshake; one that provides
only L{ISessionCache} answers with a L{Deferred}, so only an answer that has
already fired can be used, and a later one costs a full handshake, counted
as C{cache_lookups_late}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from resumetls.interfaces import (
    IHandshakeHooks,
    IImmediateSessionCache,
    ISessionCache,
)
from resumetls.openssl.functions import TLS1_3_VERSION
from resumetls.server.settings import ResumptionSettings
from resumetls.server.stats import (
    SESSION_ID,
    TICKET_TLS12,
    TICKET_TLS13,
    UNKNOWN,
    Counters,
    ResumptionStats,
    connection_state,
)

__all__ = ["HandshakeHooks", "check_cache"]

_log = Logger(namespace="resumetls")


def check_cache(cache: Any) -> bool:
    """
    Whether C{cache} answers at once (L{True}: it provides
    L{IImmediateSessionCache}) or with Deferreds (L{False}: it provides only
    L{ISessionCache}).

    @raise TypeError: when C{cache} provides neither interface.
    """
    if IImmediateSessionCache.providedBy(cache):
        return True
    if ISessionCache.providedBy(cache):
        return False
    raise TypeError(
        f"the session cache, a {type(cache).__module__}.{type(cache).__qualname__}, "
        "provides neither resumetls.interfaces.IImmediateSessionCache nor "
        "resumetls.interfaces.ISessionCache; declare the one it implements "
        "with zope.interface.implementer"
    )


@implementer(IHandshakeHooks)
class HandshakeHooks:
    """
    The L{IHandshakeHooks} of one context factory, and its counters.

    @param settings: the service's L{ResumptionSettings}.
    @param key_ring: the L{ITicketKeys} tickets are opened with, or L{None}
        when tickets are off.
    @param cache: an L{ISessionCache} (preferably an
        L{IImmediateSessionCache}), or L{None} when session IDs are off.
    @param key_prefix: prepended to every session ID, so services sharing a
        cache never see each other's sessions (C{key_prefix}; it changes
        with the certificate, L{ResumingContextFactory.replace_certificate}).

    @raise TypeError: when C{cache} provides neither cache interface.
    """

    def __init__(
        self,
        settings: ResumptionSettings,
        key_ring: Any,
        cache: Any,
        key_prefix: bytes,
    ) -> None:
        self.settings = settings
        self.key_ring = key_ring
        self.cache = cache
        self.counters = Counters()
        self.key_prefix = key_prefix
        self._immediate = check_cache(cache) if cache is not None else False
        # A HandshakePauser (resumetls.server.pause) when the factory pauses
        # handshakes for this Deferred cache: session_get answers from it.
        self.pauser: Any = None
        # Called as session_found(conn, key) when a lookup found a session
        # (key: the cache key, namespaced): where it came from can be noted
        # on the connection (resumetls.workers.status.note_origins).
        self.session_found: Callable[[Any, bytes], None] | None = None

    def stats(self) -> ResumptionStats:
        """The counters now, with the cache's and the key ring's figures."""
        return self.counters.snapshot(
            cache=self.cache.stats() if self.cache is not None else None,
            keys=self.key_ring.describe() if self.key_ring is not None else None,
        )

    # -- tickets -------------------------------------------------------------------

    def ticket_encrypt(self, conn: Any) -> Any:
        key = self.key_ring.encrypting_key()
        self.counters.tickets_issued += 1
        return key

    def ticket_decrypt(self, conn: Any, name: bytes) -> Any:
        found = self.key_ring.decrypting_key(name)
        if found is None:
            self._reject_ticket(conn)
            return None
        state = connection_state(conn)
        if state is not None:
            state.ticket_opened = True
            state.ticket_renew = found[1]
        return found

    def _reject_ticket(self, conn: Any) -> None:
        """Count a rejected ticket once a connection (see L{ConnectionState})."""
        state = connection_state(conn)
        if state is not None:
            if state.ticket_rejected:
                return
            state.ticket_rejected = True
        self.counters.tickets_rejected += 1

    # -- the session cache ----------------------------------------------------------

    def session_new(
        self, conn: Any, session_id: bytes, der: bytes, lifetime: int, version: int
    ) -> None:
        if version == TLS1_3_VERSION and self.settings.tickets:
            # Stateless TLS 1.3 tickets carry the session; a cache entry under
            # a session ID no client will ever present would only waste room.
            return
        self.counters.sessions_stored += 1
        key = self.key_prefix + session_id
        lifetime = min(lifetime, int(self.settings.session_timeout))
        if self._immediate:
            self.cache.store_now(key, der, lifetime)
        else:
            d = self.cache.store(key, der, lifetime)
            d.addErrback(self.cache_failed, "store")

    def session_get(self, conn: Any, session_id: bytes) -> bytes | None:
        key = self.key_prefix + session_id
        if self._immediate:
            der = self.cache.lookup_now(key)
        elif self.pauser is not None:
            der = self.pauser.answer(conn, key)
            if der is None:
                return None  # counted by the pauser: a miss, late or failed
        else:
            result: list[Any] = []
            d = self.cache.lookup(key)
            d.addCallbacks(
                result.append,
                lambda f: result.append(self.cache_failed(f, "lookup")),
            )
            if not result:
                # A networked cache that has not answered yet: the client gets
                # a full handshake rather than a stalled reactor.
                self.counters.cache_lookups_late += 1
                return None
            der = result[0]
        if der is None:
            self.counters.cache_misses += 1
            return None
        self.counters.cache_hits += 1
        state = connection_state(conn)
        if state is not None:
            state.cache_hit = True
        if self.session_found is not None:
            self.session_found(conn, key)
        return der

    def session_corrupt(self, conn: Any) -> None:
        state = connection_state(conn)
        if state is not None:
            state.cache_hit = False
        self.counters.cache_corrupt += 1
        _log.warn(
            "the session cache returned an entry that is not a TLS session; "
            "the client gets a full handshake",
            event="resumetls.cache.corrupt",
        )

    def cache_failed(self, failure: Any, what: str) -> None:
        """
        Count and log a failed cache operation (C{what}: C{"store"} or
        C{"lookup"}); the client gets a full handshake.  Also called by the
        L{resumetls.server.pause.HandshakePauser} for lookups it started.
        """
        self.counters.cache_errors += 1
        _log.warn(
            "session cache {what} failed: {error}; the client gets a full handshake",
            what=what,
            error=failure.getErrorMessage(),
            event="resumetls.cache.error",
        )
        return None

    # -- the end of a handshake ---------------------------------------------------

    def handshake_done(self, conn: Any, reused: bool, version: int) -> None:
        state = connection_state(conn)
        if state is not None:
            if state.counted:
                return  # TLS 1.3 servers report "done" again after tickets
            state.counted = True
        c = self.counters
        if not reused:
            c.full_handshakes += 1
            if state is not None and state.ticket_opened:
                self._reject_ticket(conn)  # named a key, but did not open or expired
            return
        if state is not None and state.ticket_opened:
            if version == TLS1_3_VERSION:
                state.mechanism = TICKET_TLS13
                c.resumed_ticket_tls13 += 1
            else:
                state.mechanism = TICKET_TLS12
                c.resumed_ticket_tls12 += 1
            if state.ticket_renew:
                c.tickets_renewed += 1
        elif state is not None and state.cache_hit:
            state.mechanism = SESSION_ID
            c.resumed_session_id += 1
        else:
            if state is not None:
                state.mechanism = UNKNOWN
            c.resumed_unknown += 1

    def callback_failed(self, what: str, exc: Any = None, tb: Any = None) -> None:
        from twisted.python.failure import Failure

        self.counters.callback_errors += 1
        failure = Failure(exc, type(exc), tb) if exc is not None else None
        _log.failure(
            "resumetls {what} callback failed; the client gets a full handshake",
            failure=failure,
            what=what,
            event="resumetls.callback.failed",
        )
