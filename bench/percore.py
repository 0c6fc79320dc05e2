"""
Per core, side by side in one run: the server CPU one TLS 1.2 handshake
costs with a minimal protocol (read the request, answer 3 bytes, close),
one server process each (a script, not a test):

    pip install uvloop                       # the Python peers
    python bench/percore.py                  # about 3 minutes
    python bench/percore.py --before HEAD~3  # also resumetls as of a commit

Servers: resumetls (a `resumetls:` endpoint: our callbacks, key ring and
in-memory cache), plain Twisted (`listenSSL`, OpenSSL's own cache and
tickets: the same work as ours; "twisted-ids": session IDs only, no ticket
to make in a full handshake, no ticket to open in a resumed one), an
asyncio `ssl` server, the same under uvloop, and with
`--before REV` resumetls as it was at REV (its package exported with `git
archive` and put first on the path), so a change is measured against what
it replaced in the same run.  Workloads
(ECDSA P-256), each resumed by ticket and full: one `openssl s_time`
(`-reuse`, `-new`: one connection at a time, so the server sleeps between
the client's round trips and every message wakes it), and
`bench/loadgen.c` with `--concurrency` clients at once (16 by default: the
server always has work, as a busy server does; `--no-busy` skips these).  Server CPU is
utime+stime of the server process from /proc over the run, divided by the
connections; handshakes per second per core = 1e6 / that.  Rounds are
interleaved (every server on every workload, in an order that rotates), and
each ratio is the median of the ratios within a round.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from handshakes import (  # noqa: E402
    ROOT,
    Server,
    free_port,
    loadgen,
    loadgen_binary,
    make_keys,
    publish,
    s_time,
    wait_for,
)

MINIMAL = r"""
import asyncio, os, ssl, sys
kind, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
if kind in ("asyncio", "uvloop"):
    if kind == "uvloop":
        import uvloop
        uvloop.install()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    async def handle(reader, writer):
        await reader.read(1024)
        writer.write(RESPONSE)
        writer.close()
    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx,
                                            backlog=511)
        async with server:
            await server.serve_forever()
    asyncio.run(main())
else:
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory, Protocol
    class Answer(Protocol):
        def dataReceived(self, data):
            self.transport.write(RESPONSE)
            self.transport.loseConnection()
    factory = Factory.forProtocol(Answer)
    if kind in ("twisted", "twisted-ids"):
        from twisted.internet.ssl import CertificateOptions, PrivateCertificate
        pem = open(cert).read() + open(key).read()
        private = PrivateCertificate.loadPEM(pem)
        # Given to the constructor: CertificateOptions turns a false
        # enableSessionTickets into OP_NO_TICKET in __init__, so setting the
        # attribute afterwards leaves tickets off.
        options = CertificateOptions(
            privateKey=private.privateKey.original,
            certificate=private.original,
            enableSessions=True,
            enableSessionTickets=kind == "twisted",
        )
        reactor.listenSSL(port, factory, options, backlog=511, interface="127.0.0.1")
    else:
        import resumetls
        expected = os.environ.get("RESUMETLS_FROM")
        if expected and not resumetls.__file__.startswith(expected):
            sys.exit(f"resumetls came from {resumetls.__file__}, not {expected}")
        from twisted.internet.endpoints import serverFromString
        serverFromString(reactor, f"resumetls:{port}:interface=127.0.0.1:"
                         f"certKey={cert}:privateKey={key}").listen(factory)
    reactor.run()
