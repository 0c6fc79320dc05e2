"""
The connection to Redis that the session cache and the fleet's key source
share: C{txredisapi} (Twisted-native, reconnects by itself with backoff;
bytes in and out with C{charset=None}), with what we add:

  - L{RedisClient.available}: whether a connection is up and logged in
    now.  While it is not, every command fails at once with
    L{RedisUnavailable} instead of waiting for a reconnection: a handshake
    never waits on a Redis that is known to be down.
  - one log line when Redis goes away and one when it is back
    (C{resumetls.redis.down} / C{resumetls.redis.up}), and one clear line
    when it refuses the login (C{resumetls.redis.auth_failed}); never the
    password.
  - a reply timeout: a Redis that stops answering (C{SIGSTOP}, a network
    partition) has its connection dropped after C{timeout} seconds, and the
    commands waiting on it fail.

A second connection may keep a subscription (L{RedisClient.subscribe}),
and a target naming Sentinels connects to the master they name
(L{resumetls.cache.redisprotocols}).  C{txredisapi} is imported on
L{RedisClient.connect} only.  It keeps time
with the global reactor, as does this class's watch of the connection.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger

__all__ = ["RedisClient", "RedisUnavailable"]

_log = Logger(namespace="resumetls")

# How often the connection's state is looked at (for the up/down log lines
# and the circuit state): a dict read, nothing on the network.
_WATCH_INTERVAL = 0.25


class RedisUnavailable(Exception):
    """Redis is not connected now; the command was not sent."""


class RedisClient:
    """
    One lazily connecting, reconnecting Redis connection.

    @param target: a L{resumetls.cache.redisurl.RedisTarget}.
    @param reactor: the reactor to connect with (the global one by default).
    @ivar consequence: what happens while Redis is away, in words, for the
        line that says it went away (its user sets it).
    """

    consequence = "sessions resume by ticket only and handshakes do not wait for it"

    def __init__(self, target: Any, reactor: Any = None) -> None:
        self.target = target
        self._reactor = reactor
        self._handler: Any = None
        self._subscriber: Any = None
        self._sentinel: Any = None
        self._watch: Any = None
        self._up = False
        self._announced_down = False
        self._started_at: float | None = None
        self.auth_failed = False
        self.downs = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        state = "up" if self.available else "down"
        return f"<RedisClient {self.target.safe} {state}>"

    @property
    def connecting(self) -> bool:
        """Whether L{connect} was called (and L{disconnect} was not)."""
        return self._handler is not None

    @property
    def available(self) -> bool:
        """A logged-in connection is up now."""
        handler = self._handler
        # txredisapi's RedisFactory.size: connections in its pool that
        # finished connectionMade (AUTH and SELECT done).  Checked in 1.6.
        return handler is not None and handler._factory.size > 0

    def connect(self) -> None:
        """Start connecting (once); commands fail until it is up."""
        if self._handler is not None:
            return
        from twisted.internet import reactor as global_reactor
        from twisted.internet.task import LoopingCall

        reactor = self._reactor if self._reactor is not None else global_reactor
        factory = self._factory(reactor)
        handler = factory.handler
        self._handler = handler
        # Fires with the handler once connected, or fails once when the
        # login or the database selection is refused (then it stops trying).
        handler._connected.addErrback(self._refused)
        self._started_at = reactor.seconds()
        self._clock = reactor
        self._watch = LoopingCall(self._look)
        self._watch.clock = reactor
        self._watch.start(_WATCH_INTERVAL, now=False)

    def _factory(self, reactor: Any, **subscriber: Any) -> Any:
        """
        A started txredisapi factory of one connection: to the address of
        the URL (what C{txredisapi.makeConnection} does, with our own
        endpoint: an IP literal needs no resolver thread, TLS goes through
        Twisted's C{wrapClientTLS} with a verifying context), or to the
        master Sentinel names.  With C{subscriber} keywords (C{channel},
        C{on_message}, C{on_subscribed}), a subscribing connection.
        """
        from resumetls.cache import redisprotocols

        if self.target.sentinels:
            if self._sentinel is None:
                self._sentinel = redisprotocols.new_sentinel(self.target)
            return redisprotocols.sentinel_factory(
                self.target, self._sentinel, bool(subscriber), **subscriber
            )
        factory = redisprotocols.data_factory(
            self.target, bool(subscriber), **subscriber
        )
        factory.startConnecting(self._endpoint(reactor))
        return factory

    def subscribe(self, channel: bytes, on_message: Any, on_subscribed: Any) -> None:
        """
        Keep a second connection subscribed to C{channel} (resubscribed
        after each reconnection): C{on_message(channel, message)} for each
        message, C{on_subscribed()} each time the subscription is made (what
        was published meanwhile was missed).  Stopped by L{disconnect}.
        """
        if self._subscriber is not None:
            return
        from twisted.internet import reactor as global_reactor

        reactor = self._reactor if self._reactor is not None else global_reactor
        factory = self._factory(
            reactor,
            channel=channel,
            on_message=on_message,
            on_subscribed=on_subscribed,
        )
        # Its login failures are the data connection's, reported there.
        factory.handler._connected.addErrback(lambda _: None)
        self._subscriber = factory.handler

    def _endpoint(self, reactor: Any) -> Any:
        import ipaddress

        from twisted.internet import endpoints

        t = self.target
        if t.path is not None:
            return endpoints.UNIXClientEndpoint(reactor, t.path, timeout=t.timeout)
        try:
            address = ipaddress.ip_address(t.host)
        except ValueError:
            endpoint = endpoints.HostnameEndpoint(
                reactor, t.host, t.port, timeout=t.timeout
            )
        else:
            kind = (
                endpoints.TCP6ClientEndpoint
                if address.version == 6
                else endpoints.TCP4ClientEndpoint
            )
            endpoint = kind(reactor, t.host, t.port, timeout=t.timeout)
        if not t.tls:
            return endpoint
        from twisted.internet.ssl import Certificate, optionsForClientTLS, platformTrust

        if t.ca is not None:
            with open(t.ca, "rb") as f:
                trust = Certificate.loadPEM(f.read())
        else:
            trust = platformTrust()
        options = optionsForClientTLS(t.host, trustRoot=trust)
        return endpoints.wrapClientTLS(options, endpoint)

    def _lost_reason(self) -> str | None:
        """Why the last connection was lost, in one line (TLS named)."""
        handler = self._handler
        why = getattr(getattr(handler, "_factory", None), "lost_reason", None)
        if why is None:
            return None
        from OpenSSL import SSL

        if why.check(SSL.Error):
            errors = why.value.args[0] if why.value.args else []
            text = "; ".join(str(e[-1]) for e in errors if isinstance(e, tuple))
            return (
                f"TLS failed: {text or why.getErrorMessage()}; check Redis's "
                "certificate and ca="
            )
        return why.getErrorMessage()[:200]

    def _refused(self, failure: Any) -> None:
        self.auth_failed = True
        self.last_error = str(failure.value)[:200]
        _log.error(
            "{where} refused the connection's login or database ({error}); "
            "check the password and db of {url}. Sessions resume by ticket only, "
            "and nothing is retried until restart",
            where=self.target.describe(),
            error=self.last_error,
            url=self.target.safe,
            event="resumetls.redis.auth_failed",
        )

    def _look(self) -> None:
        up = self.available
        if up and not self._up:
            if self._announced_down or self.downs:
                _log.info(
                    "{where} is reachable again",
                    where=self.target.describe(),
                    event="resumetls.redis.up",
                )
            self._announced_down = False
        elif not up and not self.auth_failed and not self._announced_down:
            waited = self._clock.seconds() - (self._started_at or 0)
            if self._up or waited >= self.target.timeout:
                self.downs += 1
                self._announced_down = True
                reason = self.last_error = self._lost_reason()
                _log.warn(
                    "{where} is not reachable{why}; until it is, {consequence}",
                    where=self.target.describe(),
                    why=f" ({reason})" if reason else "",
                    consequence=self.consequence,
                    event="resumetls.redis.down",
                )
        self._up = up

    def command(self, *args: Any) -> Deferred:
        """
        Send one command (C{"SET", key, value, "PX", 1000}); a L{Deferred}
        firing with the reply (bytes, ints, lists) or failing, at once with
        L{RedisUnavailable} when no connection is up.
        """
        if not self.available:
            return fail(RedisUnavailable(f"{self.target.describe()} is not connected"))
        return self._handler.execute_command(*args)

    def disconnect(self) -> Deferred | None:
        """Stop (re)connecting and close the connections."""
        from twisted.internet.defer import gatherResults

        handler, self._handler = self._handler, None
        if self._watch is not None and self._watch.running:
            self._watch.stop()
        closing = [
            c.disconnect()
            for c in (handler, self._subscriber, self._sentinel)
            if c is not None
        ]
        self._subscriber = self._sentinel = None
        if not closing:
            return None
        return gatherResults(closing, consumeErrors=True).addCallback(lambda _: None)
