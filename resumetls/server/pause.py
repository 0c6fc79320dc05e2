"""
Pausing a handshake while a networked session cache answers.

A cache that answers with L{Deferred}s (L{ISessionCache} without
L{IImmediateSessionCache}: Redis) cannot be waited on inside OpenSSL's
get-session callback.  Instead, the client-hello callback
(L{resumetls.openssl.clienthello}) sees what the client offers; when it
offers a TLS 1.2 session ID (and no ticket one of our keys opens) or a TLS
1.3 stateful ticket, L{HandshakePauser} starts the lookup and pauses that
handshake.  Other connections go on meanwhile.  When the answer arrives (or
the lookup budget runs out: a full handshake, counted as late) the handshake
is driven again, the client-hello callback lets it go on, and the
get-session callback answers from the connection's slot
(L{HandshakePauser.answer}).

pyOpenSSL reports the pause as C{SSL.Error([])}, which Twisted's TLS
transport would read as EOF: L{PausableConnection} turns it into
C{WantReadError}.  A L{CircuitBreaker} stops pausing while the cache keeps
failing or answering late, and tries again after a cool-down; a cache that
says it is not connected (an C{available()} method returning L{False}) is
not waited on at all.
"""

from __future__ import annotations

import bisect
import weakref
from typing import Any

import attrs
from OpenSSL import SSL
from twisted.logger import Logger
from twisted.python.failure import Failure

from resumetls.openssl import compat

__all__ = ["CircuitBreaker", "HandshakePauser", "PausableConnection"]

_log = Logger(namespace="resumetls")

#: Upper bounds (seconds) of the lookup-latency histogram's buckets.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
#: The longest a session ID (or TLS 1.3 stateful ticket identity) can be.
_MAX_ID = 32
#: What L{HandshakePauser.figures} counts.
_COUNTS = (
    "paused",
    "hits",
    "misses",
    "late",
    "late_answers",
    "errors",
    "skipped_down",
    "skipped_busy",
    "not_ours",
    "abandoned",
    "unprefetched",
)


class PausableConnection(SSL.Connection):
    """
    A pyOpenSSL C{Connection} whose handshake can wait for a session
    lookup: while its lookup is pending, C{do_handshake} raises
    C{WantReadError} (more data wanted) instead of pyOpenSSL's empty
    C{SSL.Error} (which Twisted reads as EOF).  Made by re-classing the
    connection the wrapped options created (it adds no state to its layout).
    """

    _resumetls_lookup: Any = None
    _resumetls_protocol: Any = None

    def do_handshake(self) -> None:
        try:
            return SSL.Connection.do_handshake(self)
        except SSL.WantReadError:
            raise
        except SSL.Error as e:
            lookup = self._resumetls_lookup
            if lookup is not None and lookup.pending and not e.args[0]:
                raise SSL.WantReadError() from None
            raise


class CircuitBreaker:
    """
    No pauses while the cache keeps failing: after C{threshold} failures in
    a row (late or failed lookups) the circuit opens for C{cooldown}
    seconds; then one lookup may pause again (half open), and its success
    closes the circuit.
    """

    def __init__(self, clock: Any, threshold: int = 3, cooldown: float = 5.0) -> None:
        self._clock = clock
        self.threshold = threshold
        self.cooldown = cooldown
        self.state = "closed"
        self.failures = 0
        self.opened = 0
        self._until = 0.0

    def allows(self) -> bool:
        if self.state == "open":
            if self._clock.seconds() < self._until:
                return False
            self.state = "half_open"
            return True
        return True

    def success(self) -> None:
        self.failures = 0
        self.state = "closed"

    def failure(self) -> None:
        self.failures += 1
        if self.state == "half_open" or self.failures >= self.threshold:
            if self.state != "open":
                self.opened += 1
                _log.warn(
                    "session lookups keep failing or answering late; handshakes "
                    "do not wait for the session cache for {cooldown:g}s",
                    cooldown=self.cooldown,
                    event="resumetls.cache.circuit_open",
                )
            self.state = "open"
            self._until = self._clock.seconds() + self.cooldown


@attrs.define(repr=False)
class _Lookup:
    """One connection's lookup: its state, and what it found (never shown)."""

    key: bytes
    started: float
    pending: bool = False
    done: bool = False
    late: bool = False
    failed: bool = False
    der: bytes | None = None
    timer: Any = None


