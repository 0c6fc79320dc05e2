"""
The demo page's HTML from status data: the verdict in words, the line on
what resumption saved, the figures grouped and named, and the list of
sections that other parts of the server extend.
"""

from __future__ import annotations

import re

from twisted.trial.unittest import SynchronousTestCase

from resumetls.cli import demosections
from resumetls.cli.demopage import render, saved_line, verdict
from resumetls.cli.demosections import Row, Section, duration, sections

SERVER = {
    "full_handshakes": 3,
    "resumed_session_id": 1,
    "resumed_ticket_tls12": 2,
    "resumed_ticket_tls13": 6,
    "resumed_unknown": 0,
    "tickets_issued": 14,
    "tickets_renewed": 1,
    "tickets_rejected": 2,
    "sessions_stored": 1,
    "cache_hits": 1,
    "cache_misses": 4,
    "cache_lookups_late": 0,
    "cache_corrupt": 0,
    "cache_errors": 0,
    "callback_errors": 0,
    "handshake_timeouts": 0,
    "handshakes_refused": 0,
    "plain_http": 1,
    "cache": {
        "entries": 1,
        "bytes": 300,
        "max_entries": 20480,
        "hits": 1,
        "misses": 4,
        "stores": 1,
        "evictions": 0,
        "expirations": 0,
        "errors": 0,
        "backend": "memory",
    },
    "keys": {
        "encrypting": "69cf302f48a1",
        "encrypting_age": 185.0,
        "decrypt_only": 2,
        "pending": 0,
        "generation": 3,
        "next_rotation": 1000.0 + 3 * 3600 + 5 * 60,
        "source": "ticket.keys (HAProxy format)",
    },
    "resumed": 9,
}

CONNECTION = {
    "tls": True,
    "version": "TLSv1.3",
    "cipher": "TLS_AES_256_GCM_SHA384",
    "resumed": True,
    "mechanism": "ticket_tls13",
    "mechanism_description": "TLS 1.3 session ticket",
    "protocol": "h2",
    "http_version": "HTTP/2",
}


def data(**server):
    return {"connection": dict(CONNECTION), "server": {**SERVER, **server}}


def text(page: str) -> str:
    """The page's text as a person reads it (tags dropped)."""
    return re.sub(r"\s+", " ", re.sub(r"<style>.*?</style>|<[^>]+>", " ", page))


