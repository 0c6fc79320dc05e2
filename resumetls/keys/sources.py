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
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from twisted.logger import Logger
from zope.interface import implementer

from resumetls.filewatch import FileWatch, WatchedFiles
from resumetls.interfaces import IKeySource
from resumetls.keys.files import KeyFileError, _keyset, load_key_file
from resumetls.keys.ring import KeyRing, KeySet, RotationPolicy

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
class KeyFileSource(WatchedFiles):
    """
    Keep a L{KeyRing} in step with one key file, or several listed the way
    nginx lists C{ssl_session_ticket_key} files (L{load_key_files}: the
    first file's key encrypts, the others only decrypt).  The files are
    reloaded together when one changes (a cheap stat poll) and on SIGHUP,
    without dropping a connection.  Files that cannot be used are refused,
    logged with the reason (C{resumetls.keys.reload_refused}), and the keys
    in use stay.

    @param paths: the key file, or the key files in order.
    @param interval: seconds between checks of the files' identities (see
        L{resumetls.filewatch.file_identity}).
    @ivar path: the first (encrypting) file.
    """

    def __init__(
        self,
        paths: str | Sequence[str],
        key_ring: Any,
        clock: Any,
        interval: float = 2.0,
    ) -> None:
        self.paths = (paths,) if isinstance(paths, str) else tuple(paths)
        self.path = self.paths[0]
        self.key_ring = key_ring
        self.reloads = 0
        self.refusals = 0
        self._watch = FileWatch(
            self.paths,
            self.reload,
            clock,
            interval,
            failed_event="resumetls.keys.reload_refused",
        )

    @classmethod
    def open(
        cls, paths: str | Sequence[str], clock: Any, interval: float = 2.0
    ) -> KeyFileSource:
        """
        A source whose ring holds the keys of C{paths} now.

        @raise KeyFileError: a file cannot be used (the message says why).
        """
        ring = KeyRing.from_keyset(load_key_files(paths), clock=clock)
        return cls(paths, ring, clock, interval)

    def __repr__(self) -> str:
        return f"<KeyFileSource {', '.join(self.paths)} reloads={self.reloads}>"

    def describe(self) -> str:
        summary = self.key_ring.describe()
        if len(self.paths) == 1:
            return (
                f"ticket keys from {self.path} (reloaded on SIGHUP and when it "
                f"changes): {summary.encrypting} encrypts, {summary.decrypt_only} "
                f"decrypt only, {summary.pending} pending"
            )
        return (
            f"ticket keys from {', '.join(self.paths)} (the first file's key "
            "encrypts, the others decrypt only, as nginx; reloaded on SIGHUP and "
            f"when one changes): {summary.encrypting} from {self.path} encrypts, "
            f"{summary.decrypt_only} decrypt only, {summary.pending} pending"
        )

    def reload(self, why: str = "SIGHUP") -> bool:
        """
        Read the files now; on error keep the current keys and say why.

        @return: L{True} when the files' keys differ from those in use.
        """
        try:
            keys = load_key_files(self.paths)
            changed = keys != self.key_ring.keys()
            self.key_ring.replace(keys)
        except (KeyFileError, ValueError) as e:
            self.refusals += 1
            _log.error(
                "refused to reload ticket keys ({why}): {reason}; the keys in use stay",
                why=why,
                reason=str(e),
                path=", ".join(self.paths),
                event="resumetls.keys.reload_refused",
            )
            return False
        self.reloads += 1
        _log.info(
            "reloaded ticket keys from {path} ({why}): {fingerprint} encrypts, "
            "{decrypt_only} decrypt only, {pending} pending",
            path=", ".join(self.paths),
            why=why,
            fingerprint=keys.encrypting.fingerprint,
            decrypt_only=len(keys.decrypt_only),
            pending=len(keys.pending),
            event="resumetls.keys.reloaded",
        )
        return changed


def load_key_files(paths: str | Sequence[str]) -> KeySet:
    """
    The keys of one key file, or of several in nginx's order: the first
    file's encrypting key encrypts (with its own decrypt-only and pending
    keys), and every key of the later files only decrypts (tickets it opens
    are renewed under the first).  Each file is nginx's or HAProxy's format
    (L{load_key_file}).

    @raise KeyFileError: a file cannot be used, or two files hold different
        keys with one name.
    """
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise KeyFileError("no ticket key files given")
    sets = [load_key_file(p) for p in paths]
    if len(sets) == 1:
        return sets[0]
    first = sets[0]
    later = [key for keys in sets[1:] for key in keys.all]
    return _keyset(
        ", ".join(paths),
        first.encrypting,
        first.decrypt_only + tuple(later),
        first.pending,
    )


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


#: What separates key files in one specification (C{ticketKeys=new.key,old.key}):
#: a colon separates endpoint-string fields, and a comma needs no escaping
#: there nor on a command line.
SEPARATOR = ","


def split_specs(value: str) -> list[str]:
    """
    The specifications in one text: key files separated by commas
    (C{new.key,old.key}).  A text that names an existing file, or starts
    with a registered scheme other than C{file:}, is one specification
    whole (its location may hold a comma).
    """
    if not value or os.path.exists(os.path.expanduser(value)):
        return [value] if value else []
    match = _SCHEME.match(value)
    if match is not None and match.group(1).lower() in _SCHEMES.keys() - {"file"}:
        return [value]
    return [part for part in value.split(SEPARATOR) if part]


def checked_specs(specs: Sequence[str]) -> tuple[str, ...]:
    """
    L{checked_spec} of each specification.  Several must all be key files:
    nginx's rule (the first encrypts, the others decrypt only) is defined
    for files, not for sources that rotate keys themselves.

    @raise ValueError: a one-line message.
    """
    checked = tuple(checked_spec(spec) for spec in specs)
    if len(checked) > 1:
        for spec in checked:
            if _split(spec)[0] != "file":
                raise KeySourceError(
                    f"{spec!r} cannot be listed with other ticket key sources: "
                    "only key files can be listed (the first encrypts, the "
                    "others decrypt only)"
                )
    return checked


def key_source_from_spec(
    spec: str | Sequence[str] | None,
    clock: Any = None,
    policy: RotationPolicy | None = None,
) -> Any:
    """
    The key source a specification names: L{GeneratedKeySource} when
    C{spec} is empty or L{None}, L{KeyFileSource} for C{file:PATH} or a bare
    path, or the source registered for its scheme.  Several key files (a
    sequence, or one text separated by L{SEPARATOR}) make one
    L{KeyFileSource} that follows nginx's rule: the first file's key
    encrypts, the others decrypt only.

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
    specs = split_specs(spec) if isinstance(spec, str) else list(spec or ())
    if not specs:
        return GeneratedKeySource(clock, policy)
    if len(specs) > 1:
        checked_specs(specs)
        paths = [os.path.expanduser(_split(s)[1]) for s in specs]
        return KeyFileSource.open(paths, clock)
    scheme, location = _split(specs[0])
    source = _SCHEMES[scheme].factory(location, clock, policy)
    if not IKeySource.providedBy(source):
        raise TypeError(f"the {scheme}: key source did not make an IKeySource")
    return source


# Sources shipped with resumetls: the fleet's keys in Redis (its module
# imports no Redis client until a source is started).
from resumetls.keys import redis as _redis_keys  # noqa: E402

_redis_keys.register()