class HandshakePauser:
    """
    Starts session lookups from the client hello, pauses the handshake
    while they run, and drives it again when they answer.

    @param hooks: the L{resumetls.server.hooks.HandshakeHooks}: their
        C{cache} (an L{ISessionCache}, answering with Deferreds), C{key_ring}
        (a TLS 1.2 ticket it can open needs no lookup), C{key_prefix} (the
        service's namespace, prepended to each ID; read at each lookup, as
        it changes with the certificate), counters and C{cache_failed}.
    @param budget: seconds a handshake may wait for a lookup.
    @param tls13: whether this server may negotiate TLS 1.3 (then a client
        offering it is looked up by its PSK identity only).
    @param max_pending: lookups waiting at once; more are not paused for.
    """

    def __init__(
        self,
        hooks: Any,
        clock: Any,
        budget: float = 0.05,
        tls13: bool = True,
        max_pending: int = 1024,
    ) -> None:
        self.hooks = hooks
        self.budget, self.tls13, self.max_pending = budget, tls13, max_pending
        self.breaker = CircuitBreaker(clock)
        self._clock = clock
        self.pending = 0
        self.callback: Any = None  # the ClientHelloCallback, kept alive here
        self.counts = dict.fromkeys(_COUNTS, 0)
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0

    def __repr__(self) -> str:
        return (
            f"<HandshakePauser budget={self.budget * 1000:g}ms "
            f"pending={self.pending} circuit={self.breaker.state}>"
        )

    # -- connections --------------------------------------------------------------

    def adopt(self, conn: SSL.Connection, tls_protocol: Any) -> None:
        """Make C{conn} pausable and remember the transport that drives it."""
        if type(conn) is SSL.Connection:
            conn.__class__ = PausableConnection
        if isinstance(conn, PausableConnection):
            conn._resumetls_protocol = weakref.ref(tls_protocol)

    def _wanted(self, offer: Any) -> bytes | None:
        """The ID to look up for this offer, or L{None} (no lookup needed)."""
        if offer.tls13 and self.tls13:
            for identity in offer.psk_identities:
                if len(identity) <= _MAX_ID:
                    return identity  # a stateful ticket: a session ID
            return None
        key_ring = self.hooks.key_ring
        if offer.ticket_name is not None and key_ring is not None:
            if key_ring.decrypting_key(offer.ticket_name) is not None:
                return None  # our ticket: OpenSSL will not use the ID
        if 0 < len(offer.session_id) <= _MAX_ID:
            return offer.session_id
        return None

    # -- the client-hello callback's handler ----------------------------------------

    def client_hello(self, conn: Any, offer: Any) -> bool:
        """L{True}: go on with the handshake; L{False}: pause it."""
        if conn is None:
            return True
        lookup = getattr(conn, "_resumetls_lookup", None)
        if lookup is not None:
            return not lookup.pending
        wanted = self._wanted(offer)
        if wanted is None:
            self.counts["not_ours"] += 1
            return True
        cache = self.hooks.cache
        available = getattr(cache, "available", None)
        if (available is not None and not available()) or not self.breaker.allows():
            self.counts["skipped_down"] += 1
            return True
        if self.pending >= self.max_pending:
            self.counts["skipped_busy"] += 1
            return True
        lookup = _Lookup(self.hooks.key_prefix + wanted, self._clock.seconds())
        conn._resumetls_lookup = lookup
        ref = weakref.ref(conn)
        cache.lookup(lookup.key).addBoth(self._answered, lookup, ref)
        if lookup.done or not isinstance(conn, PausableConnection):
            if not lookup.done:
                self.counts["late"] += 1  # nothing can drive it again
                self.hooks.counters.cache_lookups_late += 1
                lookup.late = True
            return True
        lookup.pending = True
        self.pending += 1
        self.counts["paused"] += 1
        lookup.timer = self._clock.callLater(self.budget, self._late, lookup, ref)
        return False

    def callback_failed(self, what: str, exc: Any = None, tb: Any = None) -> None:
        self.hooks.callback_failed(what, exc, tb)

    def answer(self, conn: Any, key: bytes) -> bytes | None:
        """
        What the lookup started for C{conn} found, if it was for C{key}
        (the get-session callback's answer).  Counts into the hooks'
        counters what the hooks cannot see: a miss (nothing found, or no
        lookup was made for this ID), nothing more for a late or failed
        lookup (counted when it happened).
        """
        lookup = getattr(conn, "_resumetls_lookup", None)
        if lookup is None or lookup.key != key:
            self.counts["unprefetched"] += 1
            self.hooks.counters.cache_misses += 1
            return None
        der, lookup.der = lookup.der, None
        if der is None and not (lookup.late or lookup.failed):
            self.hooks.counters.cache_misses += 1
        return der

    # -- answers ------------------------------------------------------------------

    def _answered(self, result: Any, lookup: _Lookup, ref: Any) -> None:
        elapsed = self._clock.seconds() - lookup.started
        self.latency[bisect.bisect_left(LATENCY_BUCKETS, elapsed)] += 1
        self.latency_sum += elapsed
        failed = isinstance(result, Failure)
        if failed:
            lookup.failed = True
            self.counts["errors"] += 1
            self.breaker.failure()
            self.hooks.cache_failed(result, "lookup")
        if lookup.late:
            self.counts["late_answers"] += 1
            return
        lookup.done = True
        if not failed:
            self.counts["hits" if result is not None else "misses"] += 1
            self.breaker.success()
            lookup.der = result
        if lookup.pending:
            lookup.pending = False
            self.pending -= 1
            if lookup.timer is not None and lookup.timer.active():
                lookup.timer.cancel()
            self._continue(ref)

    def _late(self, lookup: _Lookup, ref: Any) -> None:
        if not lookup.pending:
            return
        lookup.pending = False
        lookup.late = True
        self.pending -= 1
        self.counts["late"] += 1
        self.hooks.counters.cache_lookups_late += 1
        self.breaker.failure()
        self._continue(ref)

    def _continue(self, ref: Any) -> None:
        conn = ref()
        protocol_ref = getattr(conn, "_resumetls_protocol", None)
        protocol = protocol_ref() if protocol_ref is not None else None
        if protocol is None:
            self.counts["abandoned"] += 1
            return
        try:
            own = getattr(protocol, "continue_handshake", None)
            if own is not None:  # resumetls.server.protocol.ResumingTLSProtocol
                own()
            elif not compat.continue_handshake(protocol):
                self.counts["abandoned"] += 1
        except Exception:
            _log.failure(
                "continuing a handshake after a session lookup failed",
                event="resumetls.pause.continue_failed",
            )

    # -- figures ------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        """Counts, the circuit's state and the latency histogram (no secrets)."""
        return {
            **self.counts,
            "pending": self.pending,
            "budget": self.budget,
            "circuit": self.breaker.state,
            "circuit_opened": self.breaker.opened,
            # Lookups by latency: upper bound (seconds, as text) -> count.
            "latency_buckets": {
                f"{bound:g}": n
                for bound, n in zip(LATENCY_BUCKETS, self.latency, strict=False)
            },
            "latency_over": self.latency[-1],
            "latency_count": sum(self.latency),
            "latency_sum": self.latency_sum,
        }


