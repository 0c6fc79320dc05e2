"""
The contract every L{IKeySource} honours, as a test mixin.

Mix L{KeySourceContractMixin} into a trial test case and say how to make
your source; every test below then runs against it::

    class FileKeySourceContractTests(KeySourceContractMixin, SynchronousTestCase):
        def make_source(self, clock):
            return FileKeySource(self.path, clock=clock)

        def break_source(self, source):
            with open(self.path, "wb") as f:
                f.write(b"not a key file")

The tests of reloading need to change or break what a source reads: they
are part of a subclass only when it defines the hook they call,
L{KeySourceContractMixin.change_source} or
L{KeySourceContractMixin.break_source} (a source of generated keys has
nothing to break).  They are left out, not skipped: a skipped test fails
this project's CI.
"""

from __future__ import annotations

import base64
import signal
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from zope.interface.verify import verifyObject

from resumetls.interfaces import IKeySource, ITicketKeys
from resumetls.testing._hooks import add_hooked_tests

# A key name no source generates by chance (2**-128).
_UNKNOWN_NAME = b"\xa5" * 16


def _forms(secret: bytes) -> list[str]:
    """The ways a secret could leak into text: hex, base64, repr."""
    return [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        repr(secret),
    ]


# Tests that exist only when a subclass defines their hook: name -> hook.
_HOOKED = {
    "reload_changed": "change_source",
    "reload_refused_keeps_keys": "break_source",
}


