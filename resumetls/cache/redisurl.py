"""
Redis URLs, for the session cache (C{--session-cache}) and the fleet's ticket
keys (C{--ticket-keys}):

  - C{redis://[user[:password]@]host[:port][/db][?…]}: TCP;
  - C{rediss://…?ca=/path/ca.pem}: TLS to Redis, verified against that CA
    (the system's trust roots when C{ca} is not given);
  - C{redis+unix:///path/redis.sock?db=0}: a UNIX socket;
  - C{redis+sentinel://host:port[,host:port…]/SERVICE[/db]}: the master
    that these Redis Sentinels name for SERVICE, asked again before each
    connection (so a failover moves the connection to the new master).
    The password is the master's; the Sentinels are asked without one, and
    not over TLS (txredisapi 1.6 supports neither for Sentinel).

Parameters: C{db}, C{password_file=PATH} (a file only its owner can read),
C{password_env=NAME} (an environment variable's I{name}), C{prefix} (the key
namespace, default C{resumetls}), C{size} (sessions this server keeps in
Redis at most), C{timeout} (seconds to connect and to wait for each reply,
default 2), C{seal_key_file=PATH} (32-byte sealing key instead of one
derived from the TLS private key).  Prefer C{password_file} or
C{password_env} to a password in the URL: a URL on a command line shows in
C{ps}.  A password never appears in a message, a log, a repr or a metric.

Nothing here imports the Redis client library or touches the network:
building a cache from a URL (which option parsing does, to check it) is
cheap and does no I/O.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any
from urllib.parse import SplitResult, unquote

import attrs

from resumetls.cache.urls import (
    CacheURLError,
    positive_int,
    register_backend,
    safe_url,
)

__all__ = ["RedisTarget", "parse_redis_url"]

SCHEMES = ("redis", "rediss", "redis+unix", "redis+sentinel")
SENTINEL_PORT = 26379
DEFAULT_PREFIX = "resumetls"
DEFAULT_TIMEOUT = 2.0
_COMMON = ("db", "password_file", "password_env", "prefix", "timeout")
#: What each use of a URL accepts besides the common parameters.
CACHE_PARAMS = (*_COMMON, "size", "seal_key_file", "ca")
KEYS_PARAMS = (*_COMMON, "seal_key_file", "ca")
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@attrs.frozen(repr=False)
class RedisTarget:
    """
    Where a Redis server is and how to log in; C{safe} is the URL with its
    credentials masked, and the only form ever shown.
    """

    safe: str
    tls: bool = False
    host: str | None = None
    port: int = 6379
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    ca: str | None = None
    prefix: str = DEFAULT_PREFIX
    timeout: float = DEFAULT_TIMEOUT
    seal_key_file: str | None = None
    size: int | None = None
    #: Sentinels' (host, port) and the service they name (redis+sentinel:).
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str | None = None

    def __repr__(self) -> str:
        return f"<RedisTarget {self.safe}>"

    def describe(self) -> str:
        """Where, in words (no credentials)."""
        if self.path is not None:
            where = f"UNIX socket {self.path}"
        elif self.sentinels:
            where = f"master {self.service!r} of Sentinel " + ", ".join(
                f"{h}:{p}" for h, p in self.sentinels
            )
        else:
            where = f"{self.host}:{self.port}" + (" over TLS" if self.tls else "")
        return f"Redis at {where}, db {self.db}, keys {self.prefix}:*"


def _fail(url: str, what: str, problem: str) -> CacheURLError:
    return CacheURLError(f"{what} {safe_url(url)!r}: {problem}")


def _password(url: str, what: str, params: dict[str, str], inline: str | None) -> Any:
    sources = [n for n in ("password_file", "password_env") if n in params]
    if len(sources) + (inline is not None) > 1:
        raise _fail(url, what, "give the password one way only")
    if "password_env" in params:
        name = params["password_env"]
        if _ENV.fullmatch(name) is None:
            raise _fail(url, what, f"password_env names a variable, not {name!r}")
        value = os.environ.get(name)
        if not value:
            raise _fail(url, what, f"the environment variable {name} is not set")
        return value
    if "password_file" in params:
        from resumetls.cache.seal import SealKeyError, read_secret_file

        try:
            data = read_secret_file(
                params["password_file"], "a Redis password is a secret"
            )
        except SealKeyError as e:
            raise _fail(url, what, str(e)) from None
        value = data.strip().decode("utf-8", "replace")
        if not value:
            raise _fail(url, what, f"{params['password_file']} is empty")
        return value
    return inline


def parse_redis_url(
    url: str,
    parts: SplitResult,
    params: dict[str, str],
    what: str = "session cache",
    known: tuple[str, ...] = CACHE_PARAMS,
) -> RedisTarget:
    """
    Read a Redis URL (see the module's docstring).

    @param what: how messages name the URL (C{"session cache"}).
    @raise CacheURLError: one line saying what is wrong, without secrets.
    """
    scheme = parts.scheme.lower()
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise _fail(
            url,
            what,
            f"unknown parameter {', '.join(unknown)}; {scheme}:// "
            f"knows: {', '.join(sorted(known))}",
        )
    if parts.fragment:
        raise _fail(url, what, "a fragment ('#…') is not allowed")
    try:
        port = parts.port if scheme != "redis+sentinel" else None
    except ValueError:
        raise _fail(url, what, "the port must be a number from 1 to 65535") from None
    fields: dict[str, Any] = {"safe": safe_url(url), "tls": scheme == "rediss"}
    db_text = params.get("db")
    if scheme == "redis+sentinel":
        fields["sentinels"] = _sentinels(url, what, parts.netloc.rpartition("@")[2])
        names = [unquote(n) for n in parts.path.split("/") if n]
        if not names or len(names) > 2:
            raise _fail(url, what, f"write {scheme}://HOST:PORT[,HOST:PORT]/SERVICE[/DB]")
        fields["service"] = names[0]
        if len(names) == 2:
            if db_text is not None:
                raise _fail(url, what, "the database is given twice (path and db=)")
            db_text = names[1]
    elif scheme == "redis+unix":
        if parts.hostname or port:
            raise _fail(url, what, "write redis+unix:///path/to/redis.sock (no host)")
        if not parts.path or parts.path == "/":
            raise _fail(url, what, "needs the socket's path: redis+unix:///path")
        fields["path"] = unquote(parts.path)
    else:
        if not parts.hostname:
            raise _fail(url, what, f"needs a host: {scheme}://HOST:PORT/DB")
        fields["host"] = parts.hostname
        fields["port"] = port or 6379
        path = parts.path.strip("/")
        if path:
            if db_text is not None:
                raise _fail(url, what, "the database is given twice (path and db=)")
            db_text = path
    if db_text is not None:
        if re.fullmatch(r"[0-9]{1,5}", db_text) is None:
            raise _fail(url, what, f"the database must be a number, not {db_text!r}")
        fields["db"] = int(db_text)
    if parts.username:
        fields["username"] = unquote(parts.username)
    inline = unquote(parts.password) if parts.password is not None else None
    fields["password"] = _password(url, what, params, inline)
    if "ca" in params:
        if scheme != "rediss":
            raise _fail(url, what, "ca= is for rediss:// (TLS) only")
        fields["ca"] = _readable(url, what, params["ca"])
    if "seal_key_file" in params:
        fields["seal_key_file"] = params["seal_key_file"]
    if "prefix" in params:
        if _PREFIX.fullmatch(params["prefix"]) is None:
            raise _fail(url, what, "prefix must be 1-64 letters, digits or _ . : -")
        fields["prefix"] = params["prefix"]
    if "timeout" in params:
        try:
            timeout = float(params["timeout"])
        except ValueError:
            timeout = math.nan
        if not 0.01 <= timeout <= 60:
            raise _fail(url, what, "timeout must be seconds from 0.01 to 60")
        fields["timeout"] = timeout
    if "size" in params:
        fields["size"] = positive_int(url, "size", params["size"])
    return RedisTarget(**fields)


def _sentinels(url: str, what: str, hosts: str) -> tuple[tuple[str, int], ...]:
    """C{host:port,[v6]:port,host} (port 26379 by default) as pairs."""
    found = []
    for item in hosts.split(","):
        match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::([0-9]{1,5}))?", item)
        port = int(match.group(2)) if match and match.group(2) else SENTINEL_PORT
        if match is None or not 0 < port < 65536:
            raise _fail(url, what, f"a Sentinel is HOST[:PORT], not {item!r}")
        found.append((match.group(1).strip("[]"), port))
    return tuple(found)


def _readable(url: str, what: str, path: str) -> str:
    if not os.access(path, os.R_OK):
        raise _fail(url, what, f"cannot read the CA file {path}")
    return path


def _session_cache(url: str, parts: SplitResult, params: dict, clock: Any) -> Any:
    """The C{redis://} backend of L{resumetls.cache.urls}."""
    from resumetls.cache.redis import RedisSessionCache

    target = parse_redis_url(url, parts, params)
    return RedisSessionCache.from_target(target, clock=clock)


for _scheme in SCHEMES:
    register_backend(_scheme, _session_cache)