class SectionTests(SynchronousTestCase):
    def test_groups_in_words(self):
        """Handshakes, tickets, cache, keys and problems, named in words."""
        found = {s.title: {r.label: r.value for r in s.rows} for s in sections({**data(), "now": 0})}
        self.assertEqual(
            list(found),
            ["Handshakes", "Session tickets", "Session cache", "Ticket keys", "Problems"],
        )
        self.assertEqual(
            found["Handshakes"],
            {
                "Full handshakes": 3,
                "Resumed by session ID (server cache)": 1,
                "Resumed by TLS 1.2 session ticket": 2,
                "Resumed by TLS 1.3 session ticket": 6,
            },
        )
        self.assertEqual(
            found["Session tickets"], {"Issued": 14, "Renewed": 1, "Rejected": 2}
        )
        self.assertEqual(
            found["Session cache"],
            {
                "Backend": "memory",
                "Sessions held": "1 of 20480",
                "Sessions stored": 1,
                "Hits": 1,
                "Misses": 4,
                "Evictions": 0,
                "Errors": 0,
            },
        )
        self.assertEqual(found["Problems"]["Plain HTTP on the TLS port"], 1)
        for rows in found.values():
            for label in rows:
                self.assertNotIn("_", label)

    def test_keys(self):
        (keys,) = [s for s in sections({**data(), "now": 1000.0}) if s.key == "keys"]
        self.assertEqual(
            {r.label: r.value for r in keys.rows},
            {
                "Source": "ticket.keys (HAProxy format)",
                "Encrypting key": "69cf302f48a1",
                "In use for": "3 min",
                "Older keys kept": 2,
                "Next rotation": "in 3 h 5 min",
            },
        )

    def test_sources_in_words(self):
        """
        The cache backend and the key source in the words C{status.json}'s
        C{sources} gives (a fleet's Redis cache and keys), not short names.
        """
        words = {
            "cache": "Redis at 127.0.0.1:6379 db 0 (sealed with AES-256-GCM)",
            "key_source": "the fleet's keys in Redis at 127.0.0.1:6379",
        }
        found = {
            r.label: r.value
            for s in sections({**data(), "now": 1000.0, "sources": words})
            if s.key in ("cache", "keys")
            for r in s.rows
        }
        self.assertEqual(found["Backend"], words["cache"])
        self.assertEqual(found["Source"], words["key_source"])

    def test_rare_figures_only_when_they_happened(self):
        """Late answers, corrupt entries, other mechanisms: shown when not 0."""
        quiet = {r.key for s in sections(data()) for r in s.rows}
        self.assertFalse(
            {"cache_lookups_late", "cache_corrupt", "resumed_unknown"} & quiet
        )
        busy = data(cache_lookups_late=2, cache_corrupt=1, resumed_unknown=4)
        shown = {r.key: r for s in sections(busy) for r in s.rows}
        self.assertEqual(shown["cache_lookups_late"].label, "Answers too late")
        self.assertEqual(shown["resumed_unknown"].value, 4)

    def test_unknown_counter_still_shown(self):
        """A counter no section names appears under its JSON name."""
        found = sections(data(redis_reconnects=3))
        self.assertEqual(found[-1].title, "Other counters")
        self.assertEqual(found[-1].rows, (Row("redis_reconnects", "redis_reconnects", 3),))

    def test_extend(self):
        """Another part of the server appends a section of its own."""

        def workers(d):
            return Section("workers", "Workers", (Row("workers-alive", "Alive", 4),))

        self.patch(demosections, "SECTIONS", [*demosections.SECTIONS, workers])
        page = render(data())
        self.assertIn(
            '<section class="figures" id="s-workers"><h2>Workers</h2><table>'
            '<tr id="c-workers-alive"><th>Alive</th><td>4</td></tr>',
            page,
        )

    def test_duration(self):
        self.assertEqual(
            [duration(s) for s in (None, -3, 42, 185, 7300, 4 * 86400)],
            ["-", "0 s", "42 s", "3 min", "2 h 1 min", "4 d"],
        )


class PageTests(SynchronousTestCase):
    def test_reads_at_a_glance(self):
        page = render(data(), now=1000.0)
        words = text(page)
        self.assertIn(
            "This connection was resumed (TLS 1.3 session ticket) Your browser "
            "presented a TLS 1.3 session ticket",
            words,
        )
        self.assertIn("TLS 1.3 · TLS_AES_256_GCM_SHA384 · HTTP/2", words)
        self.assertIn(
            "Resumed: 9 of 12 handshakes (75%). Each skipped the certificate", words
        )
        self.assertIn("Session tickets Issued 14 Renewed", words)
        # No raw counter names where a person reads.
        self.assertNotRegex(words, r"\b[a-z]+_[a-z_]+\b")

    def test_escaped(self):
        page = render(data(cache={**SERVER["cache"], "backend": "<b>x</b>"}))
        self.assertIn("<td>&lt;b&gt;x&lt;/b&gt;</td>", page)
        self.assertNotIn("<b>x</b>", page)

    def test_verdicts(self):
        self.assertEqual(
            verdict({**CONNECTION, "resumed": False, "mechanism": None})[:2],
            ("full", "This connection made a full handshake"),
        )
        self.assertEqual(
            verdict({**CONNECTION, "mechanism": "session_id"})[1],
            "This connection was resumed (session ID (server cache))",
        )
        self.assertEqual(
            verdict({**CONNECTION, "tls": False})[:2],
            ("plain", "This connection is not TLS"),
        )

    def test_saved_line(self):
        self.assertEqual(saved_line({"full_handshakes": 0, "resumed": 0}), "No handshake yet.")
        self.assertTrue(
            saved_line({"full_handshakes": 2, "resumed": 0}).startswith(
                "Resumed: none of 2 handshakes yet."
            )
        )
        self.assertTrue(
            saved_line({"full_handshakes": 1, "resumed": 3}).startswith(
                "Resumed: 3 of 4 handshakes (75%)."
            )
        )