def install_pauser(
    route: Any, context: SSL.Context, hooks: Any, settings: Any, clock: Any
) -> HandshakePauser | None:
    """
    Pause handshakes for C{hooks.cache} on C{context}: a L{HandshakePauser}
    behind a client-hello callback, set as C{hooks.pauser}.  Where the
    client-hello functions are missing, say so and return L{None} (lookups
    that have not answered in the get-session callback then give full
    handshakes, counted as late).
    """
    from resumetls.openssl.errors import OpenSSLRouteUnavailable
    from resumetls.openssl.functions import CLIENT_HELLO_PAUSE, TLS1_3_VERSION

    try:
        route.require((*CLIENT_HELLO_PAUSE, "SSL_CTX_ctrl"))
    except OpenSSLRouteUnavailable as e:
        _log.warn(
            "handshakes cannot wait for the session cache ({reason}); sessions "
            "it has not answered in time give full handshakes",
            reason=str(e),
            event="resumetls.pause.unavailable",
        )
        return None
    if clock is None:
        from twisted.internet import reactor as clock  # noqa: N813
    highest = route.max_version(context)
    pauser = HandshakePauser(
        hooks,
        clock,
        budget=settings.lookup_budget,
        tls13=highest == 0 or highest >= TLS1_3_VERSION,
    )
    pauser.callback = route.install_client_hello(context, pauser)
    hooks.pauser = pauser
    return pauser
