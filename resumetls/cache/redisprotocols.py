"""
The C{txredisapi} protocol and factory classes L{RedisClient} connects with
(imported on first connection only: option parsing never pays for them).

What they add to C{txredisapi} 1.6:

  - every connection records why it was lost on its factory
    (C{lost_reason}), so a TLS failure (a wrong C{ca=}) is reported as one;
  - a login cut short (connection lost, reply timeout) is tried again, not
    taken for a refused password (txredisapi stops for good then);
  - Sentinel: C{txredisapi.SentinelRedisProtocol} compares C{ROLE}'s reply
    with the text C{"master"}, but with C{charset=None} (bytes, which
    sessions need) the reply is C{b"master"}, so it drops every connection
    to the master and never connects (seen with a real C{redis-sentinel}:
    the first command waits forever).  L{_MasterOnly} compares bytes;
  - a subscriber connection: it subscribes to one channel each time it is
    (re)connected and hands each message to a callable.
"""

from __future__ import annotations

from typing import Any

import txredisapi
from twisted.internet.defer import Deferred

__all__ = ["data_factory", "new_sentinel", "sentinel_factory"]


class _Recording:
    """
    Records on the factory why the connection was lost, and keeps a login
    (AUTH, SELECT) cut short by a lost connection or a reply timeout from
    counting as a refusal: txredisapi would stop reconnecting for good
    (seen: Redis SIGSTOPped while a reconnection logs in).  Such a login
    just never finishes; the connection is gone and is made again.
    """

    def connectionLost(self, why: Any) -> None:  # noqa: N802 - Twisted's name
        self.factory.lost_reason = why
        super().connectionLost(why)

    def auth(self, *args: Any, **kwargs: Any) -> Any:
        return super().auth(*args, **kwargs).addErrback(self._cut_short)

    def select(self, *args: Any, **kwargs: Any) -> Any:
        return super().select(*args, **kwargs).addErrback(self._cut_short)

    def _cut_short(self, failure: Any) -> Any:
        if failure.check(txredisapi.ResponseError) or not failure.check(
            txredisapi.ConnectionError
        ):
            return failure  # refused by Redis: reported as such
        self.factory.logins_cut_short += 1
        if self.transport is not None and self.connected:
            self.transport.abortConnection()
        return Deferred()  # never fires: the next connection logs in again


class _MasterOnly:
    """
    Through Sentinel: serve only a connection to a master (a demoted master
    is dropped, and the next attempt asks Sentinel again).
    """

    def connectionMade(self) -> Any:  # noqa: N802 - Twisted's name
        base = txredisapi.RedisProtocol.connectionMade
        if self.password is not None:
            # Its refusal, if any, is reported by the base's own login.
            self.auth(self.password, self.username).addErrback(lambda _: None)

        def check(role: Any) -> Any:
            if role and role[0] in (b"master", "master"):
                return base(self)
            self.transport.loseConnection()
            return None

        # A ROLE refused (no or a wrong password): the base logs in again,
        # and reports the refusal as for a direct connection.
        return self.role().addCallbacks(check, lambda _: base(self))


class _Subscribing:
    """Subscribes to C{factory.channel} whenever the connection is ready."""

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:  # noqa: N802
        self.factory.on_message(channel, message)


class _SubscriberFactory:
    """A factory whose connections subscribe (see L{_Subscribing})."""

    channel: bytes = b""
    on_message: Any = None
    on_subscribed: Any = None

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802 - Twisted's name
        protocol = super().buildProtocol(addr)
        protocol.whenConnected().addCallback(self._subscribe)
        return protocol

    def _subscribe(self, protocol: Any) -> None:
        # A list: txredisapi would iterate a bytes channel name.
        d = protocol.subscribe([self.channel])
        d.addCallbacks(lambda _: self.on_subscribed(), lambda _: None)


class _Protocol(_Recording, txredisapi.RedisProtocol):
    pass


class _Subscriber(_Subscribing, _Recording, txredisapi.SubscriberProtocol):
    pass


class _SentinelProtocol(_MasterOnly, _Recording, txredisapi.RedisProtocol):
    pass


