"""
Where a resumetls server's time goes under one benchmark workload:

    python bench/profile_server.py [--version 1.2] [--workload ticket]
                                   [--key ecdsa] [--seconds 10]

Starts `twist resumetls` the way bench/handshakes.py does, drives it with
`openssl s_time` and samples the server with py-spy (`pip install py-spy`;
needs ptrace, so root or a relaxed ptrace_scope).  Prints the top frames by
own time and by inclusive time, and the share of samples by package
(resumetls, twisted, pyOpenSSL, the rest).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import handshakes  # noqa: E402


def _package(frame: str) -> str:
    m = re.search(r"\((.*):\d+\)$", frame)
    path = m.group(1) if m else frame
    for name in ("resumetls", "OpenSSL", "twisted", "cryptography", "zope"):
        if f"/{name}/" in path or path.startswith(f"{name}/"):
            return name
    if ".py" not in path:
        return "native"
    return "python stdlib / other"


def summarise(collapsed: str, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f]
        # The process/thread label py-spy puts first is not a frame.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        if "doPoll" in frames[-1] and "epollreactor.py:227" in frames[-1]:
            idle += n  # waiting in epoll_wait: not CPU
            continue
        total += n
        own[frames[-1]] += n
        packages[_package(frames[-1])] += n
        for f in set(frames):
            inclusive[f] += n
    out = [
        f"{total} busy samples ({idle} more idle in epoll_wait, left out)\n",
        "| own time | frame |",
        "|---:|---|",
    ]
    for f, n in own.most_common(top):
        out.append(f"| {100 * n / total:.1f}% | `{f}` |")
    out += ["", "| inclusive | frame |", "|---:|---|"]
    for f, n in inclusive.most_common(top):
        out.append(f"| {100 * n / total:.1f}% | `{f}` |")
    out += ["", "| own time by package | share |", "|---|---:|"]
    for p, n in packages.most_common():
        out.append(f"| {p} | {100 * n / total:.1f}% |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default="1.2", choices=handshakes.VERSIONS)
    parser.add_argument("--workload", default="ticket", choices=handshakes.WORKLOADS)
    parser.add_argument("--key", default="ecdsa", choices=handshakes.KEYS)
    parser.add_argument(
        "--server", default="resumetls", choices=("resumetls", "twisted")
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--raw", help="also keep py-spy's collapsed stacks here")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    args = parser.parse_args()
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="resumetls-profile-")
    try:
        os.makedirs(os.path.join(work, "www"))
        with open(os.path.join(work, "www", "ok.txt"), "w") as f:
            f.write("ok\n")
        keys = handshakes.make_keys(work)
        server = handshakes.Server(
            args.server, keys[args.key], args.workload != "session-id", work
        )
        try:
            out = os.path.join(work, "profile.txt")
            argv = [pyspy, "record", "--format", "raw", "--rate", "250"]
            argv += ["--duration", str(args.seconds), "--pid", str(server.proc.pid)]
            argv += ["--output", out, "--nonblocking"]
            if args.native:
                argv.append("--native")
            spy = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            result = {}
            load = threading.Thread(
                target=lambda: result.update(
                    handshakes.measure(
                        server, args.version, args.workload, args.seconds
                    )
                )
            )
            load.start()
            _, err = spy.communicate(timeout=args.seconds + 60)
            load.join(args.seconds + 60)
            if spy.returncode != 0:
                print(f"py-spy failed: {err.decode()[-1000:]}", file=sys.stderr)
                return 1
            with open(out) as f:
                collapsed = f.read()
            if args.raw:
                shutil.copy(out, args.raw)
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{args.server}, TLS {args.version}, {args.key}, {args.workload}: "
        f"{result.get('rate', 0):.0f} handshakes/s, "
        f"{result.get('cpu_per_handshake_us') or 0:.0f} µs server CPU each "
        f"(sampled under py-spy, so slower than the benchmark)\n"
    )
    print(summarise(collapsed, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
