"""
Sessions through Redis against the in-memory cache, side by side in one run
(a script, not a test):

    python bench/redis_cache.py                 # about 1 minute
    python bench/redis_cache.py --rounds 2 --per-round 100 --json out.json

1. Resumed-by-session-ID handshakes (TLS 1.2, no tickets) against two
   `twist resumetls` processes, one with `--session-cache memory://`, one
   with `--session-cache redis://…` (a `redis-server` started here on a free
   loopback port).  Rounds alternate between the two; each handshake is
   timed from connect to the end of the handshake (Python's `ssl`, one
   client thread).  Reported: p50 and p99 per server, the added latency
   (Redis minus memory) and the throughput ratio.
2. A lookup held back by a paused Redis (`SIGSTOP`, with `--lookup-budget 1`
   so the paused handshake waits long): while it waits, TLS 1.3 ticket
   resumptions on the same server are timed; they must complete in their
   usual time, not after the paused one.

Needs redis-server (`apt-get install -y redis-server`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from handshakes import free_port, wait_for  # noqa: E402  (bench/handshakes.py)


def context(version: ssl.TLSVersion, tickets: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def handshake(port: int, ctx: ssl.SSLContext, session=None):
    """One connection: (seconds to the end of the handshake, session, reused)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            elapsed = time.perf_counter() - started
            if ctx.maximum_version == ssl.TLSVersion.TLSv1_3:
                s.sendall(b"GET /status.json HTTP/1.0\r\n\r\n")
                while s.recv(65536):
                    pass
            return elapsed, s.session, s.session_reused


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=300)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    from tests.support.certificates import certificate, write_pem

    tmp = tempfile.mkdtemp(prefix="bench-redis-")
    procs: list[subprocess.Popen] = []
    try:
        cert, key = write_pem(tmp, *certificate())
        rport = free_port()
        redis = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(rport),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
        )
        procs.append(redis)
        wait_for(rport, redis)
        env = {**os.environ, "PYTHONPATH": ROOT, "XDG_DATA_HOME": tmp}
        ports = {}
        for name, extra in (
            ("memory", ["--session-cache", "memory://", "--no-tickets"]),
            (
                "redis",
                ["--session-cache", f"redis://127.0.0.1:{rport}/0", "--no-tickets"],
            ),
            (
                "redis-paused",
                [
                    "--session-cache",
                    f"redis://127.0.0.1:{rport}/1",
                    "--lookup-budget",
                    "1",
                ],
            ),
        ):
            ports[name] = free_port()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "twisted",
                    "resumetls",
                    "--port",
                    str(ports[name]),
                    "--certificate",
                    cert,
                    "--key",
                    key,
                    *extra,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd=tmp,
            )
            procs.append(proc)
            wait_for(ports[name], proc)
        time.sleep(1.0)

        # 1. Resumed by session ID: memory against Redis, rounds alternating.
        ctx12 = context(ssl.TLSVersion.TLSv1_2, tickets=False)
        times: dict[str, list[float]] = {"memory": [], "redis": []}
        walls: dict[str, float] = {"memory": 0.0, "redis": 0.0}
        for _ in range(args.rounds):
            for name in ("memory", "redis"):
                _, session, _ = handshake(ports[name], ctx12)
                time.sleep(0.05)
                started = time.perf_counter()
                for _ in range(args.per_round):
                    elapsed, _, reused = handshake(ports[name], ctx12, session)
                    if not reused:
                        raise SystemExit(f"{name}: a handshake did not resume")
                    times[name].append(elapsed)
                walls[name] += time.perf_counter() - started
        n = args.rounds * args.per_round
        result = {
            name: {
                "p50_ms": percentile(t, 50) * 1000,
                "p99_ms": percentile(t, 99) * 1000,
                "per_second": n / walls[name],
            }
            for name, t in times.items()
        }
        result["added_p50_ms"] = result["redis"]["p50_ms"] - result["memory"]["p50_ms"]
        result["added_p99_ms"] = result["redis"]["p99_ms"] - result["memory"]["p99_ms"]
        result["throughput_ratio"] = (
            result["redis"]["per_second"] / result["memory"]["per_second"]
        )

        # 2. A paused Redis holds one handshake; ticket resumptions go on.
        port = ports["redis-paused"]
        ctx13 = context(ssl.TLSVersion.TLSv1_3, tickets=True)
        _, ticket_session, _ = handshake(port, ctx13)
        usual = [handshake(port, ctx13, ticket_session)[0] for _ in range(20)]
        _, id_session, _ = handshake(port, ctx12)
        time.sleep(0.05)
        os.kill(redis.pid, signal.SIGSTOP)
        held: dict[str, float] = {}

        def held_back() -> None:
            try:
                held["seconds"] = handshake(port, ctx12, id_session)[0]
            except Exception as e:  # noqa: BLE001 - reported in the table
                held["error"] = repr(e)

        waiting = threading.Thread(target=held_back)
        waiting.start()
        time.sleep(0.2)
        beside = []
        # Until the held-back handshake gives up at its budget (1 s).
        while waiting.is_alive() and len(beside) < 5000:
            elapsed, _, reused = handshake(port, ctx13, ticket_session)
            beside.append(elapsed)
        os.kill(redis.pid, signal.SIGCONT)
        waiting.join(10)
        result["paused"] = {
            "held_back_s": held.get("seconds", -1.0),
            "held_back_error": held.get("error"),
            "ticket_usual_p50_ms": statistics.median(usual) * 1000,
            "ticket_beside_p50_ms": statistics.median(beside) * 1000,
            "ticket_beside_max_ms": max(beside) * 1000,
            "ticket_beside_count": len(beside),
        }
        print_table(result, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
                proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def print_table(r: dict, args: argparse.Namespace) -> None:
    print(f"\nResumed by session ID (TLS 1.2), {args.rounds} x {args.per_round} each:")
    print("| cache  | p50 ms | p99 ms | handshakes/s |")
    print("|--------|-------:|-------:|-------------:|")
    for name in ("memory", "redis"):
        x = r[name]
        print(
            f"| {name:<6} | {x['p50_ms']:6.2f} | {x['p99_ms']:6.2f} | "
            f"{x['per_second']:12.0f} |"
        )
    print(
        f"\nAdded by Redis: p50 {r['added_p50_ms']:+.2f} ms, p99 "
        f"{r['added_p99_ms']:+.2f} ms; throughput ratio {r['throughput_ratio']:.2f}"
    )
    p = r["paused"]
    print(
        f"\nPaused Redis: one session-ID handshake held {p['held_back_s']:.2f} s "
        f"(budget 1 s; the demo closes connections idle for 2 s); {p['ticket_beside_count']} TLS 1.3 ticket resumptions "
        f"beside it: p50 {p['ticket_beside_p50_ms']:.2f} ms (usual "
        f"{p['ticket_usual_p50_ms']:.2f} ms), max {p['ticket_beside_max_ms']:.2f} ms"
    )


if __name__ == "__main__":
    main()