class _SentinelSubscriber(
    _Subscribing, _MasterOnly, _Recording, txredisapi.SubscriberProtocol
):
    pass


class _Recorded:
    """What a factory's connections record (see L{_Recording})."""

    lost_reason: Any = None
    logins_cut_short = 0


class _Factory(_Recorded, txredisapi.RedisFactory):
    protocol = _Protocol


class _SubscriberRedisFactory(_SubscriberFactory, _Factory):
    protocol = _Subscriber


class _SentinelFactory(_Recorded, txredisapi.SentinelConnectionFactory):
    protocol = _SentinelProtocol


class _SentinelSubscriberFactory(_SubscriberFactory, _SentinelFactory):
    protocol = _SentinelSubscriber


def _settings(target: Any, subscriber: bool) -> dict[str, Any]:
    """The factory's keyword arguments for a target (bytes in and out)."""
    return {
        "dbid": None if subscriber else target.db,
        "isLazy": True,
        "charset": None,
        "password": target.password,
        "replyTimeout": target.timeout,
        "convertNumbers": False,
        "username": target.username,
    }


def data_factory(target: Any, subscriber: bool = False, **attributes: Any) -> Any:
    """
    A factory of one reconnecting connection (not started); C{attributes}
    are set on it (a subscriber's C{channel}, C{on_message},
    C{on_subscribed}).
    """
    handler = (
        txredisapi.UnixConnectionHandler
        if target.path is not None
        else txredisapi.ConnectionHandler
    )
    cls = _SubscriberRedisFactory if subscriber else _Factory
    factory = cls(target.safe, poolsize=1, handler=handler, **_settings(target, subscriber))
    factory.reconnect = True
    for name, value in attributes.items():
        setattr(factory, name, value)
    return factory


def sentinel_factory(
    target: Any, sentinel: Any, subscriber: bool = False, **attributes: Any
) -> Any:
    """
    A factory of one connection to the master Sentinel names (started:
    Sentinel is asked before each connection attempt); C{attributes} are
    set on it before any connection can be made.
    """
    cls = _SentinelSubscriberFactory if subscriber else _SentinelFactory
    if attributes:
        # master_for builds the factory and starts it: give it its
        # attributes as a class of its own (callables unbound).
        attributes = {
            k: staticmethod(v) if callable(v) else v for k, v in attributes.items()
        }
        cls = type(cls.__name__, (cls,), attributes)
    handler = sentinel.master_for(
        target.service,
        factory_class=cls,
        poolsize=1,
        **_settings(target, subscriber),
    )
    return handler._factory


class _Sentinel(txredisapi.Sentinel):
    """
    C{txredisapi.Sentinel} with a discovery that waits C{discovery_timeout}
    (ours, not 10 s) and whose timers stop when it is disconnected (its own
    stay pending in the reactor after C{disconnect}).
    """

    def __init__(self, target: Any) -> None:
        super().__init__(
            list(target.sentinels),
            connectTimeout=target.timeout,
            replyTimeout=target.timeout,
        )
        self.discovery_timeout = target.timeout
        self._timers: set[Any] = set()

    def discover_master(self, service_name: str) -> Any:
        from twisted.internet import defer, reactor

        result = defer.Deferred()

        def on_response(response: Any) -> None:
            state = response.get(service_name)
            if not result.called and state and self.check_master_state(state):
                result.callback((state["ip"], int(state["port"])))

        def on_timeout() -> None:
            self._timers.discard(timer)
            if not result.called:
                result.errback(
                    txredisapi.MasterNotFoundError(f"No master found for {service_name}")
                )

        timer = reactor.callLater(self.discovery_timeout, on_timeout)
        self._timers.add(timer)
        for sentinel in self.sentinels:
            sentinel.sentinel_masters().addCallbacks(on_response, lambda _: None)
        return result

    def disconnect(self) -> Any:
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers.clear()
        return super().disconnect()


def new_sentinel(target: Any) -> Any:
    """The Sentinel client asking C{target.sentinels} (connects lazily)."""
    return _Sentinel(target)