"""

WORKLOADS = ("resumed", "full")
#: The same, with `--concurrency` loadgen clients at once.
BUSY_WORKLOADS = ("resumed busy", "full busy")


class Minimal(Server):
    """
    One minimal server process (C{kind}: resumetls, twisted, twisted-ids,
    asyncio, uvloop); its CPU and stopping are L{handshakes.Server}'s.
    """

    def __init__(
        self, label: str, kind: str, keys: tuple[str, str], work: str, path: str
    ) -> None:
        self.label = self.name = label
        self.port = free_port()
        tmp = tempfile.mkdtemp(dir=work)
        script = os.path.join(tmp, "minimal.py")
        with open(script, "w") as f:
            f.write(MINIMAL)
        env = dict(os.environ)
        env["PYTHONPATH"] = path + os.pathsep + env.get("PYTHONPATH", "")
        env["XDG_CACHE_HOME"] = os.path.join(work, "cache")
        if kind == "resumetls":
            env["RESUMETLS_FROM"] = os.path.join(path, "resumetls")
        self.log = open(os.path.join(tmp, "output.log"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, script, kind, str(self.port), *keys],
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self.port, self.proc)

    def measure(
        self, workload: str, seconds: int, binary: str | None, concurrency: int
    ) -> dict:
        before = self.cpu()
        resumed = workload.startswith("resumed")
        if workload.endswith("busy"):
            n, reused, wall = loadgen(binary, self.port, resumed, seconds, concurrency)
            expected = n - concurrency  # each client's first is full
        else:
            n, reused, wall = s_time(self.port, "1.2", resumed, seconds)
            expected = n
        if resumed and reused < expected * 0.99:
            raise RuntimeError(f"{self.label}: only {reused} of {n} resumed")
        return {
            "handshakes": n,
            "rate": n / wall,
            "cpu_us": (self.cpu() - before) / n * 1e6,
        }


def export(rev: str, work: str) -> str:
    """resumetls's package as of C{rev}, in a directory of its own."""
    target = os.path.join(work, "before")
    os.makedirs(target)
    archive = subprocess.run(
        ["git", "-C", ROOT, "archive", rev, "resumetls"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", target], input=archive, check=True)
    return target


def run(args: argparse.Namespace) -> dict:
    work = tempfile.mkdtemp(prefix="resumetls-bench-percore-")
    keys = make_keys(work)["ecdsa"]
    wanted = [("resumetls", "resumetls", ROOT)]
    if args.before:
        wanted.insert(
            0,
            (
                f"resumetls before ({args.before})",
                "resumetls",
                export(args.before, work),
            ),
        )
    wanted += [(k, k, ROOT) for k in ("twisted", "twisted-ids", "asyncio", "uvloop")]
    servers: list[Minimal] = []
    runs: dict[str, dict[str, list[dict]]] = {}
    workloads = WORKLOADS
    binary = None
    if args.busy:
        binary = loadgen_binary(work)
        workloads += BUSY_WORKLOADS
    try:
        for label, kind, path in wanted:
            servers.append(Minimal(label, kind, keys, work, path))
        for r in range(args.rounds):
            order = servers[r % len(servers) :] + servers[: r % len(servers)]
            for workload in workloads:
                for server in order:
                    result = server.measure(
                        workload, args.seconds, binary, args.concurrency
                    )
                    result["round"] = r
                    runs.setdefault(server.label, {}).setdefault(workload, []).append(
                        result
                    )
                    print(
                        f"round {r + 1}/{args.rounds} {server.label:28} {workload:12} "
                        f"{result['cpu_us']:6.0f} µs",
                        file=sys.stderr,
                    )
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "runs": runs,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "concurrency": args.concurrency if args.busy else None,
        "load": os.getloadavg(),
    }


def _ratio(mine: list[dict], theirs: list[dict]) -> float:
    """Median over rounds of their CPU per handshake over mine (>1: mine cheaper)."""
    by_round = {x["round"]: x["cpu_us"] for x in theirs}
    return statistics.median(by_round[x["round"]] / x["cpu_us"] for x in mine)


def table(report: dict) -> str:
    runs = report["runs"]
    columns = [("resumed", "asyncio"), ("full", "twisted")]
    heads = ["resumed TLS 1.2", "full TLS 1.2"]
    if report.get("concurrency"):
        columns += [("resumed busy", "asyncio"), ("full busy", "twisted")]
        at_once = f"{report['concurrency']} at once"
        heads += [f"resumed, {at_once}", f"full, {at_once}"]
    versus = {"asyncio": "vs asyncio", "twisted": "vs plain Twisted"}
    header = "| server (one process, minimal protocol) |"
    for head, (_, other) in zip(heads, columns, strict=True):
        header += f" {head}: CPU µs | per core /s | {versus[other]} |"
    lines = [header, "|---|" + "---:|" * (3 * len(columns))]
    for label, by in runs.items():
        line = f"| {label} |"
        for workload, other in columns:
            cpu = statistics.median(x["cpu_us"] for x in by[workload])
            ratio = (
                f"{_ratio(by[workload], runs[other][workload]):.2f}x"
                if other in runs
                else ""
            )
            line += f" {cpu:.0f} | {1e6 / cpu:.0f} | {ratio} |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--before", help="also measure resumetls as of this git revision"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 s")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="loadgen clients at once"
    )
    parser.add_argument(
        "--no-busy",
        dest="busy",
        action="store_false",
        help="only the one-client workloads (no loadgen, no C compiler needed)",
    )
    parser.add_argument("--json", help="write the report here too")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 2, 2
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    publish(run(args), table, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
