"""
What the server reports (L{resumetls.server.stats}): one vocabulary for the
mechanism of a resumed connection, shared by the API, the metrics' labels
and the words people read; the counters' snapshot; and what
C{resumption_info} says about a transport that is not TLS.
"""

from __future__ import annotations

import subprocess
import sys

import attrs
from twisted.trial.unittest import SynchronousTestCase

from resumetls import ResumptionStats, resumption_info
from resumetls.server import stats


class VocabularyTests(SynchronousTestCase):
    def test_mechanisms(self):
        """The four mechanisms, each with words of its own."""
        self.assertEqual(
            set(stats.MECHANISMS),
            {"session_id", "ticket_tls12", "ticket_tls13", "unknown"},
        )
        self.assertEqual(len(set(stats.MECHANISMS.values())), len(stats.MECHANISMS))
        self.assertEqual(
            stats.describe_mechanism("ticket_tls13"), "TLS 1.3 session ticket"
        )
        self.assertEqual(
            stats.describe_mechanism("ticket_tls12"), "TLS 1.2 session ticket"
        )
        self.assertEqual(
            stats.describe_mechanism("session_id"), "session ID (server cache)"
        )
        self.assertEqual(stats.describe_mechanism(None), "full handshake")

    def test_metric_kinds(self):
        """
        Every handshake counter has one C{kind} label, and a resumed kind's
        label is its mechanism's name (C{other} stays the label of
        C{unknown}).
        """
        fields = {
            a.name
            for a in attrs.fields(ResumptionStats)
            if a.name == "full_handshakes" or a.name.startswith("resumed_")
        }
        self.assertEqual({f for _, f in stats.HANDSHAKE_KINDS}, fields)
        labels = [k for k, _ in stats.HANDSHAKE_KINDS]
        self.assertEqual(
            labels, ["full", "session_id", "ticket_tls12", "ticket_tls13", "other"]
        )
        for label in labels[1:-1]:
            self.assertIn(label, stats.MECHANISMS)
            self.assertEqual(dict(stats.HANDSHAKE_KINDS)[label], f"resumed_{label}")

    def test_import_is_cheap(self):
        """The vocabulary and values import no OpenSSL (the metrics options use them)."""
        code = (
            "import sys, resumetls.server.stats\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('OpenSSL', 'cryptography')))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        self.assertEqual(out.stdout.strip(), "[]", out.stderr)


class CountersTests(SynchronousTestCase):
    def test_snapshot(self):
        """Counters start at 0 and their snapshot carries cache and keys."""
        counters = stats.Counters()
        counters.full_handshakes += 2
        counters.resumed_ticket_tls13 += 1
        snap = counters.snapshot(cache="c", keys="k")
        self.assertEqual(snap.full_handshakes, 2)
        self.assertEqual(snap.resumed, 1)
        self.assertEqual((snap.cache, snap.keys), ("c", "k"))
        self.assertEqual(snap.as_dict()["resumed"], 1)


class ResumptionInfoTests(SynchronousTestCase):
    def test_not_tls(self):
        """A transport with no TLS connection under it: TypeError."""

        class Plain:
            def getHandle(self):
                return object()

        self.assertRaises(TypeError, resumption_info, Plain())
