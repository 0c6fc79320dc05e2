"""
Where ticket keys come from (L{resumetls.interfaces.IKeySource}): keys
generated and rotated in memory (L{GeneratedKeySource}), or a key file
reloaded when it changes and on SIGHUP (L{KeyFileSource}); and the registry
that builds a source from a specification string, the way session caches
are built from URLs, so that C{--ticket-keys} and C{ticketKeys=} can name
more than a file once another source registers its scheme.

A specification is C{SCHEME:LOCATION} for a registered scheme (C{file:PATH}
now), or a bare key file path; no specification means generated keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from resumetls.interfaces import IKeySource
from resumetls.keys import sighup as _sighup
from resumetls.keys.files import KeyFileError, load_key_file
from resumetls.keys.ring import KeyRing, RotationPolicy

_log = Logger(namespace="resumetls")


class KeySourceError(ValueError):
    """A key source specification that cannot be used; the message says why."""


@implementer(IKeySource)
class GeneratedKeySource:
    """
    Random keys made in memory and rotated by a L{RotationPolicy}.  The ring
    rotates lazily (it compares its clock with the next rotation on use), so
    there is nothing to start or stop, and nothing to reload.
    """

    def __init__(self, clock: Any, policy: RotationPolicy | None = None) -> None:
        self.policy = policy if policy is not None else RotationPolicy()
        self.key_ring = KeyRing.generate(clock, self.policy)

    def __repr__(self) -> str:
        return (
            f"<GeneratedKeySource every {self.policy.interval:g}s "
            f"keep={self.policy.keep}>"
        )

    def start(self) -> None:
        """Nothing to begin: rotation happens as the ring is used."""

    def stop(self) -> None:
        """Nothing to undo."""

    def reload(self, why: str = "SIGHUP") -> bool:
        """Generated keys are not read from anywhere: nothing changes."""
        return False

    def describe(self) -> str:
        return (
            f"ticket keys generated in memory, rotated every "
            f"{self.policy.interval:g}s, {self.policy.keep} old kept: "
            f"{self.key_ring.describe().encrypting} encrypts"
        )


@implementer(IKeySource)
class KeyFileSource:
    """
    Keep a L{KeyRing} in step with a key file: reloaded when the file
    changes (a cheap stat poll) and on SIGHUP, without dropping a
    connection.  A file that cannot be used is refused, logged with the
    reason (C{resumetls.keys.reload_refused}), and the keys in use stay.

    @param interval: seconds between checks of the file's identity (inode,
        size, modification and change times, mode: a C{chmod 600} that fixes
        a refused file counts as a change).
    """

    def __init__(
        self, path: str, key_ring: Any, clock: Any, interval: float = 2.0
    ) -> None:
        self.path = path
        self.key_ring = key_ring
        self.interval = interval
        self.reloads = 0
        self.refusals = 0
        self._identity = self._stat()
        self._loop = LoopingCall(self._poll)
        self._loop.clock = clock

    @classmethod
    def open(cls, path: str, clock: Any, interval: float = 2.0) -> KeyFileSource:
        """
        A source whose ring holds the keys of C{path} now.

        @raise KeyFileError: the file cannot be used (the message says why).
        """
        ring = KeyRing.from_keyset(load_key_file(path), clock=clock)
        return cls(path, ring, clock, interval)

    def __repr__(self) -> str:
        return f"<KeyFileSource {self.path} reloads={self.reloads}>"

    def _stat(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)

    def start(self) -> None:
        """Watch the file, and reload it on SIGHUP."""
        if not self._loop.running:
            self._loop.start(self.interval, now=False)
        _sighup.reloads.add(self)

    def stop(self) -> None:
        """Stop watching the file and answering SIGHUP."""
        if self._loop.running:
            self._loop.stop()
        _sighup.reloads.discard(self)

    @property
    def running(self) -> bool:
        return self._loop.running

    def describe(self) -> str:
        summary = self.key_ring.describe()
        return (
            f"ticket keys from {self.path} (reloaded on SIGHUP and when it "
            f"changes): {summary.encrypting} encrypts, {summary.decrypt_only} "
            f"decrypt only, {summary.pending} pending"
        )

    def _poll(self) -> None:
        # A LoopingCall stops for good when its function raises: never let it.
        try:
            self.check()
        except Exception:
            _log.failure(
                "checking the ticket key file {path} failed; the keys in use stay",
                path=self.path,
                event="resumetls.keys.reload_refused",
            )

    def check(self) -> bool:
        """Reload if the file changed since the last look."""
        identity = self._stat()
        if identity == self._identity:
            return False
        self._identity = identity
        return self.reload("the file changed")

    def reload(self, why: str = "SIGHUP") -> bool:
        """
        Read the file now; on error keep the current keys and say why.

        @return: L{True} when the file's keys differ from those in use.
        """
        try:
            keys = load_key_file(self.path)
            changed = keys != self.key_ring.keys()
            self.key_ring.replace(keys)
        except (KeyFileError, ValueError) as e:
            self.refusals += 1
            _log.error(
                "refused to reload ticket keys ({why}): {reason}; the keys in use stay",
                why=why,
                reason=str(e),
                path=self.path,
                event="resumetls.keys.reload_refused",
            )
            return False
        self.reloads += 1
        _log.info(
            "reloaded ticket keys from {path} ({why}): {fingerprint} encrypts, "
            "{decrypt_only} decrypt only, {pending} pending",
            path=self.path,
            why=why,
            fingerprint=keys.encrypting.fingerprint,
            decrypt_only=len(keys.decrypt_only),
            pending=len(keys.pending),
            event="resumetls.keys.reloaded",
        )
        return changed


# -- the registry --------------------------------------------------------------------

# factory(location, clock, policy) -> an IKeySource: location is what follows
# "SCHEME:", clock an IReactorTime, policy the RotationPolicy of rotateEvery
# and keepKeys (for sources that rotate).  It raises KeySourceError (or
# KeyFileError) for what it cannot use, and must not block.
Factory = Callable[[str, Any, RotationPolicy], Any]


@attrs.frozen
class _Scheme:
    factory: Factory
    # check(location) -> location, made usable: raises ValueError with a
    # one-line message; called when options are parsed, before building.
    check: Callable[[str], str]


def _check_file(location: str) -> str:
    from resumetls.options import readable_file

    return readable_file(location)


def _open_file(location: str, clock: Any, policy: RotationPolicy) -> KeyFileSource:
    return KeyFileSource.open(os.path.expanduser(location), clock)


_SCHEMES: dict[str, _Scheme] = {"file": _Scheme(_open_file, _check_file)}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")


def register_key_source(
    scheme: str, factory: Factory, check: Callable[[str], str] | None = None
) -> None:
    """
    Make C{SCHEME:LOCATION} specifications name key sources built by
    C{factory(location, clock, policy)}.  C{check(location)}, if given, is
    called when options are parsed and returns the location to keep (or
    raises L{KeySourceError}).  Keep the module that calls this cheap to
    import: import the source's client library inside the factory.
    """
    _SCHEMES[scheme.lower()] = _Scheme(factory, check or (lambda location: location))


def known_key_sources() -> str:
    """What a specification may be, for messages."""
    return "a key file's path, " + ", ".join(f"{s}:" for s in sorted(_SCHEMES))


def _split(spec: str) -> tuple[str, str]:
    """
    The scheme and location of a specification: a registered C{SCHEME:}
    prefix, else a bare path (one with a colon in it too, if it exists).
    """
    match = _SCHEME.match(spec)
    if match is None:
        return "file", spec
    scheme = match.group(1).lower()
    if scheme in _SCHEMES:
        return scheme, spec[match.end() :]
    if os.path.exists(os.path.expanduser(spec)):
        return "file", spec
    from resumetls.cache.urls import safe_url

    raise KeySourceError(
        f"unknown ticket key source {safe_url(spec)!r}; known: {known_key_sources()}"
    )


def checked_spec(spec: str) -> str:
    """
    The specification, checked without building the source (for option
    parsing): the scheme is known and the location usable.

    @raise ValueError: a one-line message (L{KeySourceError} for an unknown
        scheme, the scheme's own for a bad location).
    """
    scheme, location = _split(spec)
    location = _SCHEMES[scheme].check(location)
    if scheme == "file" and not spec.lower().startswith("file:"):
        return location
    return f"{scheme}:{location}"


def key_source_from_spec(
    spec: str | None, clock: Any = None, policy: RotationPolicy | None = None
) -> Any:
    """
    The key source a specification names: L{GeneratedKeySource} when
    C{spec} is empty or L{None}, L{KeyFileSource} for C{file:PATH} or a bare
    path, or the source registered for its scheme.

    @param clock: the C{IReactorTime} the source keeps time with (the
        global reactor when L{None}).
    @param policy: how generated (or fleet) keys rotate.
    @return: an L{IKeySource} provider, not started.
    @raise KeySourceError: an unknown scheme (the message lists the known
        ones).
    @raise KeyFileError: a key file that cannot be used.
    """
    if clock is None:
        from twisted.internet import reactor as clock
    policy = policy if policy is not None else RotationPolicy()
    if not spec:
        return GeneratedKeySource(clock, policy)
    scheme, location = _split(spec)
    source = _SCHEMES[scheme].factory(location, clock, policy)
    if not IKeySource.providedBy(source):
        raise TypeError(f"the {scheme}: key source did not make an IKeySource")
    return source