class KeySourceContractMixin:
    """
    What every L{IKeySource} must do, for a trial C{TestCase} (synchronous or
    not) that provides L{make_source}.

    Each test makes a new L{Clock} and passes it to L{make_source}; a source
    keeps time and sets its timers with it, so the tests can check that
    L{IKeySource.stop} cancels them.  L{IKeySource.start} and
    L{IKeySource.stop} may return L{Deferred}s: they must have fired once
    L{settle} returns (override it for a source that needs more than the
    clock to finish starting).

    @cvar refused_event: the C{event} field of the log event a refused
        reload emits; L{None} to check only that an event at warning level
        or above was logged.
    """

    refused_event: str | None = "resumetls.keys.reload_refused"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        add_hooked_tests(cls, KeySourceContractMixin, _HOOKED)

    # -- what a subclass provides ------------------------------------------------

    def make_source(self, clock: Clock) -> Any:
        """A new, unstarted source keeping time with C{clock}."""
        raise NotImplementedError(f"{type(self).__name__} must define make_source")

    def change_source(self, source: Any) -> None:
        """
        Change what C{source} reads, so that its next L{IKeySource.reload}
        finds a different encrypting key (write a new key file, put a key in
        the store).  By default the test that needs this is left out.
        """
        raise NotImplementedError

    def break_source(self, source: Any) -> None:
        """
        Make what C{source} reads unusable (garbage in the key file, an
        unreachable store), so that its next reload is refused.  By default
        the test that needs this is left out.
        """
        raise NotImplementedError

    def settle(self, result: Any, clock: Clock) -> Any:
        """
        The outcome of C{start()} or C{stop()}: a plain value is returned; a
        L{Deferred} must have fired once the clock advanced by 0 seconds.
        """
        if isinstance(result, Deferred):
            clock.advance(0)
            return self.successResultOf(result)
        return result

    # -- helpers -----------------------------------------------------------------

    def _source(self) -> tuple[Any, Clock]:
        clock = Clock()
        source = self.make_source(clock)
        self.addCleanup(self._stop_quietly, source, clock)
        return source, clock

    def _stop_quietly(self, source: Any, clock: Clock) -> None:
        self.settle(source.stop(), clock)

    def _captured_events(self) -> list[dict]:
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    def _secrets(self, source: Any) -> list[bytes]:
        ring = source.key_ring
        keys = [ring.encrypting_key()]
        every = getattr(ring, "keys", None)
        if callable(every):
            keys.extend(every().all)
        return [part for k in keys for part in (k.hmac_key, k.aes_key)]

    def assert_no_key_material(self, source: Any, text: str) -> None:
        """Fail if C{text} shows any key of C{source}'s ring, in any form."""
        for secret in self._secrets(source):
            for form in _forms(secret):
                self.assertNotIn(form, text)

    # -- the contract ------------------------------------------------------------

    def test_provides_interfaces(self) -> None:
        """The source provides L{IKeySource}; its ring, L{ITicketKeys}."""
        source, _ = self._source()
        self.assertTrue(verifyObject(IKeySource, source))
        self.assertTrue(verifyObject(ITicketKeys, source.key_ring))

    def test_ring_serves_keys(self) -> None:
        """
        Before and after start, the ring has an encrypting key that it also
        finds by name (not to be renewed), and knows no made-up name.
        """
        source, clock = self._source()
        for _ in range(2):
            ring = source.key_ring
            key = ring.encrypting_key()
            self.assertEqual(len(key.name), 16)
            self.assertEqual(ring.decrypting_key(key.name), (key, False))
            self.assertIsNone(ring.decrypting_key(_UNKNOWN_NAME))
            self.settle(source.start(), clock)

    def test_start_twice(self) -> None:
        """Starting twice is harmless: the keys stay, no timer is doubled."""
        source, clock = self._source()
        self.settle(source.start(), clock)
        key = source.key_ring.encrypting_key()
        timers = len(clock.getDelayedCalls())
        self.settle(source.start(), clock)
        self.assertEqual(len(clock.getDelayedCalls()), timers)
        self.assertEqual(source.key_ring.encrypting_key(), key)

    def test_stop_undoes_start(self) -> None:
        """
        Stop cancels every timer start set and puts the SIGHUP handler back
        as it was; stopping again, or stopping a source never started, is
        harmless.
        """
        source, clock = self._source()
        self.settle(source.stop(), clock)
        handler = signal.getsignal(signal.SIGHUP)
        self.settle(source.start(), clock)
        self.settle(source.stop(), clock)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(signal.getsignal(signal.SIGHUP), handler)
        self.settle(source.stop(), clock)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_keys_survive_stop(self) -> None:
        """
        A stopped source's ring still serves its keys: connections accepted
        before the listener stopped may still be handshaking.
        """
        source, clock = self._source()
        self.settle(source.start(), clock)
        key = source.key_ring.encrypting_key()
        self.settle(source.stop(), clock)
        self.assertEqual(source.key_ring.encrypting_key(), key)
        self.assertEqual(source.key_ring.decrypting_key(key.name), (key, False))

    def test_describe(self) -> None:
        """
        describe() is one line naming the encrypting key by fingerprint,
        with no key material, before and after start; nor does the repr
        show any.
        """
        source, clock = self._source()
        for _ in range(2):
            text = source.describe()
            self.assertIsInstance(text, str)
            self.assertNotIn("\n", text)
            self.assertIn(source.key_ring.encrypting_key().fingerprint, text)
            self.assert_no_key_material(source, text)
            self.assert_no_key_material(source, repr(source) + str(source))
            self.settle(source.start(), clock)

    def test_reload_unchanged(self) -> None:
        """Reloading a source that did not change keeps the encrypting key."""
        source, clock = self._source()
        self.settle(source.start(), clock)
        key = source.key_ring.encrypting_key()
        self.assertIsInstance(source.reload("test"), bool)
        self.assertEqual(source.key_ring.encrypting_key(), key)

    def hooked_reload_changed(self) -> None:
        """
        A reload after the source changed answers L{True}, installs the new
        encrypting key and moves the ring's generation on.
        """
        source, clock = self._source()
        self.settle(source.start(), clock)
        ring = source.key_ring
        old, generation = ring.encrypting_key(), ring.generation
        self.change_source(source)
        self.assertIs(source.reload("test"), True)
        self.assertNotEqual(ring.encrypting_key().name, old.name)
        self.assertGreater(ring.generation, generation)

    def hooked_reload_refused_keeps_keys(self) -> None:
        """
        A reload from a broken source answers L{False}, keeps every key and
        the generation, and logs why at warning level or above, without key
        material.
        """
        source, clock = self._source()
        self.settle(source.start(), clock)
        ring = source.key_ring
        key, generation = ring.encrypting_key(), ring.generation
        events = self._captured_events()
        self.break_source(source)
        self.assertIs(source.reload("test"), False)
        self.assertEqual(ring.encrypting_key(), key)
        self.assertEqual(ring.decrypting_key(key.name), (key, False))
        self.assertEqual(ring.generation, generation)
        loud = [e for e in events if e.get("log_level", LogLevel.info) >= LogLevel.warn]
        self.assertTrue(loud, "a refused reload logs nothing at warning level")
        if self.refused_event is not None:
            self.assertIn(self.refused_event, [e.get("event") for e in loud])
        for event in events:
            self.assert_no_key_material(
                source, (formatEvent(event) or "") + repr(sorted(event.items()))
            )
