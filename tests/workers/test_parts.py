"""
The parts of --workers that need no process: key messages, the parent's
key rotation, the option, the plan, and the sums of the figures.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from resumetls.keys.ring import KeySet, RotationPolicy, TicketKey
from resumetls.options import ConfigError
from resumetls.server.config import ServerConfig
from resumetls.workers import plan
from resumetls.workers.control import pack_keys, unpack_keys
from resumetls.workers.keys import SharedKeyOwner, WorkerKeySource
from resumetls.workers.status import aggregate, render_metrics


class KeyMessageTests(SynchronousTestCase):
    def test_round_trip(self):
        keys = KeySet(
            TicketKey.generate(),
            (TicketKey(b"n" * 16, b"h" * 16, b"a" * 16),),
            (TicketKey.generate(),),
        )
        self.assertEqual(unpack_keys(pack_keys(keys)), keys)

    def test_malformed(self):
        blob = pack_keys(KeySet(TicketKey.generate()))
        for bad, message in [
            (blob[:-1], "the ticket keys from the parent are truncated"),
            (b"X" + blob[1:], "the ticket keys from the parent are malformed"),
            (b"", "the ticket keys from the parent have no encrypting key"),
        ]:
            e = self.assertRaises(ValueError, unpack_keys, bad)
            self.assertEqual(str(e), message)


class SharedKeyOwnerTests(SynchronousTestCase):
    def test_pending_before_active(self):
        """
        Each rotation promotes the key every worker already holds as
        pending; a worker that has not heard of the rotation yet still
        opens tickets made under the new key, and the others open its own.
        """
        clock = Clock()
        sent = []
        owner = SharedKeyOwner(clock, RotationPolicy(3600, 2), sent.append)
        owner.start()
        late = WorkerKeySource(owner.keys)  # learns nothing more
        early = WorkerKeySource(owner.keys)
        first, pending = owner.keys.encrypting, owner.keys.pending[0]
        clock.advance(3600)
        self.assertEqual(len(sent), 1)
        early.install(sent[-1])
        self.assertEqual(early.key_ring.encrypting_key(), pending)
        self.assertEqual(late.key_ring.encrypting_key(), first)
        # Each opens the other's tickets.
        self.assertIsNotNone(late.key_ring.decrypting_key(pending.name))
        self.assertIsNotNone(early.key_ring.decrypting_key(first.name))
        self.assertEqual(sent[-1].decrypt_only, (first,))
        self.assertEqual(len(sent[-1].pending), 1)
        for _ in range(3):
            clock.advance(3600)
        self.assertEqual(len(sent), 4)
        self.assertEqual(len(sent[-1].decrypt_only), 2)  # keep=2
        owner.stop()

    def test_worker_ring_does_not_rotate(self):
        clock = Clock()
        keys = KeySet(TicketKey.generate(), (), (TicketKey.generate(),))
        source = WorkerKeySource(keys, clock)
        clock.advance(10 * 86400)
        self.assertEqual(source.key_ring.encrypting_key(), keys.encrypting)
        self.assertFalse(source.reload("SIGHUP"))
        self.assertNotIn(keys.encrypting.aes_key.hex(), source.describe())


class OptionTests(SynchronousTestCase):
    def test_count(self):
        import os

        self.assertEqual(plan.worker_count("3"), 3)
        self.assertEqual(plan.worker_count("auto"), os.cpu_count())
        for bad in ("0", "-1", "two", "257", ""):
            e = self.assertRaises(ConfigError, plan.worker_count, bad)
            self.assertEqual(
                str(e), f"--workers must be a number from 1 to 256 or auto, not {bad!r}"
            )

    def test_other_listeners_refused(self):
        options = {"listen": ["tcp:8080"]}
        e = self.assertRaises(ConfigError, plan.listener_configs, options)
        self.assertIn("--workers serves resumetls: listeners only", str(e))

    def test_worker_config(self):
        """memory:// becomes the shared store (same bound); generated keys the parent's."""
        config = plan.worker_config(
            ServerConfig(session_cache="memory://?size=77"), parent_keys=True
        )
        self.assertEqual(config.session_cache, "worker://?size=77")
        self.assertEqual(tuple(config.ticket_keys), ("worker:",))
        kept = plan.worker_config(
            ServerConfig(session_cache="lmdb:///x", ticket_keys=("k.keys",)), True
        )
        self.assertEqual(kept.session_cache, "lmdb:///x")
        self.assertEqual(tuple(kept.ticket_keys), ("k.keys",))


def _figures(worker, full, tls12, entries, hits):
    stats = {
        "full_handshakes": full,
        "resumed_ticket_tls12": tls12,
        "cache": {
            "entries": entries,
            "bytes": 10 * entries,
            "max_entries": 100,
            "hits": hits,
            "backend": "lmdb",
        },
    }
    return {
        "worker": worker,
        "pid": 100 + worker,
        "connections": full + tls12,
        "connections_open": 1,
        "services": [
            {
                "service": "default",
                "stats": stats,
                "capabilities": {
                    "custom_tickets": True,
                    "external_cache": True,
                    "reason": None,
                },
            }
        ],
    }


class AggregateTests(SynchronousTestCase):
    def test_sums(self):
        """Counts add up; the shared store's entries and bytes are not doubled."""
        data = aggregate([_figures(2, 3, 4, 7, 5), _figures(1, 1, 2, 7, 6)])
        total = data["totals"]["services"]["default"]
        self.assertEqual(
            (total["full_handshakes"], total["resumed_ticket_tls12"]), (4, 6)
        )
        self.assertEqual(total["cache"]["entries"], 7)
        self.assertEqual(total["cache"]["bytes"], 70)
        self.assertEqual(total["cache"]["hits"], 11)
        self.assertEqual([w["worker"] for w in data["workers"]], [1, 2])
        self.assertEqual(data["workers"][1]["handshakes"]["full"], 3)
        self.assertEqual(data["workers"][1]["handshakes"]["ticket_tls12"], 4)
        self.assertEqual(data["totals"]["connections"], 10)

    def test_metrics(self):
        text = render_metrics(
            aggregate([_figures(1, 1, 2, 7, 6), _figures(2, 3, 4, 7, 5)])
        )
        text = text.decode()
        self.assertIn(
            'resumetls_handshakes_total{kind="full",service="default"} 4.0', text
        )
        self.assertIn(
            'resumetls_worker_handshakes_total{kind="full",worker="2"} 3.0', text
        )
        self.assertIn("resumetls_workers 2.0", text)
        self.assertIn('resumetls_cache_entries{service="default"} 7.0', text)
