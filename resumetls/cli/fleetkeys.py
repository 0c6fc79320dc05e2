"""
C{resumetls keys fleet}: the fleet's ticket keys in Redis.

    resumetls keys fleet show   redis://127.0.0.1:6379/0 --key server.key
    resumetls keys fleet rotate redis://127.0.0.1:6379/0 --key server.key
    resumetls keys fleet import redis://127.0.0.1:6379/0 --key server.key ticket.keys

C{--key} is the service's TLS private key: the keys in Redis are sealed with
a key derived from it (or give the URL's C{seal_key_file=}).  C{show} prints
fingerprints, roles and times, never key material.  C{rotate} makes the
pending key encrypt after C{--lead} seconds (default 15: servers read the
keys every 5 s), and publishes a new pending key.  C{import} adds an nginx
or HAProxy key file: its encrypting key encrypts after the lead time, its
other keys decrypt only.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Add C{fleet} to C{resumetls keys}' subcommands."""
    fleet = sub.add_parser(
        "fleet", help="the fleet's ticket keys in Redis (show, rotate, import)"
    )
    fleet.add_argument("action", choices=("show", "rotate", "import"))
    fleet.add_argument("url", metavar="REDIS_URL")
    fleet.add_argument("file", nargs="?", metavar="KEY_FILE", help="for import")
    fleet.add_argument(
        "--key", metavar="PEM", help="the service's TLS private key (seals the keys)"
    )
    fleet.add_argument("--rotate-every", type=float, default=None, metavar="SECONDS")
    fleet.add_argument("--keep-keys", type=int, default=None, metavar="N")
    fleet.add_argument("--lead", type=float, default=15.0, metavar="SECONDS")


def _when(t: float, now: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
    delta = t - now
    if abs(delta) < 0.5:
        rel = "now"
    else:
        rel = f"in {delta:.0f}s" if delta > 0 else f"{-delta:.0f}s ago"
    return f"{stamp}Z ({rel})"


def show(schedule: Any, now: float) -> str:
    """The schedule as lines: fingerprint, role, times (no key material)."""
    lines = []
    for k in schedule.keys:
        role = k.role(now) or "expired"
        lines.append(
            f"{k.key.fingerprint}  {role:<12}  AES-{k.key.bits}  active from "
            f"{_when(k.active_from, now)}, encrypts until "
            f"{_when(k.encrypt_until, now)}, decrypts until "
            f"{_when(k.decrypt_until, now)}"
        )
    return "\n".join(lines) if lines else "no keys in the fleet yet"


def run(args: Any) -> int:
    """Carry out C{args.action} against Redis (runs the reactor)."""
    from twisted.internet.task import react

    from resumetls.keys.sources import KeySourceError

    if args.action == "import" and not args.file:
        raise KeySourceError("import needs a key file (nginx or HAProxy format)")
    outcome: dict[str, Any] = {}

    def main(reactor: Any) -> Any:
        from twisted.internet.defer import ensureDeferred

        return ensureDeferred(_act(reactor, args, outcome))

    try:
        react(main)
    except SystemExit:
        pass  # react() always exits; the outcome says how it went
    if "text" not in outcome:
        sys.stderr.write(f"resumetls keys: {outcome.get('error', 'failed')}\n")
        return 2
    print(outcome["text"])
    return 0


async def _act(reactor: Any, args: Any, outcome: dict[str, Any]) -> None:
    from twisted.internet.task import deferLater

    from resumetls.keys.files import load_key_file
    from resumetls.keys.redis import RedisKeySource, _target
    from resumetls.keys.ring import RotationPolicy

    source = None
    try:
        target = _target(args.url)
        defaults = RotationPolicy()
        policy = RotationPolicy(
            interval=args.rotate_every or defaults.interval,
            keep=args.keep_keys if args.keep_keys is not None else defaults.keep,
        )
        if target.seal_key_file is None and not args.key:
            raise ValueError(
                "give --key (the service's TLS private key) or seal_key_file="
            )
        source = RedisKeySource(target, reactor, policy)
        source.use_service_key(args.key or "")
        keyset = load_key_file(args.file) if args.action == "import" else None
        client = source.store.client
        client.connect()
        deadline = reactor.seconds() + target.timeout + 1
        while not client.available:
            if client.auth_failed or reactor.seconds() > deadline:
                raise ValueError(f"cannot reach {target.describe()}")
            await deferLater(reactor, 0.05, lambda: None)
        keep = max(1, policy.keep)
        now = reactor.seconds()

        def edit(schedule: Any) -> Any:
            from resumetls.keys.fleet import FleetSchedule

            base = schedule or FleetSchedule().extended(now, policy.interval, keep)
            if args.action == "rotate":
                return base.rotated(now, args.lead, policy.interval, keep)
            if args.action == "import":
                return base.imported(now, args.lead, policy.interval, keep, keyset)
            return None

        schedule = await source.store.change(now, edit)
        if schedule is None:
            outcome["text"] = "no keys in the fleet yet"
        else:
            outcome["text"] = show(schedule, now)
    except Exception as e:  # noqa: BLE001 - one line, exit status 2
        outcome["error"] = str(e) or type(e).__name__
    finally:
        stopping = source.store.client.disconnect() if source is not None else None
        if stopping is not None:
            await stopping
