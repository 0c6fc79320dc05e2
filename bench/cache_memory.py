"""
What the in-memory session cache costs: resident memory per stored session and
microseconds per call.  A script, not a test:

    python bench/cache_memory.py [--sessions N] [--der-size B] [--key-size K]

Memory is measured in a fresh interpreter: RSS (from /proc/self/statm, with
the peak from getrusage as a check) before and after storing N sessions whose
IDs and DER are made inside the loop, so the growth counts everything a stored
session keeps alive: its key, its value, the LRU table's entry and its place
in the expiry index.  The target is at most 2 x DER + 200 bytes per session.

Timings (timeit, best of 5) are for C{lookup_now} hits and C{store_now} calls
into a cache of N sessions, once with room to spare and once full (each store
evicts the least recently used session).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_MEMORY = r"""
import json, os, resource, sys
sys.path.insert(0, {root!r})
from twisted.internet.task import Clock
from resumetls import MemorySessionCache

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

n, der_size, key_size = {n}, {der_size}, {key_size}
urandom = os.urandom
cache = MemorySessionCache(max_entries=n, clock=Clock())
cache.store_now(urandom(key_size), urandom(der_size), 3600)  # warm up code
cache.remove_now(next(iter(cache._entries)))
before, peak_before = rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for i in range(n):
    cache.store_now(urandom(key_size), urandom(der_size), 3600 + i % 600)
after, peak_after = rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
s = cache.stats()
assert s.entries == n, s
print(json.dumps({{
    "per_session": (after - before) / n,
    "peak_per_session": (peak_after - peak_before) * 1024 / n,
    "counted_per_session": s.bytes / n,
}}))
"""

_TIMING = r"""
import json, os, sys, timeit
sys.path.insert(0, {root!r})
from twisted.internet.task import Clock
from resumetls import MemorySessionCache

n, der_size, key_size = {n}, {der_size}, {key_size}
der = os.urandom(der_size)
keys = [os.urandom(key_size) for _ in range(n)]
fresh = [os.urandom(key_size) for _ in range(n)]
result = {{}}

def best(stmt, setup, number):
    return min(timeit.repeat(stmt, setup, number=number, repeat=5)) / number * 1e6

def filled(size):
    cache = MemorySessionCache(max_entries=size, clock=Clock())
    for k in keys:
        cache.store_now(k, der, 3600)
    return cache

cache = filled(2 * n)
lookup, store = cache.lookup_now, cache.store_now

def hits():
    for k in keys:
        lookup(k)
result["lookup_hit_us"] = best(hits, "pass", 1) / n

def misses():
    for k in fresh:
        lookup(k)
result["lookup_miss_us"] = best(misses, "pass", 1) / n

def stores_with_room():
    c = filled(2 * n)
    s = c.store_now
    def run():
        for k in fresh:
            s(k, der, 3600)
    return run
result["store_us"] = min(
    timeit.timeit(stores_with_room(), number=1) for _ in range(5)
) / n * 1e6

def stores_full():
    c = filled(n)
    s = c.store_now
    def run():
        for k in fresh:
            s(k, der, 3600)
    return run
result["store_evicting_us"] = min(
    timeit.timeit(stores_full(), number=1) for _ in range(5)
) / n * 1e6
print(json.dumps(result))
"""


def _run(template: str, **values: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", template.format(root=ROOT, **values)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    return json.loads(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--der-size", type=int, default=150)
    parser.add_argument(
        "--key-size",
        type=int,
        default=48,
        help="16-byte service prefix + 32-byte session ID, as the server stores",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    sizes = dict(n=args.sessions, der_size=args.der_size, key_size=args.key_size)
    memory = _run(_MEMORY, **sizes)
    timing = _run(_TIMING, **sizes)
    target = 2 * args.der_size + 200
    verdict = "met" if memory["per_session"] <= target else "NOT met"
    print(
        f"{args.sessions} sessions, {args.der_size}-byte DER, "
        f"{args.key_size}-byte keys\n"
        f"| figure | value |\n|---|---|\n"
        f"| RSS growth per session | {memory['per_session']:.0f} bytes |\n"
        f"| peak RSS growth per session | {memory['peak_per_session']:.0f} bytes |\n"
        f"| counted by the cache (key + DER) | "
        f"{memory['counted_per_session']:.0f} bytes |\n"
        f"| target 2 x DER + 200 | {target} bytes: **{verdict}** |\n"
        f"| lookup_now, hit | {timing['lookup_hit_us']:.2f} us |\n"
        f"| lookup_now, miss | {timing['lookup_miss_us']:.2f} us |\n"
        f"| store_now, room to spare | {timing['store_us']:.2f} us |\n"
        f"| store_now, full (evicts) | {timing['store_evicting_us']:.2f} us |"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": sizes, "memory": memory, "timing": timing}, f)
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
